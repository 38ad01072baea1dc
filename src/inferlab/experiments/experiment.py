"""Run an experiment file: apply each server configuration through the repository API, sweep the loads, store all.

A configuration is applied with `POST /v2/repository/models/{model}/load` carrying
`{"parameters": {"config": "<JSON of the config.yaml mapping>"}}` (Triton's load-with-config), then the
model's readiness is awaited, so every measurement runs against the configuration it is filed under.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from inferlab.errors import InvalidInput
from inferlab.experiments.driver import LoadgenDriver
from inferlab.experiments.results import ResultsFolder
from inferlab.experiments.spec import ExperimentSpec, Variant
from inferlab.experiments.sweep import Step, run_sweep
from inferlab.loadgen.payloads import model_target


class ServerRefused(InvalidInput):
    """The server did not accept a configuration (its reply is in the message)."""


def apply_config(base_url: str, model: str, config: dict[str, Any], timeout_s: float = 60.0) -> None:
    """Load `model` with this config.yaml mapping and wait until it answers ready."""
    body = {"parameters": {"config": json.dumps(config)}}
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        response = client.post(f"/v2/repository/models/{model}/load", json=body)
        if response.status_code != 200:
            raise ServerRefused(f"loading {model!r} with config {config} failed: HTTP {response.status_code}: "
                                f"{response.text[:300]}")
        deadline = time.monotonic() + timeout_s
        while client.get(f"/v2/models/{model}/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise ServerRefused(f"model {model!r} was not ready {timeout_s:g} s after loading it")
            time.sleep(0.05)


def server_metadata(base_url: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = httpx.get(f"{base_url}/v2", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return data


def run_experiment(spec: ExperimentSpec, results_root: Path, text: str = "",
                   on_step: Callable[[Variant, Step], None] | None = None) -> ResultsFolder:
    """Every variant x every load point; returns the folder, already holding every finished run."""
    folder = ResultsFolder.create(results_root, spec.name)
    if text:
        folder.write_text("experiment.yaml", text)
    folder.server = server_metadata(spec.url)
    for variant in spec.variants:
        apply_config(spec.url, spec.model, variant.config)
        labels = {"series": variant.label, "server_config": variant.config, "protocol": variant.protocol,
                  "batch_size": variant.batch_size, "model": spec.model, "experiment": spec.name}
        base = spec.grpc_url if variant.protocol == "v2-grpc" else spec.url
        if not base:
            raise InvalidInput("protocol grpc needs 'grpc_url: grpc://HOST:PORT' in the experiment file")
        target = model_target(base, spec.model, protocol=variant.protocol, batch_size=variant.batch_size,
                              seed=spec.seed)
        driver = LoadgenDriver(target, timeout_s=spec.timeout_s, seed=spec.seed, labels=labels)

        def finished(step: Step, variant: Variant = variant) -> None:
            folder.add_run(step.result)
            if on_step is not None:
                on_step(variant, step)

        run_sweep(driver, spec.points, spec.sweep, on_step=finished)
    return folder
