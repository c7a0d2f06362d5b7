"""ACE context: the agent's reviewed prompt files, their loader and the Jinja renderer."""
