"""benchmarks/discriminator_probe.py: the held-out AUC it reports and its per-sub-discriminator readout."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.discriminator_probe import auc, probe
from gankit.tasks import build_task
from tests.support.training import tiny_config


def test_auc_counts_ordered_pairs_and_half_the_ties() -> None:
    assert auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert auc([1.0, 3.0], [2.0]) == 0.5


def test_a_generator_that_returns_the_real_crops_leaves_every_sub_discriminator_without_information(
    tiny_corpus: Path,
) -> None:
    """Generated = real: every score equal, so gap 0, AUC 0.5 and the loss the same for real and generated; with
    silence instead the scores (of a fresh discriminator) differ somewhere."""
    task = build_task(tiny_config(tiny_corpus))
    torch.manual_seed(0)
    nets = task.build_networks()
    real = 0.1 * torch.randn(6, 4096)
    nets["generator"] = lambda _mel: real.unsqueeze(1)
    rows = probe(task, nets, real)
    assert set(rows) == set(task.discriminator_keys) and sum(len(v) for v in rows.values()) == 8
    for subs in rows.values():
        for r in subs:
            assert r["gap"] == 0.0 and r["auc"] == 0.5 and r["real"] == r["fake"], r
    nets["generator"] = lambda _mel: torch.zeros(len(real), 1, real.shape[-1])
    silent = probe(task, nets, real)
    assert any(r["gap"] != 0.0 for subs in silent.values() for r in subs)
