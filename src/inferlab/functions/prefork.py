"""Preloaded by the forkserver (functions/manager.py): builds the arena reserve of inferlab/memory.py.

Every worker is forked from the forkserver, so each starts with the arenas already mapped (pages
shared until first written) instead of paying the reserve's ~50-90 ms in its cold start.
"""

from inferlab.memory import reserve_arenas

reserve_arenas()
