"""What a vocoder's validation measures and keeps (config section `validation:`): mel L1 on every utterance,
objective measures (PESQ, STOI, …) of the first few at every validation or only on new bests, and per
utterance the generated and reference audio with their mels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gankit.errors import ConfigError

# What validation.measures / validation.best_measures may name (gankit.metrics.summary's measures but mel L1).
VALIDATION_MEASURES: tuple[str, ...] = ("mrstft", "pesq", "stoi", "mcd", "f0")


@dataclass
class VocoderValidationSettings:
    # PESQ and STOI cost about a second an utterance on CPU, so by default they run only when a validation makes
    # a new best, on the first few utterances.
    measures: list[str] = field(default_factory=list)  # at every validation
    best_measures: list[str] = field(default_factory=lambda: ["pesq", "stoi"])  # when a validation is a new best
    measure_items: int = 2  # validation utterances the measures score

    def __post_init__(self) -> None:
        for key in ("measures", "best_measures"):
            unknown = [m for m in getattr(self, key) if m not in VALIDATION_MEASURES]
            if unknown:
                raise ConfigError(f"validation.{key}: unknown measure(s) {', '.join(map(str, unknown))}; choose "
                                  f"from {', '.join(VALIDATION_MEASURES)} (validation always reports mel L1).")
        if self.measure_items < 1:
            raise ConfigError(f"validation.measure_items must be ≥ 1, got {self.measure_items}.")

    def wanted(self, new_best: bool) -> list[str]:
        extra = [m for m in self.best_measures if m not in self.measures] if new_best else []
        return [*self.measures, *extra]


def objective_measures(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], measures: Sequence[str], sample_rate: int
) -> dict[str, float]:
    """The named gankit.metrics measures of (reference, generated) pairs, averaged as "val/<key>"; a measure that
    cannot score an utterance leaves it out; a failure of the measures is a warning and no keys."""
    if not measures or not pairs:
        return {}
    from gankit.metrics.summary import evaluate_pair  # scipy/pesq/pystoi: imported only when measures are asked for

    try:
        rows = [evaluate_pair(real, fake, sample_rate, None, measures) for real, fake in pairs]
    except Exception as exc:  # a measure's own failure must never end a training run
        warnings.warn(f"validation measures {', '.join(measures)} skipped at this validation: {exc}", stacklevel=2)
        return {}
    averaged: dict[str, float] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            averaged[f"val/{key}"] = float(np.mean(values))
    return averaged
