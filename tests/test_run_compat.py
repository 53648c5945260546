"""Nothing breaks for existing users: a run directory written before optimizer groups and the step schedule
(tests/fixtures/run_v0: 2 steps of a narrow hifigan_tiny by commit 373c10f, with `optim.generator`,
`train.grad_clip_g`, `train.ema_decay`, optimizer state under "g"/"d") resumes with today's engine, its
generator file vocodes, and `gankit report` renders it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gankit.engine.jsonl import read_jsonl
from tests.support.training import run_gankit

FIXTURE = Path(__file__).parent / "fixtures" / "run_v0"


def old_run(tmp_path: Path, corpus: Path) -> Path:
    """The fixture copied, its data.dir pointed at this session's corpus (the same files write_corpus made)."""
    run = tmp_path / "run_v0"
    shutil.copytree(FIXTURE, run)
    config = run / "config.yaml"
    text = config.read_text()
    assert "optim:\n  generator:\n" in text and "ema_decay: null" in text  # written with the old keys
    config.write_text(text.replace("dir: /tmp/fixture/corpus", f"dir: {corpus}"))
    return run


@pytest.mark.slow  # the slow step: keeps the default suite well inside its 8-minute budget
def test_a_run_written_before_the_contract_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    run = old_run(tmp_path, tiny_corpus)
    before = (run / "metrics.jsonl").read_text().splitlines()
    old_state = torch.load(run / "checkpoints" / "state_00000002.pt", weights_only=True)
    assert set(old_state["optimizers"]) == {"g", "d"} and "last_losses" not in old_state
    result = run_gankit(["train", str(run / "config.yaml"), "--run-dir", str(run), "train.max_steps=4",
                         "--no-progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout and "at step 2" in result.stdout
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert rows[:2] == before and [json.loads(r)["step"] for r in rows] == [1, 2, 3, 4]
    new_state = torch.load(run / "checkpoints" / "state_00000004.pt", weights_only=True)
    # The old optimizer state carried on: Adam's step counters continue from 2.
    assert {float(s["step"]) for s in new_state["optimizers"]["g"]["state"].values()} == {4.0}
    assert new_state["config"]["optim"]["g"]["type"] == "AdamW"


@pytest.mark.slow  # ~9 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_an_old_generator_file_vocodes_and_the_old_run_reports(tiny_corpus: Path, tmp_path: Path) -> None:
    run = old_run(tmp_path, tiny_corpus)
    mels = tmp_path / "mels"
    mels.mkdir()
    import numpy as np

    np.save(mels / "a.npy", np.full((80, 20), -5.0, dtype=np.float32))
    out = tmp_path / "out"
    result = run_gankit(["vocode", "--checkpoint", str(run), str(mels), "--out-dir", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "a.wav").is_file()
    report = run_gankit(["report", str(run)])
    assert report.returncode == 0, report.stderr[-2000:]
    page = (run / "report" / "index.html").read_text()
    assert "loss/g/mel" in page or "g/mel" in page
    assert [r["step"] for r in read_jsonl(run / "validation.jsonl")] == [2]
