"""TFaaS-compatible API: list/upload/delete models, their params, and `/json` and `/image` predictions.

A model's TFaaS params (`input_node`, `output_node`, ...) live in `params.json` beside its versions;
models without one get params derived from their signature, so every repository model is usable.
Unlike TFaaS, client mistakes are 4xx, every JSON reply has a Content-Type, and nothing but model
params is ever served back.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import orjson
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferlab.errors import InferlabError, InvalidInput, ModelNotFound
from inferlab.messages import InferRequest, Timings
from inferlab.repository.registry import LoadedModel
from inferlab.repository.store import write_atomic
from inferlab.server.protocols.tfaas_upload import Upload, parse_params, read_bundle, read_form
from inferlab.server.service import InferenceService
from inferlab.server.web import HttpContext, finished_json_response, json_object, json_response
from inferlab.tensors import Array, TensorSpec

PARAMS_FILE = "params.json"
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_TOP = 5


@dataclass(slots=True)
class _State:
    """What the TFaaS routes keep between requests.

    `name` is the model `/json` and `/image` use when a request names none (TFaaS's global params);
    `stored` caches each params.json by modification time, so predictions do not re-read it.
    """

    name: str | None = None
    stored: dict[Path, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def stored_params(self, path: Path) -> dict[str, Any]:
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        cached = self.stored.get(path)
        if cached is None or cached[0] != mtime:
            cached = self.stored[path] = (mtime, parse_params(path.read_bytes()))
        return cached[1]


def routes(ctx: HttpContext) -> list[Route]:
    service = ctx.service
    state = _State()

    async def models(request: Request) -> Response:
        names = sorted({row["name"] for row in service.repository_index()})
        return json_response([model_params(service, state, name) for name in names])

    async def upload(request: Request) -> Response:
        ctx.authorize(request)
        body = await ctx.form_body(request)
        if "form-data" in request.headers.get("content-type", ""):
            files = await read_form(request, ctx.max_body_bytes)
        else:
            files = read_bundle(body, 4 * ctx.max_body_bytes)
        name = await _store(service, files)
        state.name = name
        return json_response(model_params(service, state, name))

    async def get_params(request: Request) -> Response:
        name = request.path_params.get("model") or state.name
        if name is None:
            raise ModelNotFound("no default model yet: upload one, POST /params, or ask for /params/<model>")
        return json_response(model_params(service, state, name))

    async def set_params(request: Request) -> Response:
        ctx.authorize(request)
        params = parse_params(await ctx.body(request))
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput("params need a 'name' naming an uploaded model")
        save_params(service, name, params)
        state.name = name
        return json_response(model_params(service, state, name))

    async def predict_json(request: Request) -> Response:
        """`{"keys": [...], "values": [...], "model": "m"}` -> the first output row as a JSON array."""
        received = perf_counter()
        ctx.authorize(request, inference=True)
        body = await ctx.buffer(request)
        read = perf_counter()
        doc = json_object(body)
        values = doc.get("values")
        if not isinstance(values, list) or not values:
            raise InvalidInput("'values' must be a non-empty list of numbers")
        name = _model_name(doc.get("model"), state)
        _, spec, output = _nodes(service, state, name)
        inputs = {spec.name: _one_row(spec, values)}
        response = await service.infer(
            InferRequest(model=name, version=None, inputs=inputs, outputs=[output], timings=Timings(received, read))
        )
        return finished_json_response(service, response, np.ascontiguousarray(response.outputs[output][0].reshape(-1)))

    async def predict_image(request: Request) -> Response:
        """multipart `image` file + `model` field -> the top-5 labels with probabilities."""
        received = perf_counter()
        ctx.authorize(request, inference=True)
        await ctx.form_body(request)
        read = perf_counter()
        async with request.form(max_files=2, max_fields=4, max_part_size=ctx.max_body_bytes) as form:
            image, model_field = form.get("image"), form.get("model")
            if not isinstance(image, UploadFile):
                raise InvalidInput("/image needs a multipart file part named 'image'")
            filename, data = image.filename or "image", await image.read()
        name = _model_name(model_field, state)
        model, spec, output = _nodes(service, state, name)
        pixels = await run_in_threadpool(_image_tensor, data, spec)
        response = await service.infer(
            InferRequest(model=name, version=None, inputs={spec.name: pixels}, outputs=[output],
                         timings=Timings(received, read))
        )
        labels = _top_labels(response.outputs[output][0], model)
        return finished_json_response(service, response, {"filename": filename, "labels": labels})

    async def delete(request: Request) -> Response:
        ctx.authorize(request)
        name = request.path_params.get("model")
        if name is None:
            await ctx.form_body(request)  # the size limit, before the form is parsed
            async with request.form(max_files=0, max_fields=4) as form:
                field = form.get("model")
            if not isinstance(field, str) or not field:
                raise InvalidInput("no model name is provided: use DELETE /delete/<model> or a 'model' form field")
            name = field
        await run_in_threadpool(service.delete, name)
        if state.name == name:
            state.name = None
        return json_response({"deleted": name})

    return [
        Route("/models", models, methods=["GET"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/params", get_params, methods=["GET"]),
        Route("/params", set_params, methods=["POST"]),
        Route("/params/{model}", get_params, methods=["GET"]),
        Route("/json", predict_json, methods=["POST"]),
        Route("/predict/json", predict_json, methods=["POST"]),
        Route("/image", predict_image, methods=["POST"]),
        Route("/predict/image", predict_image, methods=["POST"]),
        Route("/delete", delete, methods=["DELETE"]),
        Route("/delete/{model}", delete, methods=["DELETE"]),
    ]


def model_params(service: InferenceService, state: _State, name: str) -> dict[str, Any]:
    """The stored params.json over params derived from the model's signature."""
    folder = service.model_dir(name)
    params: dict[str, Any] = {"name": name, "model": "model.onnx", "labels": "", "input_node": "", "output_node": ""}
    try:
        model = service.model(name)
    except InferlabError:  # listed but not loadable: still shown, without signature-derived nodes
        model = None
    if model is not None:
        params.update(input_node=model.inputs[0].name, output_node=model.outputs[0].name,
                      labels="labels.txt" if model.labels else "")
    params.update(state.stored_params(folder / PARAMS_FILE))
    params["name"] = name
    return params


def save_params(service: InferenceService, name: str, params: dict[str, Any]) -> None:
    """Check the nodes against the model, then replace its params.json atomically."""
    model = service.model(name)
    _spec(model.inputs, params.get("input_node"), "input_node")
    _spec(model.outputs, params.get("output_node"), "output_node")
    folder = service.model_dir(name)
    write_atomic(folder / PARAMS_FILE, orjson.dumps({**params, "name": name}))


async def _store(service: InferenceService, files: Upload) -> str:
    name = files.model_name()
    await run_in_threadpool(service.upload, name, files.model, files.labels)
    if files.params:
        save_params(service, name, files.params)
    return name


def _nodes(service: InferenceService, state: _State, name: str) -> tuple[LoadedModel, TensorSpec, str]:
    """The model, the input its params feed (`input_node`) and the output they read (`output_node`)."""
    model = service.model(name)
    params = state.stored_params(service.model_dir(name) / PARAMS_FILE)  # no node stored: the first tensor
    spec = _spec(model.inputs, params.get("input_node"), "input_node")
    return model, spec, _spec(model.outputs, params.get("output_node"), "output_node").name


def _model_name(value: Any, state: _State) -> str:
    if isinstance(value, str) and value:
        return value
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'model' must be a model name string, got {value!r:.40}")
    if state.name is None:
        raise InvalidInput("the request names no 'model' and no default model is set (upload one or POST /params)")
    return state.name


def _spec(specs: tuple[TensorSpec, ...], node: Any, key: str) -> TensorSpec:
    if not node:
        return specs[0]
    for spec in specs:
        if spec.name == node:
            return spec
    raise InvalidInput(f"params {key} '{node}' is not one of the model's tensors {[s.name for s in specs]}")


def _one_row(spec: TensorSpec, values: list[Any]) -> Array:
    """`values` as a batch of one in the input's shape (its one free non-batch dimension, if any, inferred)."""
    shape = [1, *spec.shape[1:]] if spec.shape and spec.shape[0] == -1 else list(spec.shape)
    if shape.count(-1) > 1:
        raise InvalidInput(f"input '{spec.name}' has shape {list(spec.shape)}; /json can fill one free dimension")
    try:
        return np.asarray(values, dtype=spec.dtype).reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"input '{spec.name}' ({spec.datatype} {list(spec.shape)}): {len(values)} values do not fit: {exc}"
        ) from None


def _image_tensor(data: bytes, spec: TensorSpec) -> Array:
    """Decode, resize to the input's H x W, scale to [0, 1] (ImageNet-normalised when RGB), lay out as NCHW or NHWC."""
    shape = spec.shape
    if len(shape) != 4 or spec.dtype.kind != "f" or not (shape[1] in (1, 3) or shape[3] in (1, 3)):
        raise InvalidInput(
            f"input '{spec.name}' ({spec.datatype} {list(shape)}) is not an image input: "
            "/image needs a float [N,C,H,W] or [N,H,W,C] input with 1 or 3 channels"
        )
    channels_first = shape[1] in (1, 3)
    channels, height, width = (shape[1], shape[2], shape[3]) if channels_first else (shape[3], shape[1], shape[2])
    if height < 1 or width < 1:
        raise InvalidInput(f"input '{spec.name}' has no fixed height and width: {list(shape)}")
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB" if channels == 3 else "L").resize((width, height))
    except UnidentifiedImageError:
        raise InvalidInput("the 'image' part is not an image format Pillow reads (PNG, JPEG, GIF, BMP, ...)") from None
    except OSError as exc:
        raise InvalidInput(f"the 'image' part is a damaged image: {exc}") from None
    pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels) / 255.0
    if channels == 3:
        pixels = (pixels - _IMAGENET_MEAN) / _IMAGENET_STD
    if channels_first:
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[np.newaxis], dtype=spec.dtype)


def _top_labels(scores: Array, model: LoadedModel) -> list[dict[str, Any]]:
    """Top five as probabilities (softmax first unless the row already is a distribution)."""
    row = scores.reshape(-1).astype(np.float64)
    if row.min() < 0 or abs(row.sum() - 1.0) > 1e-3:
        row = np.exp(row - row.max())
        row /= row.sum()
    top = np.argsort(-row, kind="stable")[:_TOP]
    labels = model.labels or []
    return [
        {"label": labels[i] if i < len(labels) else str(i), "probability": float(row[i])} for i in top.tolist()
    ]
