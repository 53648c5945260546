"""The unused-parameter probe on tiny torch modules and a tiny task: it names what gets no gradient, ignores what is
deliberately frozen (requires_grad False), and leaves weights, buffers, gradients and every RNG bit-identical.
Also the session driven by the engine's own GanStepper on that task (a NaN update skipped, layers named)."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from gankit.engine.distributed import DistContext
from gankit.engine.health import find_unused_parameters
from gankit.engine.health_session import HealthSession
from gankit.engine.jsonl import read_jsonl
from gankit.engine.optim import OptimizerSet, parse_groups
from gankit.engine.precision import Precision
from gankit.engine.step import StepRunner
from gankit.tasks.base import CriticReadout, LossTerms, OptimizerGroup, OutputPair, StepContext, Update
from gankit.tasks.vocoder import GeneratorPass


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyGenerator(nn.Module):
    def __init__(self, wired_decoder: bool = False) -> None:
        super().__init__()
        self.wired_decoder = wired_decoder
        self.pre = weight_norm(nn.Conv1d(4, 8, 3, padding=1))
        self.norm = nn.BatchNorm1d(8)  # running statistics: buffers a forward in train mode changes
        self.fixed = nn.Conv1d(8, 8, 1)  # on the path, but deliberately frozen below
        self.fixed.requires_grad_(False)
        self.decoder = nn.Conv1d(8, 8, 1)  # built, and (unless wired) never called: the wiring bug
        self.post = nn.Conv1d(8, 1, 3, padding=1)

    def forward(self, mel: Tensor) -> Tensor:
        h = mel + 0.01 * torch.randn_like(mel)  # draws from the RNG, like a noise input
        h = torch.relu(self.norm(self.pre(h)))
        h = self.fixed(h)
        if self.wired_decoder:
            h = self.decoder(h)
        return torch.tanh(self.post(h))


class TinyDiscriminators(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [
                nn.Sequential(spectral_norm(nn.Conv1d(1, 4, 5, stride=2)), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3)),
                nn.Sequential(weight_norm(nn.Conv1d(1, 4, 5, stride=2)), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3)),
            ]
        )
        self.unused_head = nn.Conv1d(1, 1, 1)  # never called

    def forward(self, x: Tensor) -> SimpleNamespace:
        features, scores = [], []
        for d in self.discriminators:
            h = d[1](d[0](x))
            features.append([h])
            scores.append(d[2](h))
        return SimpleNamespace(scores=scores, features=features)


class TinyTask:
    """The task methods the engine (and the probe) call, with the LSGAN losses of HiFi-GAN in miniature."""

    name = "tiny"
    generator_keys = ("generator",)
    discriminator_keys = ("disc",)
    adversarial = SimpleNamespace(name="lsgan", no_information_d_loss=0.5)
    poison = False  # the generator's loss becomes NaN (an injected failure)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("g", self.generator_keys), OptimizerGroup("d", self.discriminator_keys)]

    def schedule(self, step: int, last_losses: Mapping[str, float]) -> list[Update]:
        return [Update("d"), Update("g")]

    def prepare(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> None:
        ctx.cache["gen"] = self.generate(nets, batch)

    def loss(self, group: str, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> LossTerms:
        gen = ctx.cache["gen"]
        if group == "d":
            terms, terms.readout = self.discriminator_loss(nets, batch, gen)
            return terms
        terms = self.generator_loss(nets, batch, gen, True)
        terms.outputs = OutputPair(gen.fake, gen.real)
        return terms

    def generate(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> GeneratorPass:
        return GeneratorPass(fake=nets["generator"](batch["mel"]), real=batch["audio"].unsqueeze(1))

    def discriminator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass
    ) -> tuple[LossTerms, CriticReadout]:
        n = gen.real.shape[0]
        out = nets["disc"](torch.cat([gen.real, gen.fake.detach()]))
        per_sub = [((1 - s[:n]) ** 2).mean() + (s[n:] ** 2).mean() for s in out.scores]
        total = sum(per_sub, torch.zeros(()))
        readout = CriticReadout([float(s[:n].detach().mean()) for s in out.scores],
                                       [float(s[n:].detach().mean()) for s in out.scores],
                                       [float(v.detach()) for v in per_sub])
        return LossTerms(total=total, logs={"d/total": float(total.detach())}), readout

    def generator_loss(
        self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], gen: GeneratorPass, adversarial: bool
    ) -> LossTerms:
        total = 45 * F.l1_loss(gen.fake, gen.real)
        if adversarial:
            n = gen.real.shape[0]
            out = nets["disc"](torch.cat([gen.real, gen.fake]))
            total = total + sum((((1 - s[n:]) ** 2).mean() for s in out.scores), torch.zeros(()))
        if self.poison:
            total = total * float("nan")
        return LossTerms(total=total, logs={"g/total": float(total.detach())})


def tiny(wired_decoder: bool = False) -> tuple[TinyTask, dict[str, nn.Module], dict[str, Any]]:
    torch.manual_seed(0)
    nets = {"generator": TinyGenerator(wired_decoder), "disc": TinyDiscriminators()}
    batch = {"mel": torch.randn(4, 4, 32), "audio": 0.1 * torch.randn(4, 32), "id": ["a", "b", "c", "d"]}
    return TinyTask(), nets, batch


def snapshot(nets: Mapping[str, nn.Module]) -> dict[str, Any]:
    return {
        "state": {k: {n: t.detach().clone() for n, t in net.state_dict().items()} for k, net in nets.items()},
        "grads": {f"{k}.{n}": (None if p.grad is None else p.grad.clone()) for k, net in nets.items()
                  for n, p in net.named_parameters()},
        "flags": {f"{k}.{n}": p.requires_grad for k, net in nets.items() for n, p in net.named_parameters()},
        "torch_rng": torch.get_rng_state().clone(),
        "np_rng": np.random.get_state()[1].copy(),
        "py_rng": random.getstate(),
    }


def assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in a["state"]:
        for name, tensor in a["state"][key].items():
            assert torch.equal(tensor, b["state"][key][name]), f"{key}.{name} changed"
    for name, grad in a["grads"].items():
        other = b["grads"][name]
        assert (grad is None and other is None) or (grad is not None and other is not None and torch.equal(grad, other))
    assert a["flags"] == b["flags"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert np.array_equal(a["np_rng"], b["np_rng"]) and a["py_rng"] == b["py_rng"]


def test_unused_submodules_are_named_and_frozen_layers_are_not() -> None:
    task, nets, batch = tiny()
    report = find_unused_parameters(task, nets, batch)
    assert set(report.layers) == {"generator.decoder", "disc.unused_head"}
    assert sorted(report.layers["generator.decoder"]) == ["generator.decoder.bias", "generator.decoder.weight"]
    # requires_grad False means "deliberately frozen": listed for information, never reported as unused.
    assert sorted(report.frozen) == ["generator.fixed.bias", "generator.fixed.weight"]
    task, nets, batch = tiny(wired_decoder=True)
    assert set(find_unused_parameters(task, nets, batch).layers) == {"disc.unused_head"}


def test_parametrized_layers_are_grouped_under_their_module() -> None:
    task, nets, batch = tiny()
    nets["generator"].pre.register_parameter("dangling", nn.Parameter(torch.zeros(1)))  # never used
    report = find_unused_parameters(task, nets, batch)
    assert report.layers["generator.pre"] == ["generator.pre.dangling"]  # the weight-norm params are used


def test_probe_leaves_weights_buffers_grads_and_rng_bit_identical() -> None:
    task, nets, batch = tiny()
    for net in nets.values():
        net.train()
    nets["generator"].post.weight.grad = torch.full_like(nets["generator"].post.weight, 3.0)  # a stale grad
    np.random.seed(7)
    random.seed(7)
    before = snapshot(nets)
    find_unused_parameters(task, nets, batch)
    assert_identical(before, snapshot(nets))
    # The same forward on the originals does change those buffers and the RNG: the comparison has teeth.
    task.discriminator_loss(nets, batch, task.generate(nets, batch))
    with pytest.raises(AssertionError):
        assert_identical(before, snapshot(nets))


def test_probe_then_training_is_the_same_as_training_alone() -> None:
    def train(probe: bool) -> dict[str, Tensor]:
        task, nets, batch = tiny()
        torch.manual_seed(123)
        if probe:
            find_unused_parameters(task, nets, batch)
        opt = torch.optim.SGD(nets["generator"].parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            task.generator_loss(nets, batch, task.generate(nets, batch), True).total.backward()
            opt.step()
        return {f"{k}.{n}": t.clone() for k, net in nets.items() for n, t in net.state_dict().items()}

    alone, probed = train(False), train(True)
    assert all(torch.equal(alone[k], probed[k]) for k in alone)


def test_session_probe_writes_an_event_and_honours_stop(tmp_path: Path) -> None:
    lines: list[str] = []
    task, nets, batch = tiny()
    run = SimpleNamespace(root=tmp_path / "a", writer=True, tensorboard=None)
    health = HealthSession({}, task, nets, run, DistContext(), console=lines.append)
    assert health.check_unused_before_training(batch) == "continue"
    [row] = read_jsonl(tmp_path / "a" / "events.jsonl")
    assert (row["kind"], row["severity"], row["step"]) == ("unused_parameters", "warning", 0)
    assert "generator.decoder" in row["message"] and "disc.unused_head" in row["message"]
    assert row["values"]["layers"]["generator.decoder"] and row["values"]["frozen"] == 2
    assert lines and lines[0].startswith("health warning [unused_parameters] step 0:")

    run = SimpleNamespace(root=tmp_path / "b", writer=True, tensorboard=None)
    strict = HealthSession({"unused_parameters": {"action": "stop"}}, task, nets, run, DistContext(),
                           console=lines.append)
    assert strict.check_unused_before_training(batch) == "stop"

    task, nets, batch = tiny(wired_decoder=True)
    del nets["disc"].unused_head
    run = SimpleNamespace(root=tmp_path / "c", writer=True, tensorboard=None)
    clean = HealthSession({"unused_parameters": {"action": "stop"}}, task, nets, run, DistContext(),
                          console=lines.append)
    assert clean.check_unused_before_training(batch) == "continue"
    assert not (tmp_path / "c" / "events.jsonl").exists()


def test_probe_works_on_networks_already_wrapped_in_ddp(tmp_path: Path) -> None:
    # The probe reads the plain modules; even after DDP wrapped them (single-process gloo group) it names
    # the same parameters, leaves everything untouched, and DDP's own step still works afterwards.
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    live: dict[str, Any] = {}
    ctx: StepContext | None = None
    try:
        task, nets, batch = tiny(wired_decoder=True)
        del nets["disc"].unused_head  # DDP itself would fail later on a never-used parameter
        live = {k: DDP(n) for k, n in nets.items()}
        before = snapshot(nets)
        assert not find_unused_parameters(task, nets, batch)
        assert_identical(before, snapshot(nets))
        ctx = StepContext(step=0, groups=("d",))
        task.prepare(live, batch, ctx)
        task.loss("d", live, batch, ctx).total.backward()
        assert all(p.grad is not None for p in nets["disc"].parameters())
    finally:
        # DDP's reducers (and the graph of the cached forwards) hold the Gloo group: freed after
        # destroy_process_group, its destructor can wait forever on Gloo's threads (seen once in CI).
        live.clear()
        ctx = None
        gc.collect()
        dist.destroy_process_group()


def test_engine_step_with_the_session_skips_a_nan_update_and_keeps_weights_finite(tmp_path: Path) -> None:
    task, nets, batch = tiny(wired_decoder=True)
    del nets["disc"].unused_head
    lines: list[str] = []
    run = SimpleNamespace(root=tmp_path, writer=True, tensorboard=None)
    health = HealthSession({}, task, nets, run, DistContext(), console=lines.append)
    groups = task.optimizer_groups()
    optim = OptimizerSet(groups, parse_groups({g.name: {"type": "SGD", "lr": 0.01} for g in groups}, groups), nets)
    stepper = StepRunner(task, nets, nets, optim, Precision("fp32", torch.device("cpu")), health.should_skip)
    for step in range(3):
        task.poison = step == 1
        before = [p.clone() for p in nets["generator"].parameters()]
        outcome = stepper.run(step, task.schedule(step, {}), [[batch]])
        assert health.after_step(step + 1, outcome, outcome.losses, {"g": 0.01, "d": 0.01}) == "continue"
        unchanged = all(torch.equal(a, b) for a, b in zip(before, nets["generator"].parameters(), strict=True))
        assert unchanged == (step == 1) and (outcome.skipped == ({"g"} if step == 1 else set()))
    assert all(torch.isfinite(p).all() for net in nets.values() for p in net.parameters())
    [row] = read_jsonl(tmp_path / "events.jsonl")
    assert (row["step"], row["kind"], row["severity"], row["values"]["action"]) == (2, "nonfinite", "error",
                                                                                    "skip_step")
    assert row["values"]["nonfinite_losses"] == ["g/total"]
    # Per-layer gradient norms of the last step, network-prefixed, parametrization suffixes stripped.
    assert {"generator.pre", "generator.post", "disc.discriminators.0.0"} <= set(health.last_layer_grads)
    assert "generator.fixed" not in health.last_layer_grads  # frozen: not a layer the monitor watches
