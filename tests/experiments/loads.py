"""Targets the experiment tests send load to."""

from __future__ import annotations

import orjson

from inferlab.loadgen.plan import Target


def digits_target(base_url: str) -> Target:
    """One V2 JSON request for the digits model (a blank 8x8 image)."""
    body = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 64}]})
    return Target(f"{base_url}/v2/models/digits/infer", "POST", (("Content-Type", "application/json"),), (body,))
