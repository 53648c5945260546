"""Training features the README lists, each checked against what it must do: fp16 with its gradient scaler, gradient
clipping, the EMA recursion, gradient accumulation, the max_seconds / max_epochs / ckpt_every_epochs limits and
`--init-from` (original g_ + do_ pair, gankit run directory, --reset-optimizer)."""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.cli import main
from gankit.compat import hifigan_original
from gankit.compat.hifigan_original import gankit_to_original, write_original_generator
from gankit.engine.ema import Ema
from gankit.engine.jsonl import read_jsonl
from gankit.tasks import build_task
from tests.support.training import StepRecorder, latest_state, small_initial_loss_scale, tiny_config, train_tiny

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")


def _rows(run: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(run / "metrics.jsonl"))


def _record_optimizer_steps(monkeypatch: pytest.MonkeyPatch) -> list[list[torch.Tensor]]:
    """Every AdamW.step call appends the gradients it is about to apply (copies), in call order."""
    seen: list[list[torch.Tensor]] = []
    original = torch.optim.AdamW.step

    def step(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        seen.append([p.grad.detach().clone() for g in self.param_groups for p in g["params"] if p.grad is not None])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return seen


def _norm(grads: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


# --- fp16 ------------------------------------------------------------------------------------------------


def test_fp16_trains_with_a_gradient_scaler_that_resume_restores(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_initial_loss_scale(monkeypatch)
    run = tmp_path / "run"
    common = ("train.precision=fp16", "data.batch_size=1", "data.segment_size=2048")
    assert train_tiny(tiny_corpus, run, "train.max_steps=3", *common) == 0
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    losses = [v for r in rows for k, v in r.items() if k.startswith("loss/")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert "skipped" not in rows[-1] and math.isfinite(rows[-1]["grad_norm/g"])  # the last step was applied
    saved = latest_state(run)
    assert saved["optimizers"]["g"]["state"] and saved["optimizers"]["d"]["state"]
    scaler = saved["scaler"]
    # A scaler that ran: not a fresh one's state (scale 16 here, no step counted towards growth yet).
    assert scaler["_growth_tracker"] >= 1 and scaler["scale"] <= 16.0, scaler

    restored: list[tuple[float, int]] = []

    def capture(stepper: Any) -> None:
        s = stepper.precision.scaler
        restored.append((s.get_scale(), s._get_growth_tracker()))

    StepRecorder(monkeypatch, on_step=capture)
    assert train_tiny(tiny_corpus, run, "train.max_steps=4", *common) == 0
    assert restored == [(scaler["scale"], scaler["_growth_tracker"])]  # one step computed, from the saved scaler
    assert latest_state(run)["scaler"]["_growth_tracker"] in (0, scaler["_growth_tracker"] + 1)


# --- clipping --------------------------------------------------------------------------------------------


def test_gradient_clipping_bounds_the_gradient_the_optimizer_applies(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Adam normalises the update, so the clip is checked where it acts: on the gradients optimizer.step reads.
    applied = _record_optimizer_steps(monkeypatch)
    clip = {"d": 1e-3, "g": 1e-2}
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=1", f"train.grad_clip_g={clip['g']}",
                      f"train.grad_clip_d={clip['d']}", "data.batch_size=1") == 0
    assert len(applied) == 2  # D steps first, then G (the original's order)
    row = _rows(run)[0]
    for name, grads in zip("dg", applied, strict=True):
        assert row[f"grad_norm/{name}"] > 100 * clip[name]  # the logged norm is the one before clipping
        assert _norm(grads) == pytest.approx(clip[name], rel=1e-3), name  # scaled down to the limit


# --- EMA -------------------------------------------------------------------------------------------------


def test_ema_follows_its_recursion_after_every_generator_step(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decay = 0.75  # not 0.5, where decay and 1 - decay swapped would go unnoticed
    start: list[dict[str, torch.Tensor]] = []
    live: list[dict[str, torch.Tensor]] = []
    original_init, original_update = Ema.__init__, Ema.update

    def init(self: Ema, module: torch.nn.Module, d: float) -> None:
        start.append({k: v.detach().clone() for k, v in module.state_dict().items()})
        original_init(self, module, d)

    def update(self: Ema, module: torch.nn.Module) -> None:
        live.append({k: v.detach().clone() for k, v in module.state_dict().items()})
        original_update(self, module)

    monkeypatch.setattr(Ema, "__init__", init)
    monkeypatch.setattr(Ema, "update", update)
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=3", f"train.ema_decay={decay}", "data.batch_size=1") == 0
    assert len(start) == 1 and len(live) == 3  # one update after each generator step
    expected = {k: v.double() for k, v in start[0].items()}
    for weights in live:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k].double() for k in expected}
    state = latest_state(run)
    for key, value in state["ema"]["generator"].items():
        assert torch.allclose(value.double(), expected[key], rtol=1e-5, atol=1e-7), key
    live_now = state["networks"]["generator"]
    assert all(torch.equal(live[-1][k], live_now[k]) for k in live_now)  # updated with the weights after each step
    assert any(not torch.equal(v, live_now[k]) for k, v in state["ema"]["generator"].items())  # and lagging them


# --- accumulation ----------------------------------------------------------------------------------------


def test_accumulating_two_batches_of_one_equals_one_batch_of_two(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampler cuts each epoch into global positions and keys every crop by its position, so batch 1 ×
    accumulation 2 sees the same two crops as batch 2. Two differences are by design, so the comparison is of
    gradients and losses to float tolerance, not of weights bit for bit:
    - with one micro-batch D steps before G's loss reads it (the original's order), with several both step at the
      window's end: D's learning rate 0 removes that (D still computes its gradients, which are checked);
    - spectral norm (MSD's first sub-discriminator) advances its power iteration once per forward pass: 4 passes
      with accumulation, 2 without, so its σ estimate, and its gradients, differ by ~1e-3 (the other networks'
      by ~1e-6, last-bit rounding of another batch size)."""
    applied = _record_optimizer_steps(monkeypatch)
    common = ("train.max_steps=1", "optim.discriminator.lr=0.0", "train.ckpt_every=1")
    assert train_tiny(tiny_corpus, tmp_path / "accum", "data.batch_size=1", "train.grad_accum=2", *common) == 0
    accumulated = applied[:]
    applied.clear()
    assert train_tiny(tiny_corpus, tmp_path / "batch", "data.batch_size=2", *common) == 0
    whole = applied[:]
    assert len(accumulated) == len(whole) == 2  # D, then G
    nets = build_task(tiny_config(tiny_corpus)).build_networks()
    d_names = [f"{k}.{n}" for k in ("msd", "mpd") for n, _ in nets[k].named_parameters()]  # optim_d's order
    assert len(d_names) == len(whole[0])
    for name, a, b in zip(d_names, accumulated[0], whole[0], strict=True):
        spectral = name.startswith("msd.discriminators.0.")
        assert _norm([a - b]) <= (1e-2 if spectral else 1e-4) * _norm([b]), name
    g_difference = _norm([a - b for a, b in zip(accumulated[1], whole[1], strict=True)])
    assert g_difference <= 1e-4 * _norm(whole[1]), g_difference
    (row_a,), (row_b,) = _rows(tmp_path / "accum"), _rows(tmp_path / "batch")
    for key in (k for k in row_b if k.startswith(("loss/", "grad_norm/"))):
        assert row_a[key] == pytest.approx(row_b[key], rel=1e-3), key
    a, b = latest_state(tmp_path / "accum"), latest_state(tmp_path / "batch")
    assert a["samples_in_epoch"] == b["samples_in_epoch"] == 2
    # The weights themselves are a poor witness: Adam's first step moves each weight by about ±lr (2e-4) whatever its
    # gradient's size, so every gradient element whose sign the last-bit rounding flips (about 1 % of the tiny
    # generator's, those near 0) moves its weight 2·lr the other way. Hence the gradient comparison above.
    ga, gb = a["networks"]["generator"], b["networks"]["generator"]
    diff = torch.cat([(ga[k] - v).abs().flatten() for k, v in gb.items()])
    assert float((diff > 1e-6).float().mean()) < 0.05 and float(diff.max()) <= 2 * 2e-4 * 1.01, float(diff.max())


# --- limits ----------------------------------------------------------------------------------------------


def test_max_seconds_stops_the_run_in_time_and_a_new_launch_resumes(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    limit = 1.5
    common = (f"train.max_seconds={limit}", "data.batch_size=1")
    assert train_tiny(tiny_corpus, run, "train.max_steps=40", *common) == 0
    rows = _rows(run)
    steps = len(rows)
    assert 1 <= steps < 40
    started = rows[0]["time"] - rows[0]["sec_per_step"]  # the loop's start (the first step ends after sec_per_step)
    assert rows[-1]["time"] - started >= limit - 0.05  # it did not stop early...
    if steps > 1:
        assert rows[-2]["time"] - started < limit + 0.05  # ...and began its last step before the limit
    assert latest_state(run)["step"] == steps  # saved where it stopped
    recorder = StepRecorder(monkeypatch)
    assert train_tiny(tiny_corpus, run, f"train.max_steps={steps + 1}", *common) == 0
    assert recorder.calls == 1 and latest_state(run)["step"] == steps + 1


@pytest.mark.slow  # the slow step: keeps the default suite well inside its 8-minute budget
def test_max_epochs_stops_at_the_epoch_boundary_with_a_checkpoint_at_each_epoch_end(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    # 10 clips at batch 2: 5 steps an epoch; max_steps is only a backstop.
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=12", "train.max_epochs=2", "train.ckpt_every_epochs=1",
                      "train.keep_last=5") == 0
    assert [r["step"] for r in _rows(run)][-1] == 10
    manifest = json.loads((run / "checkpoints" / "manifest.json").read_text())
    assert [c["step"] for c in manifest["checkpoints"]] == [5, 10]
    for step, epoch in ((5, 1), (10, 2)):
        state = torch.load(run / "checkpoints" / f"state_{step:08d}.pt", weights_only=True)
        assert (state["step"], state["epoch"], state["samples_in_epoch"]) == (step, epoch, 0)


# --- --init-from -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step tiny run, and the same weights and optimizers as an original g_00000002 + do_00000002 pair."""
    root = tmp_path_factory.mktemp("init_source")
    run = root / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=2", "data.batch_size=1") == 0
    state = latest_state(run)
    task = build_task(tiny_config(tiny_corpus))
    generator = task.build_networks()["generator"]
    generator.load_state_dict(state["networks"]["generator"])
    original = root / "original"
    write_original_generator(original, generator, task.generator_config(), task.frontend.to_config(), step=2)
    nets, optimizers = state["networks"], state["optimizers"]
    torch.save({"mpd": gankit_to_original(nets["mpd"]), "msd": gankit_to_original(nets["msd"]),
                "optim_g": optimizers["g"], "optim_d": optimizers["d"], "steps": 2, "epoch": 0},
               original / "do_00000002")
    return root


@pytest.mark.parametrize("reset", [False, True], ids=["keep_optimizer", "reset_optimizer"])
@pytest.mark.parametrize("source", ["original_pair", "run_dir"])
def test_init_from_starts_with_the_sources_weights_and_optimizer_moments(
    source: str, reset: bool, source_run: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "original_pair":
        init = source_run / "original" / "g_00000002"
        # An original do_ file has the original's full-width discriminators; this one has the tiny config's
        # (1/32 of the channels): read it with those widths. Everything else is the original path.
        monkeypatch.setattr(hifigan_original, "read_original_training_state", functools.partial(
            hifigan_original.read_original_training_state, mpd_config={"channel_divisor": 32},
            msd_config={"channel_divisor": 32}))
    else:
        init = source_run / "run"
    expected = latest_state(source_run / "run")
    seen: list[dict[str, Any]] = []

    def capture(stepper: Any) -> None:  # the trainer's state before its first step
        networks = {k: {n: t.clone() for n, t in m.state_dict().items()} for k, m in stepper.plain.items()}
        optimizers = {name: copy.deepcopy(o.state_dict()) for name, o in stepper.optim.optimizers.items()}
        seen.append({"networks": networks, **optimizers})

    recorder = StepRecorder(monkeypatch, on_step=capture)
    run = tmp_path / "run"
    args = ["train", "hifigan_tiny", "--run-dir", str(run), f"data.dir={tiny_corpus}", "device=cpu",
            "data.segment_size=4096", "data.batch_size=1", "train.max_steps=1", "train.val_every=1000",
            "optim.generator.lr=1e-4", "--init-from", str(init), "--no-progress"]
    assert main([*args, "--reset-optimizer"] if reset else args) == 0
    assert recorder.calls == 1
    (start,) = seen
    for net, weights in expected["networks"].items():
        for key, value in weights.items():
            assert torch.equal(start["networks"][net][key], value), (net, key)
    for name in ("g", "d"):
        state = start[name]["state"]
        if reset:
            assert state == {}, name  # fresh moments
        else:
            source_state = expected["optimizers"][name]["state"]
            assert state.keys() == source_state.keys() and state
            for index, entry in source_state.items():
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    assert torch.equal(state[index][key], entry[key]), (name, index, key)
    assert start["g"]["param_groups"][0]["lr"] == 1e-4  # this run's learning rate, not the source's 2e-4
    assert latest_state(run)["step"] == 1  # a new run: counting from 0, not the source's step 2
