"""The OpenAPI 3 description of the HTTP API (`/openapi.json`) and an offline page that renders it (`/docs`)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from inferlab import __version__
from inferlab.server.web import json_response

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                                 "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object", "description": "binary_data_size (binary extension)"},
        "data": {"type": "array", "items": {}, "description": "row-major values, flat or nested"},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "description": "binary_data_output: bool"},
        "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "parameters": {"type": "object", "description": "classification: int (top-k), binary_data: bool"},
        }}},
    },
}
_V2_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
    },
}
_DIGITS_EXAMPLE = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}


def _op(tag: str, summary: str, body: dict[str, Any] | None = None, example: Any = None,
        content_type: str = "application/json", ok: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {"schema": {}}}},
            "4XX": {"description": "client error, body {\"error\": message}",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if example is not None:
            media["example"] = example
        operation["requestBody"] = {"required": True, "content": {content_type: media}}
    return operation


def _multipart(parts: dict[str, str]) -> dict[str, Any]:
    return {"type": "object", "properties": {
        k: {"type": "string", "format": "binary"} if v == "file" else {"type": "string"} for k, v in parts.items()
    }}


def openapi_document() -> dict[str, Any]:
    """Hand-written, so it documents the wire formats each protocol really accepts, not Python signatures."""
    v2 = "KServe V2"
    infer = _op(v2, "Inference (JSON; binary tensors with Inference-Header-Content-Length)",
                {"$ref": "#/components/schemas/InferRequest"}, _DIGITS_EXAMPLE)
    infer["parameters"] = [{"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                            "schema": {"type": "integer"},
                            "description": "JSON header length; the raw tensor bytes follow. 0 = raw binary request"}]
    infer["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/InferResponse"}
    tfs, tfaas, repo = "TF Serving REST", "TFaaS", "Model repository"
    predict_body = {"type": "object", "properties": {
        "signature_name": {"type": "string"}, "instances": {"type": "array", "items": {}}, "inputs": {}}}
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _op(v2, "Server liveness")},
        "/metrics": {"get": _op("Monitoring", "Prometheus metrics (text exposition format)")},
        "/v2/health/ready": {"get": _op(v2, "Server readiness")},
        "/v2": {"get": _op(v2, "Server metadata and extensions")},
        "/v2/models/{model}": {"get": _op(v2, "Model metadata (latest version)")},
        "/v2/models/{model}/versions/{version}": {"get": _op(v2, "Model metadata of one version")},
        "/v2/models/{model}/ready": {"get": _op(v2, "Model readiness")},
        "/v2/models/{model}/versions/{version}/ready": {"get": _op(v2, "Readiness of one version")},
        "/v2/models/{model}/infer": {"post": infer},
        "/v2/models/{model}/versions/{version}/infer": {"post": infer},
        "/v2/repository/index": {"post": _op(repo, "List the repository's models and their state",
                                             {"type": "object", "properties": {"ready": {"type": "boolean"}}})},
        "/v2/repository/models/{model}/load": {"post": _op(repo, "(Re)load a model from the repository")},
        "/v2/repository/models/{model}/unload": {"post": _op(repo, "Unload a model")},
        "/v2/repository/models/{model}/upload": {"post": _op(
            repo, "Upload a new version (ONNX; validated by loading)",
            _multipart({"model": "file", "labels": "file", "config": "file", "version": "text"}),
            content_type="multipart/form-data", ok="201")},
        "/v2/repository/models/{model}": {"delete": _op(repo, "Delete a model")},
        "/v2/repository/models/{model}/versions/{version}": {"delete": _op(repo, "Delete one version")},
        "/v1/models/{model}": {"get": _op(tfs, "Model version status")},
        "/v1/models/{model}/metadata": {"get": _op(tfs, "Signature metadata")},
        "/v1/models/{model}:predict": {"post": _op(
            tfs, "Predict: row (instances -> predictions) or columnar (inputs -> outputs); {\"b64\": ...} for bytes",
            predict_body, {"signature_name": "serving_default", "instances": [[0.0] * 64]})},
        "/v1/models/{model}/versions/{version}:predict": {"post": _op(tfs, "Predict with one version", predict_body)},
        "/v1/models/{model}:classify": {"post": _op(
            tfs, "Classify examples: results are [label, score] pairs, highest first",
            {"type": "object", "properties": {"examples": {"type": "array"}, "context": {"type": "object"}}})},
        "/v1/models/{model}:regress": {"post": _op(tfs, "Regress examples (one output value per example)",
                                                   {"type": "object"})},
        "/models": {"get": _op(tfaas, "Every model's TFaaS params")},
        "/upload": {"post": _op(
            tfaas, "Upload a model: multipart (model, labels, params, name, op) or a tar/tar.gz bundle body",
            _multipart({"model": "file", "labels": "file", "params": "file", "name": "text", "op": "text"}),
            content_type="multipart/form-data")},
        "/params": {"get": _op(tfaas, "The default model's params"),
                    "post": _op(tfaas, "Set a model's params (inputNode/input_node, outputNode/output_node)",
                                {"type": "object"}, {"name": "digits", "input_node": "input"})},
        "/params/{model}": {"get": _op(tfaas, "A model's params")},
        "/json": {"post": _op(tfaas, "One row of values -> the first output row",
                              {"type": "object", "properties": {"keys": {"type": "array"}, "values": {"type": "array"},
                                                                "model": {"type": "string"}}},
                              {"keys": [], "values": [0.0] * 64, "model": "digits"})},
        "/image": {"post": _op(tfaas, "An image -> top-5 labels with probabilities",
                               _multipart({"image": "file", "model": "text"}), content_type="multipart/form-data")},
        "/delete/{model}": {"delete": _op(tfaas, "Delete a model")},
        "/delete": {"delete": _op(tfaas, "Delete the model named by the form field 'model'",
                                  _multipart({"model": "text"}), content_type="multipart/form-data")},
    }
    paths["/predict/json"] = paths["/json"]  # TFaaS routes both spellings
    paths["/predict/image"] = paths["/image"]
    for path, item in paths.items():
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"\{(\w+)\}", path)]
        if params:
            item["parameters"] = params
    return {
        "openapi": "3.0.3",
        "info": {"title": "inferlab", "version": __version__,
                 "description": "KServe V2 (JSON and binary tensors), TF Serving REST and TFaaS on one server. "
                                "KServe V2 over gRPC is on the gRPC port (inference.GRPCInferenceService)."},
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR, "Tensor": _TENSOR, "InferRequest": _V2_REQUEST,
                                   "InferResponse": _V2_RESPONSE}},
    }


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inferlab API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ccc}
details{margin:.3rem 0;border:1px solid #ddd;border-radius:4px;padding:.3rem .6rem}
summary{cursor:pointer}
code.m{display:inline-block;width:4.5rem;font-weight:bold}
.get{color:#1565c0}.post{color:#2e7d32}.delete{color:#c62828}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;font-size:13px}
</style></head><body>
<h1>inferlab HTTP API</h1><p id="info"></p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>
<div id="ops">Loading&hellip;</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("info").textContent = doc.info.description + " (version " + doc.info.version + ")";
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item)) {
      if (method === "parameters") continue;
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([method, path, op]);
    }
  const root = document.getElementById("ops");
  root.textContent = "";
  for (const [tag, ops] of Object.entries(byTag)) {
    const h = document.createElement("h2"); h.textContent = tag; root.appendChild(h);
    for (const [method, path, op] of ops) {
      const d = document.createElement("details");
      const s = document.createElement("summary");
      const m = document.createElement("code"); m.className = "m " + method; m.textContent = method.toUpperCase();
      const p = document.createElement("code"); p.textContent = path;
      s.append(m, p, " \\u2014 " + op.summary); d.appendChild(s);
      const body = op.requestBody && Object.entries(op.requestBody.content)[0];
      if (body) {
        const pre = document.createElement("pre");
        pre.textContent = body[0] + "\\n" + JSON.stringify(body[1].example || body[1].schema, null, 1);
        d.appendChild(pre);
      }
      root.appendChild(d);
    }
  }
});
</script></body></html>
"""


def routes() -> list[Route]:
    document = openapi_document()

    async def spec(request: Request) -> Response:
        return json_response(document)

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [Route("/openapi.json", spec, methods=["GET"]), Route("/docs", page, methods=["GET"])]
