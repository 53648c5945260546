"""What every check shares: the Finding it reports, the Check interface, and a rolling window of floats."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from gankit.engine.health.record import StepRecord

Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

# 1.4826 · MAD estimates the standard deviation of normally distributed values, robustly.
MAD_TO_STD = 1.4826


@dataclass
class Finding:
    """A problem a check saw this step; the session decides whether it is written and what is done."""

    kind: str
    severity: Severity
    message: str  # what is happening and what to try, in plain words
    values: dict[str, Any] = field(default_factory=dict)  # the measured values behind it
    rate_key: str | None = None  # findings sharing a key are rate-limited together (default: the kind)
    action: str | None = None  # overrides the kind's configured action (an escalation, e.g. to "stop")


class Check:
    """A check reads one StepRecord per step and returns what it found; its state survives a resume."""

    kinds: tuple[str, ...] = ()

    def observe(self, record: StepRecord) -> list[Finding]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Plain types only, so `torch.load(weights_only=True)` reads checkpoints holding it."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (an empty mapping means: start afresh)."""


class Window:
    """The last `size` finite values, with robust statistics (median, MAD) over them."""

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self.size = size
        self._values: deque[float] = deque((float(v) for v in values), maxlen=size)

    def push(self, value: float) -> None:
        if math.isfinite(value):
            self._values.append(float(value))

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)

    @property
    def full(self) -> bool:
        return len(self._values) >= self.size

    def values(self) -> list[float]:
        return list(self._values)

    def median(self) -> float:
        return statistics.median(self._values)

    def mad(self) -> float:
        m = self.median()
        return statistics.median(abs(v - m) for v in self._values)

    def halves(self) -> tuple[float, float]:
        """Medians of the older and the newer half: a trend estimate that one outlier cannot move."""
        vals = list(self._values)
        mid = len(vals) // 2
        return statistics.median(vals[:mid]), statistics.median(vals[mid:])


def windows_state(windows: dict[str, Window]) -> dict[str, list[float]]:
    return {k: w.values() for k, w in windows.items()}


def windows_from_state(state: dict[str, Any], size: int) -> dict[str, Window]:
    return {str(k): Window(size, v) for k, v in (state or {}).items()}


def all_finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)
