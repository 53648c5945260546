"""The health monitor as the trainer sees it: checks built from `health:`, fed each step, findings acted on."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from torch import nn

from gankit.engine.distributed import DistContext
from gankit.engine.health.adversarial import DiscriminatorCollapseCheck, DiscriminatorOverpoweringCheck
from gankit.engine.health.audio import DcOffsetCheck, audio_stats
from gankit.engine.health.base import Check, Finding
from gankit.engine.health.classifiers import ClassifierCheck
from gankit.engine.health.events import ACTION_RANK, ACTIONS_BY_RANK, Event, EventSink, RateLimiter
from gankit.engine.health.images import ModeCollapseCheck, image_stats
from gankit.engine.health.layers import DeadLayersCheck, LayerGradNorms
from gankit.engine.health.losses import LossSpikeCheck, NonfiniteGate
from gankit.engine.health.probe import find_unused_parameters
from gankit.engine.health.record import AudioStats, StepRecord
from gankit.engine.health.settings import HealthSettings
from gankit.engine.step import StepOutcome
from gankit.tasks.base import CriticReadout

if TYPE_CHECKING:
    from gankit.engine.run_dir import RunDirectory

STATE_VERSION = 1
# What a configured action asks of the trainer; warn and skip_step ask nothing more after the step.
_TRAINER_ACTION = {"warn": "continue", "skip_step": "continue", "rollback": "rollback", "stop": "stop"}


def _discriminator_names(keys: tuple[str, ...], nets: Mapping[str, nn.Module]) -> list[str] | None:
    """"mpd.0", "mpd.1", … in the readout's order, when each discriminator lists its sub-discriminators."""
    names: list[str] = []
    for key in keys:
        subs = getattr(nets[key], "discriminators", None)
        if not isinstance(subs, (nn.ModuleList, list, tuple)):
            return None
        names.extend(f"{key}.{i}" for i in range(len(subs)))
    return names


def output_columns(record: StepRecord) -> dict[str, float]:
    """The output statistics and classifier accuracies of a record as metrics.jsonl columns: what the drift and
    classifier checks judge, made visible."""
    out: dict[str, float] = {}
    fake, real = record.fake_audio, record.real_audio
    if fake is not None and real is not None:
        out.update({"out/fake_dc": fake.mean, "out/real_dc": real.mean, "out/fake_std": fake.std,
                    "out/real_std": real.std, "out/fake_flatness": fake.flatness,
                    "out/real_flatness": real.flatness})
        if real.std > 0:
            out["out/dc_over_real_std"] = (fake.mean - real.mean) / real.std
    out.update({f"out/{k}": v for k, v in record.image_stats.items()})
    # Each classifier's accuracy beside its chance level (from its ClassifierReadout), so a report can draw the one
    # against the other without knowing the task: a confusion classifier should stay near chance, an auxiliary one
    # rise above it.
    for network, (accuracy, chance, _role, _group) in record.classifiers.items():
        out[f"acc/{network}"] = accuracy
        out[f"chance/{network}"] = chance
    return out


def _critic_key(kind: str, group: str) -> str:
    """A critic check's key in the saved state: the plain kind for group "d" (as saved before critics had names)."""
    return kind if group == "d" else f"{kind}@{group}"


def _short(layer: str, parameter: str) -> str:
    """'generator.ups.0.parametrizations.weight.original0' in layer 'generator.ups.0' → 'weight (original0)'."""
    rest = parameter[len(layer) + 1 :]
    if rest.startswith("parametrizations."):
        _, name, part = rest.split(".", 2)
        return f"{name} ({part})"
    return rest


class HealthSession:
    """One training run's health monitor (see docs/CONTRACTS.md, "health").

    Every rank builds one and calls it identically; decisions (skip, rollback, stop) are agreed over
    ranks, and only rank 0 writes events.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | HealthSettings | None,
        task: Any,
        nets: Mapping[str, nn.Module],
        run: RunDirectory,
        dist: DistContext,
        console: Callable[[str], None] = print,
        precision: str = "fp32",
    ) -> None:
        self.settings = settings if isinstance(settings, HealthSettings) else HealthSettings.from_dict(settings)
        self.task = task
        self.nets = nets
        self.dist = dist
        self.console = console
        # Optimizer group → the networks it steps. A group whose updates return a CriticReadout is a critic: it
        # gets its own collapse/overpowering checks when its first readout arrives (docs/CONTRACTS.md, "health").
        self.groups: dict[str, tuple[str, ...]] = {g.name: tuple(g.networks) for g in task.optimizer_groups()}
        s = self.settings
        self.critic_prefixes: set[str] = set()  # "d/": the critics' own losses, which loss_spike leaves alone
        self.loss_floors: dict[str, float] = {}  # "g/adv" → the rise loss_spike ignores (the critic's scale)
        self.not_losses: set[str] = set()  # logged scalars that are not losses (LossTerms.scalars): never spikes
        self.checks: list[Check] = self._build_checks() if s.enabled else []
        self.critic_checks: dict[str, list[Check]] = {}
        self._saved_critic_states: dict[str, Any] = {}  # states of critics not seen yet since a resume
        wants_layers = s.layer_grads or (s.enabled and s.dead_layers.enabled)
        optimised = [k for keys in self.groups.values() for k in keys]
        self.layer_norms = LayerGradNorms(nets, optimised) if wants_layers else None
        self.gate = NonfiniteGate(s.nonfinite, precision, dist.agree_max)
        self.sink = EventSink(run, console, writer=dist.is_main and bool(getattr(run, "writer", True)))
        self.limiter = RateLimiter()
        self.last_layer_grads: dict[str, float] = {}
        # The generated-vs-real output statistics ("out/…") and classifier accuracies with their chance levels
        # ("acc/…", "chance/…") the checks read this step, for metrics.jsonl.
        self.last_outputs: dict[str, float] = {}
        self.step = 0
        # In memory only (a rollback reloads the state, these must survive it); identical on every rank.
        self.rollbacks_in_a_row = 0
        self._rollback_step: int | None = None

    def _build_checks(self) -> list[Check]:
        s = self.settings
        checks: list[Check] = []
        if s.dc_offset.enabled:
            checks.append(DcOffsetCheck(s.dc_offset))
        if s.mode_collapse.enabled:
            checks.append(ModeCollapseCheck(s.mode_collapse))
        if s.dead_layers.enabled:
            checks.append(DeadLayersCheck(s.dead_layers))
        if s.confusion_classifier_wins.enabled or s.auxiliary_classifier_at_chance.enabled:
            checks.append(ClassifierCheck(s.confusion_classifier_wins, s.auxiliary_classifier_at_chance))
        if s.loss_spike.enabled or s.divergence.enabled:
            checks.append(LossSpikeCheck(s.loss_spike, s.divergence, critic_prefixes=self.critic_prefixes,
                                         floors=self.loss_floors, ignored=self.not_losses))
        return checks

    def _critic(self, group: str, readout: CriticReadout) -> list[Check]:
        """The adversarial checks of critic `group`, built from its first readout (its objective's values)."""
        if group in self.critic_checks:
            return self.critic_checks[group]
        s = self.settings
        self.critic_prefixes.add(f"{group}/")
        l0 = readout.no_information_loss
        # The score separation the objective aims for: LSGAN with targets a, b has L0 = (b − a)²/2, so
        # sqrt(2·L0) is b − a (1 for HiFi-GAN's 0/1); hinge's L0 = 2 gives 2, its ±1 margins. Without an
        # L0 (WGAN) the task states the scale; 1 otherwise.
        scale = readout.score_scale or (math.sqrt(2.0 * l0) if l0 is not None else 1.0)
        names = readout.sub_names or _discriminator_names(self.groups.get(group, ()), self.nets)
        floor = s.loss_spike.adversarial_margin * scale * max(1, len(readout.losses))
        for loss in readout.generator_losses:
            self.loss_floors[loss] = max(self.loss_floors.get(loss, 0.0), floor)
        checks: list[Check] = []
        if s.discriminator_collapse.enabled:
            checks.append(DiscriminatorCollapseCheck(s.discriminator_collapse, l0, scale, names, readout.objective,
                                                     critic=group))
        if s.discriminator_overpowering.enabled and l0 is not None:  # "≈ 0 loss" means nothing without an L0
            checks.append(DiscriminatorOverpoweringCheck(s.discriminator_overpowering, l0, names, critic=group))
        for check in checks:
            check.load_state_dict(dict(self._saved_critic_states.pop(_critic_key(check.kinds[0], group), {})))
        self.critic_checks[group] = checks
        return checks

    # --- inside a step ---------------------------------------------------------------------------
    def should_skip(self, step: int, losses: Mapping[str, float], grad_norms: Mapping[str, float]) -> bool:
        """Before an optimizer's update: True → the engine zeroes its grads and does not step it.

        Same answer on every rank (agreed); the finding is written by `after_step` under that step's number.
        """
        if not self.settings.enabled:
            return False
        return self.gate.decide(losses, grad_norms)

    # --- after a step ----------------------------------------------------------------------------
    def after_step(
        self, step: int, outcome: StepOutcome, losses: Mapping[str, float], lr: Mapping[str, float]
    ) -> str:
        """Feed the step to every check; returns "continue", "rollback" or "stop" (agreed over ranks)."""
        self.step = step
        self.not_losses.update(outcome.scalar_names)
        stepped_nets = [k for g in sorted(outcome.stepped) for k in self.groups.get(g, ())]
        layer_grads = self.layer_norms.compute(stepped_nets) if self.layer_norms is not None else {}
        self.last_layer_grads = layer_grads if self.settings.layer_grads else {}
        if not self.settings.enabled:
            return "continue"
        record, critics = self._record(step, outcome, losses, lr, layer_grads)
        self.last_outputs = output_columns(record)
        findings = self.gate.end_step()
        for group, (readout, scores) in critics.items():
            critic_record = replace(record, d_real_scores=scores[0], d_fake_scores=scores[1], d_losses=scores[2])
            for check in self._critic(group, readout):
                findings.extend(check.observe(critic_record))
        for check in self.checks:
            findings.extend(check.observe(record))
        action = "continue"
        for finding in findings:
            taken = self._emit(step, finding)
            if ACTION_RANK[taken] > ACTION_RANK[action]:
                action = taken
        agreed = ACTIONS_BY_RANK[self.dist.agree_max(ACTION_RANK[action])]
        if agreed != action:
            self.console(f"health: another rank's check asked to {agreed} at step {self.step}")
        self._track_rollbacks(step, agreed)
        return agreed

    def _record(
        self,
        step: int,
        outcome: StepOutcome,
        losses: Mapping[str, float],
        lr: Mapping[str, float],
        layer_grads: dict[str, float],
    ) -> tuple[StepRecord, dict[str, tuple[CriticReadout, tuple[list[float], list[float], list[float]]]]]:
        """The step's record, and per critic group its readout and rank-averaged (real, fake, loss) scores."""
        # Readouts and outputs come from this rank's last micro-batch: average them over ranks (one small
        # all-reduce) so every rank's checks see the same numbers and reach the same verdicts.
        local: dict[str, float] = {}
        for group, readout in sorted(outcome.critics.items()):
            for i, (r, f, d) in enumerate(zip(readout.real_scores, readout.fake_scores, readout.losses, strict=True)):
                local[f"{group}/real/{i:03d}"], local[f"{group}/fake/{i:03d}"] = r, f
                local[f"{group}/loss/{i:03d}"] = d
        images = outcome.outputs is not None and outcome.outputs.kind == "image"
        if images and self.settings.mode_collapse.enabled:
            assert outcome.outputs is not None
            o = outcome.outputs
            local.update({f"image/{k}": v for k, v in image_stats(o.fake, o.real, o.features).items()})
        if outcome.outputs is not None and not images and self.settings.dc_offset.enabled:
            fake, real = audio_stats(outcome.outputs.fake, outcome.outputs.real)
            for prefix, stats in (("fake_audio", fake), ("real_audio", real)):
                local.update({f"{prefix}/mean": stats.mean, f"{prefix}/std": stats.std,
                              f"{prefix}/flatness": stats.flatness})
        for network, c in sorted(outcome.classifiers.items()):
            local[f"classifier/{network}"] = float(c.accuracy)
        if local:
            local = self.dist.mean(local)
        critics = {}
        for group, readout in sorted(outcome.critics.items()):
            n = len(readout.losses)
            scores = tuple([local[f"{group}/{what}/{i:03d}"] for i in range(n)] for what in ("real", "fake", "loss"))
            critics[group] = (readout, scores)
        record = StepRecord(
            step=step,
            losses=dict(losses),
            trained=frozenset(outcome.trained),
            stepped=frozenset(outcome.stepped),
            grad_norms=dict(outcome.grad_norms),
            layer_grad_norms=layer_grads,
            lr=dict(lr),
            critic_groups=frozenset(critics),
        )
        record.image_stats = {k.removeprefix("image/"): v for k, v in local.items() if k.startswith("image/")}
        owner = {k: g for g, nets in self.groups.items() for k in nets}
        record.classifiers = {network: (local[f"classifier/{network}"], float(c.chance), c.role, owner.get(network, ""))
                              for network, c in sorted(outcome.classifiers.items())}
        if "fake_audio/mean" in local:
            record.fake_audio = AudioStats(local["fake_audio/mean"], local["fake_audio/std"],
                                           local["fake_audio/flatness"])
            record.real_audio = AudioStats(local["real_audio/mean"], local["real_audio/std"],
                                           local["real_audio/flatness"])
        return record, critics  # type: ignore[return-value]

    def _emit(self, step: int, finding: Finding) -> str:
        """Write the finding as an event (unless rate-limited) and return what it asks of the trainer."""
        section = getattr(self.settings, finding.kind)
        action = finding.action or ("skip_step" if finding.severity == "info" else section.action)
        severity = finding.severity
        message = finding.message
        if action == "rollback" and self.rollbacks_in_a_row >= self.settings.max_rollbacks:
            action = "stop"
            message += (
                f" Already rolled back {self.rollbacks_in_a_row} time(s) in a row without recovering "
                f"(health.max_rollbacks = {self.settings.max_rollbacks}): stopping instead."
            )
        if action == "rollback":
            factor = self.settings.rollback_lr_factor ** (self.rollbacks_in_a_row + 1)
            message += f" Action: rolling back to the last checkpoint with learning rates × {factor:.3g}."
        elif action == "stop":
            message += " Action: saving a checkpoint and stopping (exit status 3)."
        if action in ("rollback", "stop"):
            severity = "error"
        elif not self.limiter.allow(finding.rate_key or finding.kind, step, getattr(section, "repeat_every", 1)):
            return "continue"
        self.sink.write(Event(step, finding.kind, severity, message, finding.values, action))
        return _TRAINER_ACTION[action]

    def _track_rollbacks(self, step: int, action: str) -> None:
        if self._rollback_step is not None and step > self._rollback_step + self.settings.rollback_recovered_after:
            self.rollbacks_in_a_row, self._rollback_step = 0, None  # got well past the failure: recovered
        if action == "rollback":
            self.rollbacks_in_a_row += 1
            self._rollback_step = step

    @property
    def rollback_lr_factor(self) -> float:
        """The factor for the learning rates restored from the checkpoint: compounding over rollbacks in a row."""
        return self.settings.rollback_lr_factor ** max(1, self.rollbacks_in_a_row)

    # --- before training ---------------------------------------------------------------------------
    def check_unused_before_training(self, batch: Mapping[str, Any], step: int = 0) -> str:
        """One probe step on deep copies (before DDP wrapping): names trainable parameters that get no gradient.
        The batch is the task's `probe_batch(batch)` where it builds one (covering every domain or speaker, so
        a decoder the example batch happens to skip is not called unused), else the first probe_items items.

        Returns "continue" or "stop" (health.unused_parameters.action: stop), agreed over ranks.
        """
        s = self.settings.unused_parameters
        if not (self.settings.enabled and s.enabled):
            return "continue"
        build_probe = getattr(self.task, "probe_batch", None)  # optional: a task may build none (or set None)
        if build_probe is not None:
            report = find_unused_parameters(self.task, self.nets, build_probe(batch), step=step, items=0)
        else:
            report = find_unused_parameters(self.task, self.nets, batch, step=step, items=s.probe_items)
        action = "continue"
        if report:
            listing = "; ".join(
                f"{layer} ({', '.join(_short(layer, p) for p in params)})" for layer, params in report.layers.items()
            )
            message = (
                f"{len(report.parameters)} trainable parameter(s) in {len(report.layers)} layer(s) got no gradient "
                f"in a probe step (every optimizer group's loss and backward, as training runs them): {listing}. "
                "Their optimizer will never change them. Try: check each module is actually called in forward and "
                "its output reaches a loss (a sub-network built but never wired in, a branch skipped by a config "
                "flag, an output detached); if they are meant to stay fixed, set requires_grad=False on them."
            )
            values = {"layers": report.layers, "parameters": len(report.parameters), "frozen": len(report.frozen)}
            action = self._emit(self.step, Finding("unused_parameters", "warning", message, values))
        return ACTIONS_BY_RANK[self.dist.agree_max(ACTION_RANK[action])]

    # --- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Windows and counters as plain types (`torch.load(weights_only=True)` reads them)."""
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "checks": {
                **{check.kinds[0]: check.state_dict() for check in self.checks},
                **self._saved_critic_states,  # critics not seen since a resume keep what they had
                **{_critic_key(check.kinds[0], group): check.state_dict()
                   for group, checks in self.critic_checks.items() for check in checks},
            },
            "nonfinite": self.gate.state_dict(),
            "rate_limits": self.limiter.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Continue monitoring where a checkpoint left off (None: a checkpoint without health state)."""
        if not state:
            return
        self.step = int(state.get("step", 0))
        saved = dict(state.get("checks", {}))
        for check in self.checks:
            check.load_state_dict(dict(saved.pop(check.kinds[0], {})))
        self._saved_critic_states = saved  # adversarial checks: restored when their critic's readout comes
        for group, checks in self.critic_checks.items():
            for check in checks:
                check.load_state_dict(dict(self._saved_critic_states.pop(_critic_key(check.kinds[0], group), {})))
        self.gate.load_state_dict(dict(state.get("nonfinite", {})))
        self.limiter.load_state_dict(dict(state.get("rate_limits", {})))

    def truncate_after(self, step: int) -> None:
        """On resume: events past the resumed step are dropped (as for metrics.jsonl)."""
        self.sink.truncate_after(step)
