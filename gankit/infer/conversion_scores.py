"""The measures of a voice conversion from per-wave features computed once, the rows they make, and their summary,
JSON and table (gankit/infer/conversion_evaluation.py runs the evaluation).

`metrics.conversion`'s functions take waves and analyse both of them on every call; an evaluation pairs one source
with several outputs and one output with several targets, so here each wave is analysed once (one pyin pass gives
its voiced-speech flags and its mean log-F0) and the pairwise parts come from `metrics.conversion`'s feature-level
functions, the same ones its wave-level functions call — tests/test_evaluate_conversion.py checks them against the
wave-level functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gankit.metrics.conversion import f0_shift_fraction, feature_distance, feature_voicing_agreement
from gankit.metrics.summary import Summary

MODEL, BASELINE, UNTRAINED = "model", "baseline", "untrained"
MEASURES = ("target_share", "content_margin", "voicing_agreement", "mcd_db", "f0_shift")

Row = tuple[dict[str, Any], dict[str, str]]  # (source_id, source, target and MEASURES; why a value is None)


@dataclass
class WaveFeatures:
    """What the pairwise measures need of one wave: the wave, its content features, voiced-speech flags and mean
    log-F0 (None when no frame is voiced)."""

    wave: np.ndarray
    content: np.ndarray
    speech: np.ndarray
    log_f0_mean: float | None


def wave_features(wave: np.ndarray, sample_rate: int) -> WaveFeatures:
    """`content_features`, `voiced_speech` and `log_f0_stats`'s mean of `metrics.conversion` with their default
    settings (speech F0 range, 40 dB silence gate), sharing one `f0_track`."""
    import librosa

    from gankit.metrics.conversion import SPEECH_FMAX, SPEECH_FMIN, content_features
    from gankit.metrics.pitch import f0_track

    array = np.asarray(wave, dtype=np.float32)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError("the wave is empty or holds NaN or infinite samples")
    f0, voiced = f0_track(array, sample_rate, SPEECH_FMIN, SPEECH_FMAX)
    window, hop = round(0.025 * sample_rate), max(1, round(0.01 * sample_rate))  # metrics.conversion's frames
    rms = librosa.feature.rms(y=array, frame_length=window, hop_length=hop)[0]
    frames = min(len(voiced), len(rms))
    level_db = 20.0 * np.log10(np.maximum(rms[:frames], 1e-10))
    speech = voiced[:frames] & (level_db > level_db.max() - 40.0)
    log_f0 = np.log(f0[voiced])
    return WaveFeatures(array, content_features(array, sample_rate), speech,
                        float(log_f0.mean()) if log_f0.size else None)


def content_margin_of(output: WaveFeatures, source: WaveFeatures, other: WaveFeatures) -> float:
    """`metrics.conversion.content_margin(output, source, other)` from cached features."""
    return feature_distance(output.content, other.content) - feature_distance(output.content, source.content)


def voicing_agreement_of(output: WaveFeatures, source: WaveFeatures) -> float:
    """`metrics.conversion.voicing_agreement(output, source)` from cached features."""
    return feature_voicing_agreement(output.content, source.content, output.speech, source.speech)


def f0_shift_of(output: WaveFeatures, source: WaveFeatures, target_mean: float | None) -> tuple[float | None, str]:
    """`metrics.conversion.f0_shift_toward(output, source, target_mean)` from cached features, and why it is None."""
    if target_mean is None:
        return None, "the target's training recordings have no voiced frame"
    if output.log_f0_mean is None or source.log_f0_mean is None:
        return None, "no voiced frame in the output or the source"
    shift = f0_shift_fraction(output.log_f0_mean, source.log_f0_mean, target_mean)
    if shift is None:
        return None, "the source's mean F0 is within half a semitone of the target's"
    return shift, ""


@dataclass
class GroupInfo:
    """A speaker group's classifier: its speakers, chance (1/speakers) and accuracy on real held-out recordings."""

    speakers: list[str]
    chance: float
    ceiling: float
    train_files: int
    held_out_files: int


@dataclass
class ConversionResults:
    """Rows per system (one per conversion), the groups' classifier facts, the targets' mean log-F0 (from
    `f0_files` training recordings each) and the source utterances left out with why."""

    rows: dict[str, list[dict[str, Any]]]
    reasons: dict[str, list[dict[str, str]]]
    groups: dict[str, GroupInfo]
    target_log_f0: dict[str, float | None]
    f0_files: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, system: str, rows: list[Row]) -> None:
        for row, why in rows:
            self.rows[system].append(row)
            self.reasons[system].append(why)

    def summary(self, system: str) -> dict[str, dict[str, Summary]]:
        """{target | "all": {measure: Summary}} for one system (mean and 95 % t-interval)."""
        from gankit.metrics.conversion import summarise_conversions

        return summarise_conversions([{"target": r["target"], **{m: r[m] for m in MEASURES}}
                                      for r in self.rows[system]])


def results_json(results: ConversionResults, meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` plus groups, target log-F0 means, skipped utterances and per system {"summary": {target | "all":
    {measure: {mean, low, high, half_width, n}}}, "rows": [{source_id, source, target, measures…, "unscored"}]}."""
    systems = {}
    for name, rows in results.rows.items():
        summary = results.summary(name)
        systems[name] = {
            "summary": {t: {m: s.to_dict() for m, s in by.items()} for t, by in summary.items()},
            "rows": [{**row, "unscored": why} for row, why in zip(rows, results.reasons[name], strict=True)],
        }
    groups = {g: {"speakers": i.speakers, "chance": i.chance, "classifier_ceiling": i.ceiling,
                  "classifier_train_files": i.train_files, "classifier_held_out_files": i.held_out_files}
              for g, i in results.groups.items()}
    return {**meta, "measures": list(MEASURES), "groups": groups, "f0_files_per_speaker": results.f0_files,
            "target_log_f0_mean": results.target_log_f0, "skipped": results.skipped, "systems": systems}


COLUMNS = (("target_share", "target share ↑"), ("content_margin", "content margin ↑"),
           ("voicing_agreement", "voicing agreement ↑"), ("mcd_db", "MCD dB ↓"), ("f0_shift", "F0 shift →1"))


def format_table(results: ConversionResults) -> str:
    """A row per system (model, baseline, untrained), a column per measure pooled over targets (mean ± 95 %
    half-width, n), then each group's classifier chance and ceiling."""
    lines = [["system", *(label for _, label in COLUMNS)]]
    for name in results.rows:
        pooled = results.summary(name)["all"]
        cells = [name]
        for key, _ in COLUMNS:
            s = pooled.get(key)
            cells.append("—" if s is None or s.mean is None else f"{s.mean:.3f} ± {s.half_width:.3f} (n={s.n})")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    for group, info in results.groups.items():
        text.append(f"speaker classifier{f' ({group})' if group else ''}: chance {info.chance:.3f}; "
                    f"{info.ceiling:.3f} on the {info.held_out_files} real held-out recordings (the ceiling); "
                    f"fitted on {info.train_files} training recordings")
    return "\n".join(text)
