"""Functions on `inferlab serve --workers 2` (real processes): every worker serves what one deployed,
removal and scaling reach all, async results are fetched through either, and the store outlives the server.

Which worker answers is told by a `witness` function with one instance per worker: its reply is the
instance's pid, so a connection's worker is known by the witness pid it gets back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from inferlab.cli.main import cli
from inferlab.server.metrics import SHARE_EVERY_S
from tests.conftest import ROOT, make_repository
from tests.functions.conftest import TOKEN, deploy, write_function
from tests.functions.test_scaling import wait_until

PID = """
    import os
    from pathlib import Path

    from inferlab.functions import Handler, Request

    class Pid(Handler):
        def setup(self) -> None:
            if "MARKS" in self.context.environment:  # tell the test this instance started
                Path(self.context.environment["MARKS"], str(os.getpid())).touch()

        def handle(self, request: Request) -> str:
            return str(os.getpid())
"""
NEEDS_FLAG = """
    from pathlib import Path

    from inferlab.functions import Handler, Request

    FLAG = Path({flag!r}).read_text()  # importing fails once the flag file is gone

    class NeedsFlag(Handler):
        def handle(self, request: Request) -> str:
            return FLAG
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRESH_CONNECTIONS = 60  # bound on new connections tried to reach the other worker (~1 in 2 does)


@contextmanager
def server(repository: Path, workers: int, log: Path) -> Iterator[str]:
    """`inferlab serve --workers N` on a free loopback port; stops it with SIGTERM and checks how it exited."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log, "a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferlab", "serve", "--workers", str(workers), "--http-port", str(port),
             "--grpc-port", "-1", "--model-repository", str(repository), "--auth-token", TOKEN],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # one process: uvicorn re-raises the SIGTERM it handled once shut down; the supervisor exits 0
    assert proc.returncode == (0 if workers > 1 else -signal.SIGTERM), log.read_text()[-3000:]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def connection(url: str) -> httpx.Client:
    """A client on one new connection, kept alive, so all its requests reach the same worker."""
    return httpx.Client(base_url=url, headers=AUTH, timeout=30, limits=httpx.Limits(max_connections=1))


def worker_of(client: httpx.Client) -> str:
    reply = client.post("/function/witness")
    assert reply.status_code == 200, reply.text
    return reply.text


def fn_list(url: str) -> str:
    listed = CliRunner().invoke(cli, ["fn", "list", "--url", url, "--token", TOKEN], env={"COLUMNS": "500"})
    assert listed.exit_code == 0, listed.output
    return listed.output


def available(client: httpx.Client, name: str, replicas: int) -> bool:
    return bool(client.get(f"/system/function/{name}").json()["availableReplicas"] == replicas)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 2-worker server with `witness` deployed (one warm instance in each worker)."""
    tmp = tmp_path_factory.mktemp("fn-workers")
    with server(make_repository(tmp / "repo", {"digits": "digits_mlp"}), 2, tmp / "stderr.log") as url:
        with connection(url) as client:
            folder = write_function(tmp / "witness", PID, min_instances=2, max_instances=2, idle_timeout_s=600)
            assert deploy(client, "witness", folder).status_code == 202
        yield url


def both_workers(url: str) -> dict[str, httpx.Client]:
    """One open connection to each worker, keyed by that worker's witness pid."""
    clients: dict[str, httpx.Client] = {}
    for _ in range(FRESH_CONNECTIONS):
        client = connection(url)
        pid = wait_until(partial(worker_of, client))  # a worker that just started may still be restoring
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
        if len(clients) == 2:
            return clients
    raise AssertionError(f"{FRESH_CONNECTIONS} new connections all reached the same worker")


def test_a_deploy_through_one_worker_is_served_by_both(two_workers: str, tmp_path: Path) -> None:
    clients = both_workers(two_workers)
    first, second = clients.values()
    marks = tmp_path / "marks"
    marks.mkdir()
    folder = write_function(tmp_path / "pid", PID, min_instances=2, max_instances=2, idle_timeout_s=600,
                            environment={"MARKS": str(marks)})
    assert deploy(first, "pid", folder).status_code == 202
    # min_instances 2 over 2 workers: each starts one, the other without being sent a request
    started = wait_until(lambda: len(names := {p.name for p in marks.iterdir()}) == 2 and names)
    for client in (first, second):  # setup() done; the instance is ready once the server has heard so
        wait_until(partial(available, client, "pid", 1))
    replies = [client.post("/function/pid") for client in (first, second) for _ in range(5)]
    assert {reply.text for reply in replies} == started  # max_instances 2: one instance in each worker, both used
    assert {reply.headers["x-cold-start"] for reply in replies} == {"false"}
    rows = [client.get("/system/function/pid").json() for client in (first, second)]
    assert len({row["worker"]["pid"] for row in rows}) == 2
    assert all(row["worker"]["workers"] == 2 and row["worker"]["max_instances"] == 1 for row in rows)
    assert all(row["config"]["max_instances"] == 2 and row["replicas"] == 1 for row in rows)
    for client in clients.values():
        client.close()


def test_remove_and_scale_through_one_worker_reach_every_worker(two_workers: str, tmp_path: Path) -> None:
    clients = both_workers(two_workers)
    first, second = clients.values()
    assert deploy(first, "gone", write_function(tmp_path / "gone", PID, idle_timeout_s=600)).status_code == 202
    assert all(client.post("/function/gone").status_code == 200 for client in (first, second))
    scaled = first.post("/system/scale-function/gone", json={"replicas": 4})
    assert scaled.status_code == 202
    for client in (first, second):  # 4 replicas over 2 workers: 2 each
        wait_until(partial(available, client, "gone", 2))
    assert second.request("DELETE", "/system/functions", json={"functionName": "gone"}).status_code == 202
    for client in (first, second):
        reply = client.post("/function/gone")
        assert reply.status_code == 404 and "not deployed" in reply.json()["error"]
        assert "gone" not in [row["name"] for row in client.get("/system/functions").json()]
    for client in clients.values():
        client.close()


def test_async_result_is_fetched_through_the_other_worker(two_workers: str) -> None:
    clients = both_workers(two_workers)
    (ran_on, first), (_, second) = clients.items()
    accepted = first.post("/async-function/witness", content=b"x")
    assert accepted.status_code == 202
    call_id = accepted.headers["x-call-id"]
    result = wait_until(lambda: (r := second.get(f"/async-result/{call_id}")).status_code != 202 and r)
    assert result.status_code == 200 and result.text == ran_on  # ran by the first worker's instance
    assert "handler;dur=" in result.headers["server-timing"]
    assert second.get("/async-result/../state.json").status_code == 404
    for client in clients.values():
        client.close()


def test_functions_outlive_a_restart(tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "repo", {"digits": "digits_mlp"})
    flag = tmp_path / "flag"
    flag.write_text("flag is up")
    log = tmp_path / "stderr.log"
    with server(repo, 1, log) as url, connection(url) as client:
        assert deploy(client, "kept", write_function(tmp_path / "kept", PID), min_instances=1).status_code == 202
        assert deploy(client, "fragile", write_function(tmp_path / "fragile", NEEDS_FLAG.format(flag=str(flag)))
                      ).status_code == 202
        assert client.post("/function/fragile").text == "flag is up"
        assert deploy(client, "corrupt", write_function(tmp_path / "corrupt", PID)).status_code == 202
    flag.unlink()  # fragile's handler no longer imports
    for spec in (repo / ".inferlab" / "functions" / "corrupt").glob("*/spec.json"):
        spec.write_text("{")  # and corrupt's stored copy is damaged
    with server(repo, 2, log) as url, connection(url) as client:
        reply = client.post("/function/kept")
        assert reply.status_code == 200 and reply.text.isdigit()
        rows = {row["name"]: row for row in client.get("/system/functions").json()}
        assert rows["kept"]["config"]["min_instances"] == 1 and rows["kept"]["error"] is None
        fragile = wait_until(lambda: client.get("/system/function/fragile").json()["error"])
        assert "FileNotFoundError" in fragile
        failed = client.post("/function/fragile")
        assert failed.status_code == 500 and "FileNotFoundError" in failed.json()["error"]
        assert "unreadable" in rows["corrupt"]["error"]
        broken = client.post("/function/corrupt")
        assert broken.status_code == 503 and "deploy it again" in broken.json()["error"]
        # `fn list` may reach the other worker, whose own check of fragile may still be running
        listed = wait_until(lambda: "FileNotFoundError" in (out := fn_list(url)) and out)
        assert "one of 2" in listed and "unreadable" in listed
        assert client.request("DELETE", "/system/functions", json={"functionName": "corrupt"}).status_code == 202
        assert client.post("/function/corrupt").status_code == 404
    assert "restored function 'fragile' does not load" in log.read_text()
    assert "function 'corrupt' could not be deployed from the store" in log.read_text()


def function_sample(client: httpx.Client, sample: str, **labels: str) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"{sample} {labels} is not in /metrics")


def test_function_metrics_are_summed_over_the_workers(two_workers: str) -> None:
    clients = list(both_workers(two_workers).values())
    time.sleep(SHARE_EVERY_S * 1.5)  # both workers' snapshots hold every call made so far
    calls = "inferlab_function_invocations_total"
    before = [function_sample(c, calls, function="witness", outcome="ok") for c in clients]
    assert before[0] == before[1]
    for client, n in zip(clients, (3, 4), strict=True):
        for _ in range(n):
            worker_of(client)
    time.sleep(SHARE_EVERY_S * 1.5)
    for client in clients:  # whichever worker is scraped tells the whole server's numbers
        assert function_sample(client, calls, function="witness", outcome="ok") == before[0] + 7
        assert function_sample(client, "inferlab_function_instances", function="witness") == 2
