"""Errors whose message is shown to the user as one line (which file, what is wrong, what to do), the one-line
descriptions of the operating-system errors a user can cause, and the output-path checks that find those early."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class GankitError(Exception):
    """Base of every user-facing error; the CLI prints it without a traceback and exits 2."""


class AudioReadError(GankitError):
    """An audio file is missing, unreadable, truncated, empty or otherwise unusable."""


class ConfigError(GankitError):
    """A configuration is invalid or conflicts with a saved run."""


class CheckpointError(GankitError):
    """A checkpoint is missing, unsafe, corrupt, or from another architecture."""


class DataError(GankitError):
    """A corpus, metadata file or file list cannot be used."""


class MelInputError(GankitError):
    """A mel spectrogram given for vocoding has the wrong shape, band count, dtype or values."""


class OutputPathError(GankitError):
    """An output path cannot be written: a file where a folder is needed (or the reverse), or no permission."""


# --- operating-system errors a user causes ------------------------------------------------------------------

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def describe_os_error(exc: OSError) -> str | None:
    """`<path>: what is wrong; what to do` for an OS error a user causes (permissions, a file or folder in the
    way, a full disk, a read-only file system), or None for any other (a bug: its traceback is wanted)."""
    # os.replace/rename name the temporary file first and the target second; the target is what the user chose.
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    if exc.errno in _DISK_FULL:
        what = "no space left on the device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return f"{where}{what}; free some space or write somewhere else"
    if exc.errno == errno.EROFS:
        return f"{where}on a read-only file system; choose a writable location"
    if isinstance(exc, PermissionError):
        return f"{where}permission denied; check its permissions (and its folder's), or choose another path"
    if isinstance(exc, FileExistsError):
        return f"{where}already exists and is in the way (a file where a folder is needed?); move it or choose " \
               "another path"
    if isinstance(exc, IsADirectoryError):
        return f"{where}is a folder where a file is needed; give a file path, or move the folder"
    if isinstance(exc, NotADirectoryError):
        return f"{where}a part of this path is a file where a folder is needed; choose another path"
    return None


def describe_decode_error(exc: UnicodeDecodeError, path: str | os.PathLike[str] | None) -> str:
    """A text file (a config, a list, a metadata file) that is not valid UTF-8, in one line."""
    where = f"{os.fsdecode(path)}: " if path is not None else "a text file gankit read: "
    byte = exc.object[exc.start:exc.start + 1].hex() if isinstance(exc.object, (bytes, bytearray)) else "?"
    return (f"{where}not valid {exc.encoding.upper()} text (byte 0x{byte} at offset {exc.start}); re-save it as "
            "UTF-8")


# --- output paths, checked before any work whose result they would hold ---------------------------------------


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in the existing folder `folder`, or None when they can."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    return "is on a read-only file system" if read_only else "is not writable (permission denied)"


def check_output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """`path` is a folder gankit can write in, or can make: OutputPathError naming `what` (e.g. "--out-dir")
    when it, or a folder it would be made in, is a file, or is not writable. Nothing is created."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{p}: {what} is a file, not a folder; choose another path (or move the file)")
    base = _existing_ancestor(p)
    if not base.is_dir():
        raise OutputPathError(f"{p}: {what} would be made inside {base}, which is a file, not a folder; choose "
                              "another path")
    problem = _unwritable(base)
    if problem is not None:
        if base == p:
            raise OutputPathError(f"{p}: {what} {problem}; choose another path or fix its permissions")
        raise OutputPathError(f"{p}: {what} cannot be made there: {base} {problem}; choose another path or fix "
                              "the permissions")
    return p


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """`path` is a file gankit can write (atomically: its folder must be writable, or makeable): OutputPathError
    naming `what` (e.g. "--out") when it is a folder, or its folder cannot hold it. Nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{p}: {what} is a folder, but a file is written there; give a file path (e.g. "
                              f"{p / 'results.json'})")
    check_output_dir(p.parent, f"the folder of {what}")
    return p
