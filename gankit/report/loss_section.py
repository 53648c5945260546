"""The report's Losses section: a table of every logged loss, a plot per loss or loss family (families.py),
classifier accuracies against their chance levels, and the other logged scalars."""

from __future__ import annotations

import re

import numpy as np

from gankit.report import plots
from gankit.report.families import LossPanel, loss_panels
from gankit.report.figures import FigureFolder
from gankit.report.html import Markup, element, figure, join, note, table
from gankit.report.rundir import RunData
from gankit.report.stats import format_number

_SLUG = re.compile(r"[^A-Za-z0-9]+")


def _row(name: str, values: np.ndarray) -> list[object]:
    finite = values[np.isfinite(values)]
    tail = finite[-max(1, finite.size // 10):] if finite.size else finite
    return [f"loss/{name}", format_number(float(finite[-1])) if finite.size else "—",
            format_number(float(finite.min())) if finite.size else "—",
            format_number(float(np.median(tail))) if tail.size else "—", int(values.size - finite.size)]


def _single(run: RunData, figures: FigureFolder, index: int, name: str, xlim: tuple[float, float] | None,
            percentile: float) -> Markup:
    png = figures.path(f"loss_{index:02d}_{_SLUG.sub('_', name)}")
    rr = plots.loss_figure(name, run.losses[name], run.events, png, xlim=xlim, percentile=percentile)
    if rr is None:
        figures.discard(png)
        return note(f"loss/{name}: no finite value to plot (all NaN/Inf).", "problem")
    caption = f"loss/{name}: shown {format_number(rr.lo)} … {format_number(rr.hi)}"
    if rr.clipped or rr.n_nonfinite:
        caption += (f"; clipped {rr.n_below} below, {rr.n_above} above (data {format_number(rr.data_min)}"
                    f" … {format_number(rr.data_max)}); {rr.n_nonfinite} NaN/Inf")
    return figure(figures.rel(png), f"loss/{name} over steps", caption)


def _family(run: RunData, figures: FigureFolder, index: int, panel: LossPanel, xlim: tuple[float, float] | None,
            percentile: float) -> Markup:
    title = f"loss/{panel.name}_<member> ({', '.join(panel.members)})"
    png = figures.path(f"loss_{index:02d}_{_SLUG.sub('_', panel.name)}_family")
    members = {member: run.losses[name] for member, name in panel.members.items()}
    fr = plots.family_figure(panel.name, members, run.events, png, xlim=xlim, percentile=percentile)
    if fr is None:
        figures.discard(png)
        return note(f"{title}: no finite value to plot (all NaN/Inf).", "problem")
    caption = f"{title}, one colour each: shown {format_number(fr.range.lo)} … {format_number(fr.range.hi)}"
    if fr.clipped:
        caption += "; clipped " + "; ".join(f"{member}: {what}" for member, what in fr.clipped.items())
    return figure(figures.rel(png), f"{title} over steps", caption)


def _classifiers(run: RunData, figures: FigureFolder, xlim: tuple[float, float] | None) -> Markup:
    png = figures.path("classifier_accuracy")
    if not plots.accuracy_figure(run.classifiers, run.events, png, xlim=xlim):
        figures.discard(png)
        return join([])
    levels = []
    for network, curve in run.classifiers.items():
        level = plots.chance_level(curve.chance)
        levels.append(f"acc/{network} against chance {format_number(level)}" if level is not None
                      else f"acc/{network} (no chance level logged)")
    return join([
        element("h3", "Classifier accuracy against chance"),
        element("p", "Each classifier the task trains, as the health monitor reads it (its accuracy on the batch of "
                "the steps that trained it), with its chance level dashed (1 / classes). A confusion classifier "
                "(trained against an encoder) should stay near chance; an auxiliary one should rise above it."),
        figure(figures.rel(png), "classifier accuracy over steps against chance", "; ".join(levels)),
    ])


def losses_section(run: RunData, figures: FigureFolder, xlim: tuple[float, float] | None,
                   percentile: float) -> Markup:
    if not run.losses:
        return note("No losses logged yet (metrics.jsonl has no loss/… column).")
    parts: list[Markup] = [element(
        "p", f"Each curve's y-range covers the bulk of its values: points beyond the {percentile:g}th percentile "
        "(by more than a tenth of the range) are clipped and drawn as red markers on the edge; NaN/Inf as "
        "purple crosses. The orange line is a running median; dashed vertical lines are health events. "
        "The histogram on the right shows the distribution of the values in range. Two or more losses named "
        "<prefix>_<member> (a loss per domain, per sub-discriminator) share one plot: a colour per member, one "
        "range over all of them, each member's clipped points in its colour on the edge.")]
    parts.append(table(["loss", "last", "min", "median of last 10%", "NaN/Inf rows"],
                       [_row(name, series.values) for name, series in run.losses.items()]))
    for i, panel in enumerate(loss_panels(run.losses)):
        parts.append(_family(run, figures, i, panel, xlim, percentile) if panel.is_family
                     else _single(run, figures, i, panel.name, xlim, percentile))
    parts.append(_classifiers(run, figures, xlim))
    png = figures.path("scalars")
    if plots.scalars_figure(run.scalars, run.events, png, xlim=xlim):
        parts += [element("h3", "Learning rates and gradient norms"),
                  figure(figures.rel(png), "other logged scalars", "lr/*, grad_norm/* (norms on a log scale)")]
    else:
        figures.discard(png)
    return join(parts)
