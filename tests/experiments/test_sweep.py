"""A concurrency sweep against a real server: one stable result per step, each labelled with its load."""

from __future__ import annotations

from inferlab.experiments.driver import LoadgenDriver
from inferlab.experiments.points import sweep_points
from inferlab.experiments.sweep import Step, SweepSettings, run_sweep
from inferlab.loadgen.payloads import model_target


def test_concurrency_sweep_yields_one_stable_result_per_step(base_url: str) -> None:
    driver = LoadgenDriver(model_target(base_url, "digits"), labels={"series": "digits REST"})
    points = sweep_points(["concurrency=1,2,4"], sweep_points(["think=0.005"])[0])
    # Think time keeps the offered load below what two shared cores serve, so steps settle quickly;
    # the median is judged because one scheduler hiccup can move a sub-millisecond mean past the tolerance.
    settings = SweepSettings(window_s=0.5, warmup_s=0.3, tolerance=0.3, max_windows=12, percentile="50")
    seen: list[Step] = []
    steps = run_sweep(driver, points, settings, on_step=seen.append)
    assert seen == steps
    assert [s.point.concurrency for s in steps] == [1, 2, 4]
    for step in steps:
        assert step.stable, step.result.config["step"]
        assert 3 <= len(step.windows) <= 12
        result = step.result
        assert result.config["load"] == step.point.as_dict()
        assert result.config["series"] == "digits REST"
        assert result.counts.ok == result.counts.requests > 0
    throughputs = [s.result.requests_per_s for s in steps]
    assert throughputs[0] < throughputs[1] < throughputs[2]  # users with think time add load linearly
