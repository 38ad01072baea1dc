"""function.yaml -> FunctionSpec, and OpenFaaS-style stack.yml -> the functions to deploy, validated once.

Messages name the file and key and say what is expected (`function.yaml: max_instances: 0 is not an
integer >= 1`), because this is the first thing a user gets wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferlab.durations import parse_duration as _seconds_of
from inferlab.errors import InvalidInput

SPEC_FILE = "function.yaml"
KEEP_WARM_POLICIES = ("fixed", "histogram")
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,62}")
# OpenFaaS autoscaling labels -> our keys, so an existing stack.yml keeps its meaning.
_OPENFAAS_LABELS = {
    "com.openfaas.scale.min": "min_instances",
    "com.openfaas.scale.max": "max_instances",
    "com.openfaas.scale.target": "concurrency",
    "com.openfaas.scale.zero-duration": "idle_timeout_s",
}


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function's settings; every field but `name` has a default so function.yaml stays short."""

    name: str
    handler: str = "handler.py"
    models: tuple[str, ...] = ()
    min_instances: int = 0
    max_instances: int = 4
    concurrency: int = 1
    idle_timeout_s: float = 30.0
    scale_down_delay_s: float = 1.0
    timeout_s: float = 30.0
    start_timeout_s: float = 30.0
    keep_warm: str = "fixed"
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, where: str = SPEC_FILE) -> FunctionSpec:
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInput(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        if "name" not in raw:
            raise InvalidInput(f"{where}: 'name' is required")
        spec = cls(
            name=check_function_name(raw["name"], where),
            handler=_handler_file(raw.get("handler", "handler.py"), where),
            models=_models(raw.get("models", ()), where),
            min_instances=_int(raw, "min_instances", 0, 0, where),
            max_instances=_int(raw, "max_instances", 4, 1, where),
            concurrency=_int(raw, "concurrency", 1, 1, where),
            idle_timeout_s=_seconds(raw, "idle_timeout_s", 30.0, where),
            scale_down_delay_s=_seconds(raw, "scale_down_delay_s", 1.0, where),
            timeout_s=_seconds(raw, "timeout_s", 30.0, where, positive=True),
            start_timeout_s=_seconds(raw, "start_timeout_s", 30.0, where, positive=True),
            keep_warm=_choice(raw.get("keep_warm", "fixed"), "keep_warm", KEEP_WARM_POLICIES, where),
            environment=_environment(raw.get("environment") or {}, where),
        )
        if spec.min_instances > spec.max_instances:
            raise InvalidInput(
                f"{where}: min_instances {spec.min_instances} is over max_instances {spec.max_instances}"
            )
        return spec

    @classmethod
    def from_folder(cls, folder: Path, overrides: dict[str, Any] | None = None) -> FunctionSpec:
        """Read FOLDER/function.yaml; `overrides` (from stack.yml or the deploy call) win over the file."""
        path = folder / SPEC_FILE
        raw: Any = {}
        if path.is_file():
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise InvalidInput(f"{SPEC_FILE}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidInput(f"{SPEC_FILE}: expected a mapping at the top level, got {type(raw).__name__}")
        return cls.from_dict({**raw, **(overrides or {})})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = list(self.models)
        return out


@dataclass(frozen=True, slots=True)
class StackFunction:
    """One entry of stack.yml: the function folder and the settings that override its function.yaml."""

    name: str
    folder: Path
    overrides: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stack:
    """A parsed stack.yml: the gateway it names (if any) and its functions, in file order."""

    gateway: str | None
    functions: tuple[StackFunction, ...]


def load_stack(path: Path) -> Stack:
    """Parse an OpenFaaS-style stack.yml; `handler:` folders are relative to the file."""
    where = path.name
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("functions"), dict) or not raw["functions"]:
        raise InvalidInput(f"{where}: expected a top-level 'functions:' mapping of name -> settings")
    provider = raw.get("provider") or {}
    gateway = provider.get("gateway") if isinstance(provider, dict) else None
    functions = []
    for name, entry in raw["functions"].items():
        here = f"{where}: functions.{name}"
        check_function_name(name, where)
        if not isinstance(entry, dict) or not entry.get("handler"):
            raise InvalidInput(f"{here}: needs 'handler:' naming the function folder (e.g. ./{name})")
        lang = entry.get("lang", "python")
        if not str(lang).startswith("python"):
            raise InvalidInput(f"{here}: lang {lang!r} is not supported; inferlab runs Python handlers")
        folder = (path.parent / str(entry["handler"])).resolve()
        if not folder.is_dir():
            raise InvalidInput(f"{here}: handler folder {folder} does not exist")
        overrides = {k: v for k, v in entry.items() if k not in ("handler", "lang", "image", "labels")}
        overrides.update(_from_labels(entry.get("labels") or {}, here))
        functions.append(StackFunction(name, folder, overrides))
    return Stack(None if gateway is None else str(gateway), tuple(functions))


def check_function_name(name: Any, where: str = "function") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{where}: invalid function name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def parse_duration(value: Any, what: str) -> float:
    """Seconds from a number or a string like '500ms', '30s', '15m' (OpenFaaS writes durations so)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    try:
        return _seconds_of(str(value))  # the load generator's grammar (inferlab/durations.py)
    except InvalidInput:
        raise InvalidInput(f"{what}: {value!r} is not a duration (seconds, or e.g. '500ms', '30s', '15m')") from None


def _from_labels(labels: Any, where: str) -> dict[str, Any]:
    if not isinstance(labels, dict):
        raise InvalidInput(f"{where}: labels must be a mapping")
    out: dict[str, Any] = {}
    for label, key in _OPENFAAS_LABELS.items():
        if label in labels:
            value = labels[label]
            out[key] = parse_duration(value, f"{where}: {label}") if key.endswith("_s") else _label_int(value, label)
    if str(labels.get("com.openfaas.scale.zero", "true")).lower() == "false":
        out["min_instances"] = max(1, int(out.get("min_instances", 1)))
    return out


def _label_int(value: Any, label: str) -> int:
    if not str(value).isdigit():
        raise InvalidInput(f"label {label}: {value!r} is not a non-negative integer")
    return int(value)


def _int(raw: dict[str, Any], key: str, default: int, minimum: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{where}: {key}: {value!r} is not an integer >= {minimum}")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float, where: str, positive: bool = False) -> float:
    seconds = parse_duration(raw.get(key, default), f"{where}: {key}")
    if positive and seconds <= 0:
        raise InvalidInput(f"{where}: {key}: {raw[key]!r} must be more than 0 seconds")
    return seconds


def _choice(value: Any, key: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise InvalidInput(f"{where}: {key}: {value!r} is not one of {list(choices)}")
    return str(value)


def _handler_file(value: Any, where: str) -> str:
    text = str(value)
    if not text.endswith(".py") or "/" in text or "\\" in text or text.startswith("."):
        raise InvalidInput(f"{where}: handler: {value!r} must name a .py file in the function folder")
    return text


def _models(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) and m for m in value):
        raise InvalidInput(f"{where}: models: expected a list of model names, got {value!r}")
    return tuple(value)


def _environment(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: environment: expected a mapping of NAME: value, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}
