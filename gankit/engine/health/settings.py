"""The `health:` config section: one typed, validated block of settings per check, plus session-wide knobs."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gankit.engine.settings import from_mapping
from gankit.errors import ConfigError

Action = typing.Literal["warn", "skip_step", "rollback", "stop"]


@dataclass
class CheckSettings:
    """What every windowed check has. `grace` counts steps in which the watched network was optimised."""

    enabled: bool = True
    action: Action = "warn"
    grace: int = 0
    window: int = 100
    repeat_every: int = 1000  # a warn-level event of this kind is repeated at most this often while it persists


@dataclass
class CollapseSettings(CheckSettings):
    # Fresh discriminators score real and fake alike until they learn (that looks like collapse): wait first.
    grace: int = 1000
    window: int = 200
    repeat_every: int = 2000
    loss_tolerance: float = 0.05  # a sub-D's median loss ≥ (1 − this) × the no-information loss
    gap_tolerance: float = 0.05  # median (real score − fake score) ≤ this × the objective's score scale
    grad_ratio: float = 0.01  # D's median gradient norm ≤ this × its median in the first armed window
    # The share of sub-discriminators that must show it. Measured (benchmarks/discriminator_probe.py on a
    # hifigan_tiny run): from step 2,000 on, with up to 3 of its 8 sub-discriminators at the no-information loss
    # on held-out audio, every one still ranked real above generated (AUC 0.64-1.00); a frozen or asleep D shows
    # it on (nearly) all of them.
    min_fraction: float = 0.75


@dataclass
class OverpoweringSettings(CheckSettings):
    grace: int = 1000
    window: int = 200
    repeat_every: int = 2000
    loss_fraction: float = 0.05  # a sub-D's median loss ≤ this × the no-information loss counts as "≈ 0"
    min_fraction: float = 0.5
    adv_tolerance: float = 0.05  # g/adv's later-half median ≥ earlier-half median − this × |it|: "not falling"


@dataclass
class DcOffsetSettings(CheckSettings):
    # A fresh generator is far from real audio and not monotonically approaching it: the tiny HiFi-GAN
    # starts with a DC offset of ~1.3× the real std (its output bias) that the mel loss hardly sees and
    # that lasts ~150 steps, and its flatness dips to 1/10 of the real audio's before recovering.
    grace: int = 1000
    window: int = 200
    repeat_every: int = 2000
    persist: int = 100  # consecutive steps the drift must hold before it is reported
    # … or this many for the DC onset: its own medians (a 200-step level, 100-step quarters of a 400-step trend)
    # already smooth a batch's noise, healthy runs stay near 0.01× the real std (the onset starts at 0.08×), and a
    # DC cheat pinned to grow from 0 to 0.4× the real std over 300 steps is to be named within 200 steps of its
    # start (benchmarks/health_onsets.py). Not for level or flatness: a young generator wanders near their onset
    # limits (replayed on healthy hifigan_tiny runs, 25 steps named a level drift at step 1,025 and 1,210).
    onset_dc_persist: int = 25
    dc_level: float | None = 1.0  # |mean fake − mean real| / std real this large after the grace: wrong as a level
    dc_margin: float = 0.5  # … or this much larger than the best the generator reached
    std_factor: float = 2.0  # fake/real std ratio moved this factor further from 1 than its best
    flatness_factor: float = 4.0  # fake/real spectral flatness ratio moved this factor further from 1 than its best
    # Onsets, against the data and the run's own trend: a statistic already a little away from the real audio's
    # (real speech has DC ≈ 0) and still moving away over `trend_window` steps is named while it starts.
    trend_window: int = 400
    onset_dc: float | None = 0.08  # |DC| / real std at least this (window median) …
    onset_dc_rise: float = 0.03  # … and grown by this much (× real std) over the trend window
    onset_std_factor: float | None = 1.5  # fake/real std ratio at least this far from 1 …
    onset_std_rise: float = 1.15  # … and moved this factor further away over the trend window
    onset_flatness_factor: float | None = 3.0  # fake/real flatness ratio at least this far from 1 …
    onset_flatness_rise: float = 1.5  # … and moved this factor further away over the trend window


@dataclass
class ConfusionSettings(CheckSettings):
    """A confusion classifier (trained against an encoder) that keeps winning: the latent leaks its labels."""

    grace: int = 500
    window: int = 100
    repeat_every: int = 1000
    accuracy: float = 0.95  # median accuracy over the window at or above this


@dataclass
class AuxiliarySettings(CheckSettings):
    """An auxiliary classifier (e.g. speakers of real data) that stays at chance: it learns nothing."""

    grace: int = 500
    window: int = 100
    repeat_every: int = 1000
    margin: float = 0.05  # median accuracy over the window at or below chance + this


@dataclass
class ModeCollapseSettings(CheckSettings):
    """Generated images' diversity (relative to the real batch's) far below the run's own peak."""

    grace: int = 500
    window: int = 50
    repeat_every: int = 1000
    fraction: float = 0.3  # window median below this × the highest window median reached


@dataclass
class DeadLayersSettings(CheckSettings):
    grace: int = 0
    window: int = 50  # consecutive optimised steps with ~0 gradient
    repeat_every: int = 1000
    abs_threshold: float = 1e-10
    rel_threshold: float = 1e-8  # relative to the network's total gradient norm that step


@dataclass
class UnusedSettings:
    enabled: bool = True
    action: Action = "warn"
    probe_items: int = 2  # batch items the one probe step uses (the answer does not depend on it)


@dataclass
class LossSpikeSettings(CheckSettings):
    grace: int = 50  # values a loss's window needs (after it appears or the phase changes) before judging
    window: int = 200
    repeat_every: int = 500
    threshold: float = 10.0  # robust z-score: (value − median) / (1.4826 · MAD)
    min_ratio: float = 1.0  # and at least median + this × |median| (≥ 2× for a positive loss)
    abs_margin: float = 1e-3  # and at least this far above the median (losses near 0)
    losses: list[str] | None = None  # names to watch ("g/mel", …); None: every logged loss but the critics' (d/…)
    # The critics' own losses swing between ≈0 and the no-information level as the adversarial balance shifts (a
    # discriminator climbing back from a win is no spike; measured on healthy festvox-ru training), and that
    # balance is what the collapse/overpowering checks judge. True watches them too.
    critic_losses: bool = False
    # A generator's adversarial loss (a critic's `generator_losses`) follows the balance: a hinge or WGAN g/adv
    # starts near 0 and settles near 1 per sub-discriminator as D learns (melgan_tiny: 0.02 → 0.76 over 450 steps,
    # which the |median| rule called divergence). A move smaller than this × the critic's score scale × its
    # sub-discriminators is no spike; a real blow-up (×100) is far past it.
    adversarial_margin: float = 1.0


@dataclass
class DivergenceSettings:
    enabled: bool = True
    action: Action = "warn"
    steps: int = 20
    fraction: float = 0.8  # out of range on at least this share of the last `steps` steps
    repeat_every: int = 1000


@dataclass
class NonfiniteSettings:
    enabled: bool = True
    action: Action = "skip_step"
    repeat_every: int = 100
    stop_after: int | None = 100  # this many steps in a row skipped for non-finite values → stop (None: never)


CHECK_SECTIONS: dict[str, type] = {
    "discriminator_collapse": CollapseSettings,
    "discriminator_overpowering": OverpoweringSettings,
    "dc_offset": DcOffsetSettings,
    "dead_layers": DeadLayersSettings,
    "mode_collapse": ModeCollapseSettings,
    "confusion_classifier_wins": ConfusionSettings,
    "auxiliary_classifier_at_chance": AuxiliarySettings,
    "unused_parameters": UnusedSettings,
    "loss_spike": LossSpikeSettings,
    "divergence": DivergenceSettings,
    "nonfinite": NonfiniteSettings,
}

# skip_step only makes sense before an update is applied, i.e. for nonfinite; unused_parameters runs
# before training, where there is nothing to roll back to.
ALLOWED_ACTIONS: dict[str, tuple[str, ...]] = {
    "nonfinite": ("warn", "skip_step", "rollback", "stop"),
    "unused_parameters": ("warn", "stop"),
}


@dataclass
class _SessionKnobs:
    enabled: bool = True
    layer_grads: bool = True  # per-layer gradient norms (layer_grads.jsonl); dead_layers computes them anyway
    rollback_lr_factor: float = 0.5
    max_rollbacks: int = 3  # rollbacks in a row (no recovery in between) before a rollback becomes a stop
    rollback_recovered_after: int = 1000  # steps past the failing step without a new rollback: recovered


@dataclass
class HealthSettings(_SessionKnobs):
    discriminator_collapse: CollapseSettings = field(default_factory=CollapseSettings)
    discriminator_overpowering: OverpoweringSettings = field(default_factory=OverpoweringSettings)
    dc_offset: DcOffsetSettings = field(default_factory=DcOffsetSettings)
    dead_layers: DeadLayersSettings = field(default_factory=DeadLayersSettings)
    mode_collapse: ModeCollapseSettings = field(default_factory=ModeCollapseSettings)
    confusion_classifier_wins: ConfusionSettings = field(default_factory=ConfusionSettings)
    auxiliary_classifier_at_chance: AuxiliarySettings = field(default_factory=AuxiliarySettings)
    unused_parameters: UnusedSettings = field(default_factory=UnusedSettings)
    loss_spike: LossSpikeSettings = field(default_factory=LossSpikeSettings)
    divergence: DivergenceSettings = field(default_factory=DivergenceSettings)
    nonfinite: NonfiniteSettings = field(default_factory=NonfiniteSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HealthSettings:
        """Parse `health:`; a check's section may be a mapping or a bool (shorthand for `{enabled: …}`)."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"health: expected a mapping, got {data!r}.")
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(_SessionKnobs)} | set(CHECK_SECTIONS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"health: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        sections: dict[str, Any] = {}
        for name, section_cls in CHECK_SECTIONS.items():
            raw = data.pop(name, None)
            if isinstance(raw, bool):
                raw = {"enabled": raw}
            if raw is not None and not isinstance(raw, Mapping):
                raise ConfigError(f"health.{name}: expected a mapping or true/false, got {raw!r}.")
            parsed = from_mapping(section_cls, raw, f"health.{name}")
            _validate_section(name, parsed)
            sections[name] = parsed
        knobs = from_mapping(_SessionKnobs, data, "health")
        if not 0.0 < knobs.rollback_lr_factor <= 1.0:
            raise ConfigError(f"health.rollback_lr_factor must be in (0, 1], got {knobs.rollback_lr_factor}.")
        for name in ("max_rollbacks", "rollback_recovered_after"):
            if getattr(knobs, name) < 0:
                raise ConfigError(f"health.{name} must be ≥ 0, got {getattr(knobs, name)}.")
        return cls(**dataclasses.asdict(knobs), **sections)


def _validate_section(name: str, s: Any) -> None:
    allowed = ALLOWED_ACTIONS.get(name, ("warn", "rollback", "stop"))
    if s.action not in allowed:
        raise ConfigError(
            f"health.{name}.action: {s.action!r} is not possible for this check; choose one of "
            f"{', '.join(repr(a) for a in allowed)}."
        )
    minimum = {"window": 2, "repeat_every": 1, "persist": 1, "onset_dc_persist": 1, "steps": 1, "probe_items": 1,
               "stop_after": 1}
    for key, low in minimum.items():
        value = getattr(s, key, None)
        if value is not None and value < low:
            raise ConfigError(f"health.{name}.{key} must be ≥ {low}, got {value}.")
    if getattr(s, "grace", 0) < 0:
        raise ConfigError(f"health.{name}.grace must be ≥ 0, got {s.grace}.")
    for key in ("min_fraction", "fraction"):
        value = getattr(s, key, None)
        if value is not None and not 0.0 < value <= 1.0:
            raise ConfigError(f"health.{name}.{key} must be in (0, 1], got {value}.")
    for key in ("std_factor", "flatness_factor"):
        value = getattr(s, key, None)
        if value is not None and not value > 1.0:
            raise ConfigError(f"health.{name}.{key} must be > 1, got {value}.")
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if isinstance(value, float) and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"health.{name}.{f.name} must be a finite number ≥ 0, got {value}.")
    losses = getattr(s, "losses", None)
    if losses is not None and not all(isinstance(x, str) for x in losses):
        raise ConfigError(f"health.{name}.losses must be a list of loss names like 'g/mel', got {losses!r}.")
