"""Runtimes: what executes a model. `RUNTIMES` maps a config's `platform` to a loader; no plugins."""

from __future__ import annotations

from inferlab.runtimes.base import Runtime, RuntimeLoader
from inferlab.runtimes.onnx import OnnxRuntime

RUNTIMES: dict[str, RuntimeLoader] = {"onnx": OnnxRuntime.load}

__all__ = ["RUNTIMES", "Runtime", "RuntimeLoader"]
