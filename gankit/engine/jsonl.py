"""Append-only JSON-lines logs keyed by training step, trimmed on resume so no step appears twice."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gankit import atomic


def _plain(value: Any) -> Any:
    # JSON has no NaN/Inf; keep them readable by other tools as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    return value


def read_jsonl(path: str | os.PathLike[str], warn: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file. Damaged lines — undecodable bytes, half-written or non-object JSON (a torn last
    line after a kill, a disk error, an editor) — are skipped, and said once per file and damage: a log must never
    block a resume or a report. `warn` (default: stderr) gets the one line."""
    p = Path(path)
    if not p.exists():
        return
    damaged: list[int] = []
    with p.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").strip()
                if not line:
                    continue
                row = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                damaged.append(number)
                continue
            if not isinstance(row, dict):
                damaged.append(number)
                continue
            yield row
    if damaged:
        _warn_damaged(p, damaged, warn)


_warned: set[tuple[str, tuple[int, ...]]] = set()


def _warn_damaged(path: Path, lines: list[int], warn: Callable[[str], None] | None) -> None:
    key = (str(path.resolve()), tuple(lines))
    if key in _warned:
        return
    _warned.add(key)
    shown = ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
    message = (f"warning: {path}: skipped {len(lines)} damaged line(s) (line {shown}: not UTF-8 JSON objects); "
               "the other rows are used")
    if warn is not None:
        warn(message)
    else:
        print(message, file=sys.stderr)


def _step_of(row: Mapping[str, Any]) -> int:
    try:
        return int(row.get("step", 0))
    except (TypeError, ValueError):
        return 0


class JsonlLog:
    """One JSON object per line. Only the writing rank should create one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, row: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_plain(row), ensure_ascii=False) + "\n")
            handle.flush()

    def truncate_after(self, step: int) -> int:
        """Drop rows whose step is past `step` (and torn lines); returns how many were dropped."""
        if not self.path.exists():
            return 0
        kept, dropped = [], 0
        for row in read_jsonl(self.path):
            if _step_of(row) > step:
                dropped += 1
            else:
                kept.append(json.dumps(row, ensure_ascii=False))
        atomic.write_text(self.path, "".join(line + "\n" for line in kept))
        return dropped
