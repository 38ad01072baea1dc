"""Sweeps: run each load point after a warm-up, window after window, until three windows agree (or a max).

This is perf_analyzer's measurement loop on top of `inferlab bench`'s runner: a step is only reported
once its throughput and latency stopped moving, so a sweep's curve shows the server, not its warm-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inferlab.experiments.points import LoadPoint, sweep_points
from inferlab.experiments.results import ResultsFolder
from inferlab.experiments.stability import is_stable, window_of
from inferlab.experiments.windows import merge_windows
from inferlab.loadgen.result import RunResult


class Driver(Protocol):
    """Runs one load point for a while and returns what the load generator measured.

    Example:
        >>> result = driver.run(LoadPoint(concurrency=4), duration_s=2.0, warmup_s=0.5)
        >>> result.requests_per_s
    """

    def run(self, point: LoadPoint, duration_s: float, warmup_s: float) -> RunResult: ...


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """How long each window lasts and when a step counts as stable (perf_analyzer's -p, -s, -r)."""

    window_s: float = 2.0
    warmup_s: float = 1.0
    tolerance: float = 0.10
    stable_windows: int = 3
    max_windows: int = 10
    percentile: str | None = None  # judge latency by this percentile ("99") instead of the mean

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.warmup_s < 0 or self.tolerance <= 0:
            raise ValueError("window_s and tolerance must be > 0 and warmup_s >= 0")
        if not 1 <= self.stable_windows <= self.max_windows:
            raise ValueError(f"need 1 <= stable_windows ({self.stable_windows}) <= max_windows ({self.max_windows})")


@dataclass(frozen=True, slots=True)
class Step:
    """One load point's outcome: every window measured, whether the last ones agreed, and `result`: those
    last `stable_windows` windows merged, its config noting the load point and the stability evidence."""

    point: LoadPoint
    windows: tuple[RunResult, ...]
    stable: bool
    result: RunResult


def _step(point: LoadPoint, windows: list[RunResult], stable: bool, settings: SweepSettings) -> Step:
    merged = merge_windows(windows[-settings.stable_windows:])
    config = dict(merged.config)
    config["load"] = point.as_dict()
    config["step"] = {
        "stable": stable,
        "windows": len(windows),
        "merged_windows": min(len(windows), settings.stable_windows),
        "window_requests_per_s": [w.requests_per_s for w in windows],
        "window_mean_ms": [w.latency.mean_ms for w in windows],
    }
    return Step(point, tuple(windows), stable, dataclasses.replace(merged, config=config))


def run_step(driver: Driver, point: LoadPoint, settings: SweepSettings) -> Step:
    """Warm up, then measure windows until the last `stable_windows` agree or `max_windows` ran."""
    windows: list[RunResult] = []
    for index in range(settings.max_windows):
        warmup = settings.warmup_s if index == 0 else 0.0
        windows.append(driver.run(point, settings.window_s, warmup))
        judged = [window_of(w, settings.percentile) for w in windows]
        if is_stable(judged, settings.tolerance, settings.stable_windows):
            return _step(point, windows, True, settings)
    return _step(point, windows, False, settings)


def run_sweep(
    driver: Driver, points: Sequence[LoadPoint], settings: SweepSettings = SweepSettings(),
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Each point in order; `on_step` sees every step as it finishes (progress lines, saving files)."""
    steps = []
    for point in points:
        step = run_step(driver, point, settings)
        if on_step is not None:
            on_step(step)
        steps.append(step)
    return steps


def sweep_to_folder(
    driver: Driver, specs: Iterable[str], settings: SweepSettings, results_root: Path,
    on_step: Callable[[Step], None] | None = None,
) -> ResultsFolder:
    """`--sweep concurrency=1,2,4 --sweep think=0,1` run end to end, each step saved as soon as it finishes.

    This is what `inferlab sweep` and `inferlab bench --sweep` call.
    """
    points = sweep_points(specs)
    folder = ResultsFolder.create(results_root, "sweep")

    def finished(step: Step) -> None:
        folder.add_run(step.result)
        if on_step is not None:
            on_step(step)

    run_sweep(driver, points, settings, on_step=finished)
    return folder
