"""Trace replay inputs: a file of timestamps, INFless load curves, Azure Functions 2019 per-minute counts.

Each reader returns an `Arrivals` value (plan.py) so the runner replays every trace the same way:
explicit send times, or a stepped rate shape.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from inferlab.errors import InvalidInput
from inferlab.loadgen.plan import RateShape, Timestamps

SPREADS = ("equidistant", "uniform", "exponential")


def read_timestamps(path: Path, scale: float = 1.0) -> Timestamps:
    """One send time per line (seconds; the first column of a CSV; '#' comments skipped), shifted to start at 0.

    `scale` stretches (>1) or compresses (<1) time, e.g. 0.5 replays twice as fast.
    """
    values = []
    for number, line in enumerate(_lines(path), 1):
        try:
            values.append(float(line.split(",", 1)[0]))
        except ValueError:
            if number == 1:
                continue  # a header row
            raise InvalidInput(f"{path}:{number}: {line!r} is not a timestamp in seconds") from None
    if not values:
        raise InvalidInput(f"{path}: no timestamps")
    times = np.sort(np.asarray(values, dtype=np.float64))
    return Timestamps((times - times[0]) * scale)


def read_infless(path: Path, peak_rate: float, hold_s: float, poisson: bool = False) -> RateShape:
    """INFless load curves (Bursty/Periodic/Sporadic.txt): each line a fraction of `peak_rate`, held `hold_s`."""
    if peak_rate <= 0 or hold_s <= 0:
        raise InvalidInput(f"INFless replay needs peak rate > 0 and hold > 0 (got {peak_rate}, {hold_s})")
    stages = []
    for number, line in enumerate(_lines(path), 1):
        try:
            level = float(line)
        except ValueError:
            raise InvalidInput(f"{path}:{number}: {line!r} is not a load level") from None
        if level < 0:
            raise InvalidInput(f"{path}:{number}: load level {level} is negative")
        stages.append((hold_s, level * peak_rate, level * peak_rate))
    if not stages:
        raise InvalidInput(f"{path}: no load levels")
    return RateShape(tuple(stages), poisson)


def read_azure(path: Path, function: str | None, *, minute_s: float = 60.0, count_scale: float = 1.0,
               spread: str = "equidistant", seed: int = 0, first_minute: int = 1,
               minutes: int | None = None) -> Timestamps:
    """Replay one function of an `invocations_per_function_md.anon.dNN.csv` file (columns HashOwner, HashApp,
    HashFunction, Trigger, 1..1440): each minute's count, times `count_scale` (rounded), spread over
    `minute_s` seconds equidistantly, uniformly at random, or with exponential gaps (seeded).

    `function` is a HashFunction value or a unique prefix of one; None takes the busiest function.
    """
    if spread not in SPREADS:
        raise InvalidInput(f"spread {spread!r} is not one of {', '.join(SPREADS)}")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or "HashFunction" not in header:
            raise InvalidInput(f"{path}: not an Azure Functions invocation file (no HashFunction column)")
        key = header.index("HashFunction")
        minute_cols = [i for i, name in enumerate(header) if name.isdigit()]
        chosen: list[str] | None = None
        best = -1.0
        for row in reader:
            if function is not None:
                if row[key].startswith(function):
                    if chosen is not None:
                        raise InvalidInput(f"{path}: function prefix {function!r} is not unique")
                    chosen = row
            else:
                total = sum(float(row[i] or 0) for i in minute_cols)
                if total > best:
                    chosen, best = row, total
    if chosen is None:
        raise InvalidInput(f"{path}: no function {function!r}")
    counts = np.array([float(chosen[i] or 0) for i in minute_cols], dtype=np.float64)
    counts = counts[first_minute - 1:][:minutes]
    counts = np.rint(counts * count_scale).astype(np.int64)
    rng = np.random.default_rng(seed)
    parts = []
    for minute, n in enumerate(counts.tolist()):
        if n <= 0:
            continue
        if spread == "equidistant":
            within = (np.arange(n) + 0.5) / n
        elif spread == "uniform":
            within = np.sort(rng.random(n))
        else:
            gaps = rng.exponential(1.0, n + 1)
            within = np.cumsum(gaps)[:-1] / gaps.sum()
        parts.append((minute + within) * minute_s)
    if not parts:
        raise InvalidInput(f"{path}: function {chosen[key][:12]}... has no invocations in the chosen minutes")
    return Timestamps(np.concatenate(parts))


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read trace {path}: {exc.strerror}") from exc
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]
