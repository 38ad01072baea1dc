"""Fixtures for the protocol tests: clients bound to the session's live server, and reference inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from inferlab.config import ServerConfig
from inferlab.server.app import Server, serve_in_thread
from tests.conftest import SHARED_MODELS, make_repository

MODEL_FILES = {"digits": "digits_mlp", "mobilenet_v2": "mobilenet_v2", "minilm": "minilm_l6_int8"}


def sample_inputs(model: str) -> dict[str, Any]:
    """The same inputs every protocol sends: the shared samples, and seeded noise for mobilenet."""
    if model == "digits":
        rows = json.loads((SHARED_MODELS / "digits_sample.json").read_text())["inputs"]
        return {"input": np.asarray(rows, dtype=np.float32)}
    if model == "mobilenet_v2":
        return {"input": np.random.default_rng(7).standard_normal((2, 3, 224, 224), dtype=np.float32)}
    sample = json.loads((SHARED_MODELS / "minilm_sample.json").read_text())
    return {k: np.asarray(sample[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}


def reference_outputs(model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime's own answer, with no server in between."""
    session = ort.InferenceSession(str(SHARED_MODELS / f"{MODEL_FILES[model]}.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


@pytest.fixture(scope="session")
def grpc_target(live_server: tuple[Server, str]) -> str:
    return f"127.0.0.1:{live_server[0].grpc_port}"


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def repository_root(live_server: tuple[Server, str]) -> Path:
    return live_server[0].config.model_repository


@pytest.fixture(scope="module")
def digits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A private server for tests that change the repository or server-wide state (uploads, unloads, defaults)."""
    root = make_repository(tmp_path_factory.mktemp("repo"), {"digits": "digits_mlp"})
    config = ServerConfig(model_repository=root, http_port=0, grpc_port=0, max_body_bytes=32 * 1024 * 1024)
    with serve_in_thread(config) as running:
        yield running
