"""Which process model uses both cores best? Measures the alternatives docs/architecture.md compares.

  A  one server process (uvicorn, event loop + inference threads)
  B  N worker processes, each with its own SO_REUSEPORT socket on the port (the kernel hashes connections)
  C  N worker processes accepting from one shared listening socket (what `inferlab serve --workers` does)
  D  front-end processes + one inference process: the cost of the extra hop alone, measured as
     round trips of a digits-sized request and of a mobilenet-sized tensor between two processes
     (pipe for small messages; shared memory plus a pipe message for the large tensor)

    flock /tmp/inferlab-bench.lock python benchmarks/process_model.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batching import SHARED, fmt, free_port, inferlab, repository, running, write_body, wrk

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferlab-pm-") as tmp:
        work = Path(tmp)
        models = {"digits_mlp": 64, "mobilenet_v2": 64}
        bodies = {m: write_body(work, m) for m in models}
        repo = repository(work / "repo", {m: "max_batch_size: 8\n" for m in models})
        for label, workers in (("A: 1 process", 1), ("B: 2 workers, SO_REUSEPORT", 0), ("C: 2 workers, shared", 2)):
            with inferlab(repo, workers) if workers else reuseport_workers(repo, 2) as url:
                for model, conns in models.items():
                    r = wrk(f"{url}/v2/models/{model}/infer", bodies[model], conns, args.seconds)
                    print(f"{label:32s} {model:13s} c={conns} {fmt(r)}", flush=True)
    hop_costs()


class reuseport_workers:
    """inferlab worker processes that each listen on their own SO_REUSEPORT socket on one port."""

    def __init__(self, repo: Path, workers: int) -> None:
        self.repo, self.workers = repo, workers

    def __enter__(self) -> str:
        port = free_port()
        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_reuseport_worker, args=(self.repo, port, self.workers))
                      for _ in range(self.workers)]
        for p in self.procs:
            p.start()
        self.running = running([sys.executable, "-c", "import time; time.sleep(3600)"], dict(os.environ),
                               f"http://127.0.0.1:{port}", ["/v2/models/digits_mlp/ready"])
        return self.running.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.running.__exit__(None, None, None)
        for p in self.procs:
            p.terminate()
            p.join()


def _reuseport_worker(repo: Path, port: int, workers: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    import uvicorn

    from inferlab.config import ServerConfig
    from inferlab.server.app import build, uvicorn_config

    server = build(ServerConfig(model_repository=repo, http_port=0), workers)
    uvicorn.Server(uvicorn_config(server)).run(sockets=[sock])


# --- D: the cost of a hop to an inference process ---------------------------------------------------
def _echo(conn: Connection, shm_name: str | None) -> None:
    shm = SharedMemory(shm_name) if shm_name else None
    while True:
        msg = conn.recv()
        if msg is None:
            break
        if shm is None:
            conn.send({"probabilities": np.asarray(msg["input"][:, :10])})
        else:
            view = np.ndarray(msg, np.float32, shm.buf)
            conn.send(float(view[0, 0, 0, 0]))
    if shm:
        shm.close()


def hop_costs(rounds: int = 20000) -> None:
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_echo, args=(there, None))
    proc.start()
    x = np.ones((1, 64), np.float32)
    here.send({"input": x})
    here.recv()
    start = time.perf_counter()
    for _ in range(rounds):
        here.send({"input": x})
        here.recv()
    small_us = (time.perf_counter() - start) / rounds * 1e6
    here.send(None)
    proc.join()

    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    shm = SharedMemory(create=True, size=image.nbytes)
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_echo, args=(there, shm.name))
    proc.start()
    target = np.ndarray(image.shape, np.float32, shm.buf)
    big_rounds = rounds // 10
    start = time.perf_counter()
    for _ in range(big_rounds):
        target[...] = image
        here.send(image.shape)
        here.recv()
    big_us = (time.perf_counter() - start) / big_rounds * 1e6
    here.send(None)
    proc.join()
    del target
    shm.close()
    shm.unlink()
    print(f"D: hop to an inference process and back: digits-sized {small_us:.1f} us per request (pipe, pickled "
          f"arrays); mobilenet-sized {big_us:.1f} us (copy into shared memory + pipe message)", flush=True)


if __name__ == "__main__":
    print(f"models from {SHARED / 'models'}", flush=True)
    main()
