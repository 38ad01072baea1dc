"""The classification extension: turn a [batch, classes] score tensor into top-k "score:index:label" strings."""

from __future__ import annotations

import numpy as np

from inferlab.errors import InvalidInput
from inferlab.tensors import Array


def top_k(scores: Array, k: int, labels: list[str] | None) -> Array:
    """Top-k per row as BYTES strings, highest first, in Triton's `score:index[:label]` form."""
    if scores.ndim == 0 or scores.dtype.kind not in "fiu":
        raise InvalidInput("classification needs a numeric output with a class dimension")
    if k < 1:
        raise InvalidInput(f"classification count must be >= 1, got {k}")
    rows = scores.reshape(-1, scores.shape[-1]) if scores.ndim > 1 else scores.reshape(1, -1)
    k = min(k, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    out = np.empty(order.shape, dtype=object)
    for r, row in enumerate(order):
        for c, idx in enumerate(row):
            label = f":{labels[idx]}" if labels and idx < len(labels) else ""
            out[r, c] = f"{float(rows[r, idx]):g}:{idx}{label}".encode()
    return out.reshape((*scores.shape[:-1], k)) if scores.ndim > 1 else out.reshape(k)
