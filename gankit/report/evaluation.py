"""The results files of `gankit evaluate … --out RUN/evaluation/<name>.json` read into tables, whatever kind of
model they measured: every summary in a file (a mapping holding `mean` and `n`, as `Summary.to_dict()` writes it)
becomes a cell, its column the system it measured and its row the rest of its path (docs/CONTRACTS.md, report)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gankit.report.stats import format_number

EVALUATION_DIR = "evaluation"  # RUN/evaluation/*.json
# Keys that only structure a results file ({"systems": {name: {"summary": …}}}, {"summary": {system: …}}): left
# out of a summary's path, so that the system it measured comes first.
STRUCTURE_KEYS = frozenset({"systems", "summary"})
MAX_LIST_ITEMS = 12  # a longer list of plain values is shown as its length


@dataclass
class EvaluationTable:
    """One results file: what it says about itself (checkpoint, step, data, chance, …), and its summaries as
    rows × systems."""

    file: str  # relative to the run directory: "evaluation/translation.json"
    info: list[tuple[str, str]] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)  # columns, in the file's order
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # row label → system → summary


def is_summary(value: Any) -> bool:
    return isinstance(value, Mapping) and "mean" in value and "n" in value


def _summaries(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every summary below `node` with its path of keys; lists (per-file rows) are not searched."""
    if is_summary(node):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _summaries(value, (*path, str(key)))


def _plain(value: Any) -> str | None:
    """A value worth a line of the file's description, as text; None for what is not (per-file rows)."""
    if isinstance(value, float):
        return format_number(value)
    if value is None or isinstance(value, (str, int, bool)):
        return "—" if value is None else str(value)
    if isinstance(value, list) and all(v is None or isinstance(v, (str, int, float, bool)) for v in value):
        return ", ".join(map(str, value)) if len(value) <= MAX_LIST_ITEMS else f"{len(value)} values"
    return None


def _info(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Plain values outside the summaries, with dotted keys (`meta.step`, `groups.all.chance`)."""
    for key, value in node.items():
        if isinstance(value, Mapping):
            if not any(True for _ in _summaries(value)):
                yield from _info(value, f"{prefix}{key}.")
        elif (text := _plain(value)) is not None:
            yield f"{prefix}{key}", text


def table_of(data: Mapping[str, Any], file: str) -> EvaluationTable:
    table = EvaluationTable(file, info=list(_info(data)))
    for path, summary in _summaries(data):
        parts = [p for p in path if p not in STRUCTURE_KEYS]
        system, row = (parts[0], " · ".join(parts[1:])) if len(parts) > 1 else ("value", " · ".join(parts))
        if system not in table.systems:
            table.systems.append(system)
        table.rows.setdefault(row, {})[system] = dict(summary)
    return table


def read_evaluations(run_dir: Path, problems: list[str]) -> list[EvaluationTable]:
    """Every `RUN/evaluation/*.json`, by name; a file that cannot be read becomes a line of `problems`."""
    tables = []
    for path in sorted((run_dir / EVALUATION_DIR).glob("*.json")):
        name = f"{EVALUATION_DIR}/{path.name}"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{name} could not be read ({exc})")
            continue
        if not isinstance(data, Mapping):
            problems.append(f"{name} does not hold an object")
            continue
        tables.append(table_of(data, name))
    return tables
