"""A V2 inference request for a named model, built from the server's own metadata (JSON or binary tensors).

Experiments and scenarios name a model, not a request body: the inputs' names, datatypes and shapes come
from `GET /v2/models/{model}`, dynamic dimensions become 1, and the values are seeded random numbers, so
the same experiment file sends the same bytes every time.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import orjson

from inferlab.errors import InvalidInput
from inferlab.loadgen.plan import Target

#: V2 datatypes to numpy, for the request values (BYTES inputs cannot be invented and are refused).
DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
          "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
ENCODINGS = ("json", "binary")


def model_metadata(base_url: str, model: str, timeout_s: float = 10.0) -> dict[str, Any]:
    response = httpx.get(f"{base_url.rstrip('/')}/v2/models/{model}", timeout=timeout_s)
    if response.status_code != 200:
        raise InvalidInput(f"model {model!r} at {base_url}: metadata request answered {response.status_code}: "
                           f"{response.text[:200]}")
    data: dict[str, Any] = response.json()
    return data


def v2_body(inputs: list[dict[str, Any]], encoding: str = "json", seed: int = 0) -> tuple[bytes, dict[str, str]]:
    """The request body and its extra headers for these input specs (name, datatype, shape)."""
    if encoding not in ENCODINGS:
        raise InvalidInput(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    rng = np.random.default_rng(seed)
    entries, blobs = [], []
    for spec in inputs:
        datatype = str(spec["datatype"])
        if datatype not in DTYPES:
            raise InvalidInput(f"input {spec['name']!r}: cannot make up {datatype} values; give a request body instead")
        shape = [1 if int(d) < 0 else int(d) for d in spec["shape"]]
        values: npt.NDArray[Any] = (rng.random(shape) * 16).astype(DTYPES[datatype])
        entry: dict[str, Any] = {"name": spec["name"], "datatype": datatype, "shape": shape}
        if encoding == "binary":
            blob = values.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = values.ravel().tolist()
        entries.append(entry)
    head = orjson.dumps({"inputs": entries})
    if encoding == "binary":
        return head + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                        "Inference-Header-Content-Length": str(len(head))}
    return head, {"Content-Type": "application/json"}


def v2_target(base_url: str, model: str, encoding: str = "json", seed: int = 0) -> Target:
    """POST /v2/models/{model}/infer with a request matching the model's inputs."""
    metadata = model_metadata(base_url, model)
    body, headers = v2_body(metadata["inputs"], encoding, seed)
    return Target(f"{base_url.rstrip('/')}/v2/models/{model}/infer", "POST", tuple(headers.items()), (body,))
