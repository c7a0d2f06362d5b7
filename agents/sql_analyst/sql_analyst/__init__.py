"""sql_analyst: a selfheal reference agent answering business questions over a SQLite database.

The database (``generate``) follows conventions (``conventions``) that no
model can read off the schema; the agent sees only its tools (``tools``), and
each run is judged by execution accuracy against a gold query (``compare``,
``questions``). ``plugin`` is the only module that imports selfheal.
"""

__version__ = "0.1.0"
