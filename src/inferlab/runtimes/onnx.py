"""ONNX Runtime as a Runtime: one InferenceSession with the thread counts the model's config asks for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inferlab.config import ModelConfig, TensorOverride
from inferlab.errors import InvalidInput, RepositoryError
from inferlab.repository.store import MODEL_FILE
from inferlab.tensors import ONNX_TO_V2, Array, TensorSpec


class OnnxRuntime:
    """A model served by onnxruntime on CPU (or CUDA when the installed build offers it)."""

    def __init__(self, session: ort.InferenceSession, config: ModelConfig) -> None:
        self._session = session
        self._inputs = _specs(session.get_inputs(), config.inputs, "input")
        self._outputs = _specs(session.get_outputs(), config.outputs, "output")
        self._output_names = [o.name for o in self._outputs]
        self._string_inputs = frozenset(s.name for s in self._inputs if s.datatype == "BYTES")

    @classmethod
    def load(cls, version_dir: Path, config: ModelConfig) -> OnnxRuntime:
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.runtime.intra_op_threads
        options.inter_op_num_threads = config.runtime.inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            session = ort.InferenceSession(str(version_dir / MODEL_FILE), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise RepositoryError(f"{MODEL_FILE} is not a loadable ONNX model: {_first_line(exc)}") from None
        return cls(session, config)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def infer(self, inputs: dict[str, Array], outputs: list[str] | None) -> dict[str, Array]:
        names = outputs or self._output_names
        if self._string_inputs:  # most models have none: skip the set work per call
            for name in self._string_inputs & inputs.keys():
                inputs = {**inputs, name: _as_str(name, inputs[name])}
        return dict(zip(names, self._session.run(names, inputs), strict=True))

    def close(self) -> None:
        del self._session


def _specs(nodes: list[ort.NodeArg], overrides: tuple[TensorOverride, ...], kind: str) -> tuple[TensorSpec, ...]:
    specs = {
        n.name: TensorSpec(
            n.name,
            ONNX_TO_V2.get(n.type, n.type),
            tuple(d if isinstance(d, int) and d >= 0 else -1 for d in n.shape),
        )
        for n in nodes
    }
    for o in overrides:
        if o.name not in specs:
            raise RepositoryError(f"config.yaml names {kind} '{o.name}', but the model has {sorted(specs)}")
        spec = specs[o.name]
        specs[o.name] = replace(spec, datatype=o.datatype or spec.datatype, shape=o.shape or spec.shape)
    return tuple(specs.values())


def _as_str(name: str, array: Array) -> Array:
    """onnxruntime wants `str` elements in string tensors; V2 BYTES arrive as `bytes`."""
    try:
        flat = [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    except UnicodeDecodeError:
        raise InvalidInput(f"input '{name}': this model's string input needs UTF-8 text") from None
    return np.array(flat, dtype=object).reshape(array.shape)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
