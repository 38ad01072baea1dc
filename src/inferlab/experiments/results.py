"""One results folder per experiment: every run as RunResult JSON, with its configuration and environment.

Layout (a report reads the whole folder: `inferlab report results/NAME-STAMP/`):

    NAME-YYYYmmdd-HHMMSS/
      experiment.yaml     the file as given (absent for sweeps and scenarios)
      environment.json    the load generator's machine, and the server's /v2 metadata
      index.json          one entry per run: file, series, load, server config, stable
      runs/NNN-*.json     RunResult, its config holding "series", "load" and "server_config"
      summary*.txt        scenario summaries (MLPerf-like), shown verbatim in the report
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path
from typing import Any

import orjson

from inferlab.loadgen.result import RunResult


class ResultsFolder:
    """Writes a results folder as runs finish, so an interrupted experiment keeps what it measured.

    Example:
        >>> folder = ResultsFolder.create(Path("results"), "sweep")
        >>> folder.add_run(result)
    """

    def __init__(self, path: Path, server: dict[str, Any] | None = None) -> None:
        self.path = path
        self.server = server or {}  # the server's /v2 metadata, stored beside the generator's environment
        self.index: list[dict[str, Any]] = []

    @classmethod
    def create(cls, root: Path, name: str) -> ResultsFolder:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        path = root / f"{_slug(name)}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = root / f"{_slug(name)}-{stamp}-{suffix}"
        (path / "runs").mkdir(parents=True)
        return cls(path)

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(text)
        return target

    def write_environment(self, result: RunResult) -> None:
        data = {"load_generator": dataclasses.asdict(result.environment), "server": self.server}
        (self.path / "environment.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def add_run(self, result: RunResult) -> Path:
        config = result.config
        load = config.get("load") or {}
        name = f"{len(self.index):03d}-{_slug(str(config.get('series', 'run')))}-{_slug(_load_name(load))}.json"
        target = self.path / "runs" / name
        target.write_text(result.to_json())
        step = config.get("step") or {}
        self.index.append({"file": f"runs/{name}", "series": config.get("series"), "load": load,
                           "server_config": config.get("server_config"), "stable": step.get("stable"),
                           "requests_per_s": result.requests_per_s, "p99_ms": result.latency.percentiles_ms.get("99")})
        (self.path / "index.json").write_bytes(orjson.dumps(self.index, option=orjson.OPT_INDENT_2))
        if not (self.path / "environment.json").exists():
            self.write_environment(result)
        return target


def _load_name(load: dict[str, Any]) -> str:
    if load.get("mode") == "open":
        return f"rate{load.get('rate', 0):g}"
    think = load.get("think_s") or 0
    return f"c{load.get('concurrency', 0)}" + (f"-think{think:g}" if think else "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")[:60] or "run"
