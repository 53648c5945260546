"""The GAN health monitor in the real trainer on the tiny config (CPU): each failure is induced in the engine —
through config (learning rates) or a test-only wrapper task (tests/support/faulty_tasks.py) — and the monitor
must name it within a stated number of steps; a healthy run must stay quiet; each action does what it says.

Grace periods and windows are shortened so the checks are armed inside these runs; thresholds stay at their
defaults. What this config needs, measured on it (the tests' data settings: 4096-sample segments, batch 2):
a fresh discriminator scores real and generated audio alike until ~140 steps and separates them by ~0.2 at
step 200, so `discriminator_collapse` with a grace under that flags a healthy run (at grace 10, window 20 it
does so at step 30, exactly as for a discriminator with lr 0); the generator's spectral flatness swings by
1000× between batches for the first few hundred steps, so `dc_offset` with a 20-step window flags a healthy
run (step 388 at grace 300) while a 50-step window stays quiet through step 400. Hence ARMED below, and the
collapse and long healthy runs (300-400 steps, minutes each) are marked slow.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.checkpoint_io import safe_load
from gankit.cli import main as gankit_main
from gankit.engine.jsonl import read_jsonl
from gankit.tasks import TASKS
from tests.support import faulty_tasks
from tests.support.faulty_tasks import Faults
from tests.support.training import train_tiny

# Armed within a few hundred steps; a healthy run of this config stays quiet with them (test_healthy_* below).
ARMED: dict[str, dict[str, Any]] = {
    "discriminator_collapse": {"grace": 250, "window": 40},
    "discriminator_overpowering": {"grace": 20, "window": 20},
    "dc_offset": {"grace": 200, "window": 50, "persist": 20},
    "dead_layers": {"window": 10},
    "loss_spike": {"grace": 20, "window": 50},
    "divergence": {"steps": 10},
}
EVENT_KEYS = {"step", "kind", "severity", "message", "values"}
ACTIONS = {"warn", "skip_step", "rollback", "stop"}
SUB_DISCRIMINATORS = {f"msd.{i}" for i in range(3)} | {f"mpd.{i}" for i in range(5)}


def health(**changes: Mapping[str, Any]) -> list[str]:
    """`health.<kind>.<knob>=value` overrides: ARMED with `changes` merged in per kind."""
    sections = {kind: dict(knobs) for kind, knobs in ARMED.items()}
    for kind, knobs in changes.items():
        sections.setdefault(kind, {}).update(knobs)
    return [f"health.{kind}.{knob}={value}" for kind, knobs in sections.items() for knob, value in knobs.items()]


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call with a Faults to train the tiny config's HiFi-GAN task wrapped by tests/support/faulty_tasks.py."""
    def use(f: Faults) -> None:
        monkeypatch.setattr(faulty_tasks, "FAULTS", f)
        monkeypatch.setitem(TASKS, "hifigan", faulty_tasks.TASK_ENTRY)
    yield use
    faulty_tasks.remove_hooks()


def events(run: Path) -> list[dict[str, Any]]:
    """events.jsonl rows, each checked against the run-directory contract (docs/CONTRACTS.md)."""
    rows = list(read_jsonl(run / "events.jsonl"))
    for row in rows:
        assert set(row) == EVENT_KEYS, f"expected an event row's keys to be {sorted(EVENT_KEYS)}: {sorted(row)}"
        assert isinstance(row["step"], int) and row["step"] >= 0, row
        assert row["severity"] in ("info", "warning", "error"), row
        assert isinstance(row["message"], str) and len(row["message"]) > 40, row
        assert isinstance(row["values"], dict) and row["values"].get("action") in ACTIONS, row
    return rows


def serious(rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(r["step"], r["kind"], r["message"][:300]) for r in rows if r["severity"] != "info"]


def first(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [r for r in rows if r["kind"] == kind]
    assert found, f"expected a {kind} event; got {[(r['step'], r['kind']) for r in rows]}"
    return found[0]


def metrics(run: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(run / "metrics.jsonl"))


def all_finite(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values() if torch.is_floating_point(t))


# --- healthy runs --------------------------------------------------------------------------------
# The warm-up case (≈ 8 s) runs in CI's slow step; the default run keeps the one without warm-up.
@pytest.mark.slow  # both variants: the slow step (the default suite keeps to its 8-minute budget)
@pytest.mark.parametrize(("warmup", "steps"), [(0, 30), (10, 40)])
def test_healthy_short_run_raises_nothing(tiny_corpus: Path, tmp_path: Path, warmup: int, steps: int) -> None:
    """Armed here: dead_layers (from step 10), loss_spike (from 20 values after the start or the warm-up's end),
    divergence, nonfinite, discriminator_overpowering (from 40 D steps, in the longer run), the unused-parameter
    probe. discriminator_collapse and dc_offset need hundreds of steps: test_healthy_long_run_raises_nothing."""
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, f"train.max_steps={steps}", f"train.warmup_steps={warmup}", *health()) == 0
    assert serious(events(run)) == [], f"expected no warning-or-worse event in a healthy {steps}-step run"
    assert len(metrics(run)) == steps


# CI runs the no-warm-up run (slow step); the warm-up variant is `long` (pytest -m long): ~110 s, past CI's budget.
@pytest.mark.parametrize("warmup", [pytest.param(0, marks=pytest.mark.slow), pytest.param(20, marks=pytest.mark.long)])
def test_healthy_long_run_raises_nothing(tiny_corpus: Path, tmp_path: Path, warmup: int) -> None:
    """350 steps: every check armed (collapse from 290 D steps, dc_offset judged from 250 G steps after the start
    or the warm-up's end, overpowering from 40 D steps)."""
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=350", f"train.warmup_steps={warmup}", *health()) == 0
    assert serious(events(run)) == [], "expected no warning-or-worse event in a healthy 350-step run"


# --- nonfinite -----------------------------------------------------------------------------------
def test_nan_loss_is_named_and_its_update_skipped(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(nan_loss_at={3}))
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=4", "train.ckpt_every=1", "train.keep_last=10",
                      *health()) == 0
    rows = events(run)
    event = first(rows, "nonfinite")
    assert event["step"] == 3, f"expected the NaN named at its own step 3 (within 0 steps): {event}"
    assert event["severity"] == "error" and event["values"]["action"] == "skip_step", event
    assert event["values"]["nonfinite_losses"] == ["g/total"] and event["values"]["skipped"] is True, event
    assert [r["kind"] for r in rows if r["severity"] != "info"] == ["nonfinite"], serious(rows)
    row = metrics(run)[2]
    assert row.get("skipped") == ["g"], f"expected step 3's row to say G's update was skipped: {row}"

    states = {s: safe_load(run / "checkpoints" / f"state_{s:08d}.pt")["networks"] for s in (2, 3, 4)}
    for s, nets in states.items():
        for key, sd in nets.items():
            assert all_finite(sd), f"expected finite {key} weights at step {s}"
    g2, g3, g4 = (states[s]["generator"] for s in (2, 3, 4))
    assert all(torch.equal(g2[k], g3[k]) for k in g2), "expected the generator unchanged by the skipped step 3"
    assert any(not torch.equal(g3[k], g4[k]) for k in g3), "expected the generator to train again at step 4"
    assert any(not torch.equal(states[2]["mpd"][k], states[3]["mpd"][k]) for k in states[2]["mpd"]), (
        "expected the discriminators' own (finite) update at step 3 applied")


def test_stop_action_saves_and_exits_with_status_3(
    tiny_corpus: Path, tmp_path: Path, faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    faults(Faults(nan_loss_at={2}))
    run = tmp_path / "run"
    code = gankit_main(["train", "hifigan_tiny", "--run-dir", str(run), "--no-progress", f"data.dir={tiny_corpus}",
                        "device=cpu", "data.segment_size=4096", "data.batch_size=2", "train.max_steps=6",
                        "train.ckpt_every=1000", "train.val_every=1000", "health.nonfinite.action=stop"])
    out = capsys.readouterr().out
    assert code == 3, f"expected exit status 3 (stopped by the health monitor), got {code}:\n{out[-1500:]}"
    assert (f"stopped by the health monitor at step 2; see {run}/events.jsonl. Fix the cause, then run the same "
            "command to resume from the saved checkpoint.") in out, out[-1500:]
    event = first(events(run), "nonfinite")
    assert event["step"] == 2 and event["severity"] == "error" and event["values"]["action"] == "stop", event
    assert "Action: saving a checkpoint and stopping (exit status 3)." in event["message"], event["message"]
    state = safe_load(run / "checkpoints" / "state_00000002.pt")
    assert state["step"] == 2, "expected the checkpoint saved at the stopping step"
    assert all(all_finite(sd) for sd in state["networks"].values()), "expected finite weights in the saved checkpoint"
    assert [r["step"] for r in metrics(run)] == [1, 2]


@pytest.mark.slow  # the slow step: keeps the default suite well inside its 8-minute budget
def test_rollback_action_restores_the_last_checkpoint_and_lowers_the_learning_rates(
    tiny_corpus: Path, tmp_path: Path, faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    faults(Faults(nan_loss_at={5}))  # once: the repeated step 5 after the rollback is the 6th call, and clean
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=7", "train.ckpt_every=2", "health.nonfinite.action=rollback",
                      *health()) == 0
    out = capsys.readouterr().out
    assert "rolled back to state_00000004.pt (step 4); learning rates × 0.5" in out, out[-1500:]
    event = first(events(run), "nonfinite")
    assert event["step"] == 5 and event["severity"] == "error" and event["values"]["action"] == "rollback", event
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 8)), "expected each step logged once after the rollback"
    assert all(isinstance(r["loss/g/total"], float) and math.isfinite(r["loss/g/total"]) for r in rows), (
        "expected the NaN step's row replaced by the repeated step's")
    for opt in ("g", "d"):
        before, after = rows[3][f"lr/{opt}"], rows[4][f"lr/{opt}"]
        assert after == pytest.approx(0.5 * before, rel=1e-9), f"expected lr/{opt} halved at step 5: {before}→{after}"
        # The epoch (5 batches) ended with step 5: lr_decay 0.999 on top of the halving.
        assert rows[6][f"lr/{opt}"] == pytest.approx(0.5 * 0.999 * before, rel=1e-9), rows[6]
    final = safe_load(run / "checkpoints" / "state_00000007.pt")
    assert final["optimizers"]["g"]["param_groups"][0]["lr"] == pytest.approx(0.5 * 0.999 * 2e-4, rel=1e-9), (
        "expected the lowered learning rate carried into the next checkpoint")


# --- layers --------------------------------------------------------------------------------------
def test_a_layer_without_gradient_is_named(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(zero_output_of="resblocks.0.convs1.0"))  # requires_grad True, output × 0: its gradient is 0
    run = tmp_path / "run"
    bound = ARMED["dead_layers"]["window"]  # dead from step 1: named once it has been dead for a whole window
    assert train_tiny(tiny_corpus, run, f"train.max_steps={bound + 2}", *health()) == 0
    rows = events(run)
    event = first(rows, "dead_layers")
    assert event["step"] <= bound, f"expected the dead layer named within dead_layers.window = {bound} steps: {event}"
    assert event["values"]["layers"] == ["generator.resblocks.0.convs1.0"], event["values"]
    assert "generator.resblocks.0.convs1.0" in event["message"]
    assert [r["kind"] for r in rows if r["severity"] != "info"] == ["dead_layers"], serious(rows)


def test_an_unused_submodule_is_named_before_training(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(unused_module="unused_head"))
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=1", *health()) == 0
    event = first(events(run), "unused_parameters")
    assert event["step"] == 0, f"expected the probe to name it before the first step: {event['step']}"
    assert event["values"]["layers"] == {
        "generator.unused_head": ["generator.unused_head.weight", "generator.unused_head.bias"]}, event["values"]
    assert "generator.unused_head" in event["message"] and event["severity"] == "warning"


# --- losses --------------------------------------------------------------------------------------
@pytest.mark.slow  # ~9 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_a_loss_spike_is_named_at_its_step(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(loss_scale_at={25: 1000.0}))  # loss_spike judges from step 21 (grace 20)
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=27", *health()) == 0
    rows = events(run)
    event = first(rows, "loss_spike")
    assert event["step"] == 25, f"expected the spike named at its own step 25 (within 0 steps): {event['step']}"
    assert "g/total" in [r["loss"] for r in event["values"]["losses"]], event["values"]
    assert [(r["step"], r["kind"]) for r in rows if r["severity"] != "info"] == [(25, "loss_spike")], serious(rows)


@pytest.mark.slow  # ~28 s for the pair: the slow step
@pytest.mark.parametrize("diverge", [False, True], ids=["healthy_control", "g_lr_0.5_from_step_25"])
def test_a_run_diverging_after_a_learning_rate_jump_is_named_and_stopped(
    tiny_corpus: Path, tmp_path: Path, faults: Any, diverge: bool
) -> None:
    """From step 25 the generator's optimizer updates with lr 0.5 (2500× the config's 2e-4; set through an
    optimizer pre-hook, so the trainer's own lr/g log shows it): a real divergence, not a scaled loss. Measured:
    its feature-matching loss jumps from ~0.9 to ~5 at step 26 and stays there (the generator saturates; its
    layers go dead from step ~35), so divergence (steps 10, fraction 0.8) is named at step 33 and the run stops.
    The bound: named within divergence.steps = 10 steps of the jump, and the run is longer than that. The
    healthy control, same settings and length without the jump, names nothing."""
    onset, lr, steps = 25, 0.5, 40
    bound = ARMED["divergence"]["steps"]
    assert onset + bound < steps
    faults(Faults(g_lr_from=(onset, lr)) if diverge else Faults())
    run = tmp_path / "run"
    code = train_tiny(tiny_corpus, run, f"train.max_steps={steps}", *health(divergence={"action": "stop"}))
    rows, logged = events(run), metrics(run)
    if not diverge:
        assert code == 0 and serious(rows) == [], f"expected a quiet healthy control: {serious(rows)}"
        assert len(logged) == steps
        return
    assert code == 3, f"expected the stop action's exit status 3, got {code}: {serious(rows)}"
    lrs = [r["lr/g"] for r in logged]
    assert lrs[onset - 2] == pytest.approx(2e-4, rel=0.01) and lrs[onset - 1] == lr, "expected lr/g to jump at 25"
    event = first(rows, "divergence")
    assert onset < event["step"] <= onset + bound, f"expected divergence named within {bound} steps of {onset}"
    assert event["severity"] == "error" and event["values"]["action"] == "stop", event
    assert "Action: saving a checkpoint and stopping (exit status 3)." in event["message"], event["message"]
    assert logged[-1]["step"] == event["step"], "expected the run to stop at the divergence step"
    assert safe_load(run / "checkpoints" / f"state_{event['step']:08d}.pt")["step"] == event["step"]
    # Independent of the check's windows: each named loss really left the range it had before the jump.
    for named in {r["loss"] for r in event["values"]["losses"]}:
        before = statistics.median(r[f"loss/{named}"] for r in logged[: onset - 1])
        after = statistics.median(r[f"loss/{named}"] for r in logged[onset:])
        assert after > 3 * before, f"expected logged {named} to stay > 3× its pre-jump median {before}: {after}"


# --- generated audio -----------------------------------------------------------------------------
@pytest.mark.slow  # ~15 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_a_constant_offset_generator_is_named_dc_offset(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    """+1.0 on every output sample (the real audio's std is ~0.2, so ~5× it). Short grace and window: the
    level criterion (|offset| ≥ dc_level = 1 real std) cannot be met by this config's fresh generator, whose
    offset stays 0.3-0.8× the real std (see the module docstring for why the healthy runs use longer ones)."""
    faults(Faults(g_offset=1.0))
    run = tmp_path / "run"
    grace, window, persist = 10, 10, 5
    bound = grace + window + persist - 1  # the offset is there from step 1; the earliest the check can name it
    assert train_tiny(tiny_corpus, run, f"train.max_steps={bound + 4}",
                      *health(dc_offset={"grace": grace, "window": window, "persist": persist})) == 0
    event = first(events(run), "dc_offset")
    assert event["step"] <= bound, f"expected dc_offset named within grace + window + persist - 1 = {bound} steps"
    assert event["values"]["drifted"][0] == "dc", event["values"]
    assert event["values"]["dc_offset_over_real_std"] > 2.0, event["values"]
    # The numbers the check read are logged per step and drawn beside the health timeline.
    rows = list(read_jsonl(run / "metrics.jsonl"))
    assert all(r["out/fake_dc"] > 0.5 and abs(r["out/real_dc"]) < 0.1 and r["out/dc_over_real_std"] > 2.0
               for r in rows[1:]), rows[-1]
    from gankit.report.build import build_report

    page = build_report(run).read_text(encoding="utf-8")
    assert "Generated vs real output" in page and (run / "report" / "figures" / "outputs.png").is_file()


# --- the discriminator ---------------------------------------------------------------------------
# Slow (≈ 24 s, 100 steps): in CI's slow step with the collapse runs; keeps the default run under its 8 minutes.
@pytest.mark.slow
def test_discriminator_lr_x100_is_named_overpowering(tiny_corpus: Path, tmp_path: Path) -> None:
    """lr 2e-2 instead of 2e-4 from step 1. Measured (twice, 2026-12): the logged d/total falls from a median ~4.9
    over the first 20 steps to ~0.15 over steps 60-79 (≈0.02 per sub-discriminator, no-information value 0.5)
    while g/adv rises from ~4 to ~7.8; overpowering (grace 20, window 20: it cannot fire before step 40) named it
    at step 77 and 79. The bound: within 90 steps, in a 100-step run. A healthy run with the same settings stays
    quiet (test_healthy_*)."""
    steps, bound = 100, 90
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, f"train.max_steps={steps}", "optim.discriminator.lr=0.02", *health()) == 0
    event = first(events(run), "discriminator_overpowering")
    assert event["step"] <= bound < steps, f"expected overpowering named within {bound} steps: {event['step']}"
    named = set(event["values"]["sub_discriminators"])
    assert len(named) >= 4 and named <= SUB_DISCRIMINATORS, event["values"]
    # Independent of the check's readout and windows: the trainer's own log over the window that ended at the
    # event, against the run's first steps. D's summed loss fell tenfold; G's adversarial loss rose by half.
    window = ARMED["discriminator_overpowering"]["window"]
    logged = metrics(run)
    start, recent = logged[:20], logged[event["step"] - window : event["step"]]
    assert recent[-1]["step"] == event["step"]

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    assert median(recent, "loss/d/total") <= 0.1 * median(start, "loss/d/total"), (
        f"expected the logged D loss to have fallen tenfold: {median(start, 'loss/d/total')} → "
        f"{median(recent, 'loss/d/total')}")
    assert median(recent, "loss/g/adv") >= 1.5 * median(start, "loss/g/adv"), (
        f"expected the logged g/adv to have risen by half: {median(start, 'loss/g/adv')} → "
        f"{median(recent, 'loss/g/adv')}")


@pytest.mark.long  # ~100 s; CI's budget keeps the frozen-discriminator collapse run below instead (pytest -m long)
def test_discriminator_lr_0_is_named_collapse(tiny_corpus: Path, tmp_path: Path) -> None:
    """With lr 0 the discriminators never learn; after the grace a healthy run needs (250 D steps) and a
    40-step window, collapse is named at step 290."""
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=300", "optim.discriminator.lr=0", *health()) == 0
    event = first(events(run), "discriminator_collapse")
    assert event["step"] <= 250 + 40, f"expected collapse named within grace + window = 290 steps: {event['step']}"
    assert set(event["values"]["sub_discriminators"]) <= SUB_DISCRIMINATORS, event["values"]
    assert len(event["values"]["evidence"]) >= 2, event["values"]


def test_a_frozen_discriminator_trains_on_with_zero_gradient(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(freeze_discriminators=True))
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=2", *health()) == 0
    rows = metrics(run)
    assert [r["grad_norm/d"] for r in rows] == [0.0, 0.0], "expected a frozen discriminator's gradient norm 0"


@pytest.mark.slow
def test_a_frozen_discriminator_is_named_collapse(tiny_corpus: Path, tmp_path: Path, faults: Any) -> None:
    faults(Faults(freeze_discriminators=True))
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=300", *health()) == 0
    event = first(events(run), "discriminator_collapse")
    assert event["step"] <= 250 + 40, f"expected collapse named within grace + window = 290 steps: {event['step']}"
    assert "gradients_vanished" in event["values"]["evidence"], event["values"]


# --- the onsets benchmark's resumed runs ---------------------------------------------------------
def test_a_resumed_faulty_run_meets_its_faults_at_the_runs_steps(
    tiny_corpus: Path, tmp_path: Path, faults: Any
) -> None:
    """benchmarks/health_onsets.py starts each induced failure from one checkpoint at the onset: with
    `from_run_step` the resumed process applies the output bias, the loss spike and D's learning-rate factor at
    the run's steps, so its weights equal those of a run that trained through (without it, the process's own
    count restarts at 0 and the faults land later or never)."""
    from benchmarks.health_onsets import resume_point
    from tests.support.training import assert_identical, generator_weights

    def make() -> Faults:
        # From step 4 on, after the checkpoint at 3 (as the benchmark's healthy checkpoint precedes its faults).
        return Faults(onset=4, g_offset=0.2, g_offset_ramp=2, d_lr_factor=3.0, loss_scale_at={5: 4.0},
                      from_run_step=True)

    through, resumed = tmp_path / "through", tmp_path / "resumed"
    faults(make())
    assert train_tiny(tiny_corpus, through, "train.max_steps=6", "train.ckpt_every=3", "train.keep_last=3") == 0
    faulty_tasks.remove_hooks()
    assert resume_point(through, 3, resumed) and not resume_point(through, 4, tmp_path / "absent")
    faults(make())
    assert train_tiny(tiny_corpus, resumed, "train.max_steps=6", "train.ckpt_every=3", "train.keep_last=3") == 0
    assert_identical(generator_weights(through), generator_weights(resumed), "generator")
