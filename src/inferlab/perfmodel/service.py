"""ServiceTimes: draw a batch's service time for any batch size from the samples measured at a few sizes.

Unmeasured sizes interpolate the two neighbouring measured *quantile functions* at the same random
level, so the interpolated distribution keeps the measured shape (spread and tail), not just the mean.
Sizes above the largest measured one extrapolate the last two linearly, clamped at zero.

Example::

    st = ServiceTimes.from_samples({1: [0.010, 0.011], 8: [0.040, 0.044]})
    st.mean(4)                          # between the size-1 and size-8 means
    st.quantiles(4, np.array([0.5]))    # the median of a batch of 4
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inferlab.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
_MOMENT_LEVELS = 4096


@dataclass(frozen=True, slots=True)
class ServiceTimes:
    """Sorted service-time samples (seconds) per measured batch size."""

    sizes: tuple[int, ...]
    sorted_samples: tuple[FloatArray, ...]

    @classmethod
    def from_samples(cls, samples: Mapping[int, Iterable[float]]) -> ServiceTimes:
        if not samples:
            raise InvalidInput("service times: need samples for at least one batch size")
        sizes = tuple(sorted(int(b) for b in samples))
        arrays = []
        for b in sizes:
            arr = np.sort(np.asarray(list(samples[b]), dtype=np.float64))
            if b < 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or arr[0] < 0:
                raise InvalidInput(f"service times for batch size {b}: need finite samples >= 0 and a size >= 1")
            arrays.append(arr)
        return cls(sizes, tuple(arrays))

    @classmethod
    def constant(cls, seconds: float) -> ServiceTimes:
        """Deterministic service, the same for every batch size (the M/D/1 textbook case)."""
        return cls.from_samples({1: [seconds]})

    def scaled(self, factor: float) -> ServiceTimes:
        """The same shape with every time multiplied by `factor` (the model slowed by core sharing)."""
        return ServiceTimes(self.sizes, tuple(a * factor for a in self.sorted_samples))

    def quantiles(self, batch_size: int, u: FloatArray) -> FloatArray:
        """Service times at quantile levels `u` (each in [0, 1)) for a batch of `batch_size`."""
        lo, hi, w = self._neighbours(batch_size)
        q_lo = _quantiles(self.sorted_samples[lo], u)
        if w == 0.0:
            return q_lo
        return np.maximum(0.0, q_lo + w * (_quantiles(self.sorted_samples[hi], u) - q_lo))

    def table(self, max_batch_size: int, levels: int = 1024) -> list[list[float]]:
        """Quantile tables, one per batch size 0..max (row 0 unused): fast draws in the simulator's loop."""
        u = (np.arange(levels) + 0.5) / levels
        return [[0.0] * levels] + [self.quantiles(b, u).tolist() for b in range(1, max_batch_size + 1)]

    def moments(self, batch_size: int) -> tuple[float, float]:
        """(E[S], E[S^2]) for a batch of `batch_size`: the inputs of the closed-form cross-checks."""
        lo, _, w = self._neighbours(batch_size)
        if w == 0.0:
            arr = self.sorted_samples[lo]
        else:
            arr = self.quantiles(batch_size, (np.arange(_MOMENT_LEVELS) + 0.5) / _MOMENT_LEVELS)
        return float(arr.mean()), float(np.mean(arr * arr))

    def mean(self, batch_size: int) -> float:
        return self.moments(batch_size)[0]

    def _neighbours(self, batch_size: int) -> tuple[int, int, float]:
        """Indices of the measured sizes around `batch_size` and the interpolation weight of the upper one."""
        if batch_size < 1:
            raise InvalidInput(f"batch size {batch_size} is not >= 1")
        sizes = self.sizes
        if len(sizes) == 1 or batch_size <= sizes[0]:
            return 0, 0, 0.0
        hi = int(np.searchsorted(sizes, batch_size))
        if hi < len(sizes) and sizes[hi] == batch_size:
            return hi, hi, 0.0
        hi = min(hi, len(sizes) - 1)  # above the largest: extrapolate from the last two
        lo = hi - 1
        return lo, hi, (batch_size - sizes[lo]) / (sizes[hi] - sizes[lo])


def _quantiles(sorted_arr: FloatArray, u: FloatArray) -> FloatArray:
    idx = np.minimum((u * sorted_arr.size).astype(np.int64), sorted_arr.size - 1)
    return sorted_arr[idx]
