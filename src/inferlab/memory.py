"""Keep CPython's small-object memory mapped in processes that serve requests.

CPython's allocator (pymalloc) returns a 1 MiB arena to the OS the moment its last object dies. A
request that builds and drops megabytes of small objects (orjson parsing a 1.6 MB JSON tensor makes
150,000 floats) therefore maps fresh arenas and page-faults every page of them again on the next
call. In a young process (a function's worker) that was ~530 page faults per mobilenet JSON decode
and up to half of its time (13.8 ms -> 7.6 ms with the arenas kept); a long-lived server keeps its
arenas only by the luck of fragmentation. Pinning one small object per 128 KiB keeps each arena in
use, so its pages stay resident and every freed pool is reused by any size class: the same trade
glibc's malloc makes with its trim threshold, paid once at start as resident memory.
"""

from __future__ import annotations

_FLOAT_BLOCK = 32  # bytes: the pymalloc size class of a float
_PIN_EVERY = (128 * 1024) // _FLOAT_BLOCK
_pins: list[float] = []


def reserve_arenas(mib: int = 16) -> None:
    """Keep about `mib` MiB of arenas mapped for the life of the process (once; later calls do nothing)."""
    if _pins or mib <= 0:
        return
    filler = [float(i) for i in range(mib * (1 << 20) // _FLOAT_BLOCK)]
    _pins.extend(filler[::_PIN_EVERY])
