"""Append-only JSON-lines logs keyed by training step, trimmed on resume so no step appears twice."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
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


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (killed mid-write) is skipped."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


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
            if int(row.get("step", 0)) > step:
                dropped += 1
            else:
                kept.append(json.dumps(row, ensure_ascii=False))
        atomic.write_text(self.path, "".join(line + "\n" for line in kept))
        return dropped
