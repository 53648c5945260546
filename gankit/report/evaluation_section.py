"""The report's Evaluation section: each `RUN/evaluation/*.json` (evaluation.py) as a table, a row per measure
(per target where the file has them) and a column per system measured — the model beside its baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gankit.report.evaluation import EVALUATION_DIR, EvaluationTable
from gankit.report.html import Markup, element, join, key_values, note, table
from gankit.report.rundir import RunData
from gankit.report.stats import format_number


def _cell(summary: Mapping[str, Any] | None) -> Markup | str:
    if summary is None or summary.get("mean") is None:
        return "—"
    mean, half, n = summary.get("mean"), summary.get("half_width"), summary.get("n")
    text = format_number(mean) if half is None else f"{format_number(mean)} ± {format_number(half)}"
    interval = (f"95 % interval {format_number(summary.get('low'))} … {format_number(summary.get('high'))}"
                if summary.get("low") is not None else None)
    return join([element("span", text, class_="num", title=interval), element("span", f" (n = {n})", class_="level")])


def _table(evaluation: EvaluationTable) -> Markup:
    parts: list[Markup] = [element("h3", evaluation.file)]
    if evaluation.info:
        parts.append(key_values(evaluation.info))
    if not evaluation.rows:
        parts.append(note(f"{evaluation.file} holds no summary (a mapping with mean and n) to tabulate."))
        return join(parts)
    rows = [[label or "—", *(_cell(by_system.get(system)) for system in evaluation.systems)]
            for label, by_system in evaluation.rows.items()]
    parts.append(table(["measure", *evaluation.systems], rows, class_="evaluation"))
    return join(parts)


def evaluation_section(run: RunData) -> Markup:
    if not run.evaluations:
        return note(f"No evaluation results in {EVALUATION_DIR}/: `gankit evaluate --checkpoint RUN … --out "
                    f"RUN/{EVALUATION_DIR}/<name>.json` writes them there, and the next report shows them here.")
    intro = element("p", f"The results files of `gankit evaluate` in {EVALUATION_DIR}/: mean ± the half-width of its "
                    "95 % interval (hover for the interval) and the number of items scored, a column per system "
                    "measured (the model beside its baselines), a row per measure (· per target or group, 'all' "
                    "pooled). The file's own description (checkpoint, step, data) is above each table.")
    return join([intro, *(_table(e) for e in run.evaluations)])
