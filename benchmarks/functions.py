"""Functions: cold-start time of the mobilenet-classifier example, and the latency a function adds.

Run: flock /tmp/inferlab-bench.lock python benchmarks/functions.py [--cold-starts 7] [--requests 1000]

1. Cold start: the mobilenet-classifier example with a 0.3 s idle timeout; each round waits until
   it has scaled to zero, then times one request (client send -> response) and reads the server's
   X-Cold-Start-Ms (instance start + handler setup). A warm request follows for comparison.
2. Added p50: the same V2 JSON request sent to the plain model endpoint and to a pass-through
   function (decode V2 JSON in the worker, call the server's model, encode V2 JSON), one warm
   instance, one request at a time, alternating request by request so drift hits both alike.
   Target: <= 1 ms added at p50. digits shows the pure overhead; mobilenet adds moving its 1.6 MB
   JSON body to the worker and the 600 KB tensor back.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, ROOT, free_port, inferlab_cmd, running

sys.path.insert(0, str(ROOT / "src"))
from inferlab.functions.package import deploy_body

PROXY = '''
    import numpy as np
    import orjson

    from inferlab.functions import Handler, Request, Response

    DTYPES = {"FP32": np.float32, "INT64": np.int64}


    class V2Proxy(Handler):
        """The V2 JSON request in, the model called through the server, the V2 JSON response out."""

        def setup(self) -> None:
            self.model = self.context.environment["MODEL"]

        def handle(self, request: Request) -> Response:
            doc = orjson.loads(request.body)
            inputs = {t["name"]: np.asarray(t["data"], dtype=DTYPES[t["datatype"]]).reshape(t["shape"])
                      for t in doc["inputs"]}
            outputs = self.infer(self.model, inputs)
            body = {"model_name": self.model, "outputs": [
                {"name": n, "datatype": "FP32", "shape": list(a.shape), "data": a.ravel()} for n, a in outputs.items()]}
            return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), "application/json")
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-starts", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint for digits (mobilenet: a fifth)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferlab-bench-fn-"))
    try:
        repo = work / "repo"
        for name, stem in (("digits", "digits_mlp"), ("mobilenet_v2", "mobilenet_v2")):
            (repo / name / "1").mkdir(parents=True)
            shutil.copyfile(MODELS / f"{stem}.onnx", repo / name / "1" / "model.onnx")
        proxy = work / "v2-proxy"
        proxy.mkdir()
        (proxy / "handler.py").write_text(textwrap.dedent(PROXY))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # One worker process: each request goes to the one instance being measured, and the plain
        # endpoint runs on the same single process, so the two paths differ only by the function.
        with running(inferlab_cmd(repo, port, "--workers", "1"), f"{url}/v2/health/ready"), httpx.Client(base_url=url,
                                                                                        timeout=60) as client:
            cold_start(client, args.cold_starts)
            added_latency(client, proxy, "digits", (1, 64), args.requests)
            added_latency(client, proxy, "mobilenet_v2", (1, 3, 224, 224), max(50, args.requests // 5))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cold_start(client: httpx.Client, rounds: int) -> None:
    deploy(client, "mobilenet-classifier", ROOT / "examples" / "mobilenet-classifier",
           {"idle_timeout_s": 0.3, "scale_down_delay_s": 0})
    body = orjson.dumps({"instances": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).tolist()})
    totals, servers, warms = [], [], []
    for _ in range(rounds):
        wait_for_zero(client, "mobilenet-classifier")
        start = time.perf_counter()
        reply = client.post("/function/mobilenet-classifier", content=body)
        totals.append((time.perf_counter() - start) * 1000)
        if reply.status_code != 200 or reply.headers["x-cold-start"] != "true":
            raise RuntimeError(f"expected a cold start, got {reply.status_code} {reply.headers}")
        servers.append(float(reply.headers["x-cold-start-ms"]))
        start = time.perf_counter()
        client.post("/function/mobilenet-classifier", content=body).raise_for_status()
        warms.append((time.perf_counter() - start) * 1000)
    print(f"cold start, mobilenet-classifier ({rounds} rounds, median [min..max]):")
    print(f"  request at zero instances -> response: {_summary(totals)} ms")
    print(f"  of which instance start + setup (X-Cold-Start-Ms): {_summary(servers)} ms")
    print(f"  warm request right after: {_summary(warms)} ms")


def added_latency(client: httpx.Client, proxy: Path, model: str, shape: tuple[int, ...], n: int) -> None:
    name = f"proxy-{model.replace('_', '-')}"
    deploy(client, name, proxy, {"models": [model], "min_instances": 1, "environment": {"MODEL": model}})
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    body = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(shape), "data": data.ravel()}]},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    paths = {"plain": f"/v2/models/{model}/infer", "function": f"/function/{name}"}
    for path in paths.values():  # warm both paths (thread pools, the scheduler's inline decision)
        for _ in range(20):
            client.post(path, content=body).raise_for_status()
    times: dict[str, list[float]] = {k: [] for k in paths}
    handler_ms: list[float] = []
    for i in range(n):  # alternate request by request (and which goes first) so drift hits both alike
        for kind in (("plain", "function") if i % 2 else ("function", "plain")):
            start = time.perf_counter()
            reply = client.post(paths[kind], content=body)
            times[kind].append((time.perf_counter() - start) * 1000)
            reply.raise_for_status()
            if kind == "function":
                phases = dict(p.split(";dur=") for p in reply.headers["server-timing"].split(", "))
                handler_ms.append(float(phases["handler"]))
    plain, function = (statistics.median(times[k]) for k in paths)
    paired = statistics.median(f - p for f, p in zip(times["function"], times["plain"], strict=True))
    print(f"added p50 latency, {model} {list(shape)}, {n} sequential requests each, alternating:")
    print(f"  plain model endpoint p50 {plain:.3f} ms, through a function p50 {function:.3f} ms: "
          f"added {function - plain:+.3f} ms (median of paired differences {paired:+.3f} ms; target <= 1 ms)")
    print(f"  function handler p50 {statistics.median(handler_ms):.3f} ms (worker: decode + model call + encode)")


def deploy(client: httpx.Client, name: str, folder: Path, overrides: dict[str, object]) -> None:
    client.post("/system/functions", json=deploy_body(name, folder, overrides)).raise_for_status()


def wait_for_zero(client: httpx.Client, name: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get(f"/system/function/{name}").json()["replicas"] > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not scale to zero within {timeout_s} s")
        time.sleep(0.05)


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}..{max(values):.1f}]"


if __name__ == "__main__":
    main()
