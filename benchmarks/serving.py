"""inferlab vs the hand-written FastAPI + onnxruntime service on the digits model, loaded with wrk.

Run: python benchmarks/serving.py [--seconds 10]   (needs the peer venv: from shared/,
BENCH_WORK=<dir> bash bench/setup_venvs.sh fastapi). Prints req/s and p99 at 1, 8 and 64 connections
for both servers, measured in one run, and the ratio (target: inferlab >= 1.5x at 64 connections,
zero errors).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_WORK, MODELS, SHARED, WrkResult, digits_repository, free_port, inferlab_cmd, running, wrk

CONNECTIONS = (1, 8, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--inferlab-args", default="", help="extra flags for `inferlab serve`")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferlab-bench-"))
    row = np.asarray(json.loads((MODELS / "digits_sample.json").read_text())["inputs"][0], dtype=np.float32)
    v2_body = work / "v2.json"
    v2_body.write_text(json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                               "data": row.tolist()}]}))
    peer_body = SHARED / "bench" / "peers" / "fastapi" / "body_digits_mlp.json"
    results: dict[str, dict[int, WrkResult]] = {}

    port = free_port()
    with running(inferlab_cmd(digits_repository(work / "repo"), port, *args.inferlab_args.split()),
                 f"http://127.0.0.1:{port}/v2/models/digits/ready"):
        results["inferlab"] = measure(f"http://127.0.0.1:{port}/v2/models/digits/infer", v2_body, args)

    peer_port = free_port()
    serve_sh = SHARED / "bench" / "peers" / "fastapi" / "serve.sh"
    with running(["bash", str(serve_sh)], f"http://127.0.0.1:{peer_port}/health",
                 env={"PORT": str(peer_port), "BENCH_WORK": str(BENCH_WORK)}):
        results["fastapi"] = measure(f"http://127.0.0.1:{peer_port}/predict/digits_mlp", peer_body, args)

    print(f"\n{'server':<10} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, cells in results.items():
        for c, r in cells.items():
            print(f"{name:<10} {c:>5} {r.rps:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}")
    for c in CONNECTIONS:
        ratio = results["inferlab"][c].rps / results["fastapi"][c].rps
        print(f"ratio inferlab/fastapi at {c:>2} connections: {ratio:.2f}x")


def measure(url: str, body: Path, args: argparse.Namespace) -> dict[int, WrkResult]:
    cells = {}
    for c in CONNECTIONS:
        wrk(url, body, c, args.warmup)
        cells[c] = wrk(url, body, c, args.seconds)
        print(f"  {url} c={c}: {cells[c].rps:.0f} req/s, p99 {cells[c].p99_ms:.2f} ms", flush=True)
    return cells


if __name__ == "__main__":
    main()
