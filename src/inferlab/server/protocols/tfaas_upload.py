"""TFaaS model uploads: the multipart form and the tar/tar.gz bundle, read into memory as one model's files.

Nothing is extracted to disk: bundle members are read by name, and any entry that is not a plain
file inside the bundle (absolute path, `..`, link, device) is refused, so a bundle cannot write
outside the repository. The files go to `InferenceService.upload`, which stores them atomically.
"""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from inferlab.errors import InvalidInput
from inferlab.server.web import json_object

FORM_PARTS = ("name", "model", "labels", "params", "op")


@dataclass(slots=True)
class Upload:
    """One model's files as a TFaaS client sent them."""

    model: bytes
    model_filename: str
    name: str | None = None
    labels: bytes | None = None
    params: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None

    def model_name(self) -> str:
        """The `name` part, else params' `name`, else the bundle's folder, else the model file's stem."""
        return (
            self.name or str(self.params.get("name") or "") or self.folder or PurePosixPath(self.model_filename).stem
        )


async def read_form(request: Request, max_part_bytes: int) -> Upload:
    """multipart parts `model` (file), `labels` (file), `params` (JSON file), `name`, `op` (accepted, unused).

    `Content-Encoding: base64` means the model part is base64 text (TFaaS's Python client sends it so).
    """
    files: dict[str, tuple[str, bytes]] = {}
    async with request.form(max_files=8, max_fields=8, max_part_size=max_part_bytes) as form:
        for key, value in form.multi_items():
            if key not in FORM_PARTS:
                raise InvalidInput(f"unknown upload part '{key}'; expected some of {list(FORM_PARTS)}")
            if isinstance(value, UploadFile):
                files[key] = (value.filename or key, await value.read())
            else:
                files[key] = (key, value.encode())
    if "model" not in files or not files["model"][1]:
        raise InvalidInput("upload needs a non-empty multipart part named 'model' holding the model file")
    filename, model = files["model"]
    if request.headers.get("content-encoding", "").lower() == "base64":
        try:
            model = base64.b64decode(model, validate=False)
        except binascii.Error:
            raise InvalidInput("the model part is not valid base64 although Content-Encoding says base64") from None
    name = files["name"][1].decode(errors="replace").strip() if "name" in files else None
    return Upload(
        model=model,
        model_filename=filename,
        name=name or None,
        labels=files["labels"][1] if "labels" in files else None,
        params=parse_params(files["params"][1]) if "params" in files else {},
    )


def read_bundle(body: bytes, max_unpacked_bytes: int) -> Upload:
    """A tar or tar.gz of `[dir/]{params.json, <model>.onnx, <labels file>}`."""
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
            members = _members(archive, max_unpacked_bytes)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidInput(f"the upload is neither multipart/form-data nor a tar/tar.gz bundle: {exc}") from None
    models = [p for p in members if p.endswith(".onnx")]
    if len(models) != 1:
        raise InvalidInput(f"a bundle must hold exactly one .onnx model file; found {sorted(models) or 'none'}")
    by_base = {PurePosixPath(p).name: data for p, data in members.items()}
    params = parse_params(by_base["params.json"]) if "params.json" in by_base else {}
    labels_name = PurePosixPath(str(params.get("labels") or "labels.txt")).name
    folder = PurePosixPath(models[0]).parent
    return Upload(
        model=members[models[0]],
        model_filename=models[0],
        folder=None if folder == PurePosixPath(".") else folder.parts[0],
        labels=by_base.get(labels_name),
        params=params,
    )


def _members(archive: tarfile.TarFile, max_unpacked_bytes: int) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    total = 0
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise InvalidInput(f"bundle entry '{member.name}' points outside the bundle")
        if member.isdir():
            continue
        if not member.isfile():
            raise InvalidInput(f"bundle entry '{member.name}' is not a regular file (links are not accepted)")
        total += member.size
        if total > max_unpacked_bytes:
            raise InvalidInput(f"the bundle unpacks to more than the limit of {max_unpacked_bytes} bytes")
        extracted = archive.extractfile(member)
        members[member.name] = extracted.read() if extracted else b""
    return members


def parse_params(data: bytes) -> dict[str, Any]:
    """A TFaaS params.json, with both key spellings (`inputNode`/`input_node`, ...) folded to snake_case."""
    doc = json_object(data, "params")
    for camel, snake in (("inputNode", "input_node"), ("outputNode", "output_node"), ("imgChannels", "img_channels")):
        if camel in doc:
            doc.setdefault(snake, doc.pop(camel))
    return doc
