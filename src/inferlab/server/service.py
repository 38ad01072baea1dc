"""InferenceService: the data plane every protocol adapter calls (health, metadata, infer, repository).

Adapters decode the wire format into an InferRequest and encode the InferResponse; everything in
between (which model, is the input valid, run it, repository changes) happens here, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferlab import __version__
from inferlab.errors import InvalidInput, ModelNotFound
from inferlab.messages import InferRequest, InferResponse
from inferlab.repository.names import check_model_name, parse_version
from inferlab.repository.registry import LoadedModel, ModelRegistry
from inferlab.repository.store import CONFIG_FILE, LABELS_FILE, MODEL_FILE
from inferlab.server.classification import top_k

EXTENSIONS = ["model_repository", "classification", "binary_tensor_data"]


class InferenceService:
    """Protocol-neutral operations over one ModelRegistry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    # --- health and metadata -------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "inferlab", "version": __version__, "extensions": EXTENSIONS}

    def ready(self) -> bool:
        return True

    def model(self, name: str, version: str | None = None) -> LoadedModel:
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
        """Validate `request` against the model's signature, run it, and apply top-k where asked."""
        model = self.model(request.model, request.version)
        _validate(model, request)
        if classification:
            unknown = set(classification) - model.output_names
            if unknown:
                raise InvalidInput(_unknown_outputs(model, unknown))
        outputs = await model.scheduler.run(request)
        for name, k in (classification or {}).items():
            outputs[name] = top_k(outputs[name], k, model.labels)
        return InferResponse(
            model=model.name,
            version=str(model.version),
            outputs=outputs,
            id=request.id,
            timings=request.timings,
        )

    # --- repository ----------------------------------------------------------------------------
    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return self.registry.index(ready_only)

    def load(self, name: str) -> None:
        self.registry.load(check_model_name(name))

    def unload(self, name: str) -> None:
        self.registry.unload(check_model_name(name))

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
        stored = self.registry.store.put(check_model_name(name), files, parse_version(version), self.registry.validate)
        self.registry.load(name)
        return stored

    def delete(self, name: str, version: str | None = None) -> None:
        store = self.registry.store
        store.delete(check_model_name(name), parse_version(version))
        if store.versions(name):
            self.registry.load(name)
        else:
            self.registry.forget(name)

    def model_dir(self, name: str) -> Path:
        return self.registry.store.model_dir(check_model_name(name))


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
