"""Configuration values: a model's `config.yaml` and the server's settings, validated once at load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferlab.errors import RepositoryError


@dataclass(frozen=True, slots=True)
class TensorOverride:
    """A config.yaml entry that renames or reshapes one model input/output as clients see it."""

    name: str
    datatype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Knobs passed to the runtime: thread counts per instance (0 lets the runtime choose)."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Dynamic batching: gather requests up to `max_batch_size` rows or `max_queue_delay_us`."""

    enabled: bool = False
    max_queue_delay_us: int = 500
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Everything `REPO/NAME/config.yaml` may say; every field has a default so the file is optional."""

    max_batch_size: int = 0
    platform: str = "onnx"
    labels: str | None = None
    inputs: tuple[TensorOverride, ...] = ()
    outputs: tuple[TensorOverride, ...] = ()
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    instances: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    version_policy: str = "all"

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        """Read config.yaml; a missing file gives the defaults."""
        if not path.is_file():
            return cls()
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RepositoryError(f"{path.name}: not valid YAML: {exc}") from None
        return cls.from_dict(raw, where=path.name)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "config") -> ModelConfig:
        if not isinstance(raw, dict):
            raise RepositoryError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known - {"dynamic_batching", "name"})
        if unknown:
            raise RepositoryError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        runtime = raw.get("runtime") or {}
        batching = raw.get("batching", raw.get("dynamic_batching"))
        try:
            return cls(
                max_batch_size=_int(raw.get("max_batch_size", 0), f"{where}: max_batch_size", 0),
                platform=str(raw.get("platform", "onnx")),
                labels=None if raw.get("labels") is None else str(raw["labels"]),
                inputs=tuple(_override(o, where) for o in raw.get("inputs") or ()),
                outputs=tuple(_override(o, where) for o in raw.get("outputs") or ()),
                runtime=RuntimeOptions(
                    intra_op_threads=_int(runtime.get("intra_op_threads", 1), f"{where}: intra_op_threads", 0),
                    inter_op_threads=_int(runtime.get("inter_op_threads", 1), f"{where}: inter_op_threads", 0),
                ),
                instances=_int(raw.get("instances", 1), f"{where}: instances", 1),
                batching=_batching(batching, where),
                version_policy=_version_policy(raw.get("version_policy", "all"), where),
            )
        except (AttributeError, TypeError) as exc:
            raise RepositoryError(f"{where}: malformed entry: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML-ready form, used when a config is written back into the repository."""
        out: dict[str, Any] = {
            "max_batch_size": self.max_batch_size,
            "platform": self.platform,
            "instances": self.instances,
            "runtime": {
                "intra_op_threads": self.runtime.intra_op_threads,
                "inter_op_threads": self.runtime.inter_op_threads,
            },
            "batching": {
                "enabled": self.batching.enabled,
                "max_queue_delay_us": self.batching.max_queue_delay_us,
                "preferred_batch_sizes": list(self.batching.preferred_batch_sizes),
                "max_queue_size": self.batching.max_queue_size,
            },
            "version_policy": self.version_policy,
        }
        if self.labels:
            out["labels"] = self.labels
        for key, overrides in (("inputs", self.inputs), ("outputs", self.outputs)):
            if overrides:
                out[key] = [
                    {k: v for k, v in (("name", o.name), ("datatype", o.datatype),
                                       ("shape", list(o.shape) if o.shape else None)) if v is not None}
                    for o in overrides
                ]
        return out


def _int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RepositoryError(f"{what}: {value!r} is not an integer >= {minimum}")
    return value


def _override(raw: Any, where: str) -> TensorOverride:
    if not isinstance(raw, dict) or "name" not in raw:
        raise RepositoryError(f"{where}: each inputs/outputs entry needs a 'name', got {raw!r}")
    shape = raw.get("shape", raw.get("dims"))
    return TensorOverride(
        name=str(raw["name"]),
        datatype=None if raw.get("datatype") is None else str(raw["datatype"]),
        shape=None if shape is None else tuple(int(d) for d in shape),
    )


def _batching(raw: Any, where: str) -> BatchingConfig:
    if raw is None or raw is False:
        return BatchingConfig()
    if raw is True:
        return BatchingConfig(enabled=True)
    if not isinstance(raw, dict):
        raise RepositoryError(f"{where}: batching must be a mapping or true/false, got {raw!r}")
    return BatchingConfig(
        enabled=bool(raw.get("enabled", True)),
        max_queue_delay_us=_int(raw.get("max_queue_delay_us", 500), f"{where}: max_queue_delay_us", 0),
        preferred_batch_sizes=tuple(
            _int(s, f"{where}: preferred_batch_sizes", 1) for s in raw.get("preferred_batch_sizes") or ()
        ),
        max_queue_size=_int(raw.get("max_queue_size", 0), f"{where}: max_queue_size", 0),
    )


def _version_policy(raw: Any, where: str) -> str:
    text = str(raw)
    if text == "all" or text.startswith("latest") or text.startswith("specific:"):
        return text
    raise RepositoryError(
        f"{where}: version_policy {raw!r} is not one of 'all', 'latest', 'latest:N', 'specific:1,3'"
    )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How one server process listens and what it protects."""

    model_repository: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int | None = None  # None: no gRPC server; 0: any free port
    grpc_max_message_bytes: int = 64 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_token: str | None = None
    protect_inference: bool = False
    max_body_bytes: int = 64 * 1024 * 1024
    access_log: bool = False
