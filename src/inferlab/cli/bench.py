"""`inferlab bench URL`: hey's flags (plus open loop, traces, model payloads) -> LoadPlan -> run -> reports."""

from __future__ import annotations

import base64
import math
import sys
from pathlib import Path

import click

from inferlab.errors import InvalidInput
from inferlab.loadgen.arrivals import parse_stages
from inferlab.loadgen.heyformat import hey_csv, invalid_banner, render_text
from inferlab.loadgen.launch import run
from inferlab.loadgen.locustcsv import write_locust_csvs
from inferlab.loadgen.payloads import PROTOCOLS, model_target
from inferlab.loadgen.plan import Arrivals, LoadPlan, RateShape, Target, ThinkTime, ends, parse_duration
from inferlab.loadgen.progress import ProgressLine
from inferlab.loadgen.recordscsv import write_requests_csv
from inferlab.loadgen.traces import SPREADS, read_azure, read_infless, read_timestamps


@click.command(context_settings={"max_content_width": 110})
@click.pass_context
@click.argument("url")
@click.option("-n", "requests", type=click.IntRange(1), default=200, show_default=True,
              help="Number of requests to run (exactly; ignored with -z).")
@click.option("-c", "concurrency", type=click.IntRange(1), default=50, show_default=True,
              help="Concurrent users (closed loop), or the most connections open loop may use.")
@click.option("-z", "duration", default=None, help="Duration of the run, e.g. 10s, 3m; -n is then ignored.")
@click.option("-q", "per_user_rate", type=click.FloatRange(0), default=0.0,
              help="Rate limit per user in requests/s, as hey (total = c x q; closed loop). See --rate.")
@click.option("-m", "method", default="GET", show_default=True, help="HTTP method.")
@click.option("-H", "headers", multiple=True, help="Custom header 'Name: value'; repeatable.")
@click.option("-D", "body_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Request body from a file (read once).")
@click.option("-d", "body", default=None, help="Request body.")
@click.option("-T", "content_type", default=None, help="Content-type (hey's default text/html when a body is sent).")
@click.option("-t", "timeout", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Timeout per request in seconds; 0 = none.")
@click.option("-o", "output", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True,
              help="text: hey's summary; csv: hey's per-request CSV; json: the RunResult.")
@click.option("-A", "accept", default=None, help="Accept header.")
@click.option("-U", "user_agent", default=None, help="User-Agent header.")
@click.option("-a", "basic_auth", default=None, help="Basic authentication, user:password.")
@click.option("--disable-keepalive", "-disable-keepalive", is_flag=True, help="Open a new connection per request.")
@click.option("-host", "host_header", default=None, help="Host header (hey's -host).")
@click.option("-cpus", "cpus", type=click.IntRange(1), default=None, help="hey's -cpus: the same as --processes.")
@click.option("-disable-compression", "-disable-redirects", "hey_noop", is_flag=True,
              help="Accepted for hey compatibility: inferlab never asks for compression or follows redirects.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Open loop: total arrivals per second, timed from the schedule (coordinated-omission free).")
@click.option("--poisson", is_flag=True, help="Open loop: Poisson arrivals (seeded) instead of evenly spaced.")
@click.option("--stages", default=None, help="Open loop rate shape: '30s@100,60s@100-400,10s@0' (steps and ramps).")
@click.option("--trace", "trace_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Open loop: replay a trace file (see --trace-format).")
@click.option("--trace-format", type=click.Choice(["timestamps", "infless", "azure"]), default="timestamps",
              show_default=True, help="timestamps: one send time per line; infless: load levels; azure: 2019 CSV.")
@click.option("--peak-rate", type=float, default=100.0, show_default=True, help="infless: requests/s at level 1.0.")
@click.option("--hold", default="9s", show_default=True, help="infless: how long each level is held.")
@click.option("--function", "azure_function", default=None, help="azure: HashFunction (or prefix); default busiest.")
@click.option("--minute-s", type=float, default=60.0, show_default=True,
              help="azure: seconds one trace minute lasts (time scaling).")
@click.option("--count-scale", type=float, default=1.0, show_default=True, help="azure: multiply minute counts.")
@click.option("--spread", type=click.Choice(SPREADS), default="equidistant", show_default=True,
              help="azure: how a minute's invocations are spread.")
@click.option("--time-scale", type=float, default=1.0, show_default=True, help="timestamps: multiply all times.")
@click.option("--think", default=None, help="Closed loop think time: SECONDS, exp:MEAN or uniform:LOW:HIGH.")
@click.option("--ramp-up", default="0s", show_default=True, help="Closed loop: start users evenly over this time.")
@click.option("--warmup", default="0s", show_default=True, help="Exclude requests started in this first period.")
@click.option("--processes", type=click.IntRange(1), default=1, show_default=True,
              help="Generator processes (histograms merge exactly).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for arrivals, think times, payloads.")
@click.option("--model", default=None, help="Load a model on a V2 server: URL is then the server's base URL.")
@click.option("--model-version", default=None, help="With --model: the version.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="v2-json", show_default=True,
              help="With --model: the payload encoding.")
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True, help="With --model: rows/request.")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --model: sample each request's rows from this JSON/.npy file.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the RunResult JSON here.")
@click.option("--csv", "csv_prefix", default=None, help="Also write locust CSVs PREFIX_stats.csv, ...")
@click.option("--requests-csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every request (phases, Server-Timing) to this CSV.")
@click.option("--max-lag-ms", type=float, default=5.0, show_default=True,
              help="Self-check: invalid when p99 send lag exceeds this.")
@click.option("--max-cpu-percent", type=float, default=90.0, show_default=True,
              help="Self-check: invalid when a generator process uses more CPU than this.")
@click.option("--no-progress", is_flag=True, help="No live progress line.")
@click.option("--fail-invalid", is_flag=True, help="Exit with status 1 when the self-check finds the run invalid.")
def bench(ctx: click.Context, url: str, requests: int, concurrency: int, duration: str | None, per_user_rate: float,
          method: str, headers: tuple[str, ...], body_file: Path | None, body: str | None, content_type: str | None,
          timeout: float, output: str, accept: str | None, user_agent: str | None, basic_auth: str | None,
          disable_keepalive: bool, host_header: str | None, cpus: int | None, hey_noop: bool, rate: float | None,
          poisson: bool, stages: str | None, trace_file: Path | None,
          trace_format: str, peak_rate: float, hold: str, azure_function: str | None, minute_s: float,
          count_scale: float, spread: str, time_scale: float, think: str | None, ramp_up: str, warmup: str,
          processes: int, seed: int, model: str | None, model_version: str | None, protocol: str,
          batch_size: int, input_file: Path | None, json_file: Path | None, csv_prefix: str | None,
          requests_csv: Path | None, max_lag_ms: float, max_cpu_percent: float, no_progress: bool,
          fail_invalid: bool) -> None:
    """Send load to URL and report rate, latency, errors and where the time went (a drop-in for hey).

    Closed loop by default (-c users, as hey); --rate, --stages or --trace switch to an open loop whose
    latency counts from each request's intended send time.
    """
    processes = cpus or processes
    try:
        header_pairs = _headers(headers + ((f"Host: {host_header}",) if host_header else ()), content_type, accept,
                                user_agent, basic_auth, has_body=bool(body or body_file))
        if model is not None:
            target = model_target(url, model, protocol=protocol, batch_size=batch_size, input_path=input_file,
                                  seed=seed, version=model_version, headers=header_pairs)
            target = Target(target.url, target.method, target.headers, target.bodies, not disable_keepalive)
        else:
            payload = body_file.read_bytes() if body_file else (body or "").encode()
            target = Target(url, method.upper(), header_pairs, (payload,), not disable_keepalive)
        arrivals = _arrivals(rate, poisson, stages, trace_file, trace_format, peak_rate, hold, azure_function,
                             minute_s, count_scale, spread, time_scale, seed)
        duration_s = parse_duration(duration) if duration else None
        # a finite schedule (stages, trace) ends by itself; -n caps it only when given
        n_given = ctx.get_parameter_source("requests") == click.core.ParameterSource.COMMANDLINE
        n: int | None = requests if duration_s is None and (n_given or not ends(arrivals)) else None
        plan = LoadPlan(
            target=target, mode="open" if arrivals is not None else "closed", concurrency=concurrency,
            requests=n,
            duration_s=duration_s, arrivals=arrivals, per_user_rate=per_user_rate,
            think=ThinkTime.parse(think) if think else None, ramp_up_s=parse_duration(ramp_up),
            warmup_s=parse_duration(warmup), timeout_s=timeout, seed=seed, processes=processes,
            record_requests=output == "csv" or requests_csv is not None, max_lag_p99_ms=max_lag_ms,
            max_cpu_percent=max_cpu_percent, argv=tuple(sys.argv),
        )
    except (InvalidInput, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    with ProgressLine(processes, enabled=not no_progress) as line:
        result = run(plan, progress=line.update if line.enabled else None)
    if output == "json":
        click.echo(result.to_json())
    elif output == "csv":
        click.echo(hey_csv(result.requests), nl=False)
    else:
        click.echo(render_text(result), nl=False)
    if json_file is not None:
        json_file.write_text(result.to_json())
    if csv_prefix is not None:
        write_locust_csvs(result, csv_prefix)
    if requests_csv is not None:
        write_requests_csv(result.requests, requests_csv)
    banner = invalid_banner(result)
    if banner:
        click.echo(banner, err=True, nl=False)
        if fail_invalid:
            raise click.exceptions.Exit(1)


def _headers(raw: tuple[str, ...], content_type: str | None, accept: str | None, user_agent: str | None,
             basic_auth: str | None, has_body: bool) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"-H {item!r}: expected 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    names = {name.lower() for name, _ in pairs}
    if "content-type" not in names and (content_type or has_body):
        pairs.append(("Content-Type", content_type or "text/html"))
    if accept and "accept" not in names:
        pairs.append(("Accept", accept))
    if user_agent and "user-agent" not in names:
        pairs.append(("User-Agent", user_agent))
    if basic_auth:
        pairs.append(("Authorization", "Basic " + base64.b64encode(basic_auth.encode()).decode()))
    return tuple(pairs)


def _arrivals(rate: float | None, poisson: bool, stages: str | None, trace_file: Path | None, trace_format: str,
              peak_rate: float, hold: str, azure_function: str | None, minute_s: float, count_scale: float,
              spread: str, time_scale: float, seed: int) -> Arrivals | None:
    chosen = [name for name, value in (("--rate", rate), ("--stages", stages), ("--trace", trace_file))
              if value is not None]
    if len(chosen) > 1:
        raise InvalidInput(f"{' and '.join(chosen)} each set the open-loop schedule: give one")
    if rate is not None:
        return RateShape(((math.inf, rate, rate),), poisson)
    if stages is not None:
        return parse_stages(stages, poisson)
    if trace_file is None:
        return None
    if trace_format == "infless":
        return read_infless(trace_file, peak_rate, parse_duration(hold), poisson)
    if trace_format == "azure":
        return read_azure(trace_file, azure_function, minute_s=minute_s, count_scale=count_scale, spread=spread,
                          seed=seed)
    return read_timestamps(trace_file, time_scale)
