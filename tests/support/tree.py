"""Snapshots of a folder tree for tests that must prove a command changed nothing it should not have."""

from __future__ import annotations

import hashlib
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `root` (folders appear as "<dir>"; links by their target)."""
    tree: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            tree[rel] = f"<link {path.readlink()}>"
        elif path.is_dir():
            tree[rel] = "<dir>"
        elif path.is_file():
            tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """What differs: files removed, changed and added (each sorted)."""
    return {
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k]),
        "added": sorted(set(after) - set(before)),
    }


def assert_unchanged(before: dict[str, str], after: dict[str, str], allowed_new: tuple[str, ...] = ()) -> None:
    """Nothing removed or changed; only paths starting with one of `allowed_new` may have appeared."""
    diff = changes(before, after)
    unexpected = [p for p in diff["added"] if not p.startswith(allowed_new)] if allowed_new else diff["added"]
    assert not diff["removed"] and not diff["changed"] and not unexpected, diff
