"""Which logged losses the report draws on one plot: a *family* is two or more losses named `<prefix>_<member>`
(a task's per-domain or per-sub-network terms, `g/recon_piano`, `g/recon_cello`; `d/mpd_0`, `d/mpd_1`). The rule
reads names only, so the report needs to know no task (docs/CONTRACTS.md, report)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LossPanel:
    """One loss plot: a single loss (`members` = {name: name}) or a family (`members` = {member: loss name})."""

    name: str  # the loss's name, or the family's prefix ("g/recon")
    members: dict[str, str]

    @property
    def is_family(self) -> bool:
        return len(self.members) > 1


def split_member(name: str) -> tuple[str, str] | None:
    """`g/recon_acoustic_guitar` → (`g/recon`, `acoustic_guitar`): the last path part split at its first `_` (so a
    member may hold underscores); None for a name without one, or with nothing on either side of it."""
    head, slash, last = name.rpartition("/")
    prefix, underscore, member = last.partition("_")
    if not underscore or not prefix or not member:
        return None
    return f"{head}{slash}{prefix}", member


def _common_prefix(members: list[str]) -> str:
    """The `_`-ended start all members share ("bass_" of bass_guitar, bass_clarinet), so labels stay short."""
    shared = members[0]
    for member in members[1:]:
        while not member.startswith(shared):
            shared = shared[:-1]
    shared = shared[: shared.rfind("_") + 1] if "_" in shared else ""
    return shared if all(len(m) > len(shared) for m in members) else ""


def loss_panels(names: Iterable[str]) -> list[LossPanel]:
    """The plots of `names`, in their order: each family where its first member stands, every other loss alone."""
    names = list(names)
    families: dict[str, dict[str, str]] = {}
    for name in names:
        split = split_member(name)
        if split is not None:
            families.setdefault(split[0], {})[split[1]] = name
    panels: list[LossPanel] = []
    placed: set[str] = set()
    for name in names:
        split = split_member(name)
        if split is None or len(families[split[0]]) < 2:
            panels.append(LossPanel(name, {name: name}))
            continue
        prefix = split[0]
        if prefix in placed:
            continue
        placed.add(prefix)
        members = families[prefix]
        shared = _common_prefix(list(members))
        panels.append(LossPanel(f"{prefix}_{shared.removesuffix('_')}" if shared else prefix,
                                {member.removeprefix(shared): loss for member, loss in members.items()}))
    return panels
