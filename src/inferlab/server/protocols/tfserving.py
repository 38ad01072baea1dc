"""TF Serving REST: model status, metadata, and `:predict` (row and columnar), `:classify`, `:regress`.

Paths are `/v1/models/{model}[/versions/{v}|/labels/{l}][/metadata|:predict|:classify|:regress]`.
JSON values decode straight to numpy in the model input's dtype (as TF Serving decodes to the
signature's dtype), `{"b64": ...}` gives bytes, and outputs whose names end in `_bytes` go back as b64.
"""

from __future__ import annotations

import base64
import re
from time import perf_counter
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.errors import InvalidInput, ModelNotFound
from inferlab.messages import InferRequest, InferResponse, Timings
from inferlab.repository.names import check_model_name
from inferlab.server.service import InferenceService
from inferlab.server.web import HttpContext, finished_json_response, json_object, json_response
from inferlab.tensors import Array, TensorSpec

V2_TO_TF = {
    "BOOL": "DT_BOOL", "UINT8": "DT_UINT8", "UINT16": "DT_UINT16", "UINT32": "DT_UINT32", "UINT64": "DT_UINT64",
    "INT8": "DT_INT8", "INT16": "DT_INT16", "INT32": "DT_INT32", "INT64": "DT_INT64",
    "FP16": "DT_HALF", "FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "BYTES": "DT_STRING",
}
SIGNATURE = "serving_default"
_TARGET = re.compile(
    r"(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?"
)
_ALL_CLASSES = 1 << 30  # classification count meaning "every class" (top_k clamps it to the class count)


def routes(ctx: HttpContext) -> list[Route]:
    service = ctx.service

    async def dispatch(request: Request) -> Response:
        target = request.path_params["target"]
        check_model_name(target.split("/")[0].split(":")[0])  # '..' and friends are a 400, not a missing route
        match = _TARGET.fullmatch(target)
        if match is None:
            raise ModelNotFound(f"no TF Serving route for {request.url.path}")
        model = check_model_name(match["model"])
        version = _version(model, match["version"], match["label"])
        verb = match["verb"] or ""
        if request.method == "GET" and verb in ("", "/metadata"):
            return json_response(_metadata(service, model, version) if verb else _status(service, model, version))
        if request.method == "POST" and verb.startswith(":"):
            timings = Timings()
            ctx.authorize(request, inference=True)
            doc = json_object(await ctx.buffer(request))
            timings.read = perf_counter()
            _check_signature(doc)
            if verb == ":predict":
                content, response = await _predict(service, doc, model, version, timings)
            else:
                classify = verb == ":classify"
                content, response = await _classify_or_regress(service, doc, model, version, classify, timings)
            return finished_json_response(service, response, content)
        raise InvalidInput(f"{request.method} is not supported on {request.url.path}")

    return [Route("/v1/models/{target:path}", dispatch, methods=["GET", "POST"])]


async def _predict(
    service: InferenceService, doc: dict[str, Any], model: str, version: str | None, timings: Timings
) -> tuple[dict[str, Any], InferResponse]:
    """Row (`instances` -> `predictions`) or columnar (`inputs` -> `outputs`) prediction."""
    if ("instances" in doc) == ("inputs" in doc):
        raise InvalidInput("a :predict body needs exactly one of 'instances' (row format) or 'inputs' (columnar)")
    specs = service.model(model, version).inputs
    row = "instances" in doc
    inputs = _rows(doc["instances"], specs) if row else _columns(doc["inputs"], specs)
    response = await service.infer(InferRequest(model=model, version=version, inputs=inputs, timings=timings))
    outputs = {name: _json_value(name, array) for name, array in response.outputs.items()}
    if row:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}, response
        batch = min(len(a) for a in response.outputs.values())
        return {"predictions": [{name: value[i] for name, value in outputs.items()} for i in range(batch)]}, response
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}, response


async def _classify_or_regress(
    service: InferenceService, doc: dict[str, Any], model: str, version: str | None, classify: bool, timings: Timings
) -> tuple[dict[str, Any], InferResponse]:
    """tf.Example-style `examples` (+ shared `context`) keyed by input name -> `results`."""
    examples, context = doc.get("examples"), doc.get("context") or {}
    if not isinstance(examples, list) or not examples or not all(isinstance(e, dict) for e in examples):
        raise InvalidInput("'examples' must be a non-empty list of objects keyed by input name")
    if not isinstance(context, dict):
        raise InvalidInput("'context' must be an object keyed by input name")
    loaded = service.model(model, version)
    if len(loaded.outputs) != 1:
        raise InvalidInput(f"model '{model}' has outputs {sorted(loaded.output_names)}; :classify/:regress need one")
    output = loaded.outputs[0].name
    inputs = _rows([{**context, **e} for e in examples], loaded.inputs)
    request = InferRequest(model=model, version=version, inputs=inputs, timings=timings)
    if classify:
        response = await service.infer(request, {output: _ALL_CLASSES})
        rows = response.outputs[output].tolist()
        return {"results": [[_label_score(item) for item in row] for row in rows]}, response
    response = await service.infer(request)
    values = response.outputs[output]
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise InvalidInput(f"output '{output}' has shape {list(values.shape)}; :regress needs one value per example")
    return {"results": values.reshape(-1).tolist()}, response


def _rows(instances: Any, specs: tuple[TensorSpec, ...]) -> dict[str, Array]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list (one entry per example)")
    index = {s.name: s for s in specs}
    if not all(isinstance(i, dict) for i in instances):
        if len(specs) != 1:
            raise InvalidInput(
                f"the model has inputs {sorted(index)}; each instance must be an object keyed by input name"
            )
        return {specs[0].name: _array(specs[0].name, instances, specs[0])}
    names = list(instances[0])
    if len(specs) == 1 and len(names) == 1 and names[0] not in index:
        # INFless posts {"inputs": ...} whatever the input is called; with one input there is no ambiguity.
        instances = [{specs[0].name: i.get(names[0])} if list(i) == names else i for i in instances]
        names = [specs[0].name]
    for n, instance in enumerate(instances):
        if list(instance) != names:
            raise InvalidInput(f"instance {n} has keys {sorted(instance)}, but instance 0 has {sorted(names)}")
    return {name: _array(name, [i[name] for i in instances], index.get(name)) for name in names}


def _columns(inputs: Any, specs: tuple[TensorSpec, ...]) -> dict[str, Array]:
    if isinstance(inputs, dict):
        index = {s.name: s for s in specs}
        return {name: _array(name, value, index.get(name)) for name, value in inputs.items()}
    if len(specs) != 1:
        raise InvalidInput(f"the model has inputs {[s.name for s in specs]}; 'inputs' must be an object keyed by name")
    return {specs[0].name: _array(specs[0].name, inputs, specs[0])}


def _array(name: str, value: Any, spec: TensorSpec | None) -> Array:
    """JSON (nested lists) straight to numpy in the input's dtype; unknown inputs are left to the service."""
    try:
        if spec is not None and spec.dtype.kind == "O":
            return np.asarray(_decode_b64(value), dtype=object)
        return np.asarray(value, dtype=None if spec is None else spec.dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        kind = "values" if spec is None else f"{spec.datatype} values"
        raise InvalidInput(f"input '{name}': not a (nested) list of {kind} with one shape: {exc}") from None


def _decode_b64(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidInput(f'a binary value must be {{"b64": "<base64>"}}, got {value!r:.60}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise InvalidInput(f"'b64' value {value['b64']!r:.40} is not valid base64") from None
    return value.encode() if isinstance(value, str) else value


def _json_value(name: str, array: Array) -> Any:
    if array.dtype.kind not in "OSU":
        return np.ascontiguousarray(array, dtype=np.float32 if array.dtype == np.float16 else None)
    as_b64 = name.endswith("_bytes")

    def text(v: Any) -> Any:
        if isinstance(v, list):
            return [text(x) for x in v]
        data = v if isinstance(v, bytes) else str(v).encode()
        return {"b64": base64.b64encode(data).decode()} if as_b64 else data.decode("utf-8", "replace")

    return text(array.tolist())


def _label_score(item: bytes) -> list[Any]:
    """Triton's `score:index[:label]` classification string as TF Serving's `[label, score]`."""
    score, _, rest = item.decode().partition(":")
    index, _, label = rest.partition(":")
    return [label or index, float(score)]


def _status(service: InferenceService, model: str, version: str | None) -> dict[str, Any]:
    rows = [r for r in service.repository_index() if r["name"] == model and version in (None, r["version"])]
    if not rows:
        missing = f"has no version {version}" if version else "is not in the repository"
        raise ModelNotFound(f"model '{model}' {missing}")
    return {"model_version_status": [
        {
            "version": r["version"],
            "state": "AVAILABLE" if r["state"] == "READY" else "END",
            "status": {"error_code": "OK" if r["state"] == "READY" else "UNAVAILABLE", "error_message": r["reason"]},
        }
        for r in rows
    ]}


def _metadata(service: InferenceService, model: str, version: str | None) -> dict[str, Any]:
    loaded = service.model(model, version)

    def tensors(specs: tuple[TensorSpec, ...]) -> dict[str, Any]:
        return {
            s.name: {
                "dtype": V2_TO_TF.get(s.datatype, "DT_INVALID"),
                "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in s.shape], "unknown_rank": False},
                "name": s.name,
            }
            for s in specs
        }

    signature = {"inputs": tensors(loaded.inputs), "outputs": tensors(loaded.outputs),
                 "method_name": "tensorflow/serving/predict"}
    return {
        "model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def _version(model: str, version: str | None, label: str | None) -> str | None:
    if label is not None:
        raise ModelNotFound(f"model '{model}' has no version label '{label}'; ask for /versions/<number> instead")
    return version


def _check_signature(doc: dict[str, Any]) -> None:
    name = doc.get("signature_name")
    if name not in (None, "", SIGNATURE):
        raise InvalidInput(f"unknown signature_name {name!r}; this server has '{SIGNATURE}' only")

