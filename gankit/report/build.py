"""`build_report`: a run directory → `RUN/report/index.html` with its figures, audio and spectrograms beside
it. Each part of the run that is missing (no validation yet, no events) becomes a sentence on the page."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gankit import atomic
from gankit.errors import ConfigError
from gankit.report import plots
from gankit.report.evaluation_section import evaluation_section
from gankit.report.figures import FigureFolder
from gankit.report.html import (
    Markup,
    Section,
    audio,
    element,
    figure,
    join,
    key_values,
    note,
    render_page,
    table,
    url,
)
from gankit.report.loss_section import losses_section
from gankit.report.media import MediaWriter, SampleMedia, remove_unlisted
from gankit.report.rundir import MediaFile, RunData, SampleSet, Validation, load_run
from gankit.report.spectrogram import mel_params_from_config
from gankit.report.stats import format_duration, format_number, training_timing

MARKER = ".gankit-report"  # marks a folder as the report's own
MAX_EVENT_ROWS = 2000  # a run that logs more events than this shows the newest ones; the plot shows all


@dataclass(frozen=True)
class ReportOptions:
    percentile: float = 99.0  # loss plots clip values beyond this percentile (marked, counted)
    max_sample_steps: int = 40  # validation steps with players; more are thinned evenly (first, best, last kept)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 options: ReportOptions | None = None) -> Path:
    """Write the page and everything it shows; returns the path of index.html."""
    options = options or ReportOptions()
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    # A rebuild deletes media it no longer shows, so it only ever writes into a folder it made itself.
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ConfigError(f"{out}: folder exists and holds files gankit report did not write; choose a new or "
                          "empty folder for the page")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `gankit report`; its figures/, audio/ and spectrograms/ are rebuilt\n")
    page = _Page(run, out, options)
    sections = [
        Section("run", "Run", page.overview()),
        Section("config", "Config", page.config()),
        Section("losses", "Losses", page.losses()),
        Section("validation", "Validation", page.validation()),
        Section("evaluation", "Evaluation", page.evaluation()),
        Section("events", "Health events", page.events()),
        Section("samples", "Samples", page.samples()),
        Section("layers", "Layer gradients", page.layer_grads()),
    ]
    page.media.remove_stale()
    remove_unlisted(out / "figures", page.figures.written)
    last = f"step {int(run.steps[-1])}" if run.steps.size else "no steps logged yet"
    subtitle = join([run.run_dir.resolve(), f" — {last} — page written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"])
    index = out / "index.html"
    atomic.write_bytes(index, render_page(f"gankit run {run.name}", subtitle, sections).encode("utf-8"))
    return index


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _config_value(config: Mapping[str, Any] | None, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _severity_badge(severity: str) -> Markup:
    known = severity if severity in plots.SEVERITY_COLORS else "other"
    return element("span", severity, class_=f"sev {known}")


def _level(media: SampleMedia) -> Markup:
    if media.info is None:
        return Markup("")
    info = media.info
    text = (f"{info.seconds:.2f} s · peak {format_number(info.peak_dbfs)} dBFS · "
            f"RMS {format_number(info.rms_dbfs)} dBFS")
    # Near-silent or clipping output is a typical early failure; flag it where people look.
    suspicious = math.isinf(info.peak_dbfs) or info.peak_dbfs < -40.0 or info.peak_dbfs > -0.01
    return element("div", text, class_="level bad" if suspicious else "level")


def thin_steps(samples: list[SampleSet], keep: int, must: set[int]) -> list[SampleSet]:
    """`keep` sample sets evenly spaced over the run (first and last included), plus those of the `must` steps."""
    if len(samples) <= keep:
        return samples
    chosen = {int(i) for i in np.linspace(0, len(samples) - 1, max(2, keep)).round()}
    chosen.update(i for i, s in enumerate(samples) if s.step in must)
    return [samples[i] for i in sorted(chosen)]


class _Page:
    """Builds one section at a time; figures go to out/figures, media to out/audio and out/spectrograms."""

    def __init__(self, run: RunData, out: Path, options: ReportOptions) -> None:
        self.run = run
        self.out = out
        self.options = options
        self.media = MediaWriter(out, mel_params_from_config(run.config))
        self.figures = FigureFolder(out)
        self.best_step = run.checkpoints.best_step if run.checkpoints else None
        self.xlim = self._shared_xlim()

    def _shared_xlim(self) -> tuple[float, float] | None:
        """One step axis for every plot, so an event lines up with the loss spike it belongs to."""
        steps: list[float] = []
        if self.run.steps.size:
            steps += [float(self.run.steps[0]), float(self.run.steps[-1])]
        steps += [float(v.step) for v in self.run.validations]
        steps += [float(e.step) for e in self.run.events]
        if not steps:
            return None
        lo, hi = min(steps), max(steps)
        if hi - lo < 1.0:
            return lo - 1.0, hi + 1.0
        margin = 0.01 * (hi - lo)
        return lo - margin, hi + margin

    def _figure_path(self, name: str) -> Path:
        return self.figures.path(name)

    def _rel(self, path: Path) -> str:
        return self.figures.rel(path)

    # ---- sections -------------------------------------------------------------------------------------

    def overview(self) -> Markup:
        run = self.run
        parts: list[Markup] = [note(p, "problem") for p in run.problems]
        timing = training_timing(run.steps, run.times, run.sec_per_step)
        training: list[tuple[str, object]] = [("run directory", run.run_dir.resolve())]
        if timing is None:
            parts.append(note("No training step logged yet (metrics.jsonl is missing or empty)."))
        else:
            epoch = run.epochs[-1] if run.epochs.size and np.isfinite(run.epochs[-1]) else None
            rate = timing.steps_per_second
            training += [
                ("steps logged", f"{timing.first_step} … {timing.last_step} ({run.steps.size} rows)"),
                ("epoch", "—" if epoch is None else int(epoch)),
                ("wall-clock time", format_duration(timing.wall_seconds)),
                ("time spent stepping", format_duration(timing.train_seconds)),
                ("step rate", "—" if not rate else f"{format_number(rate)} steps/s ({format_number(1 / rate)} s/step)"),
            ]
        training.append(("validations", len(run.validations)))
        ckpt = run.checkpoints
        if ckpt is not None:
            training.append(("latest checkpoint", ckpt.latest or "—"))
            if ckpt.best:
                training.append(("best checkpoint", f"{ckpt.best} — {ckpt.best_metric} = "
                                 f"{format_number(ckpt.best_value)} at step {ckpt.best_step}"))
        else:
            training.append(("checkpoints", "none written yet"))
        counts = {s: sum(e.severity == s for e in run.events) for s in dict.fromkeys(e.severity for e in run.events)}
        training.append(("health events", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"))
        env = (key_values(_flatten(run.environment)) if run.environment
               else note("environment.json not found (versions, device and data size are unknown)."))
        parts.append(element("div", element("div", element("h3", "Training"), key_values(training)),
                             element("div", element("h3", "Environment"), env), class_="cols"))
        return join(parts)

    def config(self) -> Markup:
        if self.run.config_text is None:
            return note("config.yaml not found.")
        lines = self.run.config_text.count("\n") + 1
        return join([element("p", f"config.yaml as resolved by training ({lines} lines):"),
                     element("pre", self.run.config_text, class_="config")])

    def losses(self) -> Markup:
        return losses_section(self.run, self.figures, self.xlim, self.options.percentile)

    def evaluation(self) -> Markup:
        return evaluation_section(self.run)

    def validation(self) -> Markup:
        run = self.run
        if not run.validations:
            every = _config_value(run.config, "train.val_every")
            when = f" (train.val_every = {every})" if every is not None else ""
            return note(f"No validation yet{when}: metrics, the best checkpoint and samples appear after the first.")
        ckpt = run.checkpoints
        best_metric = ckpt.best_metric if ckpt else None
        parts: list[Markup] = []
        png = self._figure_path("validation")
        if plots.validation_figure(run.validations, png, best_step=self.best_step, best_metric=best_metric,
                                   xlim=self.xlim):
            caption = (f"best checkpoint: step {self.best_step} by {best_metric} (green)" if self.best_step is not None
                       else "no best checkpoint recorded yet")
            parts.append(figure(self._rel(png), "validation metrics over steps", caption))
        else:
            self.figures.discard(png)
            parts.append(note("Validation rows hold no val/… metric to plot."))
        metrics = sorted({k for v in run.validations for k in v.metrics})
        rows = [[element("span", v.step, class_="num"), "—" if v.epoch is None else v.epoch,
                 *(format_number(v.metrics.get(m)) for m in metrics),
                 "★ best" if v.step == self.best_step else ""] for v in run.validations]
        marks = ["best" if v.step == self.best_step else None for v in run.validations]
        body = table(["step", "epoch", *metrics, ""], rows, class_="validation", row_classes=marks)
        parts.append(body)
        return join(parts)

    def events(self) -> Markup:
        return join([self._events(), self._outputs()])

    def _outputs(self) -> Markup:
        """The generated-vs-real output statistics the drift checks read, beside the events they raise."""
        png = self._figure_path("outputs")
        if not plots.outputs_figure(self.run.outputs, self.run.events, png, xlim=self.xlim):
            self.figures.discard(png)
            return join([])
        return join([element("h3", "Generated vs real output"),
                     figure(self._rel(png), "output statistics over steps",
                            "what the dc_offset and mode_collapse checks read (out/… in metrics.jsonl); dashed "
                            "lines are health events")])

    def _events(self) -> Markup:
        run = self.run
        if not run.events:
            if (run.run_dir / "events.jsonl").exists():
                return note("No health events: the monitor recorded nothing.")
            return note("No health events (events.jsonl not written: the monitor has found nothing to report yet, "
                        "or the run predates it).")
        parts: list[Markup] = []
        png = self._figure_path("events")
        plots.events_figure(run.events, png, xlim=self.xlim)
        parts.append(figure(self._rel(png), "health events over steps", "same step axis as the loss plots"))
        shown = run.events[-MAX_EVENT_ROWS:]
        if len(shown) < len(run.events):
            parts.append(note(f"Showing the last {len(shown)} of {len(run.events)} events.", "hint"))
        rows = []
        for e in shown:
            values = json.dumps(e.values, default=str, ensure_ascii=False) if e.values else ""
            if len(values) > 300:
                values = values[:297] + "…"
            rows.append([element("span", e.step, class_="num"), _severity_badge(e.severity), e.kind, e.message,
                         element("span", values, class_="values")])
        parts.append(table(["step", "severity", "kind", "message", "values"], rows, class_="events"))
        return join(parts)

    def samples(self) -> Markup:
        run = self.run
        if not run.samples and not run.references:
            return note("No samples yet: validation writes its media to samples/step_…/ when it runs.")
        best = {self.best_step} if self.best_step is not None else set()
        shown = thin_steps(run.samples, self.options.max_sample_steps, best)
        groups = list(dict.fromkeys([*run.references, *(g for s in shown for g in s.groups)]))
        metric_at = {v.step: v for v in run.validations}
        parts: list[Markup] = [element(
            "p", "One row per validation step, one column per sample; the references are the first row. "
            "Spectrograms of audio share one colour scale (−100 … +20 dB), so a quiet generator looks dark. "
            "Levels outside −40 … 0 dBFS peak are shown in red.")]
        if len(shown) < len(run.samples):
            parts.append(note(f"Showing {len(shown)} of {len(run.samples)} validation steps (evenly spaced, with "
                              "the first, the best and the last); `gankit report --max-sample-steps N` shows more.",
                              "hint"))
        if not run.samples:
            parts.append(note("Only references so far: no validation step has written generated media."))
        for gif in sorted(run.run_dir.glob("samples/progress*.gif")):
            placed = self.media.image(gif, gif.stem)
            if placed is not None:
                parts.append(figure(placed, f"{gif.stem}: every validation in turn",
                                    f"samples/{gif.name}: the fixed-noise samples at each validation, in order"))
        rows = []
        if run.references:
            rows.append([element("strong", "reference"),
                         *(self._cell(run.references.get(g, []), "reference") for g in groups)])
        for sample_set in shown:
            rows.append([self._step_cell(sample_set.step, metric_at.get(sample_set.step)),
                         *(self._cell(sample_set.groups.get(g, []), f"step_{sample_set.step:08d}") for g in groups)])
        parts.append(table(["", *groups], rows, class_="samples"))
        return join(parts)

    def _step_cell(self, step: int, validation: Validation | None) -> Markup:
        lines: list[Markup] = [element("strong", f"step {step}")]
        if step == self.best_step:
            lines.append(element("div", "★ best checkpoint"))
        if validation is not None:
            lines += [element("div", f"{k} = {format_number(v)}", class_="level")
                      for k, v in validation.metrics.items()]
        return join(lines)

    def _cell(self, files: list[MediaFile], folder: str) -> Markup:
        """A group's media: audio with a player and the report's own spectrogram; images as they are; a
        task's spectrogram image only where the group has no audio to draw one from."""
        if not files:
            return element("span", "—", class_="level")
        has_audio = any(f.kind == "audio" for f in files)
        parts: list[Markup] = []
        for f in files:
            name = f"{folder}/{f.path.stem}"
            if f.kind == "audio":
                # The label says which of a group's media this is ("to cello" of one input translated to several
                # domains, "converted"): a column is a group, and a cell may hold several players.
                if f.label:
                    parts.append(element("div", f.label, class_="label"))
                parts.append(self._audio_cell(f.path, name))
            elif f.kind == "image" or not has_audio:
                placed = self.media.image(f.path, name)
                if placed is None:
                    parts.append(element("div", f"{f.path.name} could not be copied", class_="level bad"))
                else:
                    parts += [element("div", f.label, class_="level"),
                              element("img", src=url(placed), alt=f"{f.kind} {f.group} {f.label}", loading="lazy")]
        return join(parts)

    def _audio_cell(self, wav: Path, name: str) -> Markup:
        media = self.media.sample(wav, name)
        parts: list[Markup] = []
        if media.audio:
            parts.append(audio(media.audio))
        parts.append(_level(media))
        if media.problem:
            parts.append(element("div", media.problem, class_="level bad"))
        if media.image:
            parts.append(element("img", src=url(media.image), alt=f"mel spectrogram of {name}", loading="lazy"))
        return join(parts)

    def layer_grads(self) -> Markup:
        grads = self.run.layer_grads
        if grads is None:
            return note("No per-layer gradient norms logged yet (layer_grads.jsonl is missing or empty).")
        parts: list[Markup] = []
        png = self._figure_path("layer_grads")
        if plots.layer_grad_figure(grads, png, xlim=self.xlim):
            parts.append(figure(self._rel(png), "gradient norm per layer over steps",
                                f"{len(grads.names)} layers × {grads.steps.size} logged steps"))
        else:
            self.figures.discard(png)
            parts.append(note("Layer gradient norms hold no finite value to plot.", "problem"))
        last = grads.norms[:, -1]
        dead = [n for n, v in zip(grads.names, last, strict=True) if v == 0.0]
        never = [n for n, row in zip(grads.names, grads.norms, strict=True) if not np.any(np.nan_to_num(row) > 0)]
        if dead:
            parts.append(note(f"{len(dead)} layer(s) had exactly zero gradient at step {int(grads.steps[-1])}: "
                              + ", ".join(dead), "problem"))
        if never:
            parts.append(note(f"{len(never)} layer(s) never had a nonzero gradient: " + ", ".join(never), "problem"))
        if not dead and not never:
            parts.append(note(f"Every one of the {len(grads.names)} layers had a nonzero gradient at the last "
                              f"logged step ({int(grads.steps[-1])}).", "hint"))
        return join(parts)
