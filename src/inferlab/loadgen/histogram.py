"""HDR latency histograms recorded in bulk with numpy, merged exactly, summarised as LatencySummary.

The `hdrhistogram` package keeps the standard, mergeable encoding, but its `record_value` costs about
1 µs per call and its percentile lookup walks every bucket in Python. The generator records a second's
worth of values at a time here instead: numpy computes the bucket indices and the summary statistics
from the same counts array the package encodes, so nothing changes in the format.
Values below the 1 µs resolution are recorded as 1 µs; values above 1 h are clamped to 1 h and counted in
`clamped`, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from inferlab.loadgen.result import PERCENTILES, LatencySummary, percentile_key

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
_SMALL = 2048  # below this many values, scattered adds beat a full-length bincount


class LatencyHistogram:
    """Latencies in microseconds, recorded from millisecond arrays.

    Example:
        >>> h = LatencyHistogram()
        >>> h.record_ms(np.array([1.5, 2.0, 250.0]))
        >>> h.summary().percentiles_ms["50"]
        2.0
    """

    __slots__ = ("_counts", "_hdr", "clamped")

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self._hdr = hdr if hdr is not None else HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self._counts: npt.NDArray[np.int64] = np.ctypeslib.as_array(self._hdr.counts)
        self.clamped = 0

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        if not encoded:
            return cls()
        return cls(HdrHistogram.decode(encoded))

    @property
    def count(self) -> int:
        return int(self._hdr.total_count)

    def record_ms(self, values_ms: npt.NDArray[np.float64]) -> None:
        """Record many values at once (milliseconds, any order)."""
        if values_ms.size == 0:
            return
        us = np.clip(np.rint(values_ms * 1000.0), LOWEST_US, None)
        too_high = us > HIGHEST_US
        if too_high.any():
            self.clamped += int(too_high.sum())
            us = np.minimum(us, HIGHEST_US)
        values = us.astype(np.int64)
        indices = _indices(values, _geometry(self._hdr))
        if values.size < _SMALL:  # a chunk: touch only its buckets, not all ~24k
            np.add.at(self._counts, indices, 1)
        else:
            self._counts += np.bincount(indices, minlength=self._counts.size).astype(self._counts.dtype)
        h = self._hdr
        h.total_count += int(values.size)
        h.min_value = min(h.min_value, int(values.min()))
        h.max_value = max(h.max_value, int(values.max()))

    def add(self, other: LatencyHistogram) -> None:
        """Merge exactly: counts add bucket by bucket."""
        if other.count:
            self._hdr.add(other._hdr)
        self.clamped += other.clamped

    def encode(self) -> str:
        return "" if self.count == 0 else str(self._hdr.encode().decode())

    def percentiles_ms(self, percentiles: Iterable[float] = PERCENTILES) -> dict[str, float]:
        """HdrHistogram's rule: the highest value equivalent to the bucket holding the ceil(p% of n)-th value."""
        total = self.count
        ps = list(percentiles)
        if total == 0:
            return {percentile_key(p): 0.0 for p in ps}
        cumulative = np.cumsum(self._counts)
        targets = np.maximum(1, (np.minimum(ps, 100.0) * total / 100.0 + 0.5).astype(np.int64))
        at = np.searchsorted(cumulative, targets)
        highest = _values(_geometry(self._hdr))[1]
        values = np.minimum(highest[at], self._hdr.max_value) / 1000.0
        return {percentile_key(p): float(v) for p, v in zip(ps, values, strict=True)}

    def summary(self, keep_histogram: bool = True) -> LatencySummary:
        total = self.count
        if total == 0:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, self.percentiles_ms(), "")
        middle = _values(_geometry(self._hdr))[2]
        nonzero = np.flatnonzero(self._counts)
        weights = self._counts[nonzero].astype(np.float64)
        mids = middle[nonzero]
        mean = float(np.dot(weights, mids) / total)
        stdev = float(np.sqrt(np.dot(weights, (mids - mean) ** 2) / total))
        return LatencySummary(
            count=total,
            min_ms=self._hdr.min_value / 1000.0,
            mean_ms=mean / 1000.0,
            max_ms=self._hdr.max_value / 1000.0,
            stdev_ms=stdev / 1000.0,
            percentiles_ms=self.percentiles_ms(),
            histogram=self.encode() if keep_histogram else "",
        )


def value_counts_ms(encoded: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The non-empty buckets of an encoded histogram: (bucket middle value in ms, count), ascending."""
    hist = LatencyHistogram.decode(encoded)
    nonzero = np.flatnonzero(hist._counts)
    middle = _values(_geometry(hist._hdr))[2]
    return middle[nonzero] / 1000.0, hist._counts[nonzero].astype(np.int64)


def merge_encoded(encoded: Iterable[str]) -> LatencyHistogram:
    """One histogram from many encodings (processes, intervals, runs)."""
    merged = LatencyHistogram()
    for text in encoded:
        if text:
            merged.add(LatencyHistogram.decode(text))
    return merged


@cache
def _geometry_values(unit: int, half_mag: int, half: int, sub_count: int, length: int) -> tuple[Any, Any, Any]:
    index = np.arange(length, dtype=np.int64)
    bucket = (index >> half_mag) - 1
    sub = (index & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + unit)
    size = np.int64(1) << (unit + np.where(sub >= sub_count, bucket + 1, bucket))
    return lowest, lowest + size - 1, (lowest + (size >> 1)).astype(np.float64)


def _geometry(h: HdrHistogram) -> tuple[int, int, int, int, int, int]:
    return (h.unit_magnitude, h.sub_bucket_half_count_magnitude, h.sub_bucket_half_count, h.sub_bucket_count,
            h.counts_len, h.sub_bucket_mask)


def _values(geometry: tuple[int, int, int, int, int, int]) -> tuple[Any, Any, Any]:
    return _geometry_values(*geometry[:5])


def _indices(values: npt.NDArray[np.int64], geometry: tuple[int, int, int, int, int, int]) -> npt.NDArray[np.int64]:
    """Vectorised `HdrHistogram._counts_index_for` (bit length via frexp, exact below 2**53)."""
    unit, half_mag, half, _, _, mask = geometry
    bit_length = np.frexp((values | mask).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - unit - (half_mag + 1)
    sub = values >> (bucket + unit)
    indices: npt.NDArray[np.int64] = ((bucket + 1) << half_mag) + sub - half
    return indices
