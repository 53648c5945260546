"""Corpus layouts `gankit prepare` reads: each reader lists (id, audio path, text) and the problems its
metadata has, which `prepare` reports as skips instead of stopping.

- ljspeech: `metadata.csv` (`id|text|normalized`; the normalized text when present) + `wavs/<id>.wav`
- ruslan:   `metadata_RUSLAN_22200.csv` (`id|text`) + `ruslan_dataset/<id>.wav`
- festvox:  `etc/txt.done.data` (`( id "text" )`) + `wav/<id>.wav`
- folder:   every .wav/.flac/.ogg under SRC; id = relative path without extension, no text
- speakers: a folder per speaker (`read_speakers`); id = `<speaker>/<path below it without extension>`, the text
            from a transcript beside the audio or in a VCTK-style `txt/` tree, else empty
- domains:  a folder per domain (`read_domains`: an instrument, a genre); id = `<domain>/<path below it without
            extension>`, no text

speakers and domains are both corpora of group folders (`GroupLayout`, `read_group_folders`): one reader, one
skip/split/table machinery in `prepare`, differing in the words, the table file and whether transcripts are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from gankit.data.domains import DOMAINS_FILE
from gankit.data.filelist import id_problem
from gankit.data.speakers import SPEAKERS_FILE
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
    "no_speaker": "not in a speaker folder",
    "few_files": "speaker with too few files",
    "no_domain": "not in a domain folder",
    "few_domain_files": "domain with too few files",
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


def speaker_root(src: Path, exclude: Path | None = None) -> Path:
    """The folder whose subfolders are the speakers: `src`, or — while the root holds no audio file itself and
    exactly one of its subfolders holds audio at any depth (VCTK's `wav48/`) — that subfolder."""
    root, seen = src, {src.resolve()}
    while not _audio_files(root):
        holders = [d for d in _subfolders(root, exclude) if _holds_audio(d, exclude)]
        if len(holders) != 1 or _audio_files(holders[0]) or holders[0].resolve() in seen:
            break
        root = holders[0]
        seen.add(root.resolve())  # a link back up must not loop
    return root


def _subfolders(folder: Path, exclude: Path | None) -> list[Path]:
    excluded = exclude.resolve() if exclude is not None else None
    return sorted(d for d in folder.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and d.resolve() != excluded)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_audio(p.name))


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS


def _holds_audio(folder: Path, exclude: Path | None) -> bool:
    """Whether `read_folder(folder)` would find audio: os.walk, so links below `folder` are not followed."""
    excluded = exclude.resolve() if exclude is not None else None
    for here, dirs, files in os.walk(folder):
        if any(_is_audio(name) for name in files):
            return True
        dirs[:] = [d for d in dirs if not d.startswith(".") and (Path(here) / d).resolve() != excluded]
    return False


_VCTK_MIC = re.compile(r"_mic\d+$")  # VCTK 0.92: p225_001_mic1.flac reads txt/p225/p225_001.txt


def _transcript(audio: Path, speaker_dir: Path, txt_tree: Path | None) -> Path | None:
    """The transcript of `audio`: `<utt>.txt` beside it, else `txt_tree/<speaker>/<utt>.txt` (VCTK)."""
    beside = audio.with_suffix(".txt")
    if beside.is_file():
        return beside
    if txt_tree is None:
        return None
    relative = audio.relative_to(speaker_dir).with_suffix("")
    for stem in dict.fromkeys((relative.name, _VCTK_MIC.sub("", relative.name))):
        candidate = txt_tree / speaker_dir.name / relative.parent / f"{stem}.txt"
        if candidate.is_file():
            return candidate
    return None


def _transcript_tree(src: Path, root: Path, exclude: Path | None) -> Path | None:
    """A `txt/` folder without audio beside the speaker folders, else beside the speaker root (below SRC)."""
    beside = root / "txt"
    if beside.is_dir() and not _holds_audio(beside, exclude):
        return beside
    above = root.parent / "txt"
    return above if root != src and above.is_dir() else None


class GroupLayout(NamedTuple):
    """A corpus of group folders: each folder below the root is one group (a speaker, a domain) and every audio file
    below it, at any depth, one item `<group>/<path below the group folder, without extension>`."""

    format: str  # the --format name
    noun: str  # what a group is, for messages: "speaker"
    table_file: str  # the group table prepare writes into OUT
    loose_reason: str  # skip reason of audio lying in the root, in no group's folder
    few_reason: str  # skip reason of a group with fewer usable files than one to train on and one to validate
    descend: bool  # the root may lie below SRC (`speaker_root`: VCTK's wav48/), else SRC's own folders are groups
    transcripts: bool  # read a transcript per file (`_transcript`), else every text is empty


SPEAKERS = GroupLayout("speakers", "speaker", SPEAKERS_FILE, "no_speaker", "few_files", descend=True, transcripts=True)
# Domains (instruments, genres) are taken as SRC's folders exactly: one domain folder holding subfolders must stay
# one domain, not become its subfolders as speaker_root would make it.
DOMAINS = GroupLayout("domains", "domain", DOMAINS_FILE, "no_domain", "few_domain_files", descend=False,
                      transcripts=False)
GROUP_LAYOUTS: dict[str, GroupLayout] = {layout.format: layout for layout in (SPEAKERS, DOMAINS)}


def read_group_folders(src: Path, layout: GroupLayout, exclude: Path | None = None) -> CorpusListing:
    """The items of a corpus of group folders (`layout`): each subfolder of the root is a group, and every audio file
    below it (any depth) one item. Audio lying in the root itself belongs to no group and is reported. With
    `layout.transcripts`, the text of `<utt>.txt` beside the audio or of `txt/<group>/<utt>.txt` (see
    `read_speakers`), else empty."""
    listing = CorpusListing()
    root = speaker_root(src, exclude) if layout.descend else src
    for path in _audio_files(root):
        listing.problems.append(Skip(path.relative_to(src).with_suffix("").as_posix(), str(path), layout.loose_reason,
                                     f"lies in {root}, not in a {layout.noun} folder below it"))
    txt_tree = _transcript_tree(src, root, exclude) if layout.transcripts else None
    for group_dir in _subfolders(root, exclude):
        files = read_folder(group_dir, exclude)
        listing.problems += [p._replace(id=f"{group_dir.name}/{p.id}") for p in files.problems]
        for item in files.items:
            utterance_id = f"{group_dir.name}/{item.id}"
            transcript = _transcript(item.path, group_dir, txt_tree) if layout.transcripts else None
            try:
                text = "" if transcript is None else " ".join(transcript.read_text(encoding="utf-8").split())
            except UnicodeDecodeError as exc:
                listing.problems.append(Skip(utterance_id, str(transcript), "invalid_utf8",
                                             f"transcript byte {exc.start} is not UTF-8"))
                continue
            listing.add(utterance_id, item.path, text, str(item.path))
    return listing


def read_speakers(src: Path, exclude: Path | None = None) -> CorpusListing:
    """A corpus of speaker folders: each subfolder of `speaker_root(src)` is a speaker, and every audio file below it
    (any depth) one utterance `<speaker>/<path below the speaker folder, without extension>`. Audio lying in the
    root itself belongs to no speaker and is reported. A transcript gives the text: `<utt>.txt` beside the audio, or
    `txt/<speaker>/<utt>.txt` in a `txt/` folder without audio beside the speaker folders or (when the root is
    below SRC) beside the root, as VCTK's `txt/` beside `wav48/`."""
    return read_group_folders(src, SPEAKERS, exclude)


def read_domains(src: Path, exclude: Path | None = None) -> CorpusListing:
    """A corpus of domain folders (instruments, genres): each subfolder of `src` is a domain, and every audio file
    below it (any depth) one item `<domain>/<path below the domain folder, without extension>`, without text.
    Audio lying in `src` itself belongs to no domain and is reported."""
    return read_group_folders(src, DOMAINS, exclude)


READERS: dict[str, Callable[[Path], CorpusListing]] = {
    "ljspeech": _delimited("metadata.csv", "wavs", 2, "id|text|normalized"),
    "ruslan": _delimited("metadata_RUSLAN_22200.csv", "ruslan_dataset", 2, "id|text"),
    "festvox": read_festvox,
}
FORMATS: tuple[str, ...] = (*READERS, "folder", *GROUP_LAYOUTS)


def read_corpus(fmt: str, src: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None) -> CorpusListing:
    """The items and metadata problems of corpus `src` in layout `fmt`; `exclude` is a folder to leave out."""
    root = Path(src)
    if not root.is_dir():
        raise DataError(f"corpus folder {root} not found; check SRC")
    excluded = Path(exclude) if exclude is not None else None
    if fmt == "folder":
        return read_folder(root, excluded)
    if fmt in GROUP_LAYOUTS:
        return read_group_folders(root, GROUP_LAYOUTS[fmt], excluded)
    if fmt not in READERS:
        raise DataError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return READERS[fmt](root)
