"""The live models: load and unload from the store, choose a version, report state for the index."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferlab.batching.batcher import BatchObserver, DynamicBatcher
from inferlab.batching.instances import InstancePool
from inferlab.batching.policy import BatchPolicy
from inferlab.config import ModelConfig
from inferlab.errors import InferlabError, ModelNotFound, ModelNotReady, RepositoryError
from inferlab.repository.names import check_model_name
from inferlab.repository.store import CONFIG_FILE, ModelStore
from inferlab.runtimes import RUNTIMES, Runtime, RuntimeLoader
from inferlab.tensors import TensorSpec

PLATFORMS = {"onnx": "onnxruntime_onnx"}


@dataclass(slots=True)
class LoadedModel:
    """One version of a model, ready to serve."""

    name: str
    version: int
    config: ModelConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: list[str] | None
    scheduler: DynamicBatcher
    input_index: dict[str, TensorSpec] = field(default_factory=dict)
    output_names: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.input_index = {s.name: s for s in self.inputs}
        self.output_names = frozenset(s.name for s in self.outputs)

    @property
    def platform(self) -> str:
        return PLATFORMS.get(self.config.platform, self.config.platform)


@dataclass(slots=True)
class _Entry:
    versions: dict[int, LoadedModel]
    state: str
    reason: str = ""


class ModelRegistry:
    """Owns every loaded model; the only place runtimes are created and closed."""

    def __init__(
        self, store: ModelStore, runtimes: dict[str, RuntimeLoader] | None = None,
        observer: Callable[[str, int], BatchObserver] | None = None, instance_share: int = 1,
    ) -> None:
        """`observer(name, version)` gets each batcher's events; `instance_share` divides config `instances`
        (each of N worker processes runs ceil(instances / N) of them)."""
        self.store = store
        self._runtimes = runtimes or RUNTIMES
        self._observer = observer
        self._instance_share = instance_share
        self._entries: dict[str, _Entry] = {}

    def load_all(self) -> None:
        """Load every model in the repository; a broken one is recorded as UNAVAILABLE, not fatal."""
        for name in self.store.models():
            with contextlib.suppress(InferlabError):
                self.load(name)

    def load(self, name: str) -> list[LoadedModel]:
        """(Re)load `name` from disk: every version its version policy selects."""
        folder = self.store.model_dir(check_model_name(name))
        try:
            config = ModelConfig.from_file(folder / CONFIG_FILE)
            versions = _select(self.store.versions(name), config.version_policy)
            if not versions:
                raise RepositoryError(f"model '{name}' has no version folder with a model file")
            labels = _read_labels(folder, config)
            loaded = self._open_versions(name, versions, folder, config, labels)
        except InferlabError as exc:
            self._entries[name] = _Entry({}, "UNAVAILABLE", str(exc))
            raise
        self._close(name)
        self._entries[name] = _Entry(loaded, "READY")
        return list(loaded.values())

    def unload(self, name: str) -> None:
        if name not in self._entries and name not in self.store.models():
            raise ModelNotFound(f"model '{name}' is not in the repository")
        self._close(name)
        self._entries[name] = _Entry({}, "UNAVAILABLE", "unloaded")

    def forget(self, name: str) -> None:
        """Drop a model entirely (after it was deleted from the store)."""
        self._close(name)
        self._entries.pop(name, None)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not in the repository")
        if not entry.versions:
            raise ModelNotReady(f"model '{name}' is not ready: {entry.reason or entry.state}")
        if version is None:
            return entry.versions[max(entry.versions)]
        try:
            return entry.versions[version]
        except KeyError:
            raise ModelNotFound(
                f"model '{name}' has no loaded version {version}; loaded: {sorted(entry.versions)}"
            ) from None

    def versions(self, name: str) -> list[int]:
        entry = self._entries.get(name)
        return sorted(entry.versions) if entry else []

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: one row per model version on disk or loaded."""
        rows: list[dict[str, Any]] = []
        for name in sorted(set(self.store.models()) | set(self._entries)):
            entry = self._entries.get(name, _Entry({}, "UNAVAILABLE", "not loaded"))
            on_disk = self.store.versions(name) if name in self.store.models() else []
            for v in sorted(set(on_disk) | set(entry.versions)):
                ready = v in entry.versions
                if ready_only and not ready:
                    continue
                row: dict[str, Any] = {"name": name, "version": str(v), "state": "READY" if ready else entry.state}
                row["reason"] = "" if ready else entry.reason
                rows.append(row)
        return rows

    def validate(self, model_dir: Path, version_dir: Path) -> None:
        """Load a staged model once and close it: the repository's check before accepting an upload."""
        config = ModelConfig.from_file(model_dir / CONFIG_FILE)
        BatchPolicy.from_config(config)
        _read_labels(model_dir, config)
        self._loader(config)(version_dir, config).close()

    def close(self) -> None:
        for name in list(self._entries):
            self._close(name)

    def _open_versions(
        self, name: str, versions: list[int], folder: Path, config: ModelConfig, labels: list[str] | None
    ) -> dict[int, LoadedModel]:
        """Every version, or none: when one fails, the ones already open are closed, not leaked."""
        loaded: dict[int, LoadedModel] = {}
        try:
            for v in versions:
                loaded[v] = self._open(name, v, folder / str(v), config, labels)
        except BaseException:
            for model in loaded.values():
                model.scheduler.close()
            raise
        return loaded

    def _open(self, name: str, version: int, path: Path, config: ModelConfig, labels: list[str] | None) -> LoadedModel:
        policy = BatchPolicy.from_config(config)
        loader = self._loader(config)
        runtimes: list[Runtime] = []
        try:
            for _ in range(-(-config.instances // self._instance_share)):
                runtimes.append(loader(path, config))
        except BaseException:  # a later copy failed (memory, a broken file): the built ones are not leaked
            for built in runtimes:
                built.close()
            raise
        runtime = runtimes[0]
        what = f"model '{name}' version {version}"
        observer = self._observer(name, version) if self._observer else None
        batcher = DynamicBatcher(what, InstancePool(what, runtimes), policy, config.batching.max_queue_size, observer)
        return LoadedModel(
            name=name,
            version=version,
            config=config,
            inputs=runtime.inputs,
            outputs=runtime.outputs,
            labels=labels,
            scheduler=batcher,
        )

    def _loader(self, config: ModelConfig) -> RuntimeLoader:
        try:
            return self._runtimes[config.platform]
        except KeyError:
            raise RepositoryError(
                f"config.yaml platform '{config.platform}' is not one of {sorted(self._runtimes)}"
            ) from None

    def _close(self, name: str) -> None:
        entry = self._entries.get(name)
        if entry:
            for model in entry.versions.values():
                model.scheduler.close()
            entry.versions = {}


def _select(versions: list[int], policy: str) -> list[int]:
    if policy == "all":
        return versions
    if policy.startswith("latest"):
        count = int(policy.partition(":")[2] or 1)
        return versions[-count:]
    wanted = {int(v) for v in policy.partition(":")[2].split(",") if v.strip()}
    return [v for v in versions if v in wanted]


def _read_labels(folder: Path, config: ModelConfig) -> list[str] | None:
    path = folder / (config.labels or "labels.txt")
    if not path.is_file():
        if config.labels:
            raise RepositoryError(f"config.yaml names labels file '{config.labels}', which is missing")
        return None
    if path.resolve().parent != folder.resolve():
        raise RepositoryError(f"labels file '{config.labels}' must sit in the model's folder")
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
