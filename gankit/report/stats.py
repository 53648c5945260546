"""Numbers the report derives from logs: robust plot ranges and training time (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RobustRange:
    """A y-range that ignores rare spikes; values outside it are drawn as markers at its edge."""

    lo: float
    hi: float
    n_below: int  # finite values under lo
    n_above: int  # finite values over hi
    n_nonfinite: int  # NaN / ±Inf
    data_min: float
    data_max: float

    @property
    def clipped(self) -> bool:
        return self.n_below > 0 or self.n_above > 0


def robust_range(values: np.ndarray, percentile: float = 99.0, tolerance: float = 0.1) -> RobustRange | None:
    """Range of the bulk of `values`: [q(100-p), q(p)] widened by `tolerance` × its span, within the data.

    A value is an outlier only if it lies beyond a percentile *and* by more than `tolerance` of the central
    span, so a smooth decreasing loss keeps its last (lowest) values, while a few spikes of 150 over a
    0–6 curve are cut off. With no outliers the range is exactly [min, max]. None if nothing is finite.
    """
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    data = np.asarray(values, dtype=np.float64).ravel()
    finite = data[np.isfinite(data)]
    n_nonfinite = int(data.size - finite.size)
    if finite.size == 0:
        return None
    q_lo, q_hi = np.percentile(finite, [100.0 - percentile, percentile])
    span = float(q_hi - q_lo)
    data_min, data_max = float(finite.min()), float(finite.max())
    if span <= 0.0:
        # Constant bulk (e.g. a loss that is 0 at most steps): measure spread against its magnitude instead.
        span = max(abs(float(q_hi)), 1e-12)
    lo = max(data_min, float(q_lo) - tolerance * span)
    hi = min(data_max, float(q_hi) + tolerance * span)
    return RobustRange(
        lo=lo,
        hi=hi,
        n_below=int(np.count_nonzero(finite < lo)),
        n_above=int(np.count_nonzero(finite > hi)),
        n_nonfinite=n_nonfinite,
        data_min=data_min,
        data_max=data_max,
    )


def padded(lo: float, hi: float, fraction: float = 0.04) -> tuple[float, float]:
    """Axis limits with a little air, so edge markers are not cut in half; safe for lo == hi."""
    span = hi - lo
    if span <= 0.0:
        span = abs(hi) * 0.1 or 1.0
    return lo - fraction * span, hi + fraction * span


@dataclass(frozen=True)
class Timing:
    first_step: int
    last_step: int
    wall_seconds: float | None  # last logged time − first logged time (includes pauses between resumes)
    train_seconds: float | None  # Σ sec_per_step × steps, i.e. time spent stepping
    steps_per_second: float | None  # from the median sec_per_step (robust to validation pauses)


def training_timing(steps: np.ndarray, times: np.ndarray, sec_per_step: np.ndarray) -> Timing | None:
    """Training time and step rate from metrics.jsonl columns. None when nothing was logged."""
    if steps.size == 0:
        return None
    steps = steps.astype(np.int64)
    finite_times = times[np.isfinite(times)]
    wall = float(finite_times.max() - finite_times.min()) if finite_times.size >= 2 else None
    rate: float | None = None
    train: float | None = None
    ok = np.isfinite(sec_per_step) & (sec_per_step > 0)
    if ok.any():
        rate = 1.0 / float(np.median(sec_per_step[ok]))
        # Each row's sec_per_step covers the steps since the previous row (the first row: since step 0).
        covered = np.diff(np.concatenate([[0], steps]))
        train = float(np.sum(sec_per_step[ok] * covered[ok]))
    elif wall and steps.size >= 2 and steps[-1] > steps[0]:
        rate = float(steps[-1] - steps[0]) / wall
    return Timing(int(steps[0]), int(steps[-1]), wall, train, rate)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def format_number(value: float | None) -> str:
    """Short, readable number: 4 significant digits, scientific only when very small or large."""
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0.0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3e}"
    return f"{value:.4g}"
