"""Reading and writing checkpoint files safely: `torch.load(weights_only=True)` with one-line errors, and
atomic `torch.save`. Shared by the engine, inference and the original-format converters."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit import atomic
from gankit.errors import CheckpointError

# What a file torch.load can read starts with: a zip archive (torch.save since 1.6), or a pickle (PROTO opcode)
# whose first object is the legacy format's magic number 0x1950a86a20f9469cfc6c (LONG1 of 10 bytes), found within
# its first bytes whatever the pickle protocol (a FRAME opcode may come first).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
# How torch's weights-only unpickler names the global it refused (2.4+: "GLOBAL mod.name"; older: "Unsupported class").
_GLOBAL = re.compile(r"(?:GLOBAL|Unsupported class) ([A-Za-z_][\w.]*)")
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


def _not_torch_file(p: Path) -> str | None:
    """Why `p` cannot be a PyTorch file at all (from its first bytes), or None when it may be one."""
    try:
        with p.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None  # torch.load reports it
    if not head or head.startswith(_ZIP_MAGIC) or head[257:262] == b"ustar":  # tar: torch's oldest format
        return None  # empty: torch.load says so, as for any cut-short file
    if head.startswith(b"\x80") and _LEGACY_MAGIC in head[:32]:
        return None
    if head.startswith(b"\x80"):
        return "a plain Python pickle, not a PyTorch file"
    return f"neither a PyTorch zip archive nor a legacy PyTorch file (it starts with bytes {head[:8].hex(' ')})"


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)` with one-line errors for missing, corrupt and code-carrying files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file.")
    problem = _not_torch_file(p)
    if problem is not None:
        raise CheckpointError(f"{p}: not a checkpoint — {problem}; pass a .pt file written by gankit or torch.save.")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found is None:  # the unpickler met something it cannot read at all: a damaged file, not a refusal
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()
                     and not line.strip().startswith(_BOILERPLATE)]
            first = lines[0] if lines else type(exc).__name__
            raise CheckpointError(f"{p}: not a readable checkpoint (truncated or corrupt?): {first[:200]}") from None
        raise CheckpointError(
            f"{p}: refused to load — it holds pickled Python objects that could run code when loaded: it would "
            f"import and call {found.group(1)}. gankit only reads tensors and plain values; re-save it from trusted "
            "code as a plain state dict."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        # KeyError/IndexError: a legacy-format file whose pickle stream is damaged (a memo reference to nothing).
        detail = str(exc) if isinstance(exc, (RuntimeError, OSError, ValueError)) and str(exc) else (
            "the file ends early" if isinstance(exc, EOFError) else f"{type(exc).__name__} {exc}")
        raise CheckpointError(f"{p}: not a readable checkpoint (truncated or corrupt?): {detail[:200]}") from None


def save_torch(path: Path, obj: Any) -> None:
    """Write `obj` with torch.save atomically (temporary file, fsync, rename)."""
    with atomic.atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


# What a loaded checkpoint object is, judged by its keys (the file name is only a hint).
GANKIT_GENERATOR = "gankit_generator"
GANKIT_STATE = "gankit_state"
ORIGINAL_GENERATOR = "original_generator"  # HiFi-GAN's g_XXXXXXXX: {"generator": state_dict}
ORIGINAL_DISCRIMINATORS = "original_discriminators"  # HiFi-GAN's do_XXXXXXXX: mpd, msd, optimizers, steps
ORIGINAL_MELGAN_GENERATOR = "original_melgan_generator"  # melgan-neurips netG.pt: a bare state dict, model.N.…


def checkpoint_kind(obj: Any, path: str | Path) -> str:
    """Classify a loaded checkpoint; anything unrecognised is a CheckpointError that says what was found."""
    if isinstance(obj, dict):
        if obj.get("format") == "gankit":
            kind = obj.get("kind")
            if kind == "generator":
                return GANKIT_GENERATOR
            if kind == "train_state":
                return GANKIT_STATE
        if set(obj) == {"generator"} and isinstance(obj["generator"], dict):
            return ORIGINAL_GENERATOR
        if {"mpd", "msd"} <= set(obj):
            return ORIGINAL_DISCRIMINATORS
        if obj and all(isinstance(k, str) and k.startswith("model.") for k in obj):
            return ORIGINAL_MELGAN_GENERATOR
    keys = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(
        f"{path}: not a checkpoint gankit knows (found {keys}); expected a gankit generator or training state, "
        "an original HiFi-GAN g_XXXXXXXX / do_XXXXXXXX file, or an original MelGAN netG.pt."
    )


def state_dict_mismatch(expected: Mapping[str, Any], given: Mapping[str, Any], limit: int = 4) -> str | None:
    """A one-line description of how `given` differs from `expected` (names and shapes), or None."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)}≠{tuple(expected[k].shape)}"
        for k in expected
        if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)):
        if names:
            more = f" … (+{len(names) - limit})" if len(names) > limit else ""
            parts.append(f"{label}: {', '.join(names[:limit])}{more}")
    return "; ".join(parts) or None


def load_state_strict(module: nn.Module, state: Mapping[str, Any], what: str, source: str | Path) -> None:
    """`module.load_state_dict(strict=True)`, or a CheckpointError naming the keys that differ."""
    problem = state_dict_mismatch(module.state_dict(), state)
    if problem is not None:
        raise CheckpointError(
            f"{source}: its {what} does not fit this model's architecture ({problem}); "
            "use a checkpoint made with the same model config."
        )
    module.load_state_dict(state, strict=True)
