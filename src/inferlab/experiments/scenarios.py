"""MLPerf-style scenarios: server (highest Poisson rate meeting a latency SLO), offline, single-stream.

Each returns a ScenarioResult whose `summary()` reads like LoadGen's mlperf_log_summary.txt and ends with
`Result is : VALID` or `Result is : INVALID` and the reasons, so scripts can grep one line.
A server-scenario claim is backed by early stopping (earlystop.py): a rate passes only when enough queries
ran for the percentile bound to hold with 99% confidence, not merely when the sample's p99 looked fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from inferlab.errors import InferlabError
from inferlab.experiments.earlystop import early_stopping, min_queries, percentile_estimate
from inferlab.experiments.points import LoadPoint
from inferlab.experiments.sweep import Driver, SweepSettings, run_step
from inferlab.loadgen.result import RunResult, percentile_key

RULE = "=" * 48


@dataclass(frozen=True, slots=True)
class Trial:
    """One rate the server scenario tried, and why it passed or failed."""

    rate: float
    result: RunResult
    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """A scenario's verdict: the run it rests on, the headline metric, and every trial that led to it."""

    scenario: str
    sut: str
    metric_name: str
    metric: float
    result: RunResult | None
    valid: bool
    reasons: tuple[str, ...]
    details: tuple[tuple[str, str], ...] = ()  # lines under "Test Parameters Used"
    trials: tuple[Trial, ...] = field(default=())

    def summary(self) -> str:
        lines = [RULE, "inferlab Results Summary", RULE, f"SUT name : {self.sut}", f"Scenario : {self.scenario}",
                 "Mode     : PerformanceOnly", f"{self.metric_name} : {self.metric:.3f}"]
        if self.result is not None:
            r = self.result
            lines += [RULE, "Additional Stats", RULE,
                      f"Completed samples per second : {r.ok_per_s:.2f}",
                      f"Queries : {r.counts.requests} ({r.counts.requests - r.counts.ok} failed)",
                      f"Min latency (ms)  : {r.latency.min_ms:.3f}",
                      f"Max latency (ms)  : {r.latency.max_ms:.3f}",
                      f"Mean latency (ms) : {r.latency.mean_ms:.3f}"]
            lines += [f"{float(k):.2f} percentile latency (ms) : {r.latency.percentiles_ms[k]:.3f}"
                      for k in ("50", "90", "95", "99", "99.9") if k in r.latency.percentiles_ms]
        if self.trials:
            lines += [RULE, "Rates tried", RULE]
            lines += [f"{t.rate:10.2f}/s : {'pass' if t.passed else 'fail'}" + (f" ({'; '.join(t.reasons)})"
                      if t.reasons else "") for t in self.trials]
        lines += [RULE, "Test Parameters Used", RULE]
        lines += [f"{k} : {v}" for k, v in self.details]
        lines += [RULE, "Result is : VALID" if self.valid else f"Result is : INVALID ({'; '.join(self.reasons)})"]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The server scenario's SLO and search limits (MLPerf's target latency, percentile, min duration)."""

    target_ms: float
    percentile: float = 0.99
    confidence: float = 0.99
    min_duration_s: float = 2.0
    warmup_s: float = 0.5
    max_rate: float | None = None  # upper end of the search; measured with a closed-loop probe when None
    probe_concurrency: int = 32
    probe_s: float = 2.0
    precision: float = 0.05  # stop when the failing and passing rates are this close (relative)
    max_trials: int = 8


def judge(result: RunResult, settings: ServerSettings) -> tuple[bool, tuple[str, ...]]:
    """Pass when early stopping backs `percentile <= target` and the generator kept up with the schedule."""
    latencies = [r.latency_ms for r in result.requests if not r.error_kind and r.status < 400]
    failed = result.counts.requests - len(latencies)
    over = failed + sum(1 for value in latencies if value > settings.target_ms)
    verdict = early_stopping(result.counts.requests, over, settings.percentile, settings.confidence)
    reasons = []
    key = percentile_key(settings.percentile * 100)
    observed = result.latency.percentiles_ms.get(key, 0.0)
    if not verdict.ok:
        reasons.append(f"{over} of {result.counts.requests} queries over {settings.target_ms:g} ms "
                       f"(p{key} {observed:.1f} ms); early stopping needs {verdict.needed_queries} queries")
    if failed:
        reasons.append(f"{failed} queries failed")
    if result.counts.not_sent:
        reasons.append(f"{result.counts.not_sent} scheduled queries were never sent")
    if not result.self_check.valid:
        reasons.append("load generator fell behind: " + "; ".join(result.self_check.reasons))
    return not reasons, tuple(reasons)


def find_server_rate(
    driver: Driver, settings: ServerSettings, sut: str = "", on_trial: Callable[[Trial], None] | None = None,
) -> ScenarioResult:
    """Bisect the Poisson rate between a passing and a failing one (MLPerf's FindPeakPerformance).

    The search starts below 1.25x the capacity a closed-loop probe measured (or `max_rate`), which no
    open-loop rate can exceed for long, so the answer is never capped by the search range in practice.
    """
    high = settings.max_rate or _probe_capacity(driver, settings) * 1.25
    low = 0.0
    trials: list[Trial] = []
    best: Trial | None = None
    rate = high * 0.75
    while len(trials) < settings.max_trials:
        trial = _trial(driver, rate, settings)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if trial.passed:
            best = trial if best is None or trial.rate > best.rate else best
            low = rate
        else:
            high = rate
        if low > 0 and high / low <= 1.0 + settings.precision:
            break
        rate = (low + high) / 2.0 if low > 0 else rate / 2.0
    details = (("target_latency (ms)", f"{settings.target_ms:g}"),
               ("target_latency_percentile", f"{settings.percentile}"),
               ("early_stopping_confidence", f"{settings.confidence}"),
               ("min_duration (s)", f"{settings.min_duration_s:g}"),
               ("min_query_count", str(min_queries(settings.percentile, settings.confidence) + 1)),
               ("search precision", f"{settings.precision:g}"))
    if best is None:
        lowest = min(trials, key=lambda t: t.rate)
        return ScenarioResult("Server", sut, "Scheduled samples per second", 0.0, lowest.result, False,
                              (f"no rate met the target; at the lowest rate tried, {lowest.rate:.2f}/s: "
                               + "; ".join(lowest.reasons),), details, tuple(trials))
    return ScenarioResult("Server", sut, "Scheduled samples per second", best.rate, best.result, True, (),
                          details, tuple(trials))


def _probe_capacity(driver: Driver, settings: ServerSettings) -> float:
    probe = driver.run(LoadPoint(concurrency=settings.probe_concurrency), settings.probe_s, settings.warmup_s)
    if probe.ok_per_s <= 0:
        raise InferlabError(f"the capacity probe completed no request ({probe.counts.requests} sent, status codes "
                            f"{probe.status_codes or 'none'}); is the target URL right and the server answering?")
    return probe.ok_per_s


def _trial(driver: Driver, rate: float, settings: ServerSettings) -> Trial:
    needed = min_queries(settings.percentile, settings.confidence) + 1
    # Offered `precision` above capacity, the queue grows by precision * t seconds of work: after
    # 2 * target / precision seconds, half the queries wait longer than the target, so overload fails.
    overload_s = 2.0 * settings.target_ms / 1000.0 / settings.precision
    duration = max(settings.min_duration_s, 1.1 * needed / rate, overload_s)
    result = driver.run(LoadPoint(rate=rate), duration, settings.warmup_s)
    passed, reasons = judge(result, settings)
    return Trial(rate, result, passed, reasons)


def offline(driver: Driver, concurrency: int, sweep: SweepSettings, sut: str = "") -> ScenarioResult:
    """Highest throughput at any latency: many requests in flight until throughput is stable."""
    step = run_step(driver, LoadPoint(concurrency=concurrency), sweep)
    result = step.result
    reasons = _common_reasons(result)
    if not step.stable:
        reasons.append(f"throughput did not settle within {sweep.max_windows} windows of {sweep.window_s:g} s")
    details = (("concurrency", str(concurrency)), ("window (s)", f"{sweep.window_s:g}"),
               ("stability tolerance", f"{sweep.tolerance:g}"))
    return ScenarioResult("Offline", sut, "Samples per second", result.ok_per_s, result, not reasons,
                          tuple(reasons), details)


def single_stream(driver: Driver, duration_s: float, warmup_s: float, sut: str = "",
                  percentile: float = 0.90, confidence: float = 0.99) -> ScenarioResult:
    """One query at a time; the metric is the early-stopping estimate of the 90th-percentile latency."""
    result = driver.run(LoadPoint(concurrency=1), duration_s, warmup_s)
    latencies = [r.latency_ms for r in result.requests if not r.error_kind]
    estimate = percentile_estimate(latencies, percentile, confidence)
    reasons = _common_reasons(result)
    if estimate is None:
        reasons.append(f"{len(latencies)} queries are too few to back a p{percentile * 100:g} claim "
                       f"(need {min_queries(percentile, confidence) + 1})")
    details = (("target_latency_percentile", f"{percentile}"), ("early_stopping_confidence", f"{confidence}"),
               ("duration (s)", f"{duration_s:g}"))
    name = f"{percentile * 100:.1f}th percentile latency (ms)"
    return ScenarioResult("SingleStream", sut, name, estimate or 0.0, result, not reasons, tuple(reasons), details)


def _common_reasons(result: RunResult) -> list[str]:
    reasons = []
    if result.counts.requests == 0:
        reasons.append("no query completed")
    elif result.counts.ok < result.counts.requests:
        reasons.append(f"{result.counts.requests - result.counts.ok} of {result.counts.requests} queries failed")
    if not result.self_check.valid:
        reasons.append("load generator fell behind: " + "; ".join(result.self_check.reasons))
    return reasons
