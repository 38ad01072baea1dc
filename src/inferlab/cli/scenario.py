"""`inferlab scenario server|offline|single-stream`, `inferlab sweep` and `inferlab experiment run FILE.yaml`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from inferlab.errors import InvalidInput
from inferlab.experiments.driver import LoadgenDriver
from inferlab.experiments.experiment import run_experiment
from inferlab.experiments.results import ResultsFolder
from inferlab.experiments.scenarios import ScenarioResult, ServerSettings, find_server_rate, offline, single_stream
from inferlab.experiments.spec import Variant, load_spec
from inferlab.experiments.sweep import Step, SweepSettings, sweep_to_folder
from inferlab.loadgen.payloads import PROTOCOLS, model_target
from inferlab.loadgen.plan import Target, parse_duration

_RESULTS = click.option("--results", "results_root", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("results"), show_default=True, help="Folder that gets one results folder.")


def _target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """URL plus either --model (a V2 request made from the model's metadata) or hey's body flags."""
    for option in reversed((
        click.argument("url"),
        click.option("--model", default=None, help="Send requests made from this model's metadata; URL is then "
                     "the server's base URL (grpc://HOST:PORT for --protocol v2-grpc)."),
        click.option("--protocol", type=click.Choice(PROTOCOLS), default="v2-json", show_default=True,
                     help="With --model: how requests are encoded."),
        click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True,
                     help="With --model: rows per request."),
        click.option("-m", "--method", default=None, help="HTTP method (default GET, POST with a body)."),
        click.option("-H", "--header", "headers", multiple=True, help="'Name: value'; repeatable."),
        click.option("-d", "--data", default=None, help="Request body."),
        click.option("-D", "--data-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                     help="Request body from a file."),
        click.option("-t", "--timeout", "timeout_s", type=float, default=20.0, show_default=True,
                     help="Per-request timeout in seconds."),
    )):
        command = option(command)
    return command


def _driver(url: str, model: str | None, protocol: str, batch_size: int, method: str | None, headers: tuple[str, ...],
            data: str | None, data_file: Path | None, timeout_s: float, **extra: Any) -> LoadgenDriver:
    if model is not None:
        target = model_target(url, model, protocol=protocol, batch_size=batch_size)
    else:
        body = data_file.read_bytes() if data_file is not None else (data or "").encode()
        pairs = []
        for header in headers:
            name, sep, value = header.partition(":")
            if not sep:
                raise click.UsageError(f"header {header!r}: expected 'Name: value'")
            pairs.append((name.strip(), value.strip()))
        target = Target(url, method or ("POST" if body else "GET"), tuple(pairs), (body,))
    labels = {"series": extra.pop("series", None) or (f"{model} {protocol} batch {batch_size}" if model else url)}
    return LoadgenDriver(target, timeout_s=timeout_s, labels=labels, **extra)


def _slo(text: str) -> tuple[float, float]:
    """'p99=50ms' -> (0.99, 50.0)."""
    name, sep, value = text.partition("=")
    try:
        percentile = float(name.strip().lower().removeprefix("p")) / 100.0
        bound_ms = parse_duration(value) * 1000.0
    except (ValueError, InvalidInput):
        raise click.BadParameter(f"{text!r}: expected e.g. p99=50ms") from None
    if not sep or not 0 < percentile < 1 or bound_ms <= 0:
        raise click.BadParameter(f"{text!r}: expected e.g. p99=50ms (percentile in (0, 100), bound > 0)")
    return percentile, bound_ms


def _finish(verdict: ScenarioResult, results_root: Path, name: str) -> None:
    folder = ResultsFolder.create(results_root, name)
    if verdict.result is not None:
        folder.add_run(verdict.result)
    folder.write_text("summary.txt", verdict.summary() + "\n")
    click.echo(verdict.summary())
    click.echo(f"results: {folder.path}", err=True)
    if not verdict.valid:
        sys.exit(1)


@click.group()
def scenario() -> None:
    """MLPerf-style scenarios; each prints a summary ending in `Result is : VALID` or `INVALID (why)`."""


@scenario.command("server")
@_target_options
@click.option("--slo", "slo", default="p99=50ms", show_default=True, help="Latency bound, e.g. p99=50ms.")
@click.option("--max-rate", type=float, default=None, help="Upper end of the rate search (default: 1.25x a "
              "closed-loop capacity probe).")
@click.option("--min-duration", type=float, default=2.0, show_default=True, help="Seconds per trial, at least.")
@click.option("--max-trials", type=int, default=8, show_default=True)
@_RESULTS
def server_command(slo: str, max_rate: float | None, min_duration: float, max_trials: int, results_root: Path,
                   **target: Any) -> None:
    """Highest Poisson rate whose latency percentile meets the SLO, backed by early stopping."""
    percentile, bound_ms = _slo(slo)
    settings = ServerSettings(target_ms=bound_ms, percentile=percentile, max_rate=max_rate,
                              min_duration_s=min_duration, max_trials=max_trials)
    driver = _driver(**target, record_requests=True)
    verdict = find_server_rate(driver, settings, sut=target["url"], on_trial=lambda t: click.echo(
        f"rate {t.rate:9.2f}/s: {'pass' if t.passed else 'fail'} {'; '.join(t.reasons)}", err=True))
    _finish(verdict, results_root, "scenario-server")


@scenario.command("offline")
@_target_options
@click.option("-c", "--concurrency", type=click.IntRange(1), default=64, show_default=True)
@click.option("--window", "window_s", type=float, default=2.0, show_default=True)
@_RESULTS
def offline_command(concurrency: int, window_s: float, results_root: Path, **target: Any) -> None:
    """Maximum throughput at any latency, measured until stable."""
    verdict = offline(_driver(**target), concurrency, SweepSettings(window_s=window_s), sut=target["url"])
    _finish(verdict, results_root, "scenario-offline")


@scenario.command("single-stream")
@_target_options
@click.option("--duration", "duration_s", type=float, default=10.0, show_default=True)
@_RESULTS
def single_stream_command(duration_s: float, results_root: Path, **target: Any) -> None:
    """One request at a time; reports the early-stopping p90 latency estimate."""
    verdict = single_stream(_driver(**target, record_requests=True), duration_s, 1.0, sut=target["url"])
    _finish(verdict, results_root, "scenario-single-stream")


def _progress(step: Step) -> None:
    r = step.result
    click.echo(f"{step.point.label():>20}: {r.requests_per_s:9.1f} req/s  mean {r.latency.mean_ms:8.2f} ms  "
               f"p99 {r.latency.percentiles_ms.get('99', 0.0):8.2f} ms  ok {100 * r.success_rate:5.1f}%  "
               f"{'stable' if step.stable else 'NOT STABLE'} after {len(step.windows)} windows", err=True)


@click.command()
@_target_options
@click.option("--sweep", "sweeps", multiple=True, required=True,
              help="concurrency=1,2,4,8 | rate=50,100 | think=0,1,5; repeat to combine (e.g. threads x think).")
@click.option("--window", "window_s", type=float, default=2.0, show_default=True, help="Seconds per window.")
@click.option("--warmup", "warmup_s", type=float, default=1.0, show_default=True)
@click.option("--stability", "tolerance", type=float, default=0.10, show_default=True,
              help="Max relative spread of the last 3 windows (throughput and latency).")
@click.option("--max-windows", type=click.IntRange(3), default=10, show_default=True)
@click.option("--series", default=None, help="Name of this sweep in reports (default: the model or URL).")
@_RESULTS
def sweep(sweeps: tuple[str, ...], window_s: float, warmup_s: float, tolerance: float, max_windows: int,
          results_root: Path, **target: Any) -> None:
    """Run each load step until stable (perf_analyzer style) and store one result per step."""
    settings = SweepSettings(window_s=window_s, warmup_s=warmup_s, tolerance=tolerance, max_windows=max_windows)
    folder = sweep_to_folder(_driver(**target), sweeps, settings, results_root, on_step=_progress)
    click.echo(f"results: {folder.path}  (inferlab report {folder.path} -o report.html)")


@click.group()
def experiment() -> None:
    """Experiment files: server configurations x loads, results in one folder."""


@experiment.command("run")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_RESULTS
def experiment_run(file: Path, results_root: Path) -> None:
    """Apply each configuration through the repository API and sweep every load."""
    text = file.read_text()
    spec = load_spec(text, file.name)

    def progress(variant: Variant, step: Step) -> None:
        click.echo(f"[{variant.label}] ", nl=False, err=True)
        _progress(step)

    folder = run_experiment(spec, results_root, text, on_step=progress)
    click.echo(f"results: {folder.path}  (inferlab report {folder.path} -o report.html)")
