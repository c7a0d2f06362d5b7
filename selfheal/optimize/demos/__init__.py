"""Bootstrapped demonstrations (DSPy's BootstrapFewShot on selfheal's context files).

``bootstrap`` runs the agent k times per train example and keeps the
environment-verified successes; ``trajectory`` shortens and redacts each into
a :class:`~selfheal.optimize.demos.model.Demonstration`; ``select`` scores
candidate sets on the dev split under a token budget; ``context_file`` writes
the chosen set as ``examples:`` of ``context.yaml``; ``propose`` ties it
together for ``selfheal optimize --demos``. Retrieval of demos per task lives
with the context (``selfheal.context.examples``).
"""

from selfheal.optimize.demos.bootstrap import bootstrap_demos
from selfheal.optimize.demos.model import Attempt, DemoCall, DemoPool, Demonstration, PhaseCost
from selfheal.optimize.demos.propose import DemoReport, optimize_demos
from selfheal.optimize.demos.select import Candidate, DevScore, Selection, experiment_dev_eval, select_demos

__all__ = [
    "Attempt", "Candidate", "DemoCall", "DemoPool", "DemoReport", "Demonstration", "DevScore", "PhaseCost",
    "Selection", "bootstrap_demos", "experiment_dev_eval", "optimize_demos", "select_demos",
]  # fmt: skip
