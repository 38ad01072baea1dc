"""Every protocol's inference reply carries the same latency breakdown and counts in the same metrics."""

from __future__ import annotations

import grpc
import httpx
import numpy as np

from inferlab.server.proto import inference_pb2_grpc as pb_grpc
from tests.protocols.conftest import sample_inputs
from tests.protocols.wire import grpc_request

PARTS = {"receive", "decode", "queue", "infer", "encode", "total", "batch"}


def parts(header: str) -> set[str]:
    return {item.split(";")[0].strip() for item in header.split(",")}


def requests_counted(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("inferlab_request_success_total{") and 'model="digits"' in line)


def test_server_timing_and_metrics_on_every_protocol(http: httpx.Client, grpc_target: str) -> None:
    rows = sample_inputs("digits")["input"]
    before = requests_counted(http)
    tfs = http.post("/v1/models/digits:predict", json={"instances": rows.tolist()})
    assert tfs.status_code == 200 and parts(tfs.headers["server-timing"]) == PARTS
    tfaas = http.post("/json", json={"keys": [str(i) for i in range(64)], "values": rows[0].tolist(),
                                      "model": "digits"})
    assert tfaas.status_code == 200 and parts(tfaas.headers["server-timing"]) == PARTS
    with grpc.insecure_channel(grpc_target) as channel:
        _, call = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer.with_call(
            grpc_request("digits", {"input": np.asarray(rows)}, raw=True), timeout=30)
    trailing = dict(call.trailing_metadata())
    assert parts(trailing["server-timing"]) == PARTS
    assert requests_counted(http) == before + 3
