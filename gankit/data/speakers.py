"""Multi-speaker corpora (`gankit prepare --format speakers`, `--builtin vc-demo`): ids `<speaker>/<utterance>`,
the speaker table `speakers.tsv` and the validation split that holds out the same sentences for every speaker.
Domain corpora (gankit.data.domains) share the split, the file counts and the table reader and writer: their ids
are `<domain>/<item>` alike, and without texts the split holds out each group's last files.

`speakers.tsv` is a header line `speaker<TAB>label<TAB>group`, then one row per speaker in sorted order with labels
0..N-1 (a voice-conversion model's speaker classes) and a group (`en`/`ru` for vc-demo, empty for plain folders).
"""

from __future__ import annotations

import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from gankit.atomic import write_text
from gankit.errors import DataError

SPEAKERS_FILE = "speakers.tsv"
SPEAKERS_HEADER = "speaker\tlabel\tgroup"
MIN_FILES = 2  # one to train on, one to validate
DEFAULT_MAX_VAL_SENTENCES = 10  # without --val-size: 10 % of the median speaker's files, 1..10


class Speaker(NamedTuple):
    name: str
    label: int
    group: str


def speaker_of(utterance_id: str) -> str:
    return utterance_id.split("/", 1)[0]


def count_files(ids: Sequence[str]) -> Counter[str]:
    """Usable files per speaker."""
    return Counter(speaker_of(i) for i in ids)


def default_val_sentences(ids: Sequence[str]) -> int:
    """Held-out sentences per speaker without --val-size: 10 % of the median speaker's file count, 1..10."""
    median = statistics.median(count_files(ids).values()) if ids else 0
    return max(1, min(DEFAULT_MAX_VAL_SENTENCES, int(median) // 10))


def normalise_text(text: str) -> str:
    """The sentence key: lower case, words only (punctuation and spacing differ between speakers' transcripts)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def split_by_sentence(
    ids: Sequence[str], texts: Mapping[str, str], sentences: int
) -> tuple[list[str], list[str]]:
    """(train, val) ids, sorted: the same sentences held out for every speaker that read them.

    Utterances are grouped by normalised text; one without text is a sentence of its own. Sentences are taken in
    order of how many speakers read them (most first; ties: the one whose utterance name sorts last first), and a
    sentence is held out — for every speaker who read it — while one of those speakers still has fewer than
    `sentences` held out, unless that would leave one of them nothing to train on. So a corpus read from one
    script holds out the same `sentences` sentences everywhere (parallel pairs for every speaker pair), and one
    without texts holds out each speaker's last `sentences` utterances in sorted order.
    """
    if sentences < 0:
        raise DataError(f"--val-size must be ≥ 0, got {sentences}")
    keyed: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for utterance_id in sorted(ids):
        text = normalise_text(texts.get(utterance_id, ""))
        key = ("t", text) if text else ("u", utterance_id)
        keyed[speaker_of(utterance_id)][key].append(utterance_id)
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    last_name: dict[tuple[str, str], str] = {}
    for speaker, by_key in keyed.items():
        for key, utterances in by_key.items():
            holders[key].append(speaker)
            name = max(u.split("/", 1)[1] for u in utterances)
            last_name[key] = max(last_name.get(key, ""), name)
    ranked = sorted(holders, key=lambda k: (last_name[k], k), reverse=True)
    ranked.sort(key=lambda k: len(holders[k]), reverse=True)  # stable: ties keep the order above

    held: Counter[str] = Counter()
    val: list[str] = []
    for key in ranked:
        readers = holders[key]
        if all(held[s] >= sentences for s in readers):
            continue
        if any(held[s] + 1 >= len(keyed[s]) for s in readers):
            continue  # a reader's last training sentence
        for speaker in readers:
            held[speaker] += 1
            val += keyed[speaker][key]
    held_out = set(val)
    return sorted(i for i in ids if i not in held_out), sorted(val)


def speaker_table(ids: Sequence[str], groups: Mapping[str, str] | None = None) -> list[Speaker]:
    """The speakers of `ids` in sorted order, labelled 0..N-1, with their group ("" when none is given)."""
    names = sorted(count_files(ids))
    return [Speaker(name, label, (groups or {}).get(name, "")) for label, name in enumerate(names)]


def write_speaker_table(path: str | os.PathLike[str], speakers: Sequence[Speaker]) -> None:
    write_label_table(path, SPEAKERS_HEADER, [(s.name, s.label, s.group) for s in speakers])


def read_speaker_table(path: str | os.PathLike[str]) -> list[Speaker]:
    """The rows of a `speakers.tsv`; DataError naming the file and line when it is not one gankit prepare writes."""
    rows = read_label_table(path, SPEAKERS_HEADER, "speakers")
    return [Speaker(name, int(label), group) for name, label, group in rows]


def write_label_table(path: str | os.PathLike[str], header: str, rows: Sequence[Sequence[object]]) -> None:
    """A group table (`speakers.tsv`, `domains.tsv`): `header`, then one tab-separated line per row."""
    write_text(path, f"{header}\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows))


def read_label_table(path: str | os.PathLike[str], header: str, fmt: str) -> list[list[str]]:
    """The rows of a group table whose first line is `header` (`name<TAB>label[<TAB>…]`), each row's label its
    position 0..N-1; DataError naming the file and line when it is not one `gankit prepare --format fmt` writes."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{p} not found; prepare the corpus with `gankit prepare SRC OUT --format {fmt}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot be read as UTF-8 text ({exc})") from None
    if not lines or lines[0] != header:
        raise DataError(f"{p}: the first line must be the header {header!r}")
    columns = header.split("\t")
    rows: list[list[str]] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(columns) or not fields[0] or not fields[1].isdigit() or int(fields[1]) != len(rows):
            expected = "<TAB>".join([columns[0], str(len(rows)), *columns[2:]])
            raise DataError(f"{p}, line {number}: expected `{expected}`")
        rows.append(fields)
    return rows
