"""The engine trains any task through the contract in gankit/tasks/base.py: a toy task with three optimizer
groups (one RMSprop), a loss term that switches off at a step and a gradient penalty, under accumulation and
bf16, handed to the engine directly — no registry, no monkeypatching. Also: optimizer groups and schedulers by
name from config, the adversarial schedule, and config keys renamed by the contract still read."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gankit.config import load_config
from gankit.config_legacy import upgrade_legacy_keys
from gankit.engine.jsonl import read_jsonl
from gankit.engine.launch import train
from gankit.engine.step import windows_of
from gankit.errors import ConfigError
from gankit.tasks.base import Update
from gankit.tasks.schedule import AdversarialSchedule
from tests.support.toy_tasks import (
    ImageGanTask,
    ThreeGroupTask,
    TwoDecoderTask,
    image_gan_config,
    toy_config,
    two_decoder_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def run_toy(run: Path, steps: int, **train_settings: object) -> ThreeGroupTask:
    tasks: list[ThreeGroupTask] = []

    def build(config: object) -> ThreeGroupTask:
        tasks.append(ThreeGroupTask(config))  # type: ignore[arg-type]
        return tasks[-1]

    assert train(toy_config(steps=steps, **train_settings), build, run, progress=False) == 0
    return tasks[-1]


def test_three_groups_train_with_their_own_optimizers_schedulers_and_clipping(tmp_path: Path) -> None:
    task = run_toy(tmp_path / "run", 6, grad_accum=2, precision="bf16")
    rows = list(read_jsonl(tmp_path / "run" / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    # Every group is optimised every step, in schedule order, per micro-batch (2 micro-batches of 4 points).
    first_step = [(g, n) for g, s, n in task.calls if s == 0]
    assert first_step == [("c", 4), ("d", 4), ("g", 4)] * 2
    assert task.probe_calls == [("c", 0, 2), ("d", 0, 2), ("g", 0, 2)]  # the unused-parameter probe: every group
    for row in rows:
        assert {"grad_norm/c", "grad_norm/d", "grad_norm/g", "lr/c", "lr/d", "lr/g", "loss/d/gp"} <= set(row), row
        assert all(torch.isfinite(torch.tensor(v)) for k, v in row.items() if k.startswith("loss/")), row
    # The identity term is on for steps 0..2 (rows 1..3) only: a step-aware loss.
    assert ["loss/g/id" in r for r in rows] == [True, True, True, False, False, False]
    # c's StepLR every 2 steps halves its rate; d and g keep theirs.
    assert [r["lr/c"] for r in rows] == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4])
    assert {r["lr/g"] for r in rows} == {1e-3}
    state = torch.load(tmp_path / "run" / "checkpoints" / "state_00000006.pt", weights_only=True)
    assert set(state["optimizers"]) == {"c", "d", "g"}
    first = next(iter(state["optimizers"]["c"]["state"].values()))
    assert "square_avg" in first and "exp_avg" not in first  # c really is RMSprop
    assert "exp_avg" in next(iter(state["optimizers"]["g"]["state"].values()))
    assert set(state["schedulers"]) == {"c"}


def test_the_toy_task_resumes_bit_identically_and_computes_only_the_remaining_steps(tmp_path: Path) -> None:
    whole = run_toy(tmp_path / "whole", 6, grad_accum=2, precision="bf16")
    run_toy(tmp_path / "split", 3, grad_accum=2, precision="bf16")
    rows_before = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    second = run_toy(tmp_path / "split", 6, grad_accum=2, precision="bf16")
    assert sorted({s for _, s, _ in second.calls}) == [3, 4, 5]  # steps 0..2 were not computed again
    assert (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()[:3] == rows_before
    a = torch.load(tmp_path / "whole" / "checkpoints" / "state_00000006.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "state_00000006.pt", weights_only=True)
    for net in ("generator", "critic", "classifier"):
        for key, value in a["networks"][net].items():
            assert torch.equal(value, b["networks"][net][key]), (net, key)
    assert a["schedulers"] == b["schedulers"]
    assert len(whole.calls) == 6 * 2 * 3


def test_value_clipping_bounds_every_gradient_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    original = torch.optim.Adam.step

    def spy(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        if self.param_groups[0]["params"][0].shape == (16, 2):  # the critic's first layer: group d
            seen.append(max(float(p.grad.abs().max()) for g in self.param_groups for p in g["params"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    run_toy(tmp_path / "run", 3)
    rows = list(read_jsonl(tmp_path / "run" / "metrics.jsonl"))
    assert seen and max(seen) <= 0.5 + 1e-7  # optim.d.clip: {type: value, max: 0.5}
    assert max(r["grad_norm/d"] for r in rows) > 0.5  # the logged norm is before clipping, and it was needed


def test_the_engine_imports_no_system() -> None:
    code = ("import sys, gankit.engine.trainer, gankit.engine.launch; print(sorted(m for m in sys.modules if "
            "(m.startswith('gankit.tasks.') and m != 'gankit.tasks.base') or m.startswith('gankit.compat')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_windows_of_a_schedule() -> None:
    shapes = [[u.group for u in w.updates] for w in windows_of([Update("d", 3), Update("g")])]
    assert shapes == [["d"], ["d"], ["d", "g"]]
    assert [[u.group for u in w.updates] for w in windows_of([Update("c"), Update("d"), Update("g")])] == [
        ["c", "d", "g"]]
    with pytest.raises(ValueError, match="repeats 0"):
        windows_of([Update("d", 0)])


def test_adversarial_schedule_warmup_critic_steps_and_thresholds() -> None:
    s = AdversarialSchedule(warmup_steps=2, n_critic=3, d_loss_threshold=0.1, g_boost_threshold=0.2,
                            g_boost_repeats=4)
    assert s.updates(1, {}) == [Update("g")]
    assert s.updates(2, {}) == [Update("d", 3), Update("g")]
    assert s.updates(2, {"d/total": 0.15}) == [Update("d", 3), Update("g", 4)]  # D winning: G steps more
    assert s.updates(2, {"d/total": 0.05}) == [Update("d", 3, apply=False), Update("g", 4)]  # D held
    with pytest.raises(ConfigError, match="n_critic"):
        AdversarialSchedule(n_critic=0)


def test_optimizer_groups_are_validated_before_any_network_is_built(tmp_path: Path) -> None:
    def attempt(**optim: object) -> None:
        config = toy_config(steps=1)
        config["optim"] = {**config["optim"], **optim}
        train(config, ThreeGroupTask, tmp_path / "never", progress=False)

    with pytest.raises(ConfigError, match=r"optim\.g\.type: 'Adamm' is not a torch\.optim class.*AdamW"):
        attempt(g={"type": "Adamm", "lr": 1e-3})
    with pytest.raises(ConfigError, match=r"optim\.g\.lr: must be > 0"):
        attempt(g={"type": "Adam", "lr": -1.0})
    with pytest.raises(ConfigError, match=r"optim: no optimizer group\(s\) x in this task; its groups are c, d, g"):
        attempt(x={"type": "Adam"})
    with pytest.raises(ConfigError, match=r"optim\.d\.clip"):
        attempt(d={"type": "Adam", "clip": {"type": "norm", "max": -1}})
    with pytest.raises(ConfigError, match=r"optim\.c\.scheduler\.interval"):
        attempt(c={"type": "RMSprop", "scheduler": {"type": "StepLR", "step_size": 1, "interval": "sometimes"}})
    assert not (tmp_path / "never" / "checkpoints").exists()


def test_renamed_config_keys_are_read_under_their_old_names() -> None:
    _, old = load_config("hifigan_tiny", ["optim.generator.lr=1e-4", "optim.discriminator.name=adam",
                                          "train.grad_clip_g=1.0", "train.ema_decay=0.9", "train.n_critic=2",
                                          "train.warmup_steps=5", "optim.lr_decay=0.5", "optim.lr_decay_every=step"])
    _, new = load_config("hifigan_tiny", ["optim.g.lr=1e-4", "optim.d.type=Adam", "optim.g.clip={type: norm, max: 1.0}",
                                          "train.ema={decay: 0.9}", "schedule.n_critic=2", "schedule.warmup_steps=5",
                                          "optim.g.scheduler.gamma=0.5", "optim.d.scheduler.gamma=0.5",
                                          "optim.g.scheduler.interval=step", "optim.d.scheduler.interval=step"])
    assert old == new
    saved_before = {"task": "hifigan", "optim": {"generator": {"lr": 2e-4, "betas": [0.8, 0.99], "weight_decay": 0.01},
                                                 "discriminator": {"name": "adam", "lr": 1e-4},
                                                 "lr_decay": 0.999, "lr_decay_every": "epoch"},
                    "train": {"grad_clip_g": None, "grad_clip_d": 2.0, "ema_decay": None, "warmup_steps": 0,
                              "n_critic": 1, "d_loss_threshold": None}}
    upgraded = upgrade_legacy_keys(saved_before, complete=True)
    scheduler = {"type": "ExponentialLR", "gamma": 0.999, "interval": "epoch"}
    assert upgraded["optim"] == {
        "g": {"type": "AdamW", "lr": 2e-4, "betas": [0.8, 0.99], "weight_decay": 0.01, "clip": None,
              "scheduler": scheduler},
        "d": {"type": "Adam", "lr": 1e-4, "clip": {"type": "norm", "max": 2.0}, "scheduler": scheduler},
    }
    assert upgraded["train"] == {"ema": None}
    assert upgraded["schedule"] == {"warmup_steps": 0, "n_critic": 1, "d_loss_threshold": None,
                                    "g_boost_threshold": None, "g_boost_repeats": 2}
    with pytest.raises(ConfigError, match=r"optim\.generator\.name.*optim\.<group>\.type"):
        upgrade_legacy_keys({"optim": {"generator": {"name": "sgd"}}}, complete=False)


@pytest.mark.parametrize(("role", "random_labels", "named"), [
    ("confusion", False, "confusion_classifier_wins"),  # separable labels: it wins, the latent leaks them
    ("confusion", True, None),  # labels it cannot learn: at chance, the goal of a confusion classifier
    ("auxiliary", True, "auxiliary_classifier_at_chance"),  # an auxiliary classifier learning nothing
    ("auxiliary", False, None),  # one that learns
])
def test_classifier_readouts_are_named_by_role(tmp_path: Path, role: str, random_labels: bool,
                                               named: str | None) -> None:
    config = toy_config(steps=60)
    config["toy"].update(classifier_role=role, random_labels=random_labels, points=64)
    config["optim"]["c"] = {"type": "Adam", "lr": 0.05}
    window = {"grace": 10, "window": 20}
    config["health"] = {"confusion_classifier_wins": window, "auxiliary_classifier_at_chance": window,
                        "loss_spike": False, "divergence": False}
    assert train(config, ThreeGroupTask, tmp_path / "run", progress=False) == 0
    events = [e for e in read_jsonl(tmp_path / "run" / "events.jsonl") if e["severity"] != "info"]
    kinds = {e["kind"] for e in events}
    accuracy = [r["loss/c/accuracy"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    late = sorted(accuracy[-20:])[10]
    if named is None:
        assert not kinds & {"confusion_classifier_wins", "auxiliary_classifier_at_chance"}, (events, late)
    else:
        assert named in kinds, (late, events)
        first = min(e["step"] for e in events if e["kind"] == named)
        assert first <= 10 + 20 + 15, first  # within grace + window + 15 steps of learning, in a 60-step run
        event = next(e for e in events if e["kind"] == named)
        assert event["values"]["network"] == "classifier" and event["values"]["chance"] == 0.5
    assert (late >= 0.95) == (not random_labels), late  # the independent fact each verdict rests on


def run_two_decoders(run: Path, steps: int, **toy: object) -> TwoDecoderTask:
    config = two_decoder_config(steps=steps)
    config["toy"].update(toy)
    tasks: list[TwoDecoderTask] = []

    def build(c: object) -> TwoDecoderTask:
        tasks.append(TwoDecoderTask(c))  # type: ignore[arg-type]
        return tasks[-1]

    assert train(config, build, run, progress=False) == 0
    return tasks[-1]


def test_a_schedule_that_skips_a_decoder_is_named_and_a_correct_one_is_not(tmp_path: Path) -> None:
    run_two_decoders(tmp_path / "good", 2)
    good = [e for e in read_jsonl(tmp_path / "good" / "events.jsonl") if e["kind"] == "unused_parameters"]
    assert good == []
    run_two_decoders(tmp_path / "broken", 2, route_all_to="a")
    [event] = [e for e in read_jsonl(tmp_path / "broken" / "events.jsonl") if e["kind"] == "unused_parameters"]
    assert set(event["values"]["layers"]) == {"decoder_b.0", "decoder_b.2"}, event
    assert "decoder_b" in event["message"] and "decoder_a" not in event["message"]
    # Both decoders trained in the good run, B never in the broken one (the weights the runs started from: the
    # engine seeds, then builds the networks).
    from gankit.engine.rng import seed_everything

    seed_everything(5)
    start = TwoDecoderTask({}).build_networks()

    def changed(run: str, net: str) -> bool:
        end = torch.load(tmp_path / run / "checkpoints" / "state_00000002.pt", weights_only=True)["networks"][net]
        return any(not torch.equal(end[k], v) for k, v in start[net].state_dict().items())

    assert changed("good", "decoder_a") and changed("good", "decoder_b")
    assert changed("broken", "decoder_a") and not changed("broken", "decoder_b")


class SkippingTwoDecoderTask(TwoDecoderTask):
    """Decodes only the domains a batch holds (fine in one process): a probe on one domain's items would see
    the other decoder unused."""

    def _decode(self, nets: Any, latent: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(latent.shape[0], 2)
        for d, key in enumerate(("decoder_a", "decoder_b")):
            rows = (domain == d).nonzero().squeeze(1)
            if rows.numel():
                out = out.index_put((rows,), nets[key](latent[rows]))
        return out


def test_the_probe_covers_every_domain_through_the_tasks_probe_batch() -> None:
    from gankit.engine.health.probe import find_unused_parameters

    task = SkippingTwoDecoderTask({})
    task.build_datasets(0)
    torch.manual_seed(0)
    nets = task.build_networks()
    only_a = {"x": torch.randn(2, 2), "domain": torch.tensor([0, 0]), "id": ["x", "y"]}
    # One domain's items alone would call decoder B unused — the false alarm a per-batch probe raises ...
    assert set(find_unused_parameters(task, nets, only_a, items=2).layers) == {"decoder_b.0", "decoder_b.2"}
    # ... the task's probe batch holds every domain: nothing unused.
    assert not find_unused_parameters(task, nets, task.probe_batch(only_a), items=0)


class DomainRecordingTask(TwoDecoderTask):
    """Records the domains of every training micro-batch it prepares."""

    seen: list[list[int]]

    def prepare(self, nets: Any, batch: Any, ctx: Any) -> None:
        if not ctx.probe:
            self.seen.append(sorted(batch["domain"].tolist()))
        super().prepare(nets, batch, ctx)


@pytest.mark.parametrize("balanced", [True, False])
def test_a_dataset_that_declares_domains_gets_every_domain_in_every_batch(tmp_path: Path, balanced: bool) -> None:
    config = two_decoder_config(steps=12)
    config["toy"].update(points=18, balanced=balanced)  # 9 items per domain: more than one epoch in 12 steps
    config["data"]["batch_size"] = 2
    task = DomainRecordingTask(config)
    task.seen = []
    assert train(config, lambda c: task, tmp_path / "run", progress=False) == 0
    assert len(task.seen) == 12
    if balanced:
        assert all(domains == [0, 1] for domains in task.seen)
    else:  # the control: the plain sampler does give this toy batches of one domain
        assert any(domains != [0, 1] for domains in task.seen)


def test_the_two_decoder_task_resumes_bit_identically(tmp_path: Path) -> None:
    run_two_decoders(tmp_path / "whole", 6)
    run_two_decoders(tmp_path / "split", 3)
    second = run_two_decoders(tmp_path / "split", 6)
    assert second.dataset is not None
    a = torch.load(tmp_path / "whole" / "checkpoints" / "state_00000006.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "state_00000006.pt", weights_only=True)
    for net, state in a["networks"].items():
        for key, value in state.items():
            assert torch.equal(value, b["networks"][net][key]), (net, key)


def test_the_health_session_probes_the_tasks_probe_batch(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gankit.engine.distributed import DistContext
    from gankit.engine.health_session import HealthSession

    only_a = {"x": torch.randn(4, 2), "domain": torch.tensor([0, 0, 0, 0]), "id": list("abcd")}
    found = {}
    for label, task in (("with", SkippingTwoDecoderTask({})), ("without", SkippingTwoDecoderTask({}))):
        if label == "without":
            task.probe_batch = None  # type: ignore[assignment,method-assign]  # a task that builds no probe batch
        task.build_datasets(0)
        run = SimpleNamespace(root=tmp_path / label, writer=True, tensorboard=None)
        (tmp_path / label).mkdir()
        lines: list[str] = []
        session = HealthSession({}, task, task.build_networks(), run, DistContext(), console=lines.append)
        session.check_unused_before_training(only_a)
        found[label] = [e["kind"] for e in read_jsonl(tmp_path / label / "events.jsonl")]
    assert found == {"with": [], "without": ["unused_parameters"]}


def test_an_image_gan_writes_typed_media_and_a_report_a_browser_opens(tmp_path: Path) -> None:
    from gankit.report.build import build_report
    from tests.support.report_page import open_in_chromium, parse

    run = tmp_path / "run"
    assert train(image_gan_config(steps=4), ImageGanTask, run, progress=False) == 0
    index = json.loads((run / "samples" / "step_00000004" / "index.json").read_text())
    assert index["items"] == [{"group": "fixed noise", "label": "samples", "role": "generated", "type": "image",
                               "file": "fixed_noise__samples.png", "height": 16, "width": 128, "animate": True}]
    from PIL import Image

    with Image.open(run / "samples" / "progress.gif") as gif:  # one frame per validation, in step order
        assert (gif.n_frames, gif.size) == (2, (128, 16))
        gif.seek(1)
        last = gif.convert("L")
    with Image.open(run / "samples" / "step_00000004" / "fixed_noise__samples.png") as png:
        assert abs(float(np.asarray(last, dtype=np.float64).mean())
                   - float(np.asarray(png.convert("L"), dtype=np.float64).mean())) < 2.0
    assert [e["file"] for e in json.loads((run / "samples" / "reference" / "index.json").read_text())["items"]] == [
        "fixed_noise__data.png"]
    rows = list(read_jsonl(run / "validation.jsonl"))
    assert [r["step"] for r in rows] == [2, 4] and all(r["val/mean_gap"] > 0 for r in rows)
    manifest = json.loads((run / "checkpoints" / "manifest.json").read_text())
    assert manifest["best_metric"] == "val/mean_gap"
    assert [e for e in read_jsonl(run / "events.jsonl") if e["severity"] != "info"] == []
    page_file = build_report(run)
    page = parse(page_file)
    images = page.attrs("img", "src")
    assert {"images/reference/fixed_noise__data.png", "images/step_00000002/fixed_noise__samples.png",
            "images/step_00000004/fixed_noise__samples.png", "images/progress.gif"} <= set(images)
    assert page.attrs("audio", "src") == []
    if Path("/usr/bin/chromium").exists():
        browser = open_in_chromium(page_file, tmp_path / "toy_report.png")
        assert [src for src, complete, width in browser.images if not complete or width == 0] == []
        assert browser.errors == [] and browser.players == []


@pytest.mark.parametrize(("make", "task", "media"), [
    pytest.param(toy_config, ThreeGroupTask, {"image"}, marks=pytest.mark.slow),  # budget: the slow step
    (two_decoder_config, TwoDecoderTask, {"audio", "spectrogram"}),
])
def test_the_tasks_that_are_not_image_gans_write_media_and_a_report_a_browser_opens(
        tmp_path: Path, make: Any, task: Any, media: set[str]) -> None:
    from gankit.report.build import build_report
    from tests.support.report_page import assert_references_resolve, open_in_chromium, parse

    run = tmp_path / "run"
    config = make(steps=4)
    config["train"]["val_every"] = 2
    assert train(config, task, run, progress=False) == 0
    index = json.loads((run / "samples" / "step_00000004" / "index.json").read_text())
    assert {item["type"] for item in index["items"]} == media
    rows = list(read_jsonl(run / "validation.jsonl"))
    assert [r["step"] for r in rows] == [2, 4] and all(math.isfinite(r[task.best_metric[0]]) for r in rows)
    assert json.loads((run / "checkpoints" / "manifest.json").read_text())["best_metric"] == task.best_metric[0]
    page_file = build_report(run)
    page = parse(page_file)
    assert_references_resolve(page_file, page)
    players = page.attrs("audio", "src")
    assert bool(players) == ("audio" in media)
    if Path("/usr/bin/chromium").exists():
        browser = open_in_chromium(page_file, tmp_path / "toy_report.png")
        assert [src for src, complete, width in browser.images if not complete or width == 0] == []
        assert browser.errors == []
        assert len(browser.players) == len(players) and all(p[2] is None and p[3] > 0 for p in browser.players)


def test_mode_collapse_is_named_against_the_runs_own_peak(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gankit.engine.distributed import DistContext
    from gankit.engine.health_session import HealthSession
    from gankit.engine.step import StepOutcome
    from gankit.tasks.base import OutputPair

    def session(label: str) -> HealthSession:
        (tmp_path / label).mkdir()
        run = SimpleNamespace(root=tmp_path / label, writer=True, tensorboard=None)
        task = ImageGanTask({})
        return HealthSession({"mode_collapse": {"grace": 5, "window": 10}, "loss_spike": False, "divergence": False},
                             task, task.build_networks(), run, DistContext(), console=lambda _: None)

    gen = torch.Generator().manual_seed(0)
    real = torch.rand(8, 1, 16, 16, generator=gen)
    for label, collapse_at in (("collapsing", 40), ("steady", None)):
        s = session(label)
        for step in range(1, 81):
            spread = 1.0 if collapse_at is None or step < collapse_at else 0.05
            base = torch.rand(1, 1, 16, 16, generator=gen)
            fake = base + spread * (torch.rand(8, 1, 16, 16, generator=gen) - 0.5)
            outcome = StepOutcome(losses={"g/adv": 1.0, "d/total": 1.0}, stepped={"g", "d"}, trained={"g", "d"},
                                  outputs=OutputPair(fake, real, kind="image"))
            s.after_step(step, outcome, outcome.losses, {"g": 1e-4, "d": 1e-4})
        events = [e for e in read_jsonl(tmp_path / label / "events.jsonl") if e["kind"] == "mode_collapse"]
        if collapse_at is None:
            assert events == []
        else:
            assert events and collapse_at <= events[0]["step"] <= collapse_at + 10, events[:1]
            assert events[0]["values"]["diversity"] < 0.3 * events[0]["values"]["peak"]


def test_the_image_gan_resumes_bit_identically_with_its_batchnorm_statistics(tmp_path: Path) -> None:
    assert train(image_gan_config(steps=6), ImageGanTask, tmp_path / "whole", progress=False) == 0
    assert train(image_gan_config(steps=3), ImageGanTask, tmp_path / "split", progress=False) == 0
    assert train(image_gan_config(steps=6), ImageGanTask, tmp_path / "split", progress=False) == 0
    a = torch.load(tmp_path / "whole" / "checkpoints" / "state_00000006.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "state_00000006.pt", weights_only=True)
    for net, state in a["networks"].items():
        for key, value in state.items():
            assert torch.equal(value, b["networks"][net][key]), (net, key)
    assert any("running_mean" in k for k in a["networks"]["generator"])


# Every check armed within the run (thresholds at their defaults, grace periods and windows shortened).
ARMED = {name: {"grace": 20, "window": 20} for name in (
    "discriminator_collapse", "discriminator_overpowering", "mode_collapse", "confusion_classifier_wins",
    "auxiliary_classifier_at_chance", "loss_spike")}


@pytest.mark.parametrize(("make", "task"), [
    (toy_config, ThreeGroupTask), (two_decoder_config, TwoDecoderTask), (image_gan_config, ImageGanTask)])
def test_healthy_toys_keep_the_health_monitor_quiet(tmp_path: Path, make: Any, task: Any) -> None:
    config = make(steps=120)
    config["train"].update(val_every=1000, ckpt_every=1000)
    config["health"] = {**ARMED, "dead_layers": {"window": 20}}
    if task is ThreeGroupTask:  # separable labels and a brisk learning rate: an auxiliary classifier that learns
        config["toy"].update(classifier_role="auxiliary", points=64)
        config["optim"]["c"] = {"type": "Adam", "lr": 0.05}
    if task is TwoDecoderTask:  # an encoder pushed hard enough to hide the domain (each decoder restores its own)
        config["toy"]["confusion_weight"] = 1.0
    assert train(config, task, tmp_path / "run", progress=False) == 0
    rows = list(read_jsonl(tmp_path / "run" / "metrics.jsonl"))
    assert len(rows) == 120
    events = [(e["step"], e["kind"], e["message"][:200]) for e in read_jsonl(tmp_path / "run" / "events.jsonl")
              if e["severity"] != "info"]
    assert events == []
