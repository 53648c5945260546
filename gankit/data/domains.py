"""Domain corpora for music translation (`gankit prepare --format domains`, `--builtin instruments`): ids
`<domain>/<item>` and the domain table `domains.tsv`, a header line `domain<TAB>label`, then one row per domain in
sorted order with labels 0..N-1 (a translation model's domain classes, or its decoder index).

The split and the skip of domains with too few files are the speaker corpora's (gankit.data.speakers, through
`gankit.data.prepare`): with no texts, each domain holds out its last `--val-size` files in sorted order, so a corpus
whose domains hold the same item names (every instrument playing the same phrases) holds out the same items.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

from gankit.data.speakers import count_files, read_label_table, write_label_table

DOMAINS_FILE = "domains.tsv"
DOMAINS_HEADER = "domain\tlabel"


class Domain(NamedTuple):
    name: str
    label: int


def domain_table(ids: Sequence[str]) -> list[Domain]:
    """The domains of `ids` (`<domain>/<item>`) in sorted order, labelled 0..N-1."""
    return [Domain(name, label) for label, name in enumerate(sorted(count_files(ids)))]


def write_domain_table(path: str | os.PathLike[str], domains: Sequence[Domain]) -> None:
    write_label_table(path, DOMAINS_HEADER, [(d.name, d.label) for d in domains])


def read_domain_table(path: str | os.PathLike[str]) -> list[Domain]:
    """The rows of a `domains.tsv`; DataError naming the file and line when it is not one gankit prepare writes."""
    return [Domain(name, int(label)) for name, label in read_label_table(path, DOMAINS_HEADER, "domains")]
