"""The server breakdown figure: the server's `receive` span (a body arriving) is stacked with transport."""

from __future__ import annotations

import dataclasses

import pytest
from matplotlib.container import BarContainer

from inferlab.loadgen.result import LatencySummary
from inferlab.report.figures import server_breakdown
from inferlab.report.runs import views
from tests.report.test_overlay import hand_run


def mean(ms: float) -> LatencySummary:
    return LatencySummary(100, ms, ms, ms, 0.0, {"50": ms})


def test_receive_time_is_stacked_as_transport_not_as_server_work() -> None:
    spans = {"receive": 0.5, "decode": 2.0, "queue": 0.25, "infer": 3.0, "encode": 0.25, "total": 6.5}
    run = dataclasses.replace(hand_run(10.0, 7.0, 8.0, 9.0, 10.0),
                              server_timing={k: mean(v) for k, v in spans.items()}, transport=mean(1.0))
    plot = server_breakdown(views([run]))
    assert plot is not None
    bars = [c for c in plot.figure.axes[0].containers if isinstance(c, BarContainer)]
    heights = {c.get_label(): c.patches[0].get_height() for c in bars}
    assert heights["transport"] == pytest.approx(1.5)  # client-side transport + the body's arrival
    assert heights["pre-processing"] == pytest.approx(2.0)
    assert heights["other server"] == pytest.approx(0.5)  # total - every named span, receive included
