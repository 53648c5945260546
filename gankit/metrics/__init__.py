"""Objective measures of a vocoder: pure functions over numpy waves (float32 mono in [-1, 1], one sample rate)
comparing a reference with its time-aligned resynthesis. Never imported by training code.

The names below load their module on first use (PEP 562), so `import gankit.metrics` costs nothing and
librosa, pesq and pystoi are imported only by the measures that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MAX_LENGTH_MISMATCH": "spectral",
    "Scored": "spectral",
    "align_pair": "spectral",
    "mel_l1": "spectral",
    "mrstft_distance": "spectral",
    "pesq_wb": "intelligibility",
    "pesq_wb_scored": "intelligibility",
    "stoi": "intelligibility",
    "stoi_scored": "intelligibility",
    "mcd": "cepstral",
    "mcd_scored": "cepstral",
    "mcep_alpha": "cepstral",
    "mel_cepstrum": "cepstral",
    "F0Result": "pitch",
    "f0_metrics": "pitch",
    "f0_track": "pitch",
    "ALL_MEASURES": "summary",
    "Summary": "summary",
    "evaluate_pair": "summary",
    "evaluate_pair_with_reasons": "summary",
    "summarise": "summary",
    "griffin_lim_from_mel": "griffin_lim",
    "mel_magnitude": "griffin_lim",
}

__all__ = [
    "ALL_MEASURES",
    "MAX_LENGTH_MISMATCH",
    "F0Result",
    "Scored",
    "Summary",
    "align_pair",
    "evaluate_pair",
    "evaluate_pair_with_reasons",
    "f0_metrics",
    "f0_track",
    "griffin_lim_from_mel",
    "mcd",
    "mcd_scored",
    "mcep_alpha",
    "mel_cepstrum",
    "mel_l1",
    "mel_magnitude",
    "mrstft_distance",
    "pesq_wb",
    "pesq_wb_scored",
    "stoi",
    "stoi_scored",
    "summarise",
]

if TYPE_CHECKING:
    from gankit.metrics.cepstral import mcd, mcd_scored, mcep_alpha, mel_cepstrum
    from gankit.metrics.griffin_lim import griffin_lim_from_mel, mel_magnitude
    from gankit.metrics.intelligibility import pesq_wb, pesq_wb_scored, stoi, stoi_scored
    from gankit.metrics.pitch import F0Result, f0_metrics, f0_track
    from gankit.metrics.spectral import MAX_LENGTH_MISMATCH, Scored, align_pair, mel_l1, mrstft_distance
    from gankit.metrics.summary import ALL_MEASURES, Summary, evaluate_pair, evaluate_pair_with_reasons, summarise


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gankit.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gankit.metrics.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
