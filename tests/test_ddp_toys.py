"""Tasks that are not vocoders under DistributedDataParallel (2 Gloo ranks on CPU, started by torchrun) against one
process with the global batch: the three-group toy (RMSprop classifier, WGAN critic with a gradient penalty — a
double backward through DDP —, value clipping, gradient accumulation) and the two-decoder toy, whose ranks'
batches may lack a domain (DDP told to find unused parameters, as the task asks). Every random number a step
uses belongs to the sample's place in the epoch (tests/support/toy_tasks.py), so the two sides compute the same
thing up to the order of additions: losses within rtol 1e-4 per step, weights within 1e-5 after 4 steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.engine.jsonl import read_jsonl
from gankit.engine.launch import train
from tests.support.toy_tasks import (
    ImageGanTask,
    ThreeGroupTask,
    TwoDecoderTask,
    image_gan_config,
    toy_config,
    two_decoder_config,
)
from tests.support.training import REPO

pytestmark = pytest.mark.ddp

STEPS = 4


def torchrun_toy(name: str, run: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "tests.support.toy_worker", name, str(run), json.dumps(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)


@pytest.mark.parametrize(("name", "task", "make_config", "per_rank"), [
    pytest.param("three_groups", ThreeGroupTask, toy_config, 2, marks=pytest.mark.slow),
    pytest.param("two_decoders", TwoDecoderTask, two_decoder_config, 2, marks=pytest.mark.slow),
    # BatchNorm: the single process normalises per rank-sized chunk
    pytest.param("image_gan", ImageGanTask, image_gan_config, 2, marks=pytest.mark.slow),
])
def test_two_ranks_match_one_process_with_the_global_batch(tmp_path: Path, name: str, task: Any, make_config: Any,
                                                           per_rank: int) -> None:
    config = make_config(steps=STEPS, grad_accum=2)
    config["data"]["batch_size"] = per_rank
    config["train"]["val_every"] = 1000
    done = torchrun_toy(name, tmp_path / "ddp", config)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    single = make_config(steps=STEPS, grad_accum=2)
    single["data"]["batch_size"] = 2 * per_rank
    single["train"]["val_every"] = 1000
    if name == "image_gan":
        single["toy"]["ghost_batch"] = per_rank
    assert train(single, task, tmp_path / "one", progress=False) == 0

    ddp_rows = list(read_jsonl(tmp_path / "ddp" / "metrics.jsonl"))
    one_rows = list(read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    assert [r["step"] for r in ddp_rows] == [r["step"] for r in one_rows] == list(range(1, STEPS + 1))
    for a, b in zip(ddp_rows, one_rows, strict=True):
        for key in (k for k in b if k.startswith("loss/")):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key)
    final = f"state_{STEPS:08d}.pt"
    ddp = torch.load(tmp_path / "ddp" / "checkpoints" / final, weights_only=True)
    one = torch.load(tmp_path / "one" / "checkpoints" / final, weights_only=True)
    for net, state in one["networks"].items():
        for key, value in state.items():
            if "running_" in key or "num_batches" in key:
                continue  # BatchNorm statistics: rank 0's own share in DDP, every chunk in turn in one process
            torch.testing.assert_close(ddp["networks"][net][key], value, rtol=0, atol=1e-5, msg=f"{net}.{key}")
    assert ddp["samples_in_epoch"] == one["samples_in_epoch"] and ddp["epoch"] == one["epoch"]


@pytest.mark.slow
def test_batchnorm_statistics_are_rank_0s_on_every_rank_when_saved(tmp_path: Path) -> None:
    config = image_gan_config(steps=3)
    config["train"].update(ckpt_every=1, val_every=1000)
    config["data"]["batch_size"] = 2
    env_before = os.environ.get("GANKIT_TEST_RANK_STATES")
    os.environ["GANKIT_TEST_RANK_STATES"] = "1"
    try:
        done = torchrun_toy("image_gan", tmp_path / "ddp", config)
    finally:
        if env_before is None:
            os.environ.pop("GANKIT_TEST_RANK_STATES")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    folder = tmp_path / "ddp" / "rank_states"
    for step in (1, 2, 3):
        ranks = [torch.load(folder / f"rank{r}_{step:08d}.pt", weights_only=True) for r in (0, 1)]
        saved = torch.load(tmp_path / "ddp" / "checkpoints" / f"state_{step:08d}.pt", weights_only=True)["networks"]
        stats = [(n, k) for n, s in saved.items() for k in s if "running_" in k]
        assert stats, "the toy has BatchNorm statistics"
        for net, key in stats:
            assert torch.equal(ranks[0][net][key], ranks[1][net][key]), (step, net, key)
            assert torch.equal(ranks[0][net][key], saved[net][key]), (step, net, key)
