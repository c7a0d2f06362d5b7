"""How people talk to selfheal about its runs: feedback now; trace queries, explain, change requests later.

Everything here is library code the CLI (and a future chat/UI layer) calls;
nothing here prints.
"""

from __future__ import annotations
