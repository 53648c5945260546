"""Load a run directory (layout in docs/CONTRACTS.md) into plain typed data for the report.

Every file is optional: a run that has only written config.yaml still loads, with empty parts.
Problems with one file (unparseable YAML/JSON) become `RunData.problems`, never an exception,
so a half-written run still gets a page.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gankit.engine.jsonl import read_jsonl
from gankit.errors import GankitError
from gankit.report.evaluation import EvaluationTable, read_evaluations

# Files whose presence makes a folder a run directory.
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "validation.jsonl",
    "layer_grads.jsonl",
    "events.jsonl",
    "environment.json",
    "checkpoints",
    "samples",
)
# Keys of a metrics row that are bookkeeping rather than curves.
_META_KEYS = frozenset({"step", "epoch", "time", "sec_per_step"})
_STEP_DIR = re.compile(r"^step_(\d+)$")
_DIGITS = re.compile(r"(\d+)")


def as_float(value: Any) -> float | None:
    """A JSON value as float; the writer stores NaN/Inf as strings ("nan", "inf"). None if not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    if number is None or not math.isfinite(number):
        return None
    return int(number)


@dataclass
class Series:
    """One scalar over steps; NaN where a row did not log it, ±Inf/NaN kept where training logged them."""

    steps: np.ndarray  # int64, increasing
    values: np.ndarray  # float64, same length


@dataclass
class ClassifierCurve:
    """A classifier's accuracy over steps (`acc/<network>` in metrics.jsonl) and its chance level (`chance/<network>`;
    empty when not logged), both written from the task's ClassifierReadout by the health monitor."""

    accuracy: Series
    chance: Series


@dataclass
class Validation:
    step: int
    epoch: int | None
    metrics: dict[str, float]  # "val/<metric>" → value
    samples: list[str]


@dataclass
class Event:
    step: int
    kind: str
    severity: str  # info | warning | error (anything else is shown as given)
    message: str
    values: dict[str, Any]


@dataclass
class Checkpoints:
    latest: str | None
    latest_generator: str | None
    best: str | None
    best_generator: str | None
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class MediaFile:
    """One file of a validation's media, as `samples/…/index.json` describes it (or, in runs written before the
    index, as its name says: `<id>.wav` audio, `<id>.png` a mel spectrogram)."""

    kind: str  # "audio", "image" or "spectrogram"
    path: Path
    group: str  # the column it is shown in: an utterance id, a conversion, a domain
    label: str
    role: str  # "generated", "source" or "reference"


@dataclass
class SampleSet:
    """The media of one validation step, by group."""

    step: int
    groups: dict[str, list[MediaFile]]


@dataclass
class LayerGrads:
    steps: np.ndarray  # [S]
    names: list[str]  # [L]
    norms: np.ndarray  # [L, S]; NaN where a layer was not logged at that step


@dataclass
class RunData:
    run_dir: Path
    config: dict[str, Any] | None = None
    config_text: str | None = None
    environment: dict[str, Any] | None = None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sec_per_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    losses: dict[str, Series] = field(default_factory=dict)  # name without "loss/" → series
    scalars: dict[str, Series] = field(default_factory=dict)  # other curves: "lr/g", "grad_norm/d", …
    outputs: dict[str, Series] = field(default_factory=dict)  # generated vs real statistics: "out/fake_dc", …
    classifiers: dict[str, ClassifierCurve] = field(default_factory=dict)  # network → accuracy against chance
    validations: list[Validation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    layer_grads: LayerGrads | None = None
    checkpoints: Checkpoints | None = None
    samples: list[SampleSet] = field(default_factory=list)
    references: dict[str, list[MediaFile]] = field(default_factory=dict)  # group → its reference media
    evaluations: list[EvaluationTable] = field(default_factory=list)  # RUN/evaluation/*.json (gankit evaluate)
    problems: list[str] = field(default_factory=list)  # files that could not be read, shown on the page

    @property
    def name(self) -> str:
        return self.run_dir.name


def load_run(run_dir: str | Path) -> RunData:
    """Read everything the report shows. Raises GankitError only if `run_dir` is not a run directory."""
    root = Path(run_dir)
    if not root.is_dir():
        raise GankitError(f"{root}: run directory not found; pass the folder that holds config.yaml")
    if not any((root / name).exists() for name in RUN_FILES):
        raise GankitError(
            f"{root}: not a run directory (no config.yaml, metrics.jsonl or checkpoints/); "
            "pass the folder training writes to"
        )
    run = RunData(run_dir=root)
    _load_config(run)
    _load_environment(run)
    _load_metrics(run)
    _load_validation(run)
    _load_events(run)
    _load_layer_grads(run)
    _load_manifest(run)
    _load_samples(run)
    run.evaluations = read_evaluations(root, run.problems)
    return run


def _load_config(run: RunData) -> None:
    path = run.run_dir / "config.yaml"
    if not path.exists():
        run.problems.append("config.yaml not found")
        return
    import yaml  # only here: the rest of the loader needs no YAML

    run.config_text = path.read_text(encoding="utf-8", errors="replace")
    try:
        loaded = yaml.safe_load(run.config_text)
    except yaml.YAMLError as exc:
        run.problems.append(f"config.yaml is not valid YAML ({str(exc).splitlines()[0]}); shown as text")
        return
    if isinstance(loaded, dict):
        run.config = loaded
    elif loaded is not None:
        run.problems.append("config.yaml does not hold a mapping; shown as text")


def _load_environment(run: RunData) -> None:
    path = run.run_dir / "environment.json"
    if not path.exists():
        return
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        run.problems.append(f"environment.json is not valid JSON ({exc})")
        return
    if isinstance(loaded, dict):
        run.environment = loaded
    else:
        run.problems.append("environment.json does not hold an object")


def _rows_by_step(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(path):
        step = as_int(row.get("step"))
        if step is not None:
            rows[step] = row  # a repeated step (crash between write and trim): the later row wins
    return sorted(rows.items())


def _load_metrics(run: RunData) -> None:
    rows = _rows_by_step(run.run_dir / "metrics.jsonl")
    if not rows:
        return
    n = len(rows)
    run.steps = np.array([step for step, _ in rows], dtype=np.int64)

    def column(key: str) -> np.ndarray:
        out = np.full(n, np.nan)
        for i, (_, row) in enumerate(rows):
            value = as_float(row.get(key))
            if value is not None:
                out[i] = value
        return out

    run.epochs = column("epoch")
    run.times = column("time")
    run.sec_per_step = column("sec_per_step")
    keys: set[str] = set()
    for _, row in rows:
        keys.update(k for k, v in row.items() if k not in _META_KEYS and as_float(v) is not None)
    chances: dict[str, Series] = {}
    for key in sorted(keys):
        values = column(key)
        present = ~np.isnan(values) | np.array([key in row for _, row in rows])
        series = Series(steps=run.steps[present], values=values[present])
        if key.startswith("loss/"):
            run.losses[key.removeprefix("loss/")] = series
        elif key.startswith("out/"):
            run.outputs[key] = series
        elif key.startswith("acc/"):
            run.classifiers[key.removeprefix("acc/")] = ClassifierCurve(series, Series(run.steps[:0], values[:0]))
        elif key.startswith("chance/"):
            chances[key.removeprefix("chance/")] = series
        else:
            run.scalars[key] = series
    for network, curve in run.classifiers.items():
        curve.chance = chances.get(network, curve.chance)


def _load_validation(run: RunData) -> None:
    for step, row in _rows_by_step(run.run_dir / "validation.jsonl"):
        metrics = {}
        for key, value in row.items():
            number = as_float(value)
            if key.startswith("val/") and number is not None:
                metrics[key] = number
        samples = row.get("samples")
        ids = [str(s) for s in samples] if isinstance(samples, list) else []
        run.validations.append(Validation(step, as_int(row.get("epoch")), metrics, ids))


def _load_events(run: RunData) -> None:
    events = []
    for row in read_jsonl(run.run_dir / "events.jsonl"):
        step = as_int(row.get("step"))
        values = row.get("values")
        events.append(
            Event(
                step=step if step is not None else 0,
                kind=str(row.get("kind", "")),
                severity=str(row.get("severity", "info")),
                message=str(row.get("message", "")),
                values=values if isinstance(values, dict) else {},
            )
        )
    run.events = sorted(events, key=lambda e: e.step)  # stable: same-step events keep their order


def _load_layer_grads(run: RunData) -> None:
    rows = [(step, row.get("grads")) for step, row in _rows_by_step(run.run_dir / "layer_grads.jsonl")]
    rows = [(step, grads) for step, grads in rows if isinstance(grads, dict) and grads]
    if not rows:
        return
    names: dict[str, None] = {}  # first-seen order = module order, which reads better than sorted
    for _, grads in rows:
        names.update(dict.fromkeys(str(k) for k in grads))
    index = {name: i for i, name in enumerate(names)}
    norms = np.full((len(names), len(rows)), np.nan)
    for j, (_, grads) in enumerate(rows):
        for key, value in grads.items():
            number = as_float(value)
            if number is not None:
                norms[index[str(key)], j] = number
    run.layer_grads = LayerGrads(
        steps=np.array([step for step, _ in rows], dtype=np.int64), names=list(names), norms=norms
    )


def step_of_checkpoint(name: str | None, entries: list[dict[str, Any]]) -> int | None:
    """The step a checkpoint file belongs to: from the manifest's list, else the digits in its name."""
    if not name:
        return None
    for entry in entries:
        if name in (entry.get("state"), entry.get("generator")):
            step = as_int(entry.get("step"))
            if step is not None:
                return step
    digits = _DIGITS.findall(Path(name).stem)
    return int(digits[-1]) if digits else None


def _load_manifest(run: RunData) -> None:
    path = run.run_dir / "checkpoints" / "manifest.json"
    if not path.exists():
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        run.problems.append(f"checkpoints/manifest.json is not valid JSON ({exc})")
        return
    if not isinstance(manifest, dict):
        run.problems.append("checkpoints/manifest.json does not hold an object")
        return
    raw_entries = manifest.get("checkpoints")
    entries = [e for e in raw_entries if isinstance(e, dict)] if isinstance(raw_entries, list) else []

    def text(key: str) -> str | None:
        value = manifest.get(key)
        return str(value) if value else None

    best, best_generator = text("best"), text("best_generator")
    best_step = step_of_checkpoint(best, entries)
    if best_step is None:
        best_step = step_of_checkpoint(best_generator, entries)
    run.checkpoints = Checkpoints(
        latest=text("latest"),
        latest_generator=text("latest_generator"),
        best=best,
        best_generator=best_generator,
        best_metric=text("best_metric"),
        best_value=as_float(manifest.get("best_value")),
        best_step=best_step,
        entries=sorted(entries, key=lambda e: as_int(e.get("step")) or 0),
    )


def _media_in(folder: Path, default_role: str) -> dict[str, list[MediaFile]]:
    """A samples folder's media by group: from its index.json, else (older runs) from its file names."""
    groups: dict[str, list[MediaFile]] = {}
    index = folder / "index.json"
    entries: list[dict[str, Any]] | None = None
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            entries = [e for e in data.get("items", []) if isinstance(e, dict)]
        except (OSError, ValueError, AttributeError):
            entries = None
    if entries is None:
        entries = [{"type": "audio" if p.suffix == ".wav" else "spectrogram", "file": p.name, "group": p.stem,
                    "label": "audio" if p.suffix == ".wav" else "mel", "role": default_role}
                   for p in sorted([*folder.glob("*.wav"), *folder.glob("*.png")])]
    for entry in entries:
        path = folder / str(entry.get("file", ""))
        if entry.get("type") not in ("audio", "image", "spectrogram") or not path.is_file():
            continue
        media = MediaFile(str(entry["type"]), path, str(entry.get("group", path.stem)), str(entry.get("label", "")),
                          str(entry.get("role", default_role)))
        groups.setdefault(media.group, []).append(media)
    return groups


def _load_samples(run: RunData) -> None:
    folder = run.run_dir / "samples"
    if not folder.is_dir():
        return
    reference = folder / "reference"
    if reference.is_dir():
        run.references = _media_in(reference, "reference")
    # Folders on disk, not only validation.jsonl rows: samples may outlive a trimmed or missing log.
    for child in sorted(folder.iterdir()):
        match = _STEP_DIR.match(child.name)
        if not match or not child.is_dir():
            continue
        groups = _media_in(child, "generated")
        if groups:
            run.samples.append(SampleSet(step=int(match.group(1)), groups=groups))
    run.samples.sort(key=lambda s: s.step)
