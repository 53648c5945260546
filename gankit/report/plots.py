"""Report figures as PNG files. matplotlib is imported inside the functions (never at import time) and
used through Figure + the Agg canvas, not pyplot: no global backend switch, no figures left open."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gankit import atomic
from gankit.report.rundir import ClassifierCurve, Event, LayerGrads, Series, Validation
from gankit.report.stats import RobustRange, format_number, padded, robust_range

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SEVERITY_COLORS = {"info": "#4e79a7", "warning": "#f28e2b", "error": "#e15759"}
_OTHER_SEVERITY = "#9c755f"
_LINE = "#1f4e79"
_TREND = "#f58518"
_OUTLIER = "#d62728"
_BEST = "#2ca02c"
_CHANCE = "#555555"
_DPI = 100


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: Figure, png: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    atomic.write_bytes(png, buffer.getvalue())  # atomically: the page may be open while it is rebuilt


def _style(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # x is steps (or counts): no "step 1.5" ticks
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _draw_events(ax: Axes, events: Sequence[Event]) -> None:
    """Vertical markers, one collection per severity (hundreds of events stay cheap to draw)."""
    by_severity: dict[str, list[int]] = {}
    for event in events:
        by_severity.setdefault(event.severity, []).append(event.step)
    for severity, steps in by_severity.items():
        color = SEVERITY_COLORS.get(severity, _OTHER_SEVERITY)
        ax.vlines(
            steps, 0, 1, transform=ax.get_xaxis_transform(), colors=color, linewidth=0.9, alpha=0.55,
            linestyles="--", label=f"{severity} event", zorder=1,
        )


def binned_median(steps: np.ndarray, values: np.ndarray, bins: int = 150,
                  reduce: Callable[[np.ndarray], Any] = np.median) -> tuple[np.ndarray, np.ndarray]:
    """A trend line: median (or `reduce`) of each of ≤ `bins` consecutive chunks (O(n); medians ignore spikes)."""
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    if values.size < 3 * 5:
        return steps.astype(np.float64), values
    chunks = min(bins, values.size // 5)
    edges = np.linspace(0, values.size, chunks + 1).astype(int)
    xs = np.array([steps[a:b].mean() for a, b in itertools.pairwise(edges)])
    ys = np.array([reduce(values[a:b]) for a, b in itertools.pairwise(edges)])
    return xs, ys


def _mark_outliers(ax: Axes, steps: np.ndarray, values: np.ndarray, rr: RobustRange, color: str | None = None) -> str:
    """Markers on the edge the clipped values went past; returns the caption text describing them. With `color`
    (a loss family's member) they take the member's colour with a red edge and stay out of the legend."""
    notes = []
    above = np.isfinite(values) & (values > rr.hi)
    below = np.isfinite(values) & (values < rr.lo)
    bad = ~np.isfinite(values)
    finite = values[np.isfinite(values)]
    style = ({"color": color, "edgecolors": _OUTLIER, "linewidths": 0.8} if color is not None else {})
    label = (lambda text: None) if color is not None else (lambda text: text)
    if above.any():
        ax.scatter(steps[above], np.full(above.sum(), rr.hi), marker="^", s=22, zorder=4, clip_on=False,
                   label=label("clipped (above)"), **({"color": _OUTLIER} | style))
        notes.append(f"{int(above.sum())} above {format_number(rr.hi)} (max {format_number(float(finite.max()))})")
    if below.any():
        ax.scatter(steps[below], np.full(below.sum(), rr.lo), marker="v", s=22, zorder=4, clip_on=False,
                   label=label("clipped (below)"), **({"color": _OUTLIER} | style))
        notes.append(f"{int(below.sum())} below {format_number(rr.lo)} (min {format_number(float(finite.min()))})")
    if bad.any():
        ax.scatter(steps[bad], np.full(bad.sum(), rr.hi), marker="x", s=26, zorder=4, clip_on=False,
                   label=label("NaN / Inf"), color=color or "#7b3294")
        notes.append(f"{int(bad.sum())} NaN/Inf")
    return "; ".join(notes)


def loss_figure(
    name: str,
    series: Series,
    events: Sequence[Event],
    png: Path,
    xlim: tuple[float, float] | None = None,
    percentile: float = 99.0,
) -> RobustRange | None:
    """Curve (robust y-range, outliers marked, events as vertical lines) beside a histogram on the same
    y-axis. Returns the range used, or None when the loss has no finite value (no file written)."""
    rr = robust_range(series.values, percentile=percentile)
    if rr is None:
        return None
    fig = _figure(10.0, 2.7)
    grid = fig.add_gridspec(1, 2, width_ratios=[4.2, 1.0])
    ax = fig.add_subplot(grid[0, 0])
    hist = fig.add_subplot(grid[0, 1], sharey=ax)
    steps, values = series.steps, series.values
    _draw_events(ax, events)
    ax.plot(steps, values, color=_LINE, linewidth=0.8, alpha=0.55, label=name, zorder=2)
    trend_x, trend_y = binned_median(steps, values)
    if trend_x.size > 20:
        ax.plot(trend_x, trend_y, color=_TREND, linewidth=1.4, label="running median", zorder=3)
    note = _mark_outliers(ax, steps, values, rr)
    ax.set_ylim(*padded(rr.lo, rr.hi))
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel("step", fontsize=8)
    ax.set_title(f"loss/{name}" + (f"  —  clipped: {note}" if note else ""), fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    _style(ax)
    inside = values[np.isfinite(values) & (values >= rr.lo) & (values <= rr.hi)]
    hist.hist(inside, bins=40, orientation="horizontal", color=_LINE, alpha=0.75)
    hist.set_xlabel("count", fontsize=8)
    hist.set_title("distribution (in range)", fontsize=9, loc="left")
    hist.tick_params(labelleft=False)
    _style(hist)
    _save(fig, png)
    return rr


# Member colours of a loss family (tab10 without its red, which marks clipped points).
_MEMBER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True)
class FamilyRange:
    """The y-range a loss family shares (over every member's values) and, per clipped member, what was clipped."""

    range: RobustRange
    clipped: dict[str, str]  # member → "2 above 6.1 (max 150)"; only members with clipped or NaN/Inf values


def family_figure(
    name: str,
    members: Mapping[str, Series],
    events: Sequence[Event],
    png: Path,
    xlim: tuple[float, float] | None = None,
    percentile: float = 99.0,
) -> FamilyRange | None:
    """Every member of a loss family on one axis, a colour each (thin raw curve, running median), one robust
    y-range over all their values with each member's clipped points marked in its colour on the edge, beside their
    histograms (in range, shared bins). None when no member has a finite value (no file written)."""
    pooled = np.concatenate([s.values for s in members.values()]) if members else np.zeros(0)
    rr = robust_range(pooled, percentile=percentile)
    if rr is None:
        return None
    fig = _figure(10.0, 3.0)
    grid = fig.add_gridspec(1, 2, width_ratios=[4.2, 1.0])
    ax = fig.add_subplot(grid[0, 0])
    hist = fig.add_subplot(grid[0, 1], sharey=ax)
    _draw_events(ax, events)
    bins = np.linspace(rr.lo, rr.hi, 41) if rr.hi > rr.lo else 40
    clipped: dict[str, str] = {}
    for i, (member, series) in enumerate(members.items()):
        color = _MEMBER_COLORS[i % len(_MEMBER_COLORS)]
        steps, values = series.steps, series.values
        trend_x, trend_y = binned_median(steps, values)
        smooth = trend_x.size > 20
        ax.plot(steps, values, color=color, linewidth=0.7, alpha=0.35 if smooth else 0.9,
                label=None if smooth else member, zorder=2)
        if smooth:
            ax.plot(trend_x, trend_y, color=color, linewidth=1.5, label=member, zorder=3)
        note = _mark_outliers(ax, steps, values, rr, color=color)
        if note:
            clipped[member] = note
        inside = values[np.isfinite(values) & (values >= rr.lo) & (values <= rr.hi)]
        if inside.size:
            hist.hist(inside, bins=bins, orientation="horizontal", histtype="step", color=color, linewidth=1.2)
    ax.set_ylim(*padded(rr.lo, rr.hi))
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel("step", fontsize=8)
    title = f"loss/{name}_<member>: {len(members)} members"
    if clipped:
        title += "  —  clipped: " + ", ".join(clipped)
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8, ncol=min(4, max(1, len(members) // 4 + 1)))
    _style(ax)
    hist.set_xlabel("count", fontsize=8)
    hist.set_title("distribution (in range)", fontsize=9, loc="left")
    hist.tick_params(labelleft=False)
    _style(hist)
    _save(fig, png)
    return FamilyRange(rr, clipped)


def chance_level(chance: Series) -> float | None:
    """The chance level a classifier's accuracy is drawn against: its last logged value (it changes only if a run
    is resumed with more classes); None when none was logged."""
    finite = chance.values[np.isfinite(chance.values)]
    return float(finite[-1]) if finite.size else None


def accuracy_figure(
    classifiers: Mapping[str, ClassifierCurve],
    events: Sequence[Event],
    png: Path,
    xlim: tuple[float, float] | None = None,
) -> bool:
    """One panel per classifier: its accuracy over steps (0 … 1, running mean) against its chance level as a
    dashed line (a step line where it changed). False when no classifier has a finite accuracy."""
    items = [(k, c) for k, c in classifiers.items() if np.isfinite(c.accuracy.values).any()]
    if not items:
        return False
    cols = min(2, len(items))
    rows = math.ceil(len(items) / cols)
    fig = _figure(10.0, 2.6 * rows)
    for i, (network, curve) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_events(ax, events)
        steps, values = curve.accuracy.steps, curve.accuracy.values
        ok = np.isfinite(values)
        # A mean, not a median: a batch's accuracy takes few values (k / batch), whose median jumps between them.
        trend_x, trend_y = binned_median(steps, values, bins=60, reduce=np.mean)
        ax.plot(steps[ok], values[ok], color=_LINE, linewidth=0.8, alpha=0.4 if trend_x.size > 20 else 0.85,
                label="accuracy", zorder=3)
        if trend_x.size > 20:
            ax.plot(trend_x, trend_y, color=_TREND, linewidth=1.4, label="running mean", zorder=4)
        level = chance_level(curve.chance)
        if level is not None:
            known = np.isfinite(curve.chance.values)
            xs, ys = curve.chance.steps[known], curve.chance.values[known]
            if np.unique(ys).size > 1:
                ax.step(xs, ys, where="post", color=_CHANCE, linestyle="--", linewidth=1.2, label="chance", zorder=2)
            else:  # under the accuracy: an accuracy at chance stays visible
                ax.axhline(level, color=_CHANCE, linestyle="--", linewidth=1.2, label=f"chance {format_number(level)}",
                           zorder=2)
        ax.set_ylim(-0.02, 1.02)
        if xlim is not None:
            ax.set_xlim(*xlim)
        chance_text = "no chance level logged" if level is None else f"chance {format_number(level)}"
        ax.set_title(f"acc/{network}  ({chance_text})", fontsize=9, loc="left")
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
        _style(ax)
    _save(fig, png)
    return True


def scalars_figure(
    scalars: Mapping[str, Series], events: Sequence[Event], png: Path, xlim: tuple[float, float] | None = None
) -> bool:
    """Small multiples of the other logged curves (lr/*, grad_norm/*, …); grad norms on a log scale."""
    items = [(k, s) for k, s in scalars.items() if np.isfinite(s.values).any()]
    if not items:
        return False
    cols = min(3, len(items))
    rows = math.ceil(len(items) / cols)
    fig = _figure(10.0, 2.3 * rows)
    for i, (key, series) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_events(ax, events)
        values = series.values
        positive = values[np.isfinite(values) & (values > 0)]
        log = key.startswith("grad_norm/") and positive.size == np.isfinite(values).sum() and positive.size > 0
        ax.plot(series.steps, values, color=_LINE, linewidth=0.9)
        if log:
            ax.set_yscale("log")
        else:
            rr = robust_range(values)
            if rr is not None:
                note = _mark_outliers(ax, series.steps, values, rr)
                ax.set_ylim(*padded(rr.lo, rr.hi))
                if note:
                    key = f"{key} (clipped: {note})"
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_title(key, fontsize=9, loc="left")
        _style(ax)
    _save(fig, png)
    return True


# Panels of the output-statistics figure: (title, generated key, real key, log scale).
_OUTPUT_PAIRS = (
    ("DC offset", "out/fake_dc", "out/real_dc", False),
    ("level (standard deviation)", "out/fake_std", "out/real_std", True),
    ("spectral flatness", "out/fake_flatness", "out/real_flatness", True),
)


def outputs_figure(
    outputs: Mapping[str, Series], events: Sequence[Event], png: Path, xlim: tuple[float, float] | None = None
) -> bool:
    """The generated-vs-real statistics the health checks read (out/…), generated against real per panel, with
    the health events: the drift an event names, visible. Keys without a pair get a panel of their own."""
    paired = {k for _, f, r, _ in _OUTPUT_PAIRS for k in (f, r)}
    panels: list[tuple[str, list[tuple[str, Series]], bool]] = []
    for title, fake, real, log in _OUTPUT_PAIRS:
        lines = [(label, outputs[key]) for label, key in (("generated", fake), ("real", real)) if key in outputs]
        if lines:
            panels.append((title, lines, log))
    for key, series in outputs.items():
        if key not in paired:
            panels.append((key.removeprefix("out/"), [(key.removeprefix("out/"), series)], False))
    panels = [p for p in panels if any(np.isfinite(s.values).any() for _, s in p[1])]
    if not panels:
        return False
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(10.0, 2.4 * rows)
    for i, (title, lines, log) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_events(ax, events)
        for (label, series), color in zip(lines, (_LINE, _BEST), strict=False):
            values = series.values
            if log:
                values = np.where(values > 0, values, np.nan)
            ax.plot(series.steps, values, color=color, linewidth=0.9, label=label)
        if log:
            ax.set_yscale("log")
        if len(lines) > 1:
            ax.legend(fontsize=7, loc="best")
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_title(title, fontsize=9, loc="left")
        _style(ax)
    _save(fig, png)
    return True


def validation_figure(
    validations: Sequence[Validation],
    png: Path,
    best_step: int | None = None,
    best_metric: str | None = None,
    xlim: tuple[float, float] | None = None,
) -> bool:
    """One panel per val/<metric>; the best checkpoint's step as a green line, its value as a star."""
    metrics = sorted({k for v in validations for k in v.metrics})
    if not metrics:
        return False
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _figure(10.0, 2.6 * rows)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        points = [(v.step, v.metrics[metric]) for v in validations if metric in v.metrics]
        xs = np.array([p[0] for p in points], dtype=np.float64)
        ys = np.array([p[1] for p in points], dtype=np.float64)
        ax.plot(xs, ys, color=_LINE, marker="o", markersize=3, linewidth=1.0)
        if best_step is not None:
            ax.axvline(best_step, color=_BEST, linestyle="--", linewidth=1.2, label=f"best @ {best_step}")
            at_best = xs == best_step
            if at_best.any():
                ax.scatter(xs[at_best], ys[at_best], marker="*", s=160, color=_BEST, zorder=5,
                           edgecolors="black", linewidths=0.5)
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
        rr = robust_range(ys)
        if rr is not None and rr.clipped:
            _mark_outliers(ax, xs, ys, rr)
            ax.set_ylim(*padded(rr.lo, rr.hi))
        if xlim is not None:
            ax.set_xlim(*xlim)
        title = metric + ("  (selects best checkpoint)" if metric == best_metric else "")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlabel("step", fontsize=8)
        _style(ax)
    _save(fig, png)
    return True


def _downsample_columns(norms: np.ndarray, steps: np.ndarray, max_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge neighbouring steps by their max, so a long run still fits and short spikes stay visible."""
    if norms.shape[1] <= max_cols:
        return norms, steps
    edges = np.linspace(0, norms.shape[1], max_cols + 1).astype(int)
    merged = np.full((norms.shape[0], max_cols), np.nan)
    for j, (a, b) in enumerate(itertools.pairwise(edges)):
        block = norms[:, a:b]
        logged = ~np.isnan(block).all(axis=1)
        merged[logged, j] = np.nanmax(block[logged], axis=1)
    return merged, steps[edges[:-1]]


def layer_grad_figure(
    layer_grads: LayerGrads, png: Path, max_cols: int = 600, xlim: tuple[float, float] | None = None
) -> bool:
    """Heatmap layer × step of log10 gradient norm; exact zeros (dead layers) black, unlogged grey."""
    from matplotlib import colormaps

    norms, steps = _downsample_columns(layer_grads.norms, layer_grads.steps, max_cols)
    positive = norms[np.isfinite(norms) & (norms > 0)]
    if positive.size == 0 and not (norms == 0).any():
        return False
    n_layers = len(layer_grads.names)
    fig = _figure(10.0, min(16.0, max(2.8, 0.17 * n_layers + 1.4)))
    ax = fig.add_subplot(1, 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms)  # 0 → -inf (under colour), NaN stays NaN (bad colour)
    if positive.size:
        vmin = float(np.log10(positive.min()))
        vmax = float(np.percentile(np.log10(positive), 99.5))
    else:
        vmin, vmax = -8.0, 0.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    cmap = colormaps["viridis"].with_extremes(under="black", bad="#d9d9d9")
    data = np.ma.masked_invalid(np.where(np.isneginf(logs), vmin - 1.0, logs))
    extent = (float(steps[0]), float(steps[-1]) + 1.0, n_layers - 0.5, -0.5)
    image = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax,
                      extent=extent)
    stride = max(1, math.ceil(n_layers / 60))  # at most ~60 labels stay legible
    ax.set_yticks(range(0, n_layers, stride))
    ax.set_yticklabels(layer_grads.names[::stride], fontsize=7)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title("log10 gradient norm per layer  (black: exactly zero — dead; grey: not logged)",
                 fontsize=9, loc="left")
    bar = fig.colorbar(image, ax=ax, extend="both" if (norms == 0).any() else "neither", pad=0.01)
    bar.set_label("log10 ‖grad‖", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _save(fig, png)
    return True



def events_figure(
    events: Sequence[Event], png: Path, xlim: tuple[float, float] | None = None, max_labels: int = 12
) -> bool:
    """Health events as a timeline: one row per kind, coloured by severity, on the loss plots' step axis;
    with at most `max_labels` events each is labelled with its message."""
    if not events:
        return False
    kinds = list(dict.fromkeys(e.kind or "?" for e in events))  # first-seen order: earliest problem on top
    row = {kind: i for i, kind in enumerate(kinds)}
    fig = _figure(10.0, min(8.0, 1.2 + 0.32 * len(kinds)))
    ax = fig.add_subplot(1, 1, 1)
    by_severity: dict[str, list[Event]] = {}
    for event in events:
        by_severity.setdefault(event.severity, []).append(event)
    for severity, group in by_severity.items():
        ax.scatter([e.step for e in group], [row[e.kind or "?"] for e in group], marker="|", s=260, linewidths=2.0,
                   color=SEVERITY_COLORS.get(severity, _OTHER_SEVERITY), label=f"{severity} ({len(group)})")
    ax.set_yticks(range(len(kinds)))
    ax.set_yticklabels(kinds, fontsize=8)
    ax.set_ylim(len(kinds) - 0.5, -0.5)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if len(events) <= max_labels:  # few events: their messages beside the markers; many would overprint
        x0, x1 = ax.get_xlim()
        seen = dict.fromkeys(kinds, 0)
        for event in events:
            message = event.message if len(event.message) <= 70 else event.message[:69] + "…"
            right_half = x1 > x0 and (event.step - x0) / (x1 - x0) > 0.5  # text towards the middle, not off the edge
            kind = event.kind or "?"
            above = seen[kind] % 2 == 0  # neighbours in one row alternate above/below their marker
            seen[kind] += 1
            ax.annotate(message, (event.step, row[kind]), xytext=(-6 if right_half else 6, 4 if above else -11),
                        textcoords="offset points", ha="right" if right_half else "left", fontsize=7,
                        color="#333333")
    ax.set_xlabel("step", fontsize=8)
    ax.set_title("health events (all details in the table below)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), framealpha=0.8)  # outside: keeps labels clear
    _style(ax)
    _save(fig, png)
    return True
