"""The Runtime protocol: describe a model's tensors and run it on a dict of numpy arrays.

A runtime knows nothing of protocols, queues or batching; it is handed arrays that already match its
signature. PyTorch, TensorFlow or plain-Python runtimes fit by implementing the same four members.

Example::

    rt = OnnxRuntime.load(Path("repo/digits/1"), ModelConfig())
    out = rt.infer({"input": x}, None)   # {"probabilities": array}
    rt.close()
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from inferlab.config import ModelConfig
from inferlab.tensors import Array, TensorSpec


class Runtime(Protocol):
    """One loaded copy of a model."""

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def infer(self, inputs: dict[str, Array], outputs: list[str] | None) -> dict[str, Array]:
        """Run the model; `outputs` None means all outputs, in signature order."""
        ...

    def close(self) -> None:
        """Release what load() took (sessions, threads, memory)."""
        ...


RuntimeLoader = Callable[[Path, ModelConfig], Runtime]
