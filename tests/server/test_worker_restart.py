"""The supervisor replaces a crashed worker while the other keeps serving, and gives up on a crash loop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from inferlab.config import ServerConfig
from inferlab.server.metrics import Metrics, record_restarts, retire_worker
from inferlab.server.workers import MAX_RESTARTS, RestartBudget, exit_description, supervise
from tests.conftest import SHARED_MODELS, make_repository
from tests.serve_process import ServeProcess, fresh, serve_workers, start_serve
from tests.server.crashing_worker import ready_then_exit

FRESH_CONNECTIONS = 24  # enough new connections that both workers answer some (measured ~9:15)
MAX_FRESH_CONNECTIONS = 400  # a run of 24 once all went to one worker


def _infer(request_id: str, rows: int = 1) -> dict[str, object]:
    return {"id": request_id, "inputs": [
        {"name": "input", "shape": [rows, 64], "datatype": "FP32", "data": [1.0] * (64 * rows)}]}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    root = make_repository(tmp_path / "repo", {"digits": "digits_mlp", "spare": "digits_mlp"})
    with serve_workers(root, tmp_path / "stderr.log") as running:
        yield running


def test_a_killed_worker_is_replaced_and_the_replacement_sees_the_repository_changes(server: ServeProcess) -> None:
    url = server.url
    # Repository changes through the API before the crash: upload, load with a new config, unload.
    reply = fresh(url).post("/v2/repository/models/digits2/upload",
                            files={"model": (SHARED_MODELS / "digits_mlp.onnx").read_bytes()})
    assert reply.status_code == 201, reply.text
    reply = fresh(url).post("/v2/repository/models/digits2/load",
                            json={"parameters": {"config": orjson.dumps({"max_batch_size": 2}).decode()}})
    assert reply.status_code == 200, reply.text
    assert fresh(url).post("/v2/repository/models/spare/unload").status_code == 200

    before = server.worker_pids()
    assert len(before) == 2
    victim = min(before)
    outcomes: list[int | str] = []
    done = threading.Event()

    def traffic() -> None:  # one request at a time, so at most one is in flight on the victim
        for i in range(2000):
            if done.is_set():
                return
            try:
                outcomes.append(fresh(url).post("/v2/models/digits/infer", json=_infer(f"during-{i}"))
                                .status_code)
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        replacement = _wait_for_replacement(server, before)
        _wait_until_answering(server, replacement)
    finally:
        done.set()
        thread.join(30)
    failures = [o for o in outcomes if o != 200]
    assert len(failures) <= 1, failures
    assert outcomes.count(200) >= 10

    assert server.proc.poll() is None, "the supervisor keeps running"
    assert "exited unexpectedly with signal SIGKILL; starting a replacement" in server.log.read_text()
    workers = server.worker_pids()
    assert workers == (before - {victim}) | {replacement}
    # Every worker, the replacement included, serves the uploaded model with the config loaded through the API,
    answered: set[object] = set()
    for i in range(MAX_FRESH_CONNECTIONS):  # the kernel picks the worker that accepts: try until both have
        assert fresh(url).post("/v2/models/digits2/infer", json=_infer(f"after-{i}")).status_code == 200
        answered = {line["pid"] for line in server.access_log("after-")}
        if answered == workers:
            break
    assert answered == workers
    assert {fresh(url).post("/v2/models/digits2/infer", json=_infer("big", rows=3)).status_code
            for _ in range(FRESH_CONNECTIONS)} == {400}  # max_batch_size 2
    # and keeps the unloaded model unloaded.
    assert {fresh(url).get("/v2/models/spare/ready").status_code for _ in range(FRESH_CONNECTIONS)} == {503}
    assert _restarts(url) == 1


def _wait_for_replacement(server: ServeProcess, before: set[int]) -> int:
    """The one new worker pid (the killed one may still show as alive for a moment after SIGKILL)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = server.worker_pids() - before
        if new:
            (pid,) = new
            return pid
        time.sleep(0.1)
    raise AssertionError(f"no replacement worker:\n{server.log.read_text()[-3000:]}")


def _wait_until_answering(server: ServeProcess, pid: int) -> None:
    """Send fresh requests until the worker `pid` answers one (the kernel spreads new connections)."""
    deadline = time.monotonic() + 60
    i = 0
    while time.monotonic() < deadline:
        i += 1
        with contextlib.suppress(httpx.TransportError):
            fresh(server.url).post("/v2/models/digits/infer", json=_infer(f"probe-{i}"))
        if any(line["pid"] == pid for line in server.access_log("probe-")):
            return
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} never answered:\n{server.log.read_text()[-3000:]}")


def _restarts(url: str) -> float:
    text = fresh(url).get("/metrics").text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "inferlab_worker_restarts_total")


def test_workers_that_die_before_they_accept_stop_the_server(tmp_path: Path) -> None:
    """A start-up failure would recur in every replacement: exit 1 with a clear error instead of restarting."""
    root = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")  # the workers fail when uvicorn builds the TLS context
    log = tmp_path / "stderr.log"
    proc = start_serve(root, log, "--workers", "2", "--tls-cert", str(junk), "--tls-key", str(junk))
    try:
        assert proc.wait(60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "before it accepted a connection; stopping the server" in log.read_text()
    assert "starting a replacement" not in log.read_text()


def test_workers_that_keep_dying_stop_the_server_after_the_restart_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    config = ServerConfig(model_repository=tmp_path, host="127.0.0.1", http_port=0, grpc_port=None)
    with caplog.at_level(logging.INFO, logger="inferlab.server"):
        assert supervise(config, 1, ready_then_exit) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("starting a replacement" in m for m in messages) == MAX_RESTARTS
    assert any(f"{MAX_RESTARTS} workers were already replaced" in m and "exit code 3" in m for m in messages)


def test_restart_budget_counts_restarts_within_the_window() -> None:
    budget = RestartBudget(limit=2, window_s=10.0)
    assert budget.take(0.0) and budget.take(1.0)
    assert not budget.take(2.0)  # a third within 10 s
    assert budget.take(10.5)  # the first one has left the window
    assert not budget.take(10.6)


def test_exit_description_names_signals() -> None:
    assert exit_description(-signal.SIGKILL) == "signal SIGKILL"
    assert exit_description(3) == "exit code 3"


def test_a_dead_workers_counters_stay_and_its_queue_depth_goes(tmp_path: Path) -> None:
    dead = Metrics()
    dead.model("digits", 1).flushed("full", 4)
    dead.model("digits", 1).queue_depth(3)
    instances = Gauge("inferlab_function_instances", "Function instances ready now.", ["function"],
                      registry=dead.summed)
    calls = Counter("inferlab_function_invocations", "Function calls.", ["function"], registry=dead.summed)
    instances.labels("echo").set(2)
    calls.labels("echo").inc(5)
    (tmp_path / "4242.json").write_bytes(orjson.dumps(dead.snapshot()))  # what worker 4242 last shared
    live = Metrics(tmp_path)
    try:
        retire_worker(tmp_path, 4242)
        record_restarts(tmp_path, 1)
        samples = {s.name: s.value for f in text_string_to_metric_families(live.exposition().decode())
                   for s in f.samples if s.labels.get("cause", "full") == "full"}
    finally:
        live.close()
    assert samples["inferlab_batch_flushes_total"] == 1
    assert samples["inferlab_queue_depth"] == 0
    assert samples["inferlab_worker_restarts_total"] == 1
    assert samples["inferlab_function_invocations_total"] == 5  # a dead worker's function calls still count
    assert samples["inferlab_function_instances"] == 0  # its instances are gone
    assert not (tmp_path / "4242.json").exists(), "a new worker that gets pid 4242 starts from zero"
