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
CHECKPOINT_PATTERN = re.compile(r"^(state|generator)_(\d{8})\.pt$")
# gankit.atomic's temporary siblings (".NAME.XXXX.tmp") of what this folder holds; one that is still there when a
# save starts was left by a write that was killed (saves are sequential, and only rank 0 writes here).
STALE_TEMPORARY_PATTERN = re.compile(r"^\.((state|generator)_\d{8}\.pt|manifest\.json)\..+\.tmp$")
MANIFEST = "manifest.json"
UNUSABLE = "unusable"  # where state files that failed to load are moved (never deleted: a user may rescue them)


@dataclass
class Saved:
    step: int
    state: str
    generator: str


class CheckpointManager:
    """Owns `RUN/checkpoints`: writes new checkpoints, keeps the last K plus the best, tracks the manifest.

    Order on save: write state and generator files atomically → load both back (verified) → write the
    manifest naming the new checkpoint and none of the files retention is about to delete → delete them.
    A failure or kill at any point leaves the previous checkpoint loadable and a manifest that names only
    files on disk; files a killed run left unlisted are taken back into the list on the next save.
    Resume does not trust the manifest alone: it takes the newest state file that loads.
    """

    def __init__(self, folder: str | Path, keep_last: int = 3, metric: str = "val/mel_l1", mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"best-checkpoint mode must be min or max, got {mode!r}")
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.metric = metric
        self.mode = mode
        self.manifest = self._read_manifest()
        self.set_aside: list[dict[str, Any]] = []  # what the last latest_loadable(set_aside=True) moved aside

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

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic.write_text(self.folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    @property
    def best_value(self) -> float | None:
        value = self.manifest.get("best_value")
        return float(value) if value is not None else None

    def is_better(self, value: float) -> bool:
        return self._beats(value, self.best_value)

    def _beats(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < float(best) if self.mode == "min" else value > float(best)

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
        manifest = self._reconciled_manifest()
        entries = [e for e in manifest["checkpoints"] if e["step"] != step]
        entries.append({"step": step, "state": saved.state, "generator": saved.generator, "metric": metric_value})
        entries.sort(key=lambda e: e["step"])
        manifest.update(latest=saved.state, latest_generator=saved.generator, latest_step=step)
        best = manifest.get("best_value")  # from the reconciled manifest: a deleted best no longer counts
        if metric_value is not None and self._beats(metric_value, best):
            manifest.update(
                best=saved.state, best_generator=saved.generator, best_step=step,
                best_value=metric_value, best_metric=self.metric,
            )
        kept, doomed = self._retention(entries, manifest)
        doomed_files = [name for e in doomed for name in (e["state"], e["generator"])]
        spared = {name for e in entries for name in (e["state"], e["generator"])}
        spared |= {str(manifest.get(key, "")) for key in ("best", "best_generator")}  # never the best's files
        doomed_files += self._orphans(step, spared) + self._stale_temporaries()
        manifest["checkpoints"] = kept
        # The manifest goes first: if this write fails nothing is deleted yet, and once it is written it names
        # no file the deletions below remove (a kill during them leaves unlisted files, reconciled next save).
        self._write_manifest(manifest)
        self.manifest = manifest
        for name in doomed_files:
            atomic._hook("during_retention")
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        return saved

    def _reconciled_manifest(self) -> dict[str, Any]:
        """The manifest with its list made to match the complete checkpoints (state and generator) on disk.

        A run killed between writing a checkpoint and its manifest update leaves files the list lacks; a
        file deleted by hand leaves entries naming nothing. Both would escape retention or mislead readers.
        """
        manifest = dict(self.manifest)
        listed = {int(e["step"]): e for e in manifest.get("checkpoints", []) if isinstance(e, dict) and "step" in e}
        entries = []
        for step, path in sorted(self.state_files()):
            generator = f"generator_{step:08d}.pt"
            if not (self.folder / generator).is_file():
                continue  # half a checkpoint: not listed; `_orphans` removes it once a newer one is saved
            entry = listed.get(step, {"metric": None})
            entries.append({**entry, "step": step, "state": path.name, "generator": generator})
        manifest["checkpoints"] = entries
        if manifest.get("best") and not (self.folder / str(manifest["best"])).is_file():
            for key in ("best", "best_generator", "best_step", "best_value"):
                manifest.pop(key, None)  # the best was deleted: the next validation chooses a new one
        return manifest

    def _retention(
        self, entries: list[dict[str, Any]], manifest: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(kept, to delete): the last `keep_last` by step, always the latest (just verified) and the best."""
        keep = {e["state"] for e in entries[-self.keep_last :]}
        keep.add(manifest.get("latest", ""))
        keep.add(manifest.get("best", ""))
        kept = [e for e in entries if e["state"] in keep]
        doomed = [e for e in entries if e["state"] not in keep]
        return kept, doomed

    def _orphans(self, step: int, spared: set[str]) -> list[str]:
        """State or generator files older than `step`, not in `spared`, whose other half is missing (a write that
        failed or was killed between the two): not a checkpoint, superseded by the one just verified."""
        found = []
        for path in self.folder.iterdir():
            match = CHECKPOINT_PATTERN.match(path.name)
            if match and int(match.group(2)) < step and path.name not in spared:
                found.append(path.name)
        return sorted(found)

    def _stale_temporaries(self) -> list[str]:
        """Temporary files of writes that were killed before their rename: never a checkpoint, only disk."""
        return sorted(p.name for p in self.folder.iterdir() if STALE_TEMPORARY_PATTERN.match(p.name))

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

    def latest_loadable(
        self, map_location: str | torch.device = "cpu", set_aside: bool = False
    ) -> tuple[Path, dict[str, Any]] | None:
        """The newest state file that loads; half-written or corrupt files are passed over (and said).

        With `set_aside` (the writing rank) each unusable state file newer than the one found moves, with its
        generator file, to `checkpoints/unusable/`: it is no checkpoint, so retention must neither count it as one
        nor delete the older good one for it. `self.set_aside` lists what moved, with the reason, for the run's
        events."""
        self.set_aside = []
        for step, path in self.state_files():
            try:
                state = safe_load(path, map_location)
            except CheckpointError as exc:
                print(f"warning: skipping unusable checkpoint: {exc}")
                if set_aside:
                    self._set_aside(step, path, str(exc))
                continue
            if isinstance(state, dict) and state.get("kind") == "train_state":
                return path, state
            if set_aside:
                self._set_aside(step, path, "not a gankit training state")
        return None

    def _set_aside(self, step: int, path: Path, reason: str) -> None:
        folder = self.folder / UNUSABLE
        folder.mkdir(exist_ok=True)
        moved = []
        for source in (path, self.folder / f"generator_{step:08d}.pt"):
            if not source.exists():
                continue
            target = folder / source.name
            n = 1
            while target.exists():  # an earlier fallback set aside a file of that name: keep both
                target = folder / f"{source.stem}.{n}{source.suffix}"
                n += 1
            source.replace(target)
            moved.append(str(target.relative_to(self.folder.parent)))
        self.set_aside.append({"step": step, "files": moved, "reason": reason})
