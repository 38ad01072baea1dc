"""The same inputs through every protocol and encoding give onnxruntime's outputs, for each shared model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.protocols import wire
from tests.protocols.conftest import reference_outputs, sample_inputs

Protocol = Callable[[httpx.Client, str, str, dict[str, Any]], dict[str, Any]]
PROTOCOLS: dict[str, Protocol] = {
    "v2_json": wire.v2_json,
    "v2_binary": wire.v2_binary,
    "grpc_typed": wire.grpc_typed,
    "grpc_raw": wire.grpc_raw,
    "tfserving_row": wire.tfs_row,
    "tfserving_columnar": wire.tfs_columnar,
    "tfaas_json": wire.tfaas_json,
    "tritonclient_http_json": wire.triton_http_json,
    "tritonclient_http_binary": wire.triton_http_binary,
    "tritonclient_grpc": wire.triton_grpc_raw,
}
# TFaaS /json feeds one input row; MiniLM needs two inputs (ids and mask), so it does not apply there.
NOT_APPLICABLE = {("minilm", "tfaas_json")}
CASES = [
    pytest.param(model, protocol, id=f"{model}-{protocol}")
    for model in ("digits", "mobilenet_v2", "minilm")
    for protocol in PROTOCOLS
    if (model, protocol) not in NOT_APPLICABLE
]
_REFERENCES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


def _reference(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if model not in _REFERENCES:
        inputs = sample_inputs(model)
        _REFERENCES[model] = (inputs, reference_outputs(model, inputs))
    return _REFERENCES[model]


@pytest.mark.parametrize(("model", "protocol"), CASES)
def test_protocol_matches_onnxruntime(http: httpx.Client, grpc_target: str, model: str, protocol: str) -> None:
    inputs, expected = _reference(model)
    got = PROTOCOLS[protocol](http, grpc_target, model, inputs)
    if "*" in got:  # TF Serving / TFaaS with one output do not name it
        (name,) = expected
        got = {name: got["*"]}
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(np.asarray(got[name], dtype=np.float64), want, rtol=1e-5, atol=1e-6)
