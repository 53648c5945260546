"""File lists in the original HiFi-GAN format: one `id|text` line per utterance, UTF-8.

An id names `<wav_dir>/<id>.wav`; ids may contain "/" (sub-folders) but never leave the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from gankit.atomic import write_text
from gankit.errors import DataError


class FileListEntry(NamedTuple):
    id: str
    text: str = ""


def id_problem(utterance_id: str) -> str | None:
    """Why `utterance_id` cannot name a file under the corpus folder, or None when it can."""
    if not utterance_id:
        return "the id is empty"
    if any(c in utterance_id for c in "|\\") or any(ord(c) < 32 for c in utterance_id):
        return f"the id {utterance_id!r} contains '|', '\\' or a control character"
    parts = utterance_id.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"the id {utterance_id!r} is absolute or has an empty, '.' or '..' path part"
    return None


def read_filelist(path: str | os.PathLike[str]) -> list[FileListEntry]:
    """The entries of an `id|text` list (text may be missing, as in lists with ids only).

    Blank lines are ignored; any other bad line (invalid UTF-8, unusable or repeated id) raises a
    `DataError` naming the file and the line, because training on a silently shortened list hides mistakes.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"file list {p} not found; make one with `gankit prepare SRC OUT` and set data.dir=OUT, "
            "or point data.train_list/data.val_list at existing lists"
        ) from None
    except OSError as exc:
        raise DataError(f"file list {p} cannot be read ({exc.strerror or exc}); check its permissions") from None
    entries: list[FileListEntry] = []
    first_line: dict[str, int] = {}
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if number == 1:
            line_bytes = line_bytes.removeprefix(b"\xef\xbb\xbf")  # editors on Windows add a BOM
        try:
            line = line_bytes.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{p}, line {number}: not valid UTF-8; re-save the list as UTF-8") from None
        if not line.strip():
            continue
        utterance_id, _, text = line.partition("|")
        utterance_id = utterance_id.strip()
        problem = id_problem(utterance_id)
        if problem is not None:
            raise DataError(f"{p}, line {number}: {problem}; lines must read `id|text`")
        if utterance_id in first_line:
            raise DataError(
                f"{p}, line {number}: id {utterance_id!r} is already on line {first_line[utterance_id]}; "
                "remove the repeated line"
            )
        first_line[utterance_id] = number
        entries.append(FileListEntry(utterance_id, text.strip()))
    return entries


def write_filelist(path: str | os.PathLike[str], entries: Iterable[FileListEntry]) -> None:
    """Write `id|text` lines atomically; line breaks inside a text become spaces so each entry stays one line."""
    lines = []
    for entry in entries:
        problem = id_problem(entry.id)
        if problem is not None:
            raise DataError(f"cannot write {path}: {problem}")
        text = " ".join(entry.text.splitlines())
        lines.append(f"{entry.id}|{text}\n")
    write_text(path, "".join(lines))
