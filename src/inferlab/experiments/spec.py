"""Experiment files (YAML): a matrix of server configurations x a matrix of loads, validated once.

Example file:

    name: batching-study
    url: http://127.0.0.1:8000
    model: digits
    window_s: 2          # each load step: windows of this length until 3 agree (max_windows)
    servers:             # every combination is one server configuration, applied through the repository API
      batching: [false, true]
      max_batch_size: [8, 32]
      max_queue_delay_us: [500]
      instances: [1]
      encoding: [json, binary]
    load:
      concurrency: [1, 4, 16]
      think_s: [0]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from inferlab.errors import InvalidInput
from inferlab.experiments.points import LoadPoint, sweep_points
from inferlab.experiments.sweep import SweepSettings
from inferlab.loadgen.result import PERCENTILES, percentile_key

#: Matrix keys that change the model's config.yaml (applied by the server) or the client's requests.
SERVER_KEYS = ("batching", "max_batch_size", "max_queue_delay_us", "instances")
CLIENT_KEYS = ("protocol", "encoding", "batch_size")
PROTOCOLS = ("rest", "grpc", "tfserving", "tfaas")
ENCODINGS = ("json", "binary")
LOAD_KEYS = {"concurrency": "concurrency", "rate": "rate", "think_s": "think", "think": "think"}
TOP_KEYS = {"name", "url", "model", "servers", "load", "window_s", "warmup_s", "tolerance", "max_windows",
            "percentile", "timeout_s", "base_config", "seed", "grpc_url"}


@dataclass(frozen=True, slots=True)
class Variant:
    """One server configuration of the matrix: what goes to config.yaml, and how the client talks."""

    config: dict[str, Any]  # the config.yaml mapping sent with the load request
    protocol: str  # the load generator's name for protocol + encoding: v2-json, v2-binary, v2-grpc, ...
    batch_size: int  # rows per request
    label: str  # the matrix values that vary, e.g. "batching=on max_batch_size=8 encoding=binary"


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    name: str
    url: str
    grpc_url: str  # grpc://HOST:PORT, for variants with protocol grpc
    model: str
    variants: tuple[Variant, ...]
    points: tuple[LoadPoint, ...]
    sweep: SweepSettings
    timeout_s: float
    seed: int


def load_spec(text: str, where: str = "experiment") -> ExperimentSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a mapping at the top level")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {unknown}; expected some of {sorted(TOP_KEYS)}")
    for key in ("url", "model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InvalidInput(f"{where}: '{key}' is required (a string)")
    try:
        sweep = SweepSettings(window_s=float(raw.get("window_s", 2.0)), warmup_s=float(raw.get("warmup_s", 1.0)),
                              tolerance=float(raw.get("tolerance", 0.10)), max_windows=int(raw.get("max_windows", 10)),
                              percentile=None if raw.get("percentile") is None
                              else percentile_key(float(raw["percentile"])))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    if sweep.percentile is not None and float(sweep.percentile) not in PERCENTILES:
        raise InvalidInput(f"{where}: percentile {sweep.percentile} is not one of {list(PERCENTILES)}")
    return ExperimentSpec(
        name=str(raw.get("name", "experiment")), url=str(raw["url"]).rstrip("/"),
        grpc_url=str(raw.get("grpc_url", "")), model=str(raw["model"]),
        variants=_variants(raw.get("servers") or {}, raw.get("base_config") or {}, where),
        points=tuple(_points(raw.get("load"), where)), sweep=sweep,
        timeout_s=float(raw.get("timeout_s", 20.0)), seed=int(raw.get("seed", 0)),
    )


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _variants(matrix: Any, base: Any, where: str) -> tuple[Variant, ...]:
    if not isinstance(matrix, Mapping) or not isinstance(base, Mapping):
        raise InvalidInput(f"{where}: 'servers' and 'base_config' must be mappings")
    unknown = sorted(set(matrix) - set(SERVER_KEYS) - set(CLIENT_KEYS))
    if unknown:
        raise InvalidInput(f"{where}: servers: unknown key(s) {unknown}; expected some of "
                           f"{sorted(SERVER_KEYS + CLIENT_KEYS)}")
    axes = {key: _listed(matrix[key]) for key in (*SERVER_KEYS, *CLIENT_KEYS) if key in matrix}
    for key, values in axes.items():
        if not values:
            raise InvalidInput(f"{where}: servers.{key}: give at least one value")
    for key, allowed in (("protocol", PROTOCOLS), ("encoding", ENCODINGS)):
        for value in axes.get(key, []):
            if value not in allowed:
                raise InvalidInput(f"{where}: servers.{key} {value!r} is not one of {allowed}")
    for size in axes.get("batch_size", []):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInput(f"{where}: servers.batch_size {size!r} is not an integer >= 1")
    varying = [key for key, values in axes.items() if len(values) > 1]
    variants = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo, strict=True))
        variants.append(Variant(config=_config(base, chosen, where),
                                protocol=wire_protocol(chosen.get("protocol", "rest"), chosen.get("encoding", "json")),
                                batch_size=int(chosen.get("batch_size", 1)),
                                label=" ".join(f"{k}={_show(chosen[k])}" for k in varying) or "default"))
    return tuple(variants)


def wire_protocol(protocol: str, encoding: str) -> str:
    """rest + json -> v2-json, rest + binary -> v2-binary, grpc -> v2-grpc (protobuf has one encoding)."""
    if protocol == "rest":
        return f"v2-{encoding}"
    return "v2-grpc" if protocol == "grpc" else protocol


def _config(base: Mapping[str, Any], chosen: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The config.yaml mapping: base_config with the matrix values laid over it."""
    config: dict[str, Any] = {k: v for k, v in base.items()}
    batching = dict(config.get("batching") or {})
    if "batching" in chosen:
        batching["enabled"] = bool(chosen["batching"])
    if "max_queue_delay_us" in chosen:
        batching["max_queue_delay_us"] = chosen["max_queue_delay_us"]
    for key in ("max_batch_size", "instances"):
        if key in chosen:
            value = chosen[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "max_batch_size" else 1):
                raise InvalidInput(f"{where}: servers.{key}: {value!r} is not a valid integer")
            config[key] = value
    if batching:
        config["batching"] = batching
    return config


def _show(value: Any) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def _points(raw: Any, where: str) -> list[LoadPoint]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(f"{where}: 'load' is required, e.g. load: {{concurrency: [1, 4, 16]}}")
    unknown = sorted(set(raw) - set(LOAD_KEYS))
    if unknown:
        raise InvalidInput(f"{where}: load: unknown key(s) {unknown}; expected concurrency, rate, think_s")
    specs = [f"{LOAD_KEYS[key]}=" + ",".join(str(v) for v in _listed(values)) for key, values in raw.items()]
    return sweep_points(specs)
