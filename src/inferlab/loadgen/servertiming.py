"""Parse `Server-Timing` header values (W3C Server Timing) into {metric name: duration in ms}.

Names are taken generically, so any server's spans (inferlab's decode/queue/infer/encode/total, or
another server's) are joined to the request that carried them. Metrics without `dur` carry no time
and are skipped; a repeated name keeps its last value.
"""

from __future__ import annotations

import contextlib


def parse_server_timing(value: bytes | str) -> dict[str, float]:
    """`b'queue;dur=0.2, infer;desc="onnx";dur=1.5, cache'` -> {"queue": 0.2, "infer": 1.5}.

    Example:
        >>> parse_server_timing("total;dur=2.25")
        {'total': 2.25}
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    out: dict[str, float] = {}
    for metric in text.split(","):
        name, _, params = metric.partition(";")
        name = name.strip()
        if not name:
            continue
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() == "dur":
                with contextlib.suppress(ValueError):  # a malformed dur counts as no dur: the metric is skipped
                    out[name] = float(raw.strip().strip('"'))
                break
    return out
