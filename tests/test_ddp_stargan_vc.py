"""StarGAN-VC under DistributedDataParallel: 2 Gloo ranks on CPU (torchrun, as a user starts it) against one process
with the global batch, on the synthetic 4-speaker corpus at tests/test_stargan_vc.py's small sizes.

What makes it more than the vocoder's DDP test: the discriminator's WGAN-GP loss differentiates D's scores with
respect to its input with `create_graph=True` (a double backward through the DDP-wrapped D), and with 2 micro-batches
a step the first one runs under `no_sync`. The two sides compute the same thing: `data.balanced` gives every rank one
item of each speaker (4 per rank, 8 in the single process: the union, with the same `SampleKey` per item); each
item's crop, conversion target and gradient-penalty mix α come from its key; every loss is a mean over items, so the
ranks' averaged gradients are the global batch's. Both sides run PyTorch's native CPU kernels (oneDNN picks its
convolution algorithm by batch size; see tests/test_ddp.py).

Dropout is off (`model.d_dropout=0`; the config's default is 0.1). Its masks come from the global torch generator,
which the engine seeds alike on every rank: every rank draws the same masks for its own items (all 40 D dropout
masks of a 2-step run were identical across the 2 ranks), and one process with 8 items draws other ones, so with
dropout the runs differ from the first step (D's logged loss by ~12 %, its gradient norm by 2×).

Tolerances, as tests/test_ddp.py's: every logged loss within rtol 1e-3 (D's within 1e-4, as the toy tasks'), gradient
norms within 1 %; every weight within atol 1e-4 after each of the 3 steps, except the biases of the convolutions that
feed an instance norm without affine (every gated layer's `conv1.bias`). The norm subtracts each channel's mean,
so their true gradient is 0 and what they get is rounding noise, which Adam turns into moves of ±lr (seen: 2.6e-4
apart in G after 3 steps, the other weights 1e-5). Each network as a whole, those biases included, is held within 5 %
(L2) of what the last 2 steps changed in it (seen: 0.2 % and 0.7 %)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.config import load_config
from gankit.engine.jsonl import read_jsonl
from gankit.models.stargan_vc import GatedConv
from gankit.tasks import build_task
from gankit.tasks.base import StepContext
from gankit.training import train
from tests.support.ddp_worker import RANK_STATES
from tests.support.speakers import write_corpus
from tests.test_ddp import assert_losses_close, state, torchrun
from tests.test_stargan_vc import SMALL, batch_of

pytestmark = pytest.mark.ddp

RANKS = 2
STEPS = 3
PER_RANK = 4  # one item of each of the 4 speakers
# WGAN with its gradient penalty, no dropout (see the module docstring), 2 micro-batches a step (no_sync, then the
# all-reduce), a checkpoint after every step (all kept), no validation and no probe step (not what is compared).
SETTINGS = (*SMALL, "loss.adversarial=wgan", "loss.w_gp=1.0", "model.d_dropout=0.0", f"train.max_steps={STEPS}",
            "train.grad_accum=2", "train.ckpt_every=1", f"train.keep_last={STEPS}", "train.val_every=1000",
            "health.unused_parameters.enabled=false")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("speakers") / "data", sentences=6, val_sentences=2)


def vc_config(corpus: Path, *overrides: str) -> dict[str, Any]:
    _, config = load_config("stargan_vc_tiny", [f"data.dir={corpus}", "device=cpu", *SETTINGS, *overrides])
    return config


def norm_cancelled_biases(config: dict[str, Any]) -> dict[str, set[str]]:
    """Per network, the state-dict keys of the biases an affine-free instance norm cancels (gated layers' conv1)."""
    nets = build_task(config).build_networks()
    return {key: {f"{name}.conv1.bias" for name, m in net.named_modules() if isinstance(m, GatedConv)}
            for key, net in nets.items()}


def train_in_process(config: dict[str, Any], run: Path) -> int:
    """One process in this interpreter with native kernels, as the ranks run; threads and kernels restored."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return train(config, run, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


@pytest.mark.usefixtures("one_thread")
def test_the_biases_left_out_get_no_gradient(corpus: Path) -> None:
    """Why the weight comparison leaves the gated layers' conv1 biases out: their gradient is rounding noise."""
    torch.manual_seed(0)
    task = build_task(vc_config(corpus, f"data.batch_size={PER_RANK}"))
    nets = task.build_networks()
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    batch = batch_of(task, dataset, PER_RANK)
    cancelled = norm_cancelled_biases(vc_config(corpus))
    assert len(cancelled["generator"]) == 9 and len(cancelled["discriminator"]) == 4
    for group, net in (("d", "discriminator"), ("g", "generator")):
        ctx = StepContext(step=0, groups=(group,))
        task.prepare(nets, batch, ctx)
        nets[net].zero_grad()
        task.loss(group, nets, batch, ctx).total.backward()
        grads = {k: p.grad for k, p in nets[net].named_parameters() if p.grad is not None}
        largest = max(float(g.abs().max()) for g in grads.values())
        for key in cancelled[net]:
            assert float(grads[key].abs().max()) < 1e-6 * largest, (net, key)


@pytest.mark.slow  # ~30 s on 2 busy cores: the 2-rank launch (~20 s), one process (~6 s)
def test_two_ranks_with_the_gradient_penalty_train_as_one_process_with_the_global_batch(corpus: Path,
                                                                                        tmp_path: Path) -> None:
    ddp_run, one_run = tmp_path / "ddp", tmp_path / "one"
    args = ["train", "stargan_vc_tiny", "--run-dir", str(ddp_run), "--no-progress", f"data.dir={corpus}",
            "device=cpu", *SETTINGS, f"data.batch_size={PER_RANK}"]
    done = torchrun("tests.support.ddp_worker", args,
                    env={"GANKIT_TEST_NO_MKLDNN": "1", "GANKIT_TEST_RANK_STATES": "1"})
    assert done.returncode == 0, done.stdout[-4000:]
    assert json.loads((ddp_run / "environment.json").read_text())["world_size"] == RANKS
    one_config = vc_config(corpus, f"data.batch_size={RANKS * PER_RANK}")
    assert train_in_process(one_config, one_run) == 0

    # Logged losses are the ranks' average, i.e. the global batch's; the penalty was computed at every step.
    ddp_rows, one_rows = list(read_jsonl(ddp_run / "metrics.jsonl")), list(read_jsonl(one_run / "metrics.jsonl"))
    assert [r["step"] for r in one_rows] == list(range(1, STEPS + 1))
    assert_losses_close(ddp_rows, one_rows)
    for row, ref in zip(ddp_rows, one_rows, strict=True):
        assert ref["loss/d/gp"] > 0
        for key in (k for k in ref if k.startswith("loss/d/")):
            assert row[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), (row["step"], key)

    cancelled = norm_cancelled_biases(one_config)
    for step in range(1, STEPS + 1):
        ddp, one = state(ddp_run, step), state(one_run, step)
        assert (ddp["step"], ddp["epoch"], ddp["samples_in_epoch"]) == (one["step"], one["epoch"],
                                                                         one["samples_in_epoch"])
        assert ddp["networks"].keys() == one["networks"].keys() == cancelled.keys()
        for net, tensors in one["networks"].items():
            assert ddp["networks"][net].keys() == tensors.keys()
            for key, value in tensors.items():
                if key not in cancelled[net]:
                    torch.testing.assert_close(ddp["networks"][net][key], value, rtol=0, atol=1e-4,
                                               msg=lambda m, name=f"{net}.{key}", s=step: f"step {s} {name}: {m}")
        # Every rank's own copy, weights and buffers, stayed the same as rank 0's.
        ranks = [torch.load(ddp_run / RANK_STATES / f"rank{r}_{step:08d}.pt", weights_only=True) for r in range(RANKS)]
        for net, tensors in ranks[0].items():
            for key, value in tensors.items():
                assert torch.equal(value, ranks[1][net][key]), (step, net, key)

    ddp, one, one_before = state(ddp_run, STEPS), state(one_run, STEPS), state(one_run, 1)
    for net, tensors in one["networks"].items():
        distance = sum(float((ddp["networks"][net][k] - v).norm()) ** 2 for k, v in tensors.items()) ** 0.5
        change = sum(float((v - one_before["networks"][net][k]).norm()) ** 2 for k, v in tensors.items()) ** 0.5
        assert distance <= 0.05 * change, (net, distance, change)
