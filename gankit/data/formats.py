"""Corpus layouts `gankit prepare` reads: each reader lists (id, audio path, text) and the problems its
metadata has, which `prepare` reports as skips instead of stopping.

- ljspeech: `metadata.csv` (`id|text|normalized`; the normalized text when present) + `wavs/<id>.wav`
- ruslan:   `metadata_RUSLAN_22200.csv` (`id|text`) + `ruslan_dataset/<id>.wav`
- festvox:  `etc/txt.done.data` (`( id "text" )`) + `wav/<id>.wav`
- folder:   every .wav/.flac/.ogg under SRC; id = relative path without extension, no text
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from gankit.data.filelist import id_problem
from gankit.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

# Skip reasons, in the order reports list them.
REASONS: dict[str, str] = {
    "missing": "missing file",
    "unreadable": "unreadable",
    "truncated": "truncated/corrupt",
    "empty": "empty",
    "silent": "all-silent",
    "too_short": "too short",
    "bad_metadata": "bad metadata line",
    "invalid_utf8": "invalid UTF-8 in metadata",
    "bad_id": "unusable id",
    "duplicate_id": "repeated id",
}


class SourceItem(NamedTuple):
    id: str
    path: Path
    text: str


class Skip(NamedTuple):
    """Something `prepare` could not use: `source` is the file (or `metadata:line`) and `detail` says why."""

    id: str
    source: str
    reason: str
    detail: str


@dataclass
class CorpusListing:
    items: list[SourceItem] = field(default_factory=list)
    problems: list[Skip] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, repr=False)

    def add(self, utterance_id: str, path: Path, text: str, where: str) -> None:
        """Add an item unless its id is unusable, repeated, or has no audio file (each reported as a skip)."""
        problem = id_problem(utterance_id)
        if problem is not None:
            self.problems.append(Skip(utterance_id, where, "bad_id", problem))
        elif utterance_id in self._ids:
            self.problems.append(Skip(utterance_id, where, "duplicate_id", f"id {utterance_id!r} is listed twice"))
        elif not path.is_file():
            self.problems.append(Skip(utterance_id, str(path), "missing", f"listed in {where} but the file is absent"))
        else:
            self._ids.add(utterance_id)
            self.items.append(SourceItem(utterance_id, path, text))


def _metadata_lines(path: Path, listing: CorpusListing) -> Iterator[tuple[str, str]]:
    """(where, line) for each non-blank UTF-8 line of `path`; lines that fail to decode become skips."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} not found; check SRC and --format (each format has its own metadata file)") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        where = f"{path.name}:{number}"
        if number == 1:
            line_bytes = line_bytes.removeprefix(b"\xef\xbb\xbf")
        try:
            line = line_bytes.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            listing.problems.append(Skip("", where, "invalid_utf8", f"byte {exc.start} is not UTF-8"))
            continue
        if line.strip():
            yield where, line


def _delimited(metadata: str, wav_folder: str, min_fields: int, layout: str) -> Callable[[Path], CorpusListing]:
    """A reader of `id|text[|normalized]` metadata; the last non-empty text field wins (normalized text)."""

    def read(src: Path) -> CorpusListing:
        listing = CorpusListing()
        for where, line in _metadata_lines(src / metadata, listing):
            fields = line.split("|")
            if len(fields) < min_fields or not fields[0].strip():
                listing.problems.append(
                    Skip(fields[0].strip(), where, "bad_metadata", f"{len(fields)} field(s), expected {layout}")
                )
                continue
            texts = [f.strip() for f in fields[1:3] if f.strip()]
            utterance_id = fields[0].strip()
            listing.add(utterance_id, src / wav_folder / f"{utterance_id}.wav", texts[-1] if texts else "", where)
        return listing

    return read


_FESTVOX_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


def read_festvox(src: Path) -> CorpusListing:
    listing = CorpusListing()
    for where, line in _metadata_lines(src / "etc" / "txt.done.data", listing):
        match = _FESTVOX_LINE.match(line.strip())
        if match is None:
            listing.problems.append(Skip("", where, "bad_metadata", 'expected a line like ( ru_0001 "text" )'))
            continue
        utterance_id, text = match.group(1), match.group(2).replace('\\"', '"')
        listing.add(utterance_id, src / "wav" / f"{utterance_id}.wav", text, where)
    return listing


def read_folder(src: Path, exclude: Path | None = None) -> CorpusListing:
    """Every audio file under `src` (hidden files and folders, and `exclude`, left out), in sorted order."""
    listing = CorpusListing()
    excluded = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(src):
        here = Path(root)
        # Hidden entries are editor/OS droppings (macOS "._x.wav"); the output folder must not feed itself.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != excluded)
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            utterance_id = path.relative_to(src).with_suffix("").as_posix()
            listing.add(utterance_id, path, "", str(path))
    return listing


READERS: dict[str, Callable[[Path], CorpusListing]] = {
    "ljspeech": _delimited("metadata.csv", "wavs", 2, "id|text|normalized"),
    "ruslan": _delimited("metadata_RUSLAN_22200.csv", "ruslan_dataset", 2, "id|text"),
    "festvox": read_festvox,
}
FORMATS: tuple[str, ...] = (*READERS, "folder")


def read_corpus(fmt: str, src: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None) -> CorpusListing:
    """The items and metadata problems of corpus `src` in layout `fmt`; `exclude` is a folder to leave out."""
    root = Path(src)
    if not root.is_dir():
        raise DataError(f"corpus folder {root} not found; check SRC")
    if fmt == "folder":
        return read_folder(root, Path(exclude) if exclude is not None else None)
    if fmt not in READERS:
        raise DataError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return READERS[fmt](root)
