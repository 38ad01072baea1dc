"""Load results from files: our RunResult JSON, results folders, and hey, locust and JMeter outputs."""

from __future__ import annotations

from pathlib import Path

from inferlab.errors import InvalidInput
from inferlab.importers.hey import import_hey_csv, is_hey_csv
from inferlab.importers.jmeter import import_jtl, is_jtl
from inferlab.importers.locust import import_locust, is_locust_stats
from inferlab.loadgen.result import RunResult

__all__ = ["import_hey_csv", "import_jtl", "import_locust", "load_results"]


def load_results(path: Path) -> list[RunResult]:
    """Every run in `path`: a RunResult JSON file, a folder of them (searched recursively), a hey CSV,
    a JMeter JTL, or a locust PREFIX_stats.csv. The format is told by content, not by file name alone."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jtl") or is_locust_stats(p)
                       or (p.suffix == ".csv" and is_hey_csv(_head(p))))
        runs = [run for p in found if p.name not in ("environment.json", "index.json") for run in load_results(p)]
        if not runs:
            raise InvalidInput(f"{path}: no results found in this folder")
        return runs
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file or folder")
    if is_locust_stats(path):
        return [import_locust(path)]
    head = _head(path)
    if is_hey_csv(head):
        return [import_hey_csv(path.read_text(), path.name)]
    if is_jtl(head):
        return [import_jtl(path.read_text(), path.name)]
    if head.lstrip().startswith("{"):
        try:
            return [RunResult.from_json(path.read_bytes())]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}: not an inferlab result: {exc}") from None
    raise InvalidInput(f"{path}: unknown format; expected a RunResult .json, hey -o csv, JMeter .jtl or "
                       "locust *_stats.csv")


def _head(path: Path) -> str:
    with path.open("r", errors="replace") as handle:
        return handle.read(256)
