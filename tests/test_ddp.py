"""DistributedDataParallel training on CPU with Gloo: 2 processes started by torchrun, as a user would.

The tiny config at a tiny size (2048-sample crops, 1 per rank, 1 thread per rank) keeps each launch to a few
seconds of start-up and well under a second of training. What is compared:

- 2 ranks × batch 1 against one process with batch 2 making the same forward passes (2 micro-batches a step
  on both sides, so DDP's no_sync accumulation is part of it; 10 clips make 2 steps an epoch). The math is
  the same: the sampler gives the single process the union of the ranks' batches (same positions, so the
  same crops); every loss is a mean, so the ranks' averaged gradients and logged losses are those of the
  global batch; and spectral norm's power iteration (MSD's first sub-discriminator) advances once per forward
  on every rank and in the single process alike. It depends on the weights only, so the ranks' u/v stay
  identical without DDP broadcasting buffers before each forward (the engine does not). Gradient
  accumulation within one process would not be an equal stand-in: more forward passes, more power iterations.
  The arithmetic differs only in order: a rank sums its micro-batches and then the ranks are averaged, the
  single process sums over its batch first. Both sides run PyTorch's native CPU kernels (oneDNN off), since
  oneDNN picks its convolution algorithm by batch size and a sample's output would differ in the last bits
  too. Training amplifies such differences: Adam moves each weight by about ±lr in its first steps whatever
  the size of its gradient, so a weight whose gradient is rounding noise can end 2·lr = 4e-4 apart, and by
  step 4 the generator's gradient norm was seen to differ by 0.14 %. Hence: every logged loss of every step
  within rtol 1e-3 and gradient norms within 1 %; every weight and buffer after 2 steps within atol 1e-4;
  after 4 steps the discriminators' still within atol 1e-4, and the generator as a whole within 5 % (L2) of
  what steps 3 and 4 changed in it (1.6 % seen; resumed on half the data for those 2 steps: 33 %).
- each rank's own copy of the networks, dumped beside the checkpoint by tests/support/ddp_worker.py, so a
  divergence between ranks (weights or buffers) cannot hide behind rank 0's checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.engine.jsonl import read_jsonl
from gankit.training import train
from tests.support.ddp_worker import RANK_STATES
from tests.support.training import REPO, tiny_config

pytestmark = pytest.mark.ddp

RANKS = 2
STEPS = 4
ACCUM = "train.grad_accum=2"  # 2 micro-batches a step: DDP's no_sync on the first, all-reduce on the second
# Per rank: one 2048-sample crop (8 mel frames), one thread; the run's config is the tiny HiFi-GAN's otherwise.
SMALL = ("device=cpu", "data.segment_size=2048", "data.batch_size=1", "train.num_threads=1")
# A warn-only health finding at every step from the 2nd (DC offset judged as a level of 0, no grace, the smallest
# window): events.jsonl gets one row per step, so rows written by more than one rank, or twice, would show.
EVENT_EVERY_STEP = ("health.dc_offset.grace=0", "health.dc_offset.window=2", "health.dc_offset.persist=1",
                    "health.dc_offset.dc_level=0.0", "health.dc_offset.repeat_every=1")
LAUNCH_TIMEOUT = 150  # seconds; a hang between ranks fails the test instead of blocking the suite


def torchrun(module: str, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node 2 -m MODULE ARGS` (standalone: a rendezvous on a free local port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
               "-m", module, *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(command, cwd=REPO, env=full_env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM lets torchrun end its workers (they run in sessions of their own and would outlive a SIGKILL).
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"torchrun did not finish in {LAUNCH_TIMEOUT} s (ranks hung?):\n{out[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def train_args(run: Path, corpus: Path, *overrides: str) -> list[str]:
    return ["train", "hifigan_tiny", "--run-dir", str(run), "--no-progress", f"data.dir={corpus}", *SMALL,
            *overrides]


def state(run: Path, step: int) -> dict[str, Any]:
    return torch.load(run / "checkpoints" / f"state_{step:08d}.pt", weights_only=True)


def steps_in(path: Path) -> list[int]:
    return [row["step"] for row in read_jsonl(path)]


def assert_networks_close(a: dict[str, Any], b: dict[str, Any], atol: float) -> None:
    assert a.keys() == b.keys()
    for net in a:
        assert a[net].keys() == b[net].keys(), net
        for key in a[net]:
            name = f"{net}.{key}"
            torch.testing.assert_close(a[net][key], b[net][key], atol=atol, rtol=0,
                                       msg=lambda m, name=name: f"{name}: {m}")


def assert_same_training(a: dict[str, Any], b: dict[str, Any], b_before: dict[str, Any], atol: float,
                         generator_share: float) -> None:
    """Discriminators as `assert_networks_close`; the generator, all its tensors together, within
    `generator_share` of what training changed in it from `b_before` to `b` (L2 norms; see the module docstring)."""
    assert a.keys() == b.keys()
    discriminators = [k for k in a if k != "generator"]
    assert_networks_close({k: a[k] for k in discriminators}, {k: b[k] for k in discriminators}, atol)
    g, g_ref, g_before = a["generator"], b["generator"], b_before["generator"]
    assert g.keys() == g_ref.keys()
    distance = sum(float((g[k] - g_ref[k]).norm()) ** 2 for k in g) ** 0.5
    change = sum(float((g_ref[k] - g_before[k]).norm()) ** 2 for k in g) ** 0.5
    assert distance <= generator_share * change, (distance, change)


def assert_losses_close(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    for row, ref in zip(rows, expected, strict=True):
        for prefix, rel in (("loss/", 1e-3), ("grad_norm/", 1e-2)):
            keys = sorted(k for k in ref if k.startswith(prefix))
            assert keys and keys == sorted(k for k in row if k.startswith(prefix))
            for key in keys:
                assert row[key] == pytest.approx(ref[key], rel=rel), (row["step"], key)


def train_in_process(corpus: Path, run: Path, *overrides: str) -> int:
    """One process (world size 1) in this interpreter, with native kernels as the DDP runs (see the module
    docstring), leaving the test session's thread count and kernels as they were."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return train(tiny_config(corpus, *SMALL, *overrides), run, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


@dataclass
class DdpRun:
    run: Path  # killed during step 3, then resumed to step 4
    killed_copy: Path  # the run directory as the kill left it
    killed: subprocess.CompletedProcess[str]
    resumed: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def ddp_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> DdpRun:
    """`gankit train` on 2 ranks under torchrun (through tests/support/ddp_worker.py, for native kernels), every
    process killed (SIGKILL) during step 3, then the same command again."""
    root = tmp_path_factory.mktemp("ddp")
    run = root / "run"
    args = train_args(run, tiny_corpus, ACCUM, f"train.max_steps={STEPS}", "train.ckpt_every=2",
                      "train.val_every=2", *EVENT_EVERY_STEP)
    native = {"GANKIT_TEST_NO_MKLDNN": "1"}
    # The 5th pass of the mid-step fault point is step 3's first micro-batch.
    killed = torchrun("tests.support.ddp_worker", args, env={**native, "GANKIT_FAULT": "mid_step:5"})
    shutil.copytree(run, root / "killed")
    resumed = torchrun("tests.support.ddp_worker", args, env=native)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    return DdpRun(run, root / "killed", killed, resumed)


@pytest.fixture(scope="module")
def reference(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process whose batch (2) is the DDP run's global batch."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert train_in_process(tiny_corpus, run, "data.batch_size=2", ACCUM, f"train.max_steps={STEPS}",
                            "train.ckpt_every=2", "train.val_every=1000") == 0
    return run


@pytest.mark.slow  # with the shared 2-rank launches (~50 s): the slow step
def test_two_ranks_train_as_one_process_with_the_global_batch(ddp_run: DdpRun, reference: Path) -> None:
    ddp, ref = state(ddp_run.run, STEPS), state(reference, STEPS)
    assert (ddp["step"], ddp["epoch"], ddp["samples_in_epoch"]) == (ref["step"], ref["epoch"], ref["samples_in_epoch"])
    assert state(ddp_run.run, 2)["samples_in_epoch"] == 2 * 4  # global batch: 1 per rank × 2 ranks × 2 micro-batches
    ref_2 = state(reference, 2)["networks"]
    assert_networks_close(state(ddp_run.run, 2)["networks"], ref_2, atol=1e-4)
    assert_same_training(ddp["networks"], ref["networks"], ref_2, atol=1e-4, generator_share=0.05)
    # Logged losses are the ranks' average, i.e. the global batch's losses.
    assert_losses_close(list(read_jsonl(ddp_run.run / "metrics.jsonl")), list(read_jsonl(reference / "metrics.jsonl")))


@pytest.mark.slow  # with the shared 2-rank launches (~50 s): the slow step
def test_rank_zero_alone_writes_the_run_directory(ddp_run: DdpRun) -> None:
    run = ddp_run.run
    assert steps_in(run / "metrics.jsonl") == [1, 2, 3, 4]
    assert steps_in(run / "layer_grads.jsonl") == [1, 2, 3, 4]
    assert steps_in(run / "validation.jsonl") == [2, 4]
    events = [e for e in read_jsonl(run / "events.jsonl") if e["kind"] == "dc_offset"]
    assert [e["step"] for e in events] == [2, 3, 4]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "generator_00000002.pt", "generator_00000004.pt", "manifest.json", "state_00000002.pt", "state_00000004.pt"]
    for step in (2, 4):
        assert sorted(p.name for p in (run / "samples" / f"step_{step:08d}").iterdir()) == [
            "index.json", "utt_010__audio.wav", "utt_010__mel.png", "utt_011__audio.wav", "utt_011__mel.png"]
    assert len(list((run / "tensorboard").iterdir())) == 2  # one event file per launch: rank 0's
    assert json.loads((run / "environment.json").read_text())["world_size"] == RANKS
    for launch in (ddp_run.killed, ddp_run.resumed):
        assert launch.stdout.count("run directory:") == (launch.returncode == 0)
    assert ddp_run.resumed.stdout.count("resumed from") == 1


@pytest.mark.slow  # with the shared 2-rank launches (~50 s): the slow step
def test_a_killed_ddp_run_resumes_at_its_last_checkpoint(ddp_run: DdpRun) -> None:
    assert ddp_run.killed.returncode != 0
    assert "SIGKILL" in ddp_run.killed.stdout
    killed = ddp_run.killed_copy
    assert sorted(p.name for p in (killed / "checkpoints").glob("state_*.pt")) == ["state_00000002.pt"]
    assert steps_in(killed / "metrics.jsonl") == [1, 2]
    assert "state_00000002.pt at step 2 (epoch 0, 8 samples into it)" in ddp_run.resumed.stdout
    end = state(ddp_run.run, STEPS)
    # Steps 3 and 4 made epoch 1: 2 steps of 4 samples (the epoch's last pair of clips is dropped).
    assert (end["step"], end["epoch"], end["samples_in_epoch"]) == (STEPS, 1, 8)
    # That it continued with the right weights, data and optimizer state is the comparison with one process
    # (test_two_ranks_train_as_one_process_with_the_global_batch), which the resumed run passes.


@pytest.mark.slow  # with the shared 2-rank launches (~50 s): the slow step
def test_resume_with_one_rank_continues_at_the_right_step(ddp_run: DdpRun, reference: Path, tiny_corpus: Path,
                                                          tmp_path: Path) -> None:
    # As the CLI resumes it: same config, so 2 samples a step now (1 rank × batch 1 × 2 micro-batches), from
    # global position 8 of epoch 0: step 3 takes positions 8 and 9, which 2 ranks had to drop, and ends the
    # epoch; step 4 takes positions 0 and 1 of epoch 1.
    same_config = tmp_path / "same_config"
    shutil.copytree(ddp_run.killed_copy, same_config)
    assert train_in_process(tiny_corpus, same_config, ACCUM, f"train.max_steps={STEPS}", "train.ckpt_every=2",
                            "train.val_every=1000") == 0
    end = state(same_config, STEPS)
    assert (end["step"], end["epoch"], end["samples_in_epoch"]) == (STEPS, 1, 2)
    assert steps_in(same_config / "metrics.jsonl") == [1, 2, 3, 4]
    assert json.loads((same_config / "environment.json").read_text())["world_size"] == 1

    # With the batch raised to the old global batch, it trains exactly as the uninterrupted one-process run.
    same_batch = tmp_path / "same_global_batch"
    shutil.copytree(ddp_run.killed_copy, same_batch)
    assert train_in_process(tiny_corpus, same_batch, "data.batch_size=2", ACCUM, f"train.max_steps={STEPS}",
                            "train.ckpt_every=2", "train.val_every=1000") == 0
    assert_same_training(state(same_batch, STEPS)["networks"], state(reference, STEPS)["networks"],
                         state(reference, 2)["networks"], atol=1e-4, generator_share=0.05)
    assert_losses_close(list(read_jsonl(same_batch / "metrics.jsonl"))[2:], list(read_jsonl(reference /
                                                                                            "metrics.jsonl"))[2:])


# Slow (≈ 18 s, two launches): in CI's slow step; the default run keeps the 2-rank comparison with one process.
@pytest.mark.slow
def test_rank_local_events_get_the_same_decision_on_every_rank(tiny_corpus: Path, tmp_path: Path) -> None:
    """Rank 1 alone reads a NaN loss at its 2nd step and is sent SIGTERM during its 4th: both ranks skip the
    update, roll back together, then stop together after the next step with a checkpoint, and exit 0.
    Resumed with rank 1 blind to the checkpoints, every rank refuses to start instead of training apart."""
    run = tmp_path / "run"
    faults = {"rank": 1, "nan_logged_at": [2], "sigterm_at": [4]}
    args = train_args(run, tiny_corpus, "train.max_steps=8", "train.ckpt_every=1", "train.val_every=1000",
                      "health.nonfinite.action=rollback")
    result = torchrun("tests.support.ddp_worker", args,
                      env={"GANKIT_TEST_FAULTS": json.dumps(faults), "GANKIT_TEST_RANK_STATES": "1"})
    assert result.returncode == 0, result.stdout[-4000:]
    # Step 2's G update was skipped on both ranks (rank 0's losses were finite), then both went back to step 1.
    nonfinite = [e for e in read_jsonl(run / "events.jsonl") if e["kind"] == "nonfinite"]
    assert [(e["step"], e["values"]["action"]) for e in nonfinite] == [(2, "rollback")]
    assert "on another rank" in nonfinite[0]["message"]
    assert "rolled back to state_00000001.pt" in result.stdout
    rows = list(read_jsonl(run / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["lr/g"] == pytest.approx(0.5 * rows[0]["lr/g"], rel=1e-2)
    # The signal reached rank 1 during step 3 (its 4th generator step): both stopped after it and saved it.
    assert f"saved step 3 to {run / 'checkpoints'}" in result.stdout
    assert state(run, 3)["step"] == 3
    # Each rank's own networks, saved at every checkpoint: identical, weights and buffers (spectral norm's u/v).
    dumps = sorted(p.name for p in (run / RANK_STATES).iterdir())
    assert dumps == [f"rank{r}_{s:08d}.pt" for r in range(RANKS) for s in (1, 2, 3)]
    for step in (1, 2, 3):
        ranks = [torch.load(run / RANK_STATES / f"rank{r}_{step:08d}.pt", weights_only=True) for r in range(RANKS)]
        assert any(k.endswith("_u") for k in ranks[0]["msd"])
        for net, tensors in ranks[0].items():
            for key, value in tensors.items():
                assert torch.equal(value, ranks[1][net][key]), (step, net, key)

    blind = torchrun("tests.support.ddp_worker", args, env={"GANKIT_TEST_BLIND_RANK": "1"})
    assert blind.returncode != 0
    assert blind.stdout.count("error: the ranks found different checkpoints") == RANKS, blind.stdout[-3000:]
    assert "from step 0 to step 3" in blind.stdout
    assert steps_in(run / "metrics.jsonl") == [1, 2, 3]
