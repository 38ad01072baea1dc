"""Intended send times: constant, Poisson, stages/ramps and trace replay (seeded pure generators).

Every shape is one global sequence of offsets (seconds from the run's start), generated in chunks so a
long run never holds its whole schedule; process `i` of `P` takes every P-th arrival, so the schedule
does not depend on how many processes send it. A rate shape is inverted through its cumulative
intensity: evenly spaced arrivals sit at integer values of it, Poisson ones at the partial sums of
unit exponentials (the time-rescaling theorem), so ramps and steps need no special cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from inferlab.loadgen.plan import Arrivals, RateShape, Timestamps, parse_duration

CHUNK = 4096

Offsets = npt.NDArray[np.float64]


def intended_offsets(
    arrivals: Arrivals, *, seed: int, count: int | None, duration_s: float | None,
    process: int = 0, processes: int = 1,
) -> Iterator[Offsets]:
    """This process's share of the schedule, in sorted chunks, stopping at `count` arrivals or `duration_s`."""
    taken = 0  # global arrivals seen so far, for the i::P split across chunk boundaries
    for chunk in _global(arrivals, seed):
        if count is not None and taken + chunk.size > count:
            chunk = chunk[:count - taken]
        if duration_s is not None and chunk.size and chunk[-1] >= duration_s:
            chunk = chunk[:int(np.searchsorted(chunk, duration_s))]
            yield chunk[(process - taken) % processes::processes]
            return
        yield chunk[(process - taken) % processes::processes]
        taken += chunk.size
        if count is not None and taken >= count:
            return
        if chunk.size == 0:
            return


def _global(arrivals: Arrivals, seed: int) -> Iterator[Offsets]:
    if isinstance(arrivals, Timestamps):
        for at in range(0, arrivals.offsets_s.size, CHUNK):
            yield arrivals.offsets_s[at:at + CHUNK]
        return
    yield from _from_shape(arrivals, seed)


def _from_shape(shape: RateShape, seed: int) -> Iterator[Offsets]:
    durations = np.array([s[0] for s in shape.stages], dtype=np.float64)
    r0 = np.array([s[1] for s in shape.stages], dtype=np.float64)
    r1 = np.array([s[2] for s in shape.stages], dtype=np.float64)
    starts = np.concatenate(([0.0], np.cumsum(durations)))[:-1]
    finite = np.isfinite(durations)
    mass = np.where(finite, (r0 + r1) / 2 * np.where(finite, durations, 0.0), np.where(r0 > 0, math.inf, 0.0))
    cumulative = np.concatenate(([0.0], np.cumsum(mass)))
    total = cumulative[-1]
    slope = np.where(finite & (durations > 0), (r1 - r0) / np.where(finite & (durations > 0), durations, 1.0), 0.0)
    rng = np.random.default_rng(seed)
    position = 0.0  # cumulative intensity reached so far
    index = 0
    while True:
        if shape.poisson:
            u = position + np.cumsum(rng.exponential(1.0, CHUNK))
            position = float(u[-1])
        else:
            u = np.arange(index, index + CHUNK, dtype=np.float64)
            index += CHUNK
        u = u[u < total]
        if u.size:
            yield _invert(u, cumulative, starts, r0, slope)
        if u.size < CHUNK:
            return


def _invert(u: Offsets, cumulative: Offsets, starts: Offsets, r0: Offsets, slope: Offsets) -> Offsets:
    """Solve Lambda(t) = u within each stage: r0*x + slope*x^2/2 = du, in the cancellation-free form."""
    stage = np.searchsorted(cumulative, u, side="right") - 1
    du = u - cumulative[stage]
    a, k = r0[stage], slope[stage]
    root = a + np.sqrt(np.maximum(a * a + 2.0 * k * du, 0.0))
    x = np.divide(2.0 * du, root, out=np.zeros_like(du), where=root > 0)
    out: Offsets = starts[stage] + x
    return out


def parse_stages(spec: str, poisson: bool = False) -> RateShape:
    """"30s@100,60s@100-400,10s@0": each stage DURATION@RATE or DURATION@START-END (req/s, linear ramp)."""
    stages = []
    for part in spec.split(","):
        duration, _, rates = part.strip().partition("@")
        low, _, high = rates.partition("-")
        try:
            r0 = float(low)
            r1 = float(high) if high else r0
        except ValueError:
            raise ValueError(f"stage {part!r}: expected DURATION@RATE or DURATION@START-END") from None
        if r0 < 0 or r1 < 0:
            raise ValueError(f"stage {part!r}: rates must be >= 0")
        stages.append((parse_duration(duration), r0, r1))
    return RateShape(tuple(stages), poisson)
