"""Tensor specs and the one table between V2 datatypes, numpy dtypes and ONNX type strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inferlab.errors import InvalidInput

Array = npt.NDArray[Any]

V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
NUMPY_TO_V2: dict[np.dtype[Any], str] = {dt: name for name, dt in V2_TO_NUMPY.items()}

ONNX_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model; -1 in `shape` marks a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return V2_TO_NUMPY[self.datatype]

    def check(self, array: Array) -> None:
        """Raise InvalidInput naming what differs between `array` and this spec."""
        got = NUMPY_TO_V2.get(array.dtype) or str(array.dtype)
        if got != self.datatype:
            raise InvalidInput(f"input '{self.name}': expected datatype {self.datatype}, got {got}")
        if len(array.shape) != len(self.shape) or any(
            want not in (-1, have) for want, have in zip(self.shape, array.shape, strict=True)
        ):
            raise InvalidInput(
                f"input '{self.name}': expected shape {list(self.shape)}, got {list(array.shape)}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def v2_dtype(datatype: Any) -> np.dtype[Any]:
    """The numpy dtype for a V2 datatype name, or InvalidInput naming the accepted ones."""
    try:
        return V2_TO_NUMPY[datatype]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown datatype {datatype!r}; expected one of {', '.join(V2_TO_NUMPY)}"
        ) from None


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a numpy dtype (strings and bytes map to BYTES)."""
    if dtype.kind in "OSU":
        return "BYTES"
    return NUMPY_TO_V2[dtype]
