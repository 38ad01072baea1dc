"""InferenceService: the data plane every protocol adapter calls (health, metadata, infer, repository).

Adapters decode the wire format into an InferRequest and encode the InferResponse; everything in
between (which model, is the input valid, run it, repository changes) happens here, once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import yaml

from inferlab import __version__
from inferlab.config import ModelConfig
from inferlab.errors import InferlabError, InvalidInput, ModelNotFound
from inferlab.messages import InferRequest, InferResponse
from inferlab.repository.names import check_model_name, parse_version
from inferlab.repository.registry import LoadedModel, ModelRegistry
from inferlab.repository.store import CONFIG_FILE, LABELS_FILE, MODEL_FILE, write_atomic
from inferlab.server import timing
from inferlab.server.classification import top_k
from inferlab.server.metrics import Metrics
from inferlab.server.status import http_status
from inferlab.server.sync import RepositorySync

EXTENSIONS = ["model_repository", "classification", "binary_tensor_data"]


class InferenceService:
    """Protocol-neutral operations over one ModelRegistry."""

    def __init__(
        self, registry: ModelRegistry, metrics: Metrics | None = None, access_log: timing.AccessLog | None = None,
        sync: RepositorySync | None = None,
    ) -> None:
        """`sync` is given when several worker processes share the repository (server/sync.py)."""
        self.registry = registry
        self.metrics = metrics or Metrics()
        self.access_log = access_log or timing.AccessLog(False)
        self.sync = sync

    # --- health and metadata -------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "inferlab", "version": __version__, "extensions": EXTENSIONS}

    def ready(self) -> bool:
        return True

    def model(self, name: str, version: str | None = None) -> LoadedModel:
        if self.sync:
            self.sync.check()
        return self.registry.get(check_model_name(name), parse_version(version))

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.model(name, version)
        except ModelNotFound:
            raise
        except Exception:
            return False
        return True

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.model(name, version)
        return {
            "name": model.name,
            "versions": [str(v) for v in self.registry.versions(model.name)],
            "platform": model.platform,
            "inputs": [s.as_dict() for s in model.inputs],
            "outputs": [s.as_dict() for s in model.outputs],
        }

    # --- inference -----------------------------------------------------------------------------
    async def infer(self, request: InferRequest, classification: dict[str, int] | None = None) -> InferResponse:
        """Validate `request` against the model's signature, run it, and apply top-k where asked.

        The adapter encodes the response and then calls `finish` with it.
        """
        model_name, version = "", ""  # failures before the model is found are counted under model=""
        try:
            model = self.model(request.model, request.version)
            model_name, version = model.name, str(model.version)
            _validate(model, request)
            if classification:
                unknown = set(classification) - model.output_names
                if unknown:
                    raise InvalidInput(_unknown_outputs(model, unknown))
            outputs = await model.scheduler.run(request, timing.deadline(request))
            for name, k in (classification or {}).items():
                outputs[name] = top_k(outputs[name], k, model.labels)
        except InferlabError as exc:
            self.metrics.failed(model_name, version, exc)
            self.access_log.write(request.model, version or request.version, request.id, request.timings,
                                  http_status(exc), str(exc))
            raise
        return InferResponse(
            model=model.name,
            version=version,
            outputs=outputs,
            id=request.id,
            parameters=timing.response_parameters(request.timings),
            timings=request.timings,
        )

    def finish(self, response: InferResponse) -> dict[str, str]:
        """The reply body is encoded: record the request's metrics and access-log line; the Server-Timing header."""
        t = response.timings
        t.encoded = perf_counter()
        self.metrics.model(response.model, response.version).succeeded(t)
        self.access_log.write(response.model, response.version, response.id, t, 200)
        return {"Server-Timing": timing.server_timing(t)}

    # --- repository ----------------------------------------------------------------------------
    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        if self.sync:
            self.sync.check()
        return self.registry.index(ready_only)

    def load(self, name: str, config: str | None = None) -> None:
        """(Re)load `name`; with `config` (the JSON of a config.yaml mapping) write that config first.

        The new config.yaml replaces the old one atomically, and the old one is put back if the model
        does not load with it, so a bad config never stays in the repository.
        """
        with self._changing(check_model_name(name)):
            if config is None:
                self.registry.load(name)
            else:
                self._load_with_config(name, config)

    def unload(self, name: str) -> None:
        with self._changing(check_model_name(name)):
            self.registry.unload(name)

    def upload(
        self, name: str, model: bytes, labels: bytes | None = None, config: bytes | None = None,
        version: str | None = None,
    ) -> int:
        """Store a model version atomically (validated by loading it), then load it for serving."""
        files = {MODEL_FILE: model}
        if labels is not None:
            files[LABELS_FILE] = labels
        if config is not None:
            files[CONFIG_FILE] = config
        with self._changing(check_model_name(name)):
            stored = self.registry.store.put(name, files, parse_version(version), self.registry.validate)
            self.registry.load(name)
        return stored

    def delete(self, name: str, version: str | None = None) -> None:
        store = self.registry.store
        with self._changing(check_model_name(name)):
            store.delete(name, parse_version(version))
            if store.versions(name):
                self.registry.load(name)
            else:
                self.registry.forget(name)

    def model_dir(self, name: str) -> Path:
        return self.registry.store.model_dir(check_model_name(name))


    def _changing(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self.sync.change(name) if self.sync else contextlib.nullcontext()

    def _load_with_config(self, name: str, config: str) -> None:
        try:
            raw = orjson.loads(config)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"load parameter 'config' is not valid JSON: {exc}") from None
        ModelConfig.from_dict(raw, where="load parameter 'config'")
        path = self.registry.store.model_dir(name) / CONFIG_FILE
        old = path.read_bytes() if path.is_file() else None
        write_atomic(path, yaml.safe_dump(raw, sort_keys=False).encode())
        try:
            self.registry.load(name)
        except InferlabError:
            if old is None:
                path.unlink()
            else:
                write_atomic(path, old)
            with contextlib.suppress(InferlabError):
                self.registry.load(name)
            raise



def _validate(model: LoadedModel, request: InferRequest) -> None:
    specs = model.input_index
    for name, array in request.inputs.items():
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(f"unknown input '{name}'; model '{model.name}' has inputs {sorted(specs)}")
        spec.check(array)
        if model.config.max_batch_size and array.shape and array.shape[0] > model.config.max_batch_size:
            raise InvalidInput(
                f"input '{name}': batch of {array.shape[0]} is over the model's max_batch_size "
                f"{model.config.max_batch_size}"
            )
    if len(request.inputs) != len(specs):
        missing = sorted(set(specs) - set(request.inputs))
        raise InvalidInput(f"missing input(s) {missing} for model '{model.name}'")
    if request.outputs:
        unknown = set(request.outputs) - model.output_names
        if unknown:
            raise InvalidInput(_unknown_outputs(model, unknown))


def _unknown_outputs(model: LoadedModel, unknown: set[str]) -> str:
    return f"unknown output(s) {sorted(unknown)}; model '{model.name}' has outputs {sorted(model.output_names)}"
