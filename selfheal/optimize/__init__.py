"""Learning from runs: ACE's Reflector and Curator, online (per run) and offline (batch).

``digest`` turns one run (graph state or stored trace) into the evidence the
roles read; ``reflector`` diagnoses it; ``curator`` turns the diagnosis into
delta operations on the cheatsheet; ``online`` applies them inside the graph;
``offline`` curates a batch of stored runs into one reviewed change set.
"""
