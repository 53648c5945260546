"""Reading and writing the ORIGINAL HiFi-GAN's files (jik876/hifi-gan: `g_%08d`, `do_%08d`, `config.json`).

gankit's modules always use parametrized weight/spectral norm; the original files use the legacy hooks' names.
The names are mapped here, at the file boundary, and nowhere else:

    legacy weight norm    X.weight_g / X.weight_v   ↔  X.parametrizations.weight.original0 / original1
    legacy spectral norm  X.weight_orig             ↔  X.parametrizations.weight.original
                          X.weight_u / X.weight_v   ↔  X.parametrizations.weight.0._u / X.parametrizations.weight.0._v

Shapes are the same on both sides (u: [out], v: [in·k…], the weight reshaped to [out, −1] for dim 0), and the
parameters come in the same order (bias, then g, v / bias, then weight_orig), so optimizer state saved by the
original loads by position unchanged.

Spectral norm's buffers are copied as they are. In eval mode both implementations compute σ = uᵀWv from them, so
scores are identical. A training-mode forward runs one power iteration first, and the two orders differ (legacy:
v ← n(Wᵀu), u ← n(Wv); parametrized: u ← n(Wv), v ← n(Wᵀu)); copying (u, v) continues the legacy chain
(the parametrized step recomputes the legacy's u, then takes the legacy's next v). With converged buffers, as in
any checkpoint past its first few dozen steps, the σ estimates agree to float precision; on fresh random
buffers they differ by up to ~10⁻² relative.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit import atomic
from gankit.audio.mel import build_frontend
from gankit.checkpoint_io import safe_load, save_torch
from gankit.errors import CheckpointError, ConfigError
from gankit.models.hifigan import (
    HifiGanGenerator,
    HifiGanGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)

# (legacy leaf, gankit suffix) per norm kind.
_WEIGHT_NORM = (("weight_g", "parametrizations.weight.original0"), ("weight_v", "parametrizations.weight.original1"))
_SPECTRAL_NORM = (
    ("weight_orig", "parametrizations.weight.original"),
    ("weight_u", "parametrizations.weight.0._u"),
    ("weight_v", "parametrizations.weight.0._v"),
)
# Longest suffixes first, so "original0" is not taken for "original".
_TO_LEGACY = sorted(((new, old) for old, new in _WEIGHT_NORM + _SPECTRAL_NORM), key=lambda p: -len(p[0]))
_WN_G = _WEIGHT_NORM[0][1]

_STEP_NAME = re.compile(r"^g_(\d+)$")
_MODEL_KEYS = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)
_AUDIO_KEYS = ("num_mels", "n_fft", "hop_size", "win_size", "sampling_rate", "fmin", "fmax")
# The original config_v1.json's training keys (used only by its train.py; written so the file is complete).
_ORIGINAL_TRAINING = {
    "num_gpus": 0,
    "batch_size": 16,
    "learning_rate": 0.0002,
    "adam_b1": 0.8,
    "adam_b2": 0.99,
    "lr_decay": 0.999,
    "seed": 1234,
}
_ORIGINAL_DIST = {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1}


# --- names ------------------------------------------------------------------------------------------------


def _split(key: str) -> tuple[str, str]:
    prefix, _, leaf = key.rpartition(".")
    return (prefix + "." if prefix else ""), leaf


def original_to_gankit(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Legacy weight/spectral-norm names → parametrization names; other keys and all values unchanged."""
    spectral = {_split(k)[0] for k in sd if _split(k)[1] == "weight_orig"}
    out: dict[str, Any] = {}
    for key, value in sd.items():
        prefix, leaf = _split(key)
        table = dict(_SPECTRAL_NORM if prefix in spectral else _WEIGHT_NORM)
        out[prefix + table[leaf] if leaf in table else key] = value
    return out


def gankit_to_original(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Parametrization names → the legacy hooks' names (the inverse of `original_to_gankit`)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        for suffix, legacy in _TO_LEGACY:
            if key == suffix or key.endswith("." + suffix):
                key = key[: len(key) - len(suffix)] + legacy
                break
        out[key] = value
    return out


# --- fitting a state dict to a module ---------------------------------------------------------------------


def _examples(items: Sequence[str], unit: str, n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", … ({len(items)} {unit} in all)" if len(items) > n else "")


def _layer(key: str) -> str:
    """The layer a state-dict key belongs to ("ups.3" for "ups.3.parametrizations.weight.original0")."""
    head = key.split(".parametrizations.", 1)[0]
    return head if head != key else key.rpartition(".")[0] or key


def _layers(keys: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(_layer(k) for k in keys))


def _shape(value: Any) -> str:
    return str(list(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def check_state_dict(expected: Mapping[str, Tensor], given: Mapping[str, Any], source: str, what: str) -> None:
    """Raise `CheckpointError` naming the layers with missing, unexpected and wrongly shaped weights (a few each)."""
    missing = _layers([k for k in expected if k not in given])
    unexpected = _layers([k for k in given if k not in expected])
    shapes: dict[str, str] = {}
    for key, value in expected.items():
        if key in given and (not isinstance(given[key], Tensor) or given[key].shape != value.shape):
            shapes.setdefault(_layer(key), f"{key} (file {_shape(given[key])}, model {list(value.shape)})")
    problems = []
    if missing:
        problems.append(f"missing {_examples(missing, 'layers')}")
    if unexpected:
        problems.append(f"unexpected {_examples(unexpected, 'layers')}")
    if shapes:
        problems.append(f"shape mismatch {_examples(list(shapes.values()), 'layers')}")
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not fit {what} — {'; '.join(problems)}. The checkpoint was made for another "
            "architecture: use the config it was trained with."
        )


def load_state_dict_checked(module: nn.Module, sd: Mapping[str, Any], source: str) -> None:
    """`module.load_state_dict(sd, strict=True)` with a `CheckpointError` that names the keys that differ."""
    check_state_dict(module.state_dict(), sd, source, type(module).__name__)
    module.load_state_dict(sd, strict=True)


def _fold_plain_weights(sd: dict[str, Any], expected: Mapping[str, Tensor]) -> dict[str, Any]:
    """Give plain `X.weight` tensors (weight norm removed) the weight-norm form the module expects."""
    for key in expected:
        if not key.endswith(_WN_G):
            continue
        prefix = key[: -len(_WN_G)]
        if key not in sd and isinstance(sd.get(prefix + "weight"), Tensor):
            weight = sd.pop(prefix + "weight")
            sd[key] = torch.norm_except_dim(weight, 2, 0)  # weight norm over dim 0: g = ‖w‖, v = w
            sd[prefix + "parametrizations.weight.original1"] = weight
    return sd


def _reference_generator(cfg: HifiGanGeneratorConfig) -> HifiGanGenerator:
    """A generator whose state dict gives the names, shapes and order a file must have. Built on the CPU, not the meta
    device: there weight norm's first norm runs through torch's Python reference kernels, whose first use imports and
    registers them (1.6 s measured, more than building V1 for real: 0.35 s, V3 0.04 s), and that is start-up time of
    every `gankit vocode` of an original file. The random init draws from a forked RNG: reading a file changes no
    caller's random stream."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        return HifiGanGenerator(cfg)


# --- config.json ------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable config.json ({exc}); pass --config with the right file"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: config.json must hold a JSON object")
    return data


def configs_from_original(h: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    """(generator config, front-end config, fmax_for_loss) from an original config.json's keys."""
    missing = [k for k in (*_MODEL_KEYS, *_AUDIO_KEYS) if k not in h]
    if missing:
        raise CheckpointError(f"{source}: config.json lacks {', '.join(missing)}; is it a HiFi-GAN config?")
    generator = {k: h[k] for k in _MODEL_KEYS}
    generator["n_mels"] = h["num_mels"]
    frontend_in = {
        "preset": "hifigan",
        "sample_rate": h["sampling_rate"],
        "n_fft": h["n_fft"],
        "hop_length": h["hop_size"],
        "win_length": h["win_size"],
        "n_mels": h["num_mels"],
        "fmin": h["fmin"],
        "fmax": h["fmax"],
    }
    try:
        cfg = HifiGanGeneratorConfig.from_dict(generator)
        frontend = build_frontend(frontend_in).to_config()
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    if cfg.hop_length != h["hop_size"]:
        raise CheckpointError(
            f"{source}: upsample_rates {cfg.upsample_rates} make {cfg.hop_length} samples per frame but hop_size is "
            f"{h['hop_size']}; the config does not describe a working vocoder"
        )
    fmax_for_loss = h.get("fmax_for_loss")
    return cfg.to_dict(), frontend, (None if fmax_for_loss is None else float(fmax_for_loss))


def original_config(
    generator_config: Mapping[str, Any], frontend: Mapping[str, Any], fmax_for_loss: float | None = None
) -> dict[str, Any]:
    """An original-style config.json (config_v1.json's keys and order) for this generator and mel."""
    cfg = HifiGanGeneratorConfig.from_dict(generator_config)
    fe = build_frontend(frontend)
    if fe.preset != "hifigan":
        raise ConfigError(
            f"the original HiFi-GAN computes its own mel (preset 'hifigan'); a generator trained on preset "
            f"{fe.preset!r} would get other inputs there. Export it in gankit's format instead"
        )
    if fe.hop_length != cfg.hop_length or fe.n_mels != cfg.n_mels:
        raise ConfigError(
            f"front-end (hop {fe.hop_length}, {fe.n_mels} mels) does not match the generator "
            f"(hop {cfg.hop_length}, {cfg.n_mels} mels)"
        )
    audio = fe.to_config()
    return {
        "resblock": cfg.resblock,
        **_ORIGINAL_TRAINING,
        "upsample_rates": cfg.upsample_rates,
        "upsample_kernel_sizes": cfg.upsample_kernel_sizes,
        "upsample_initial_channel": cfg.upsample_initial_channel,
        "resblock_kernel_sizes": cfg.resblock_kernel_sizes,
        "resblock_dilation_sizes": cfg.resblock_dilation_sizes,
        "segment_size": 8192,
        "num_mels": cfg.n_mels,
        "num_freq": 1025,  # config_v1.json's value; no original script reads it
        "n_fft": fe.n_fft,
        "hop_size": fe.hop_length,
        "win_size": fe.win_length,
        "sampling_rate": fe.sample_rate,
        "fmin": audio["fmin"],
        "fmax": audio["fmax"],
        "fmax_for_loss": None if fmax_for_loss is None else _plain_number(fmax_for_loss),
        "num_workers": 4,
        "dist_config": dict(_ORIGINAL_DIST),
    }


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


# --- generator files --------------------------------------------------------------------------------------


@dataclass
class OriginalGenerator:
    """An original `g_` file read into gankit's terms."""

    generator_config: dict[str, Any]  # for HifiGanGeneratorConfig.from_dict
    frontend: dict[str, Any]  # for gankit.audio.mel.build_frontend (preset "hifigan")
    state_dict: dict[str, Tensor]  # gankit names; loads strictly into HifiGanGenerator
    step: int | None  # from the file name g_XXXXXXXX; None for other names (e.g. "generator_v1")
    fmax_for_loss: float | None = None  # config.json's; None → sample_rate / 2


def _generator_state(payload: Any, path: Path) -> dict[str, Any]:
    if isinstance(payload, Mapping) and isinstance(payload.get("generator"), Mapping):
        return dict(payload["generator"])
    if isinstance(payload, Mapping) and {"mpd", "msd"} <= set(payload):
        raise CheckpointError(f"{path}: this is a do_ file (discriminators and optimizers); pass the g_ file")
    if isinstance(payload, Mapping) and any(str(k).startswith("conv_pre.") for k in payload):
        return dict(payload)  # a bare generator state dict
    keys = list(payload)[:5] if isinstance(payload, Mapping) else type(payload).__name__
    raise CheckpointError(
        f"{path}: not an original HiFi-GAN generator file (expected {{'generator': …}}, found {keys})"
    )


def read_original_generator(path: str | Path, config_path: str | Path | None = None) -> OriginalGenerator:
    """Read `g_XXXXXXXX` and its config.json (beside it, as the original scripts do, unless `config_path`)."""
    p = Path(path)
    payload = safe_load(p)
    cfg_path = Path(config_path) if config_path is not None else p.parent / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{p}: no config.json at {cfg_path}; the original HiFi-GAN keeps the architecture there — pass "
            "--config PATH with the config.json the model was trained with"
        )
    generator_config, frontend, fmax_for_loss = configs_from_original(_read_json(cfg_path), str(cfg_path))
    reference = _reference_generator(HifiGanGeneratorConfig.from_dict(generator_config)).state_dict()
    sd = _fold_plain_weights(original_to_gankit(_generator_state(payload, p)), reference)
    check_state_dict(reference, sd, str(p), f"the generator described by {cfg_path}")
    match = _STEP_NAME.match(p.name)
    return OriginalGenerator(
        generator_config=generator_config,
        frontend=frontend,
        state_dict=sd,
        step=int(match.group(1)) if match else None,
        fmax_for_loss=fmax_for_loss,
    )


def write_original_generator(
    path_or_folder: str | Path,
    generator: nn.Module,
    generator_config: Mapping[str, Any],
    frontend: Mapping[str, Any],
    step: int,
    fmax_for_loss: float | None = None,
) -> Path:
    """Write `g_%08d` ({"generator": legacy-named state dict}) and config.json, readable by the original scripts.

    `path_or_folder` is the file itself when its name starts with "g_" (and it is not an existing directory);
    otherwise it is a folder (created if needed) that gets `g_{step:08d}`. An existing config.json that describes
    another model or mel is an error (it would mislead the files beside it).
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError(f"step must be a non-negative integer, got {step!r}")
    target = Path(path_or_folder)
    if target.is_dir() or not target.name.startswith("g_"):
        target = target / f"g_{step:08d}"
    config = original_config(generator_config, frontend, fmax_for_loss)
    reference = _reference_generator(HifiGanGeneratorConfig.from_dict(generator_config)).state_dict()
    sd = {k: v.detach().to("cpu", copy=True) for k, v in generator.state_dict().items()}
    sd = _fold_plain_weights(sd, reference)  # a generator with weight norm removed still writes the original form
    check_state_dict(reference, sd, type(generator).__name__, "the generator config given")
    sd = {k: sd[k] for k in reference}  # the original's key order

    config_file = target.parent / "config.json"
    write_config = True
    if config_file.is_file():
        existing = _read_json(config_file)
        differ = [k for k in (*_MODEL_KEYS, *_AUDIO_KEYS) if existing.get(k) != config[k]]
        if differ:
            raise CheckpointError(
                f"{config_file}: already describes another model (differs in {', '.join(differ)}); "
                "write into another folder"
            )
        write_config = False  # agrees: keep the file (it may carry the run's own training keys)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_torch(target, {"generator": gankit_to_original(sd)})
    if write_config:
        atomic.write_text(config_file, json.dumps(config, indent=4) + "\n")
    return target


# --- training state ---------------------------------------------------------------------------------------


@dataclass
class OriginalTrainingState:
    """An original `do_` file: discriminators (gankit names), both optimizers' states, progress."""

    mpd: dict[str, Tensor]
    msd: dict[str, Tensor]
    optim_g: dict[str, Any]  # AdamW over the generator's parameters()
    optim_d: dict[str, Any]  # AdamW over MSD's parameters() then MPD's, state matched by position
    steps: int  # last completed step (the original resumes at steps + 1)
    epoch: int  # the epoch to restart (the original repeats it)


def _parameter_shapes(sd: Mapping[str, Tensor]) -> list[tuple[str, torch.Size]]:
    # State-dict order lists each module's parameters in parameters() order; spectral norm's u/v are buffers.
    return [(k, v.shape) for k, v in sd.items() if not k.endswith(("._u", "._v"))]


def check_optimizer_state(state: Mapping[str, Any], params: Sequence[tuple[str, torch.Size]], source: str) -> None:
    """Raise `CheckpointError` unless the optimizer state has one entry per parameter, with its shapes."""
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list) or not groups:
        raise CheckpointError(f"{source}: optimizer state without param_groups")
    count = sum(len(g.get("params", [])) for g in groups)
    if count != len(params):
        raise CheckpointError(f"{source}: optimizer state covers {count} parameters, the networks have {len(params)}")
    ids = [i for g in groups for i in g["params"]]
    per_param = state.get("state", {})
    wrong = []
    for position, (name, shape) in zip(ids, params, strict=True):
        entry = per_param.get(position)
        if isinstance(entry, Mapping) and isinstance(entry.get("exp_avg"), Tensor) and entry["exp_avg"].shape != shape:
            wrong.append(f"{name} (state {list(entry['exp_avg'].shape)}, parameter {list(shape)})")
    if wrong:
        raise CheckpointError(
            f"{source}: optimizer state does not match the parameters by position: {_examples(wrong, 'parameters')}"
        )


def read_original_training_state(
    do_path: str | Path,
    mpd_config: Mapping[str, Any] | None = None,
    msd_config: Mapping[str, Any] | None = None,
) -> OriginalTrainingState:
    """Read `do_XXXXXXXX`, checking its networks against MPD/MSD built from `mpd_config`/`msd_config`
    (keyword arguments of MultiPeriodDiscriminator / MultiScaleDiscriminator; None = the original's) and
    `optim_d` against their parameters, position by position."""
    p = Path(do_path)
    payload = safe_load(p)
    needed = ("mpd", "msd", "optim_g", "optim_d", "steps", "epoch")
    if not isinstance(payload, Mapping) or any(k not in payload for k in needed):
        found = sorted(payload)[:8] if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{p}: not an original HiFi-GAN do_ file (expected keys {', '.join(needed)}; found {found})"
        )
    mpd = original_to_gankit(payload["mpd"])
    msd = original_to_gankit(payload["msd"])
    try:
        with torch.device("meta"):
            mpd_ref = MultiPeriodDiscriminator(**dict(mpd_config or {})).state_dict()
            msd_ref = MultiScaleDiscriminator(**dict(msd_config or {})).state_dict()
    except TypeError as exc:
        raise ConfigError(f"discriminator config: {exc}") from None
    check_state_dict(mpd_ref, mpd, f"{p} [mpd]", "the multi-period discriminator")
    check_state_dict(msd_ref, msd, f"{p} [msd]", "the multi-scale discriminator")
    shapes = [(f"msd.{k}", s) for k, s in _parameter_shapes(msd)] + [(f"mpd.{k}", s) for k, s in _parameter_shapes(mpd)]
    check_optimizer_state(payload["optim_d"], shapes, f"{p} [optim_d]")
    return OriginalTrainingState(
        mpd=mpd,
        msd=msd,
        optim_g=dict(payload["optim_g"]),
        optim_d=dict(payload["optim_d"]),
        steps=int(payload["steps"]),
        epoch=int(payload["epoch"]),
    )


# CONTRACTS.md's name for the same reader.
read_original_discriminators = read_original_training_state


def generator_parameter_shapes(generator_config: Mapping[str, Any]) -> list[tuple[str, torch.Size]]:
    """(name, shape) of the generator's parameters in parameters() order, to check an original optim_g."""
    return _parameter_shapes(_reference_generator(HifiGanGeneratorConfig.from_dict(generator_config)).state_dict())


__all__ = [
    "OriginalGenerator",
    "OriginalTrainingState",
    "check_optimizer_state",
    "check_state_dict",
    "configs_from_original",
    "gankit_to_original",
    "generator_parameter_shapes",
    "load_state_dict_checked",
    "original_config",
    "original_to_gankit",
    "read_original_discriminators",
    "read_original_generator",
    "read_original_training_state",
    "write_original_generator",
]
