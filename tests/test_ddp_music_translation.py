"""Universal Music Translation under DistributedDataParallel: 2 Gloo ranks on CPU (torchrun, as a user starts it)
against one process with the global batch, on the synthetic 3-domain corpus at tests/test_music_translation.py's
TINY sizes.

What makes it more than the other DDP tests: five networks in two groups ("d": the confusion classifier; "g": the
encoder and one decoder per domain), each decoder reading only its own domain's rows of the batch, and the last
decoder layer's `residual` convolution built with requires_grad False (DDP must leave it out of its buckets; the
engine's DDP does not look for unused parameters). The two sides compute the same thing: the domain-balanced sampler
gives every rank one segment of each domain (3 per rank, 6 in the single process: the union, with the same
`SampleKey` per item, checked below without a launch); each item's crop, augmented stretch and pitch shift come from
its key; every loss is a mean over the batch, and each decoder's share of the reconstruction is a sum over its rows
divided by the whole batch's samples, so the ranks' averaged gradients are the global batch's. Both sides run
PyTorch's native CPU kernels (oneDNN picks its convolution algorithm by batch size; see tests/test_ddp.py).

Tolerances, as tests/test_ddp_stargan_vc.py's: every logged loss within rtol 1e-3 (the classifier's within 1e-4),
gradient norms within 1 %; every weight of every network within atol 1e-4 after each of the 3 steps; each rank's
own copy identical to the other's. Once with one micro-batch a step and once with 2 (the first under `no_sync`).
Seen: weights within 3e-8, losses and gradient norms within 2e-7 (relative). Adam moves every weight by about
±lr = 1e-3 a step here, so the bound is a tenth of one step; one process on rank 0's share alone (batch 3) ends
2.5e-3 to 5.9e-3 away in every network, most of their tensors beyond 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.config import load_config
from gankit.data.sampler import DomainBalancedSampler
from gankit.engine.jsonl import read_jsonl
from gankit.tasks import build_task
from gankit.training import train
from tests.support.ddp_worker import RANK_STATES
from tests.support.domains import write_domain_corpus
from tests.test_ddp import assert_losses_close, state, torchrun
from tests.test_music_translation import TINY

pytestmark = pytest.mark.ddp

RANKS = 2
STEPS = 3
DOMAINS = 3
PER_RANK = 3  # one segment of each of the 3 domains
LAST_RESIDUAL = "layers.2.residual"  # the last of TINY's 3 decoder layers (1 block): built frozen
NETWORKS = {"encoder", "classifier", "decoder_saw", "decoder_sine", "decoder_square"}
# A checkpoint after every step (all kept), no validation (not what is compared). The unused-parameter probe stays
# on: it must not name the frozen residual convolution.
SETTINGS = (*TINY, f"train.max_steps={STEPS}", "train.ckpt_every=1", f"train.keep_last={STEPS}",
            "train.val_every=1000")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_domain_corpus(tmp_path_factory.mktemp("domains") / "data")


def mt_config(corpus: Path, *overrides: str) -> dict[str, Any]:
    _, config = load_config("music_translation_tiny", [f"data.dir={corpus}", "device=cpu", *SETTINGS, *overrides])
    return config


def train_in_process(config: dict[str, Any], run: Path) -> int:
    """One process in this interpreter with native kernels, as the ranks run; threads and kernels restored."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return train(config, run, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


@pytest.mark.parametrize("accum", [1, 2])
def test_every_rank_gets_every_domain_and_the_union_is_the_single_process_batch(corpus: Path, accum: int) -> None:
    """The sampler as the engine builds it (`item_domains`, min_batches = micro-batches a step), no launch."""
    task = build_task(mt_config(corpus))
    dataset, _ = task.build_datasets(seed=1234, log=lambda _: None)
    ranks = [DomainBalancedSampler(dataset.item_domains, PER_RANK, 1234, rank=r, world_size=RANKS,
                                   min_batches=accum) for r in range(RANKS)]
    one = DomainBalancedSampler(dataset.item_domains, RANKS * PER_RANK, 1234, min_batches=accum)
    for epoch in range(STEPS * accum):
        per_rank = [list(s.epoch_batches(epoch)) for s in ranks]
        single = list(one.epoch_batches(epoch))
        assert len(single) == len(per_rank[0]) == len(per_rank[1]) >= accum
        for j, batch in enumerate(single):
            shares = [b[j] for b in per_rank]
            for share in shares:
                assert sorted(dataset.item_domains[k.index] for k in share) == list(range(DOMAINS))
            assert sorted(k for share in shares for k in share) == sorted(batch)
    # The augmentation (stretch, shift) is drawn from the key: the same item whichever batch it lands in.
    key = next(ranks[1].epoch_batches(0))[2]
    a, b = dataset[key], dataset[key]
    assert not torch.equal(a["augmented"], a["audio"])
    assert torch.equal(a["augmented"], b["augmented"]) and torch.equal(a["audio"], b["audio"])


@pytest.mark.slow  # 11-16 s each on 2 shared cores: the 2-rank launch, then one process
@pytest.mark.parametrize("accum", [1, 2])
def test_two_ranks_train_every_decoder_as_one_process_with_the_global_batch(corpus: Path, tmp_path: Path,
                                                                            accum: int) -> None:
    ddp_run, one_run = tmp_path / "ddp", tmp_path / "one"
    accumulate = f"train.grad_accum={accum}"
    args = ["train", "music_translation_tiny", "--run-dir", str(ddp_run), "--no-progress", f"data.dir={corpus}",
            "device=cpu", *SETTINGS, accumulate, f"data.batch_size={PER_RANK}"]
    done = torchrun("tests.support.ddp_worker", args,
                    env={"GANKIT_TEST_NO_MKLDNN": "1", "GANKIT_TEST_RANK_STATES": "1"})
    assert done.returncode == 0, done.stdout[-4000:]
    assert json.loads((ddp_run / "environment.json").read_text())["world_size"] == RANKS
    one_config = mt_config(corpus, accumulate, f"data.batch_size={RANKS * PER_RANK}")
    assert train_in_process(one_config, one_run) == 0

    # The probe did not call the frozen residual convolution (or anything else) unused.
    for run in (ddp_run, one_run):
        assert [e["kind"] for e in read_jsonl(run / "events.jsonl")] == []

    # Logged losses are the ranks' average, i.e. the global batch's; every domain's reconstruction was logged.
    ddp_rows, one_rows = list(read_jsonl(ddp_run / "metrics.jsonl")), list(read_jsonl(one_run / "metrics.jsonl"))
    assert [r["step"] for r in one_rows] == list(range(1, STEPS + 1))
    assert_losses_close(ddp_rows, one_rows)
    for row, ref in zip(ddp_rows, one_rows, strict=True):
        assert {"loss/g/recon_saw", "loss/g/recon_sine", "loss/g/recon_square"} <= set(ref)
        for key in (k for k in ref if k.startswith("loss/d/")):
            assert row[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), (row["step"], key)

    torch.manual_seed(1234)  # the runs' seed: their starting weights
    start = {k: n.state_dict() for k, n in build_task(one_config).build_networks().items()}
    for step in range(1, STEPS + 1):
        ddp, one = state(ddp_run, step), state(one_run, step)
        assert (ddp["step"], ddp["epoch"], ddp["samples_in_epoch"]) == (one["step"], one["epoch"],
                                                                         one["samples_in_epoch"])
        assert ddp["networks"].keys() == one["networks"].keys() == NETWORKS
        for net, tensors in one["networks"].items():
            assert ddp["networks"][net].keys() == tensors.keys()
            for key, value in tensors.items():
                torch.testing.assert_close(ddp["networks"][net][key], value, rtol=0, atol=1e-4,
                                           msg=lambda m, name=f"{net}.{key}", s=step: f"step {s} {name}: {m}")
        # Every rank's own copy, weights and buffers, stayed the same as rank 0's.
        ranks = [torch.load(ddp_run / RANK_STATES / f"rank{r}_{step:08d}.pt", weights_only=True) for r in range(RANKS)]
        assert ranks[0].keys() == NETWORKS
        for net, tensors in ranks[0].items():
            for key, value in tensors.items():
                assert torch.equal(value, ranks[1][net][key]), (step, net, key)

    # Every network trained (the comparison is not one of untouched weights); the frozen convolution did not move.
    for net, tensors in state(one_run, STEPS)["networks"].items():
        moved = [k for k, v in tensors.items() if not torch.equal(v, start[net][k])]
        assert len(moved) > len(tensors) // 2, net
        if net.startswith("decoder_"):
            assert not any(k.startswith(LAST_RESIDUAL) for k in moved), net
            for key in (f"{LAST_RESIDUAL}.weight", f"{LAST_RESIDUAL}.bias"):
                assert torch.equal(state(ddp_run, STEPS)["networks"][net][key], start[net][key]), (net, key)

