"""Checkpoint files: safe loading, atomic saving, a manifest of latest/best, retention that never loses work."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit import atomic
from gankit.checkpoint_io import safe_load, save_torch
from gankit.errors import CheckpointError

__all__ = ["CheckpointManager", "Saved", "safe_load", "save_torch"]

STATE_PATTERN = re.compile(r"^state_(\d{8})\.pt$")
MANIFEST = "manifest.json"


@dataclass
class Saved:
    step: int
    state: str
    generator: str


class CheckpointManager:
    """Owns `RUN/checkpoints`: writes new checkpoints, keeps the last K plus the best, tracks the manifest.

    Order on save: write state and generator files atomically → load both back (verified) → delete
    old files retention no longer needs (never the newest loadable or the best) → update the manifest.
    Resume does not trust the manifest alone: it takes the newest state file that loads.
    """

    def __init__(self, folder: str | Path, keep_last: int = 3, metric: str = "val/mel_l1") -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.metric = metric
        self.manifest = self._read_manifest()

    # --- manifest -------------------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / MANIFEST
        if path.is_file():
            with contextlib.suppress(json.JSONDecodeError, OSError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    data.setdefault("checkpoints", [])
                    return data
        return {"checkpoints": [], "best_metric": self.metric}

    def _write_manifest(self) -> None:
        atomic.write_text(self.folder / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")

    @property
    def best_value(self) -> float | None:
        value = self.manifest.get("best_value")
        return float(value) if value is not None else None

    def is_better(self, value: float) -> bool:
        best = self.best_value
        return best is None or value < best

    # --- saving ---------------------------------------------------------------------------------
    def save(
        self, step: int, state: dict[str, Any], generator: dict[str, Any], metric_value: float | None = None
    ) -> Saved:
        self.folder.mkdir(parents=True, exist_ok=True)
        saved = Saved(step, f"state_{step:08d}.pt", f"generator_{step:08d}.pt")
        save_torch(self.folder / saved.state, state)
        save_torch(self.folder / saved.generator, generator)
        atomic._hook("after_write")
        for name in (saved.state, saved.generator):
            safe_load(self.folder / name)  # verified loadable before anything old is deleted
        entries = [e for e in self.manifest["checkpoints"] if e["step"] != step]
        entries.append({"step": step, "state": saved.state, "generator": saved.generator, "metric": metric_value})
        entries.sort(key=lambda e: e["step"])
        self.manifest["checkpoints"] = entries
        self.manifest["latest"] = saved.state
        self.manifest["latest_generator"] = saved.generator
        self.manifest["latest_step"] = step
        if metric_value is not None and self.is_better(metric_value):
            self.manifest.update(
                best=saved.state, best_generator=saved.generator, best_step=step,
                best_value=metric_value, best_metric=self.metric,
            )
        self._apply_retention()
        self._write_manifest()
        return saved

    def _apply_retention(self) -> None:
        entries = self.manifest["checkpoints"]
        keep = {e["state"] for e in entries[-self.keep_last :]}
        keep.add(self.manifest.get("latest", ""))
        keep.add(self.manifest.get("best", ""))
        kept = []
        for entry in entries:
            if entry["state"] in keep:
                kept.append(entry)
                continue
            atomic._hook("during_retention")
            for name in (entry["state"], entry["generator"]):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / name).unlink()
        self.manifest["checkpoints"] = kept

    # --- finding --------------------------------------------------------------------------------
    def state_files(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = STATE_PATTERN.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def latest_loadable(self, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
        """The newest state file that loads; half-written or corrupt files are passed over (and said)."""
        for _, path in self.state_files():
            try:
                state = safe_load(path, map_location)
            except CheckpointError as exc:
                print(f"warning: skipping unusable checkpoint: {exc}")
                continue
            if isinstance(state, dict) and state.get("kind") == "train_state":
                return path, state
        return None
