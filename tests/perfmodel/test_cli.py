from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inferlab.cli.main import cli
from inferlab.perfmodel.profile import Profile, ProtocolOverhead
from inferlab.tensors import TensorSpec
from tests.conftest import SHARED_MODELS, make_repository


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    """A hand-made profile: 10 ms per request alone, 12 ms for a batch of 4; 1 ms of loop work per request."""
    prof = Profile(
        "m", (TensorSpec("input", "FP32", (4,)),),
        {"1x1": {1: (0.010,), 4: (0.012,)}, "2x1": {1: (0.011,), 4: (0.014,)}},
        {"v2-json": ProtocolOverhead(serial_s=0.001, delay_s=0.0005)},
    )
    path = tmp_path / "m.profile.json"
    prof.save(path)
    return path


def test_predict_prints_json_per_rate(profile_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("max_batch_size: 4\nbatching: {enabled: true, max_queue_delay_us: 2000}\n")
    result = CliRunner().invoke(cli, ["predict", "--profile", str(profile_file), "--config", str(config),
                                      "--rates", "50,200", "--requests", "5000", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["rate_rps"] for r in rows] == [50.0, 200.0]
    assert rows[0]["capacity_rps"] == pytest.approx(4 / 0.012)
    assert rows[1]["mean_batch_size"] > rows[0]["mean_batch_size"]
    assert rows[0]["p50_s"] >= 0.0105  # service + delay at least


def test_predict_table_and_usage_errors(profile_file: Path) -> None:
    ok = CliRunner().invoke(cli, ["predict", "--profile", str(profile_file), "--rate", "20", "--requests", "1000"])
    assert ok.exit_code == 0 and "capacity/s" in ok.output
    both = CliRunner().invoke(cli, ["predict", "--profile", str(profile_file), "--rate", "1", "--rates", "2"])
    assert both.exit_code == 2 and "exactly one of --rate or --rates" in both.output


def test_tune_ranks_configs_that_meet_the_slo(profile_file: Path) -> None:
    result = CliRunner().invoke(cli, ["tune", "m", "--profile", str(profile_file), "--slo", "p99=40ms",
                                      "--rate", "150", "--no-apply", "--json", "--top", "3"])
    assert result.exit_code == 0, result.output
    best = json.loads(result.output)
    assert all(c["meets_slo"] for c in best)
    assert best[0]["prediction"]["p99_s"] <= best[-1]["prediction"]["p99_s"] <= 0.040
    assert best[0]["config"]["max_batch_size"] > 1 or best[0]["config"]["instances"] == 2  # 150/s needs help


def test_tune_reports_an_unreachable_slo(profile_file: Path) -> None:
    result = CliRunner().invoke(cli, ["tune", "m", "--profile", str(profile_file), "--slo", "p99=1ms",
                                      "--rate", "50", "--no-apply"])
    assert result.exit_code == 1
    assert "no configuration meets p99=1ms" in result.output


def test_profile_command_writes_a_profile(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    result = CliRunner().invoke(cli, ["profile", str(SHARED_MODELS / "digits_mlp.onnx"), "-o", str(out),
                                      "--batch-sizes", "1,2", "--settings", "1x1", "--seconds-per-point", "0.05",
                                      "--overhead-seconds", "0.2"])
    assert result.exit_code == 0, result.output
    prof = Profile.load(out)
    assert sorted(prof.service_s["1x1"]) == [1, 2]
    assert prof.overhead["v2-json"].serial_s > 0


def test_profile_rejects_a_missing_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["profile", "nope", "--model-repository", str(tmp_path)])
    assert result.exit_code == 2 and "no " in result.output and "nope" in result.output


def test_tune_applies_the_winner_and_validates_it(tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    prof = Profile("digits", (TensorSpec("input", "FP32", (64,)),), {"1x1": {1: (2e-5,), 4: (3e-5,)}},
                   {"v2-json": ProtocolOverhead(serial_s=2e-4, delay_s=2e-4)})
    path = tmp_path / "digits.profile.json"
    prof.save(path)
    result = CliRunner().invoke(cli, ["tune", "digits", "--profile", str(path), "--slo", "p99=50ms", "--rate", "50",
                                      "--model-repository", str(repo), "--validate-seconds", "2", "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "predicted vs measured at 50.0/s" in result.output
    assert "max_batch_size: 0" in (repo / "digits" / "config.yaml").read_text()  # no batching wins at 50/s
