"""A real in-memory runtime that records every batch it runs, and repositories that use it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from inferlab.config import ModelConfig
from inferlab.tensors import Array, TensorSpec


class Recorder:
    """Shared by every RecordingRuntime it loads: the input shapes of each batch, and a gate to hold them."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    def load(self, path: Path, config: ModelConfig) -> RecordingRuntime:
        return RecordingRuntime(self)

    @property
    def rows(self) -> list[int]:
        return [shape[0] for shape in self.batches]


class RecordingRuntime:
    """y = 2x + 1 row by row, so a reply shows whether it got its own rows; records each call's shape."""

    inputs = (TensorSpec("x", "FP32", (-1, -1)),)
    outputs = (TensorSpec("y", "FP32", (-1, -1)),)

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def infer(self, inputs: dict[str, Array], outputs: list[str] | None) -> dict[str, Array]:
        self._recorder.enter()
        try:
            self._recorder.gate.wait(10)
            x = inputs["x"]
            self._recorder.batches.append(x.shape)
            return {"y": x * 2 + 1}
        finally:
            self._recorder.leave()

    def close(self) -> None:
        pass


def expected(x: Array) -> Array:
    return np.asarray(x * 2 + 1, dtype=np.float32)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def recording_repository(root: Path, config: str) -> Path:
    """A repository with one model `rec` served by the recording runtime, configured by `config` (YAML)."""
    (root / "rec" / "1").mkdir(parents=True)
    (root / "rec" / "1" / "model.onnx").write_bytes(b"recording runtime: no model file needed")
    (root / "rec" / "config.yaml").write_text("platform: recording\n" + config)
    return root
