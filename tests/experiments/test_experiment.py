"""Experiment files: the matrix expands as written, configs go through the repository API, one results folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferlab.config import ServerConfig
from inferlab.errors import InvalidInput
from inferlab.experiments.experiment import ServerRefused, apply_config, run_experiment
from inferlab.experiments.spec import ENCODINGS, PROTOCOLS, load_spec, wire_protocol
from inferlab.importers import load_results
from inferlab.loadgen.payloads import PROTOCOLS as LOADGEN_PROTOCOLS
from inferlab.server.app import serve_in_thread
from tests.conftest import make_repository

SPEC = """
name: batching study
url: {url}
model: digits
window_s: 0.3
warmup_s: 0.2
tolerance: 0.5
max_windows: 6
servers:
  batching: [false, true]
  max_batch_size: [8]
  max_queue_delay_us: [200]
load:
  concurrency: [1, 2]
"""


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own: the experiment reloads digits with other configs, which must not leak elsewhere."""
    repository = make_repository(tmp_path_factory.mktemp("repo"), {"digits": "digits_mlp"})
    with serve_in_thread(ServerConfig(model_repository=repository, http_port=0)) as (_, url):
        yield url


def test_matrix_expands_and_varying_keys_name_the_series() -> None:
    spec = load_spec(SPEC.format(url="http://127.0.0.1:1"))
    assert [v.label for v in spec.variants] == ["batching=off", "batching=on"]
    assert spec.variants[1].config == {"max_batch_size": 8, "batching": {"enabled": True, "max_queue_delay_us": 200}}
    assert [p.concurrency for p in spec.points] == [1, 2]
    assert load_spec(SPEC.format(url="x") + "percentile: 99.0\n").sweep.percentile == "99"


def test_every_protocol_and_encoding_maps_to_a_load_generator_protocol() -> None:
    names = {wire_protocol(p, e) for p in PROTOCOLS for e in ENCODINGS}
    assert names <= set(LOADGEN_PROTOCOLS)
    assert wire_protocol("rest", "binary") == "v2-binary" and wire_protocol("grpc", "json") == "v2-grpc"


@pytest.mark.parametrize(("text", "message"), [
    ("url: x\nmodel: m\nload: {concurrency: [1]}\nservers: {gpus: [1]}", "servers: unknown key"),
    ("url: x\nmodel: m\nload: {concurrency: [1]}\nservers: {protocol: [soap]}", "protocol 'soap' is not one of"),
    ("url: x\nmodel: m\nload: {concurrency: [1]}\nservers: {batch_size: [0]}", "batch_size 0"),
    ("url: x\nmodel: m\nload: {concurrency: [1]}\nservers: {instances: [0]}", "instances: 0"),
    ("url: x\nmodel: m", "'load' is required"),
    ("model: m\nload: {concurrency: [1]}", "'url' is required"),
    ("url: x\nmodel: m\nload: {users: [1]}", "load: unknown key"),
    ("[1, 2", "not valid YAML"),
    ("url: x\nmodel: m\nload: {concurrency: [1]}\npercentile: 97", "percentile 97 is not one of"),
])
def test_bad_experiment_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_spec(text, "exp.yaml")


def test_experiment_stores_every_run_with_config_and_environment(own_server: str, tmp_path: Path) -> None:
    text = SPEC.format(url=own_server)
    folder = run_experiment(load_spec(text), tmp_path, text)
    assert folder.path.name.startswith("batching_study-")
    assert (folder.path / "experiment.yaml").read_text() == text
    environment = json.loads((folder.path / "environment.json").read_text())
    assert environment["load_generator"]["python"] and environment["server"]["name"]
    index = json.loads((folder.path / "index.json").read_text())
    assert [(e["series"], e["load"]["concurrency"]) for e in index] == [
        ("batching=off", 1), ("batching=off", 2), ("batching=on", 1), ("batching=on", 2)]
    runs = load_results(folder.path)
    assert len(runs) == 4
    assert all(r.counts.ok == r.counts.requests > 0 for r in runs)
    assert {json.dumps(r.config["server_config"], sort_keys=True) for r in runs} == {
        json.dumps(v.config, sort_keys=True) for v in load_spec(text).variants}


def test_refused_config_names_the_model_and_the_reply(own_server: str) -> None:
    with pytest.raises(ServerRefused, match=r"loading 'nosuch'.*HTTP 4"):
        apply_config(own_server, "nosuch", {"max_batch_size": 8})
