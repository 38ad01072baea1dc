"""`inferlab profile`, `inferlab predict`, `inferlab tune`: measure a model once, predict any load, pick a config."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from inferlab.config import ModelConfig
from inferlab.perfmodel.predict import ArrivalKind, Prediction, predict
from inferlab.perfmodel.profile import (
    DEFAULT_BATCH_SIZES,
    PASSES,
    PROTOCOLS,
    Profile,
    record_service_times,
    setting_key,
)
from inferlab.perfmodel.tuner import Candidate, Slo
from inferlab.perfmodel.tuner import tune as tune_configs

if TYPE_CHECKING:
    from inferlab.perfmodel.validate import Measured

_WORKERS_HELP = "Server worker processes (`inferlab serve --workers`); each runs instances / workers instances."


@click.command()
@click.argument("model")
@click.option("--model-repository", "repository", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="INFERLAB_MODEL_REPOSITORY", help="Repository holding MODEL (else MODEL is an .onnx file).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the profile (default: MODEL.profile.json).")
@click.option("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)), show_default=True,
              help="Batch sizes to time.")
@click.option("--settings", default="1x1,1x2,2x1", show_default=True,
              help="INSTANCESxTHREADS settings to time (instances run at once).")
@click.option("--seconds-per-point", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Time budget per (setting, batch size).")
@click.option("--overhead-seconds", default=3.0, show_default=True, type=click.FloatRange(0.1, 120),
              help="Time budget for the server overhead measurement.")
@click.option("--no-server", is_flag=True, help="Skip the server overhead measurement (model time only).")
def profile(model: str, repository: Path | None, output: Path | None, batch_sizes: str, settings: str,
            seconds_per_point: float, overhead_seconds: float, no_server: bool) -> None:
    """Measure MODEL's service time per batch size and thread setting, and the server's overhead."""
    model_file, name = _resolve_model(model, repository)
    sizes = _int_list(batch_sizes, "--batch-sizes")
    pairs = [_setting(s) for s in settings.split(",") if s.strip()]
    prof = _record_profile(model_file, name, sizes, pairs, seconds_per_point, None if no_server else overhead_seconds)
    path = output or Path(f"{name}.profile.json")
    prof.save(path)
    _print_profile(_console(), prof)
    click.echo(f"profile written to {path}")


@click.command(name="predict")
@click.option("--profile", "profile_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A profile from `inferlab profile`.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The model's config.yaml (default: no batching, one instance, one thread).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Requests per second.")
@click.option("--rates", default=None, help="Several rates, comma-separated.")
@click.option("--arrivals", type=click.Choice(["poisson", "constant", "trace"]), default="poisson", show_default=True)
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Send times in seconds, one per line (for --arrivals trace; rescaled to each rate).")
@click.option("--protocol", type=click.Choice([*PROTOCOLS, "none"]), default="v2-json", show_default=True,
              help="Whose measured overhead to add ('none': the model alone).")
@click.option("--requests", default=50_000, show_default=True, type=click.IntRange(100, 5_000_000),
              help="Simulated requests per rate.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help=_WORKERS_HELP)
@click.option("--remote-client", is_flag=True,
              help="The clients run on other machines: their CPU does not share the server's cores.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def predict_cmd(profile_path: Path, config_path: Path | None, rate: float | None, rates: str | None,
                arrivals: ArrivalKind, trace_path: Path | None, protocol: str, requests: int, seed: int,
                workers: int, remote_client: bool, as_json: bool) -> None:
    """Predict capacity, utilisation, queue length and latency percentiles for a config at given rates."""
    if (rate is None) == (rates is None):
        raise click.UsageError("give exactly one of --rate or --rates")
    if (arrivals == "trace") != (trace_path is not None):
        raise click.UsageError("--arrivals trace and --trace FILE go together")
    rate_list = [rate] if rate is not None else _float_list(rates or "", "--rates")
    prof = Profile.load(profile_path)
    config = ModelConfig.from_file(config_path) if config_path else ModelConfig()
    trace = np.loadtxt(trace_path, dtype=np.float64, ndmin=1) if trace_path else None
    results = [predict(prof, config, r, protocol, arrivals, requests, seed, trace, workers, not remote_client)
               for r in rate_list]
    if as_json:
        click.echo(orjson.dumps([prediction_json(p) for p in results], option=orjson.OPT_INDENT_2).decode())
    else:
        _console().print(prediction_table(f"{prof.model}: predicted ({arrivals} arrivals)", results))


@click.command()
@click.argument("model")
@click.option("--slo", required=True, help="Latency target, e.g. p99=50ms (p50|p95|p99|mean, us|ms|s).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Target Poisson rate (requests/s): rank configs by latency at it.")
@click.option("--max-rate", is_flag=True, help="Rank configs by the highest rate each sustains within the SLO.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Profile to use (default MODEL.profile.json; recorded first if missing).")
@click.option("--model-repository", "repository", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="INFERLAB_MODEL_REPOSITORY", help="Repository holding MODEL: profiled, and served to validate.")
@click.option("--url", default=None, help="A running server to apply the winner to (instead of starting one).")
@click.option("--protocol", type=click.Choice([*PROTOCOLS, "none"]), default="v2-json", show_default=True)
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 100), help="How many configs to print.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help=_WORKERS_HELP)
@click.option("--no-apply", is_flag=True, help="Only predict: do not touch a server.")
@click.option("--validate-seconds", "validate_s", default=10.0, show_default=True, type=click.FloatRange(0, 600),
              help="Length of the open-loop validation run after applying (0: skip it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def tune(model: str, slo: str, rate: float | None, max_rate: bool, profile_path: Path | None,
         repository: Path | None, url: str | None, protocol: str, top: int, workers: int, no_apply: bool,
         validate_s: float, as_json: bool) -> None:
    """Find the batching/instance/thread config that meets a latency SLO, by prediction; apply the winner."""
    if (rate is None) == (not max_rate):
        raise click.UsageError("give exactly one of --rate R or --max-rate")
    target = Slo.parse(slo)
    name = Path(model).stem if Path(model).is_file() else model
    path = profile_path or Path(f"{name}.profile.json")
    if path.is_file():
        prof = Profile.load(path)
    else:
        model_file, name = _resolve_model(model, repository)
        prof = _record_profile(model_file, name, list(DEFAULT_BATCH_SIZES), [(1, 1), (1, 2), (2, 1)], 1.0, 3.0)
        prof.save(path)
        click.echo(f"profile written to {path}", err=True)
    base = ModelConfig.from_file(repository / name / "config.yaml") if repository else ModelConfig()
    ranked = tune_configs(prof, target, rate, base, protocol, workers=workers)
    winner = ranked[0]
    if as_json:
        click.echo(orjson.dumps([_candidate_json(c) for c in ranked[:top]], option=orjson.OPT_INDENT_2).decode())
    else:
        _console().print(_candidate_table(f"{name}: best configs for {slo}"
                                          + (f" at {rate:g}/s" if rate else " (highest rate)"), ranked[:top], target))
    if not winner.meets_slo:
        raise click.ClickException(f"no configuration meets {slo}" + (f" at {rate:g}/s" if rate else ""))
    if no_apply or (url is None and repository is None):
        return
    from inferlab.perfmodel.overhead import apply_config, encode_call
    from inferlab.perfmodel.validate import measure_open_loop

    with _server(url, repository, workers) as base_url:
        apply_config(base_url, name, winner.config)
        click.echo(f"applied to {base_url}: {_describe(winner.config)}", err=True)
        if protocol == "none" or validate_s == 0:
            return
        target_rate = winner.prediction.rate_rps if rate else 0.8 * (winner.max_rate_rps or 0.0)
        if target_rate <= 0:
            return
        count = int(min(max(200, target_rate * validate_s), 50_000))
        predicted = predict(prof, winner.config, target_rate, protocol, workers=workers)
        click.echo(f"validating: {count} Poisson requests at {target_rate:.1f}/s ...", err=True)
        measured = measure_open_loop(base_url, encode_call(protocol, name, prof.inputs), target_rate, count)
    _console().print(_validation_table(predicted, measured))


@contextmanager
def _server(url: str | None, repository: Path | None, workers: int) -> Iterator[str]:
    """The server to apply the winner to: the one at `url`, or a fresh one on the repository."""
    from inferlab.perfmodel.overhead import server_process

    if url is not None:
        yield url
    elif repository is not None:
        with server_process(repository, workers) as server:
            yield server.url


def _validation_table(p: Prediction, m: Measured) -> Table:
    table = Table(title=f"predicted vs measured at {p.rate_rps:.1f}/s" + ("" if m.valid else
                                                                          " (the load generator lagged)"))
    for col in ("", "throughput/s", "p50 ms", "p95 ms", "p99 ms", "mean ms", "failed"):
        table.add_column(col, justify="right")
    s = p.sim
    table.add_row("predicted", f"{s.throughput_rps:.1f}", _ms(s.p50_s), _ms(s.p95_s), _ms(s.p99_s),
                  _ms(s.mean_latency_s), str(s.dropped))
    table.add_row("measured", f"{m.throughput_rps:.1f}", _ms(m.p50_s), _ms(m.p95_s), _ms(m.p99_s), _ms(m.mean_s),
                  str(m.failed))
    table.add_row("error", _rel(s.throughput_rps, m.throughput_rps), _rel(s.p50_s, m.p50_s), _rel(s.p95_s, m.p95_s),
                  _rel(s.p99_s, m.p99_s), _rel(s.mean_latency_s, m.mean_s), "")
    return table


def _rel(predicted: float, measured: float) -> str:
    return f"{(predicted - measured) / measured * 100:+.0f}%" if measured > 0 else "-"


def _describe(c: ModelConfig) -> str:
    batching = c.batching.enabled and c.max_batch_size > 1
    batch = f"batch {c.max_batch_size}, delay {c.batching.max_queue_delay_us} us" if batching else "no batching"
    return f"{batch}, {c.instances} instance(s) x {c.runtime.intra_op_threads} thread(s)"


def _candidate_table(title: str, ranked: list[Candidate], slo: Slo) -> Table:
    table = Table(title=title)
    extra = () if slo.metric in ("p50", "p99") else (f"{slo.metric} ms",)
    for col in ("#", "config", "meets", "max rate/s", "rate/s", "capacity/s", "p50 ms", "p99 ms", *extra):
        table.add_column(col, justify="right" if col not in ("config", "meets") else "left")
    for i, c in enumerate(ranked, 1):
        p = c.prediction
        table.add_row(str(i), _describe(c.config), "yes" if c.meets_slo else "no",
                      "-" if c.max_rate_rps is None else f"{c.max_rate_rps:.1f}", f"{p.rate_rps:.1f}",
                      f"{p.capacity_rps:.1f}", _ms(p.sim.p50_s), _ms(p.sim.p99_s),
                      *(_ms(slo.value(p.sim)) for _ in extra))
    return table


def _candidate_json(c: Candidate) -> dict[str, Any]:
    return {"config": c.config.to_dict(), "meets_slo": c.meets_slo, "max_rate_rps": c.max_rate_rps,
            "prediction": prediction_json(c.prediction)}


def prediction_json(p: Prediction) -> dict[str, Any]:
    s = p.sim
    return {
        "rate_rps": p.rate_rps, "capacity_rps": p.capacity_rps, "utilisation": s.utilisation,
        "front_utilisation": s.front_utilisation,
        "throughput_rps": s.throughput_rps, "mean_queue_length": s.mean_queue_length,
        "mean_latency_s": s.mean_latency_s, "p50_s": s.p50_s, "p95_s": s.p95_s, "p99_s": s.p99_s,
        "dropped": s.dropped, "mean_batch_size": s.mean_batch_size,
        "closed_form_mean_s": p.closed_form_mean_s, "bound_batch_size": p.bound_batch_size, "workers": p.workers,
        "policy": {"max_batch_size": p.policy.max_batch_size, "max_queue_delay_s": p.policy.max_queue_delay_s,
                   "instances": p.policy.instances, "preferred_batch_sizes": list(p.policy.preferred_batch_sizes),
                   "max_queue_size": p.policy.max_queue_size},
    }


def prediction_table(title: str, results: list[Prediction]) -> Table:
    table = Table(title=title)
    for col in ("rate/s", "capacity/s", "util model", "util loop", "queue", "batch", "p50 ms", "p95 ms", "p99 ms",
                "mean ms", "closed-form ms", "dropped"):
        table.add_column(col, justify="right")
    for p in results:
        s = p.sim
        table.add_row(f"{p.rate_rps:.1f}", f"{p.capacity_rps:.1f}", f"{s.utilisation:.2f}",
                      f"{s.front_utilisation:.2f}", f"{s.mean_queue_length:.2f}", f"{s.mean_batch_size:.2f}",
                      _ms(s.p50_s), _ms(s.p95_s),
                      _ms(s.p99_s), _ms(s.mean_latency_s), _ms(p.closed_form_mean_s), str(s.dropped))
    return table


def _print_profile(console: Console, prof: Profile) -> None:
    table = Table(title=f"{prof.model}: median service time per batch (ms) and rows/s per instance")
    table.add_column("setting")
    sizes = sorted({b for per in prof.service_s.values() for b in per})
    for b in sizes:
        table.add_column(f"b={b}", justify="right")
    for key, per in prof.service_s.items():
        cells = []
        for b in sizes:
            med = float(np.median(per[b])) if b in per else float("nan")
            cells.append(f"{med * 1e3:.3f} ({b / med:.0f}/s)" if med > 0 else "-")
        table.add_row(key, *cells)
    console.print(table)
    for proto, oh in prof.overhead.items():
        console.print(f"{proto}: serial {oh.serial_s * 1e3:.3f} ms/request on the event loop, "
                      f"delay {oh.delay_s * 1e3:.3f} ms, unloaded p50 {np.median(oh.latency_s) * 1e3:.3f} ms, "
                      f"client CPU {oh.client_cpu_s * 1e3:.3f} ms/request, hand-off {oh.handoff_s * 1e3:.3f} ms/batch")


def _record_profile(model_file: Path, name: str, sizes: list[int], pairs: list[tuple[int, int]],
                    seconds_per_point: float, overhead_seconds: float | None) -> Profile:
    """Time the model in process, then (unless `overhead_seconds` is None) the server around it, with a bar."""
    from inferlab.perfmodel.overhead import encode_call, measure_overhead, server_process

    steps = len(sizes) * len(pairs) * PASSES + (0 if overhead_seconds is None else len(PROTOCOLS))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("profiling", total=steps)
        started = [False]

        def step(text: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=text)

        prof = record_service_times(model_file, name, sizes, pairs, seconds_per_point, progress=step)
        if overhead_seconds is not None:
            overheads = {}
            model_s = float(np.median(prof.service_s[setting_key(*pairs[0])][min(sizes)]))
            with _single_model_repository(model_file, name) as repo, server_process(repo) as server:
                for protocol in PROTOCOLS:
                    step(f"{name}: server overhead ({protocol})")
                    call = encode_call(protocol, name, prof.inputs)
                    overheads[protocol] = measure_overhead(server, call, model_s, overhead_seconds)
            prof = Profile(prof.model, prof.inputs, prof.service_s, overheads, prof.machine)
        bar.advance(task)
    return prof


def _console() -> Console:
    """Tables stay readable when piped (rich would otherwise wrap them at 80 columns)."""
    return Console(width=None if sys.stdout.isatty() else 150)


def _resolve_model(model: str, repository: Path | None) -> tuple[Path, str]:
    """MODEL is a file, or a name in the repository (its highest numeric version)."""
    if repository is None:
        path = Path(model)
        if not path.is_file():
            raise click.UsageError(f"{model} is not a model file; name a model with --model-repository DIR")
        return path, path.stem
    folder = repository / model
    versions = sorted((int(p.name), p) for p in folder.glob("*") if p.name.isdigit() and (p / "model.onnx").is_file())
    if not versions:
        raise click.UsageError(f"no {folder}/<version>/model.onnx in the repository")
    return versions[-1][1] / "model.onnx", model


@contextmanager
def _single_model_repository(model_file: Path, name: str) -> Iterator[Path]:
    """A throwaway repository with only this model, so the server loads nothing else."""
    with tempfile.TemporaryDirectory(prefix="inferlab-perf-") as tmp:
        (Path(tmp) / name / "1").mkdir(parents=True)
        shutil.copyfile(model_file, Path(tmp) / name / "1" / "model.onnx")
        yield Path(tmp)


def _setting(text: str) -> tuple[int, int]:
    instances, sep, threads = text.strip().partition("x")
    if not sep or not instances.isdigit() or not threads.isdigit() or int(instances) < 1 or int(threads) < 1:
        raise click.BadParameter(f"setting {text!r} is not INSTANCESxTHREADS like 2x1", param_hint="--settings")
    return int(instances), int(threads)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint=option) from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: need integers >= 1", param_hint=option)
    return values


def _float_list(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if not values or min(values) <= 0:
        raise click.BadParameter(f"{text!r}: need rates > 0", param_hint=option)
    return values


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if np.isfinite(seconds) else "inf"
