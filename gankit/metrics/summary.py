"""Every measure of one (reference, resynthesis) pair as a flat row, and the per-measure summary of many
rows (mean with a 95% t-interval) that `gankit evaluate` reports."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from gankit.metrics.spectral import Scored

if TYPE_CHECKING:
    from gankit.audio.mel import MelFrontend

ALL_MEASURES = ("mel_l1", "mrstft", "pesq", "stoi", "mcd", "f0")

Row = dict[str, float | None]


def _mel_l1(ref: np.ndarray, est: np.ndarray, sr: int, frontend: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.spectral import mel_l1

    if frontend is None:
        raise ValueError("evaluate_pair: the mel_l1 measure needs a front-end (pass the loss front-end)")
    if frontend.sample_rate != sr:
        raise ValueError(
            f"evaluate_pair: the front-end is for {frontend.sample_rate} Hz but the audio is {sr} Hz; "
            "pass the front-end the model was trained with and audio at its rate"
        )
    return {"mel_l1": Scored(mel_l1(ref, est, frontend))}


def _mrstft(ref: np.ndarray, est: np.ndarray, sr: int, _: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.spectral import mrstft_distance

    return {name: Scored(value) for name, value in mrstft_distance(ref, est, sr).items()}


def _pesq(ref: np.ndarray, est: np.ndarray, sr: int, _: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.intelligibility import pesq_wb_scored

    return {"pesq_wb": pesq_wb_scored(ref, est, sr)}


def _stoi(ref: np.ndarray, est: np.ndarray, sr: int, _: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.intelligibility import stoi_scored

    return {"stoi": stoi_scored(ref, est, sr)}


def _mcd(ref: np.ndarray, est: np.ndarray, sr: int, _: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.cepstral import mcd_scored

    return {"mcd_db": mcd_scored(ref, est, sr)}


def _f0(ref: np.ndarray, est: np.ndarray, sr: int, _: MelFrontend | None) -> dict[str, Scored]:
    from gankit.metrics.pitch import f0_metrics

    result = f0_metrics(ref, est, sr)
    rmse = result["f0_rmse_cents"]
    reason = None if rmse is not None else "no frame is voiced in both reference and estimate"
    return {"f0_rmse_cents": Scored(rmse, reason), "vuv_error": Scored(result["vuv_error"])}


_MEASURES: dict[str, Callable[[np.ndarray, np.ndarray, int, MelFrontend | None], dict[str, Scored]]] = {
    "mel_l1": _mel_l1, "mrstft": _mrstft, "pesq": _pesq, "stoi": _stoi, "mcd": _mcd, "f0": _f0,
}


def evaluate_pair_with_reasons(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    frontend: MelFrontend | None,
    measures: Sequence[str] = ALL_MEASURES,
) -> tuple[Row, dict[str, str]]:
    """`evaluate_pair`'s row, and for every value that is None the reason the measure could not score."""
    unknown = [m for m in measures if m not in _MEASURES]
    if unknown:
        raise ValueError(f"evaluate_pair: unknown measure(s) {', '.join(unknown)}; known: {', '.join(_MEASURES)}")
    row: Row = {}
    reasons: dict[str, str] = {}
    for measure in dict.fromkeys(measures):  # each once, in the caller's order
        for key, scored in _MEASURES[measure](reference, estimate, sample_rate, frontend).items():
            row[key] = scored.value
            if scored.value is None:
                reasons[key] = scored.reason or "the measure could not score this pair"
    return row, reasons


def evaluate_pair(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    frontend: MelFrontend | None,
    measures: Sequence[str] = ALL_MEASURES,
) -> Row:
    """Every requested measure of `estimate` against `reference` as one flat row:

    "mel_l1" (the front-end's mel L1), "mrstft_sc", "mrstft_mag", "mrstft_total", "pesq_wb", "stoi",
    "mcd_db", "f0_rmse_cents", "vuv_error". A value is None where the measure cannot score the pair
    (`evaluate_pair_with_reasons` says why). `frontend` may be None when "mel_l1" is not requested.
    """
    return evaluate_pair_with_reasons(reference, estimate, sample_rate, frontend, measures)[0]


@dataclass(frozen=True)
class Summary:
    """One measure over many files: mean and its 95% confidence interval (Student t, n − 1 degrees of
    freedom); half_width is 0 for one value, and mean/low/high are None for none."""

    mean: float | None
    low: float | None
    high: float | None
    half_width: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarise(rows: Sequence[Mapping[str, float | None]], confidence: float = 0.95) -> dict[str, Summary]:
    """Per measure (keys in first-seen order): mean ± t_{(1+confidence)/2, n−1} · s / √n over the rows that
    have a value for it (None and missing keys excluded, so n can differ between measures).

    NaN is refused: a measure that cannot score returns None, so a NaN is a bug that would poison the mean.
    """
    from scipy.stats import t as student_t

    if not 0 < confidence < 1:
        raise ValueError(f"summarise: confidence must be in (0, 1), got {confidence}")
    values: dict[str, list[float]] = {}
    for index, row in enumerate(rows):
        for key, value in row.items():
            column = values.setdefault(key, [])
            if value is None:
                continue
            number = float(value)
            if math.isnan(number):
                raise ValueError(f"summarise: row {index} has NaN for {key!r}; a measure that cannot score gives None")
            column.append(number)
    summaries: dict[str, Summary] = {}
    for key, column in values.items():
        n = len(column)
        if n == 0:
            summaries[key] = Summary(None, None, None, 0.0, 0)
            continue
        data = np.asarray(column, dtype=np.float64)
        mean = float(data.mean())
        half = 0.0
        if n > 1:
            half = float(student_t.ppf((1 + confidence) / 2, n - 1) * data.std(ddof=1) / math.sqrt(n))
        summaries[key] = Summary(mean, mean - half, mean + half, half, n)
    return summaries
