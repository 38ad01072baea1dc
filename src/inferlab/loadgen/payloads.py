"""Encode request bodies once, up front, per protocol (V2 JSON, V2 binary, V2 gRPC, TF Serving REST, TFaaS).

Bodies are built from the model's own metadata (`GET /v2/models/M`), so any V2 server works. Inputs are
random tensors of the chosen batch size, or rows sampled from an `--input` file so consecutive requests
differ; a pool of distinct bodies is encoded before the run and cycled, so encoding costs nothing
while measuring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import orjson

from inferlab.errors import InvalidInput
from inferlab.loadgen.grpcv2 import SERVICE, decode_metadata_inputs, encode_infer_request, encode_metadata_request
from inferlab.loadgen.plan import Target

PROTOCOLS = ("v2-json", "v2-binary", "v2-grpc", "tfserving", "tfaas")

_DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
           "FP32": np.float32, "FP64": np.float64}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input as the server's metadata describes it (-1 marks a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def fetch_inputs(base_url: str, model: str, version: str | None = None, timeout_s: float = 10.0) -> list[TensorSpec]:
    """The model's inputs from `GET /v2/models/M[/versions/V]` (or the ModelMetadata RPC for grpc://)."""
    if base_url.startswith("grpc://"):
        return _fetch_inputs_grpc(base_url, model, version, timeout_s)
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    try:
        reply = httpx.get(base_url.rstrip("/") + path, timeout=timeout_s)
    except httpx.TransportError as exc:
        raise InvalidInput(f"cannot fetch metadata for model {model!r} from {base_url}: {exc}") from exc
    if reply.status_code != 200:
        raise InvalidInput(f"model {model!r}: {base_url}{path} answered {reply.status_code}: {reply.text[:200]}")
    return [TensorSpec(i["name"], i["datatype"], tuple(int(d) for d in i["shape"])) for i in reply.json()["inputs"]]


def _fetch_inputs_grpc(base_url: str, model: str, version: str | None, timeout_s: float) -> list[TensorSpec]:
    address = base_url.removeprefix("grpc://").split("/", 1)[0]
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(SERVICE + "ModelMetadata")
        try:
            reply = call(encode_metadata_request(model, version), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise InvalidInput(f"model {model!r}: ModelMetadata on {address} failed: {exc}") from exc
    return [TensorSpec(name, datatype, shape) for name, datatype, shape in decode_metadata_inputs(reply)]


def random_inputs(specs: list[TensorSpec], batch_size: int, rng: np.random.Generator,
                  dynamic_dim: int = 8) -> dict[str, npt.NDArray[Any]]:
    """Seeded random tensors: the first dynamic dimension is the batch, later ones `dynamic_dim`."""
    out: dict[str, npt.NDArray[Any]] = {}
    for spec in specs:
        if spec.datatype not in _DTYPES:
            raise InvalidInput(f"input {spec.name!r}: random {spec.datatype} tensors are not supported; use --input")
        shape = [batch_size if i == 0 and d < 0 else (dynamic_dim if d < 0 else d) for i, d in enumerate(spec.shape)]
        dtype = np.dtype(_DTYPES[spec.datatype])
        if dtype.kind == "f":
            out[spec.name] = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind == "b":
            out[spec.name] = rng.random(shape) < 0.5
        else:
            out[spec.name] = rng.integers(0, 100, shape).astype(dtype)
    return out


def load_samples(path: Path, specs: list[TensorSpec]) -> dict[str, npt.NDArray[Any]]:
    """Rows to sample from: .npy (one-input models) or JSON: {name: rows}, a V2 body, {"instances": rows},
    {"input_name": name, "inputs": rows} (the shared samples' form), or a bare list of rows."""
    if path.suffix == ".npy":
        if len(specs) != 1:
            raise InvalidInput(f"{path}: a .npy file feeds one input, the model has {[s.name for s in specs]}")
        return {specs[0].name: np.load(path, allow_pickle=False)}
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InvalidInput(f"--input {path}: {exc}") from exc
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        named = {t["name"]: np.asarray(t["data"]).reshape(t["shape"]) for t in inputs}
    elif isinstance(doc, dict) and ("inputs" in doc or "instances" in doc):
        named = {doc.get("input_name") or specs[0].name: np.asarray(doc.get("inputs", doc.get("instances")))}
    elif isinstance(doc, dict):
        named = {k: np.asarray(v) for k, v in doc.items() if k in {s.name for s in specs}}
    else:
        named = {specs[0].name: np.asarray(doc)}
    missing = [s.name for s in specs if s.name not in named]
    if missing:
        raise InvalidInput(f"--input {path}: no rows for inputs {missing}")
    rows = {len(v) for v in named.values()}
    if len(rows) != 1:
        raise InvalidInput(f"--input {path}: inputs have different row counts {sorted(rows)}")
    return {s.name: named[s.name].astype(_DTYPES.get(s.datatype, np.float32)) for s in specs}


def sample_batches(samples: dict[str, npt.NDArray[Any]], batch_size: int, count: int,
                   rng: np.random.Generator) -> list[dict[str, npt.NDArray[Any]]]:
    """`count` batches of `batch_size` rows drawn at random (seeded) from the samples."""
    n = len(next(iter(samples.values())))
    picks = rng.integers(0, n, (count, batch_size))
    return [{name: rows[pick] for name, rows in samples.items()} for pick in picks]


def encode_body(
    protocol: str, specs: list[TensorSpec], tensors: dict[str, npt.NDArray[Any]], model: str = "",
    version: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """One request body and the headers it needs, for `protocol` (one of PROTOCOLS)."""
    types = {s.name: s.datatype for s in specs}
    if protocol == "v2-json":
        body = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": types[n], "data": a.reshape(-1).tolist()}
                           for n, a in tensors.items()]}
        return orjson.dumps(body), {"Content-Type": "application/json"}
    if protocol == "v2-binary":
        blobs = [np.ascontiguousarray(a).tobytes() for a in tensors.values()]
        header = orjson.dumps({"inputs": [
            {"name": n, "shape": list(a.shape), "datatype": types[n], "parameters": {"binary_data_size": len(b)}}
            for (n, a), b in zip(tensors.items(), blobs, strict=True)]})
        return header + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                          "Inference-Header-Content-Length": str(len(header))}
    if protocol == "tfaas":
        array = next(iter(tensors.values()))
        if array.shape[0] != 1 or len(tensors) != 1:
            raise InvalidInput("tfaas sends one row of one input per request: use --batch-size 1 and a one-input model")
        values = array.reshape(-1).tolist()
        return orjson.dumps({"keys": [str(i) for i in range(len(values))], "values": values, "model": model}), {
            "Content-Type": "application/json"}
    if protocol == "v2-grpc":
        return encode_infer_request(model, version, tensors, types), {}
    if protocol == "tfserving":
        if len(tensors) == 1:
            instances: Any = next(iter(tensors.values())).tolist()
        else:
            columns = {n: a.tolist() for n, a in tensors.items()}
            instances = [{n: col[i] for n, col in columns.items()} for i in range(len(next(iter(columns.values()))))]
        return orjson.dumps({"instances": instances}), {"Content-Type": "application/json"}
    raise InvalidInput(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")


def model_url(base_url: str, protocol: str, model: str, version: str | None = None) -> str:
    """Where `protocol` sends inference requests for the model."""
    base = base_url.rstrip("/")
    if protocol == "v2-grpc":
        return "grpc://" + base.split("://", 1)[-1] + "/ModelInfer"
    if protocol == "tfaas":
        return f"{base}/json"
    if protocol == "tfserving":
        return f"{base}/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    return f"{base}/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


def model_target(base_url: str, model: str, *, protocol: str = "v2-json", batch_size: int = 1,
                 input_path: Path | None = None, bodies: int = 64, seed: int = 0, version: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> Target:
    """A Target posting `bodies` distinct pre-encoded requests for the model.

    Example:
        >>> target = model_target("http://127.0.0.1:8000", "digits", protocol="v2-binary", batch_size=8)
    """
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if batch_size < 1:
        raise InvalidInput(f"batch size {batch_size} is not >= 1")
    specs = fetch_inputs(base_url, model, version)
    rng = np.random.default_rng(seed)
    if input_path is not None:
        batches = sample_batches(load_samples(input_path, specs), batch_size, bodies, rng)
    else:
        batches = [random_inputs(specs, batch_size, rng) for _ in range(bodies)]
    encoded = [encode_body(protocol, specs, tensors, model, version) for tensors in batches]
    # every body has the same shapes, so per-body headers (the binary JSON header length) are identical too
    wanted = {name.lower() for name, _ in headers}
    extra = tuple((k, v) for k, v in encoded[0][1].items() if k.lower() not in wanted)
    return Target(model_url(base_url, protocol, model, version), "POST", headers + extra,
                  tuple(body for body, _ in encoded))
