"""The live progress line on a terminal: elapsed time, current rate, p50/p99 of the last interval, errors."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from inferlab.loadgen.histogram import merge_encoded
from inferlab.loadgen.recorder import Window


class ProgressLine:
    """Merges the processes' intervals as they arrive and redraws one line (only on a TTY).

    Example:
        >>> with ProgressLine(processes=2) as line:
        ...     result = run(plan, progress=line.update)
    """

    def __init__(self, processes: int, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.processes = processes
        self._pending: dict[int, list[Window]] = {}
        self._requests = 0
        self._failures = 0
        self._live: Live | None = None

    def __enter__(self) -> ProgressLine:
        if self.enabled:
            self._live = Live(Text("starting..."), console=self.console, transient=True, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)

    def update(self, process: int, window: Window) -> None:
        """Collect one process's interval; redraw once every process has reported that interval."""
        index = len(self._pending.setdefault(process, []))
        self._pending[process].append(window)
        if self._live is None or any(len(self._pending.get(p, [])) <= index for p in range(self.processes)):
            return
        windows = [self._pending[p][index] for p in range(self.processes)]
        requests = sum(w.requests for w in windows)
        self._requests += requests
        self._failures += sum(w.failures for w in windows)
        pct = merge_encoded(w.latency for w in windows).percentiles_ms((50.0, 99.0))
        elapsed = max(w.end_s for w in windows)
        length = elapsed - (max(w.end_s for w in (self._pending[p][index - 1] for p in range(self.processes)))
                            if index else 0.0)
        rate = requests / length if length > 0 else 0.0
        self._live.update(Text(
            f"{elapsed:6.1f} s  {rate:9.1f} req/s  p50 {pct['50']:8.3f} ms  p99 {pct['99']:8.3f} ms  "
            f"users {sum(w.users for w in windows)}  requests {self._requests}  failures {self._failures}"))
