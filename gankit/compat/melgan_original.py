"""Reading the ORIGINAL MelGAN's generator files (descriptinc/melgan-neurips: `netG.pt`, `best_netG.pt`, and the
published `models/linda_johnson.pt` / `multi_speaker.pt`).

Such a file is a plain state dict, keys `model.N.…` with the legacy weight-norm names `weight_g` / `weight_v`; the
names are mapped by `gankit.compat.hifigan_original.original_to_gankit` (the same mapping for both families). The
architecture is read from the weights themselves (n_mels, ngf, residual layers per stage); the original fixes the
ratios at 8·8·2·2. `--config` may name the original's `args.yml` (written with `yaml.dump(argparse.Namespace)`) or a
gankit config (name or YAML) whose `frontend` section describes the mels; without one the `melgan` preset's
defaults are used (the original's Audio2Mel: 22.05 kHz, 80 mels, hop 256, log10).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from gankit.audio.mel import build_frontend
from gankit.checkpoint_io import safe_load
from gankit.compat.hifigan_original import _fold_plain_weights, check_state_dict, original_to_gankit
from gankit.errors import CheckpointError, ConfigError
from gankit.models.melgan import MelGanGenerator, MelGanGeneratorConfig

ORIGINAL_RATIOS = [8, 8, 2, 2]  # hard-coded in the original Generator
_TOP = re.compile(r"^model\.(\d+)\.")


def looks_like_original_melgan(obj: Any) -> bool:
    """A bare generator state dict in the original's layout: every key `model.N.…`, every value a tensor."""
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and _TOP.match(k) for k in obj)
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _weight_shape(sd: Mapping[str, Tensor], index: int) -> torch.Size | None:
    for leaf in ("weight_v", "parametrizations.weight.original1", "weight"):
        value = sd.get(f"model.{index}.{leaf}")
        if isinstance(value, Tensor):
            return value.shape
    return None


def infer_generator_config(sd: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """n_mels, ngf and residual layers per stage from the weights' names and shapes (ratios: the original's)."""
    tops = sorted({int(m.group(1)) for k in sd if (m := _TOP.match(k))})
    blocks = {i for i in tops if any(k.startswith(f"model.{i}.shortcut.") for k in sd)}
    convs = [i for i in tops if i not in blocks]  # the first conv, one ConvTranspose per stage, the last conv
    first = _weight_shape(sd, 1)
    last = _weight_shape(sd, convs[-1]) if convs else None
    if first is None or last is None or len(convs) != len(ORIGINAL_RATIOS) + 2:
        raise CheckpointError(
            f"{source}: not an original MelGAN generator (expected model.1 … model.N convs with weight_g/weight_v "
            f"around {len(ORIGINAL_RATIOS)} upsampling stages; found top-level layers {tops[:12]})"
        )
    per_stage = sum(1 for i in blocks if convs[1] < i < convs[2])
    return {
        "n_mels": int(first[1]),
        "ngf": int(last[1]),
        "ratios": list(ORIGINAL_RATIOS),
        "residual_layers": per_stage,
        "residual_stacks": 1,
    }


class _NamespaceLoader(yaml.SafeLoader):
    """Safe YAML that reads the original's `!!python/object:argparse.Namespace` dump as a plain mapping."""


def _construct_object(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, "expected a mapping", node.start_mark)
    return loader.construct_mapping(node, deep=True)  # type: ignore[return-value]


_NamespaceLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _construct_object)


def _read_config(config: str | Path, source: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(generator overrides or None, frontend config) from args.yml or a gankit config."""
    path = Path(config)
    if path.is_file():
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_NamespaceLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CheckpointError(f"{path}: not a readable YAML config ({str(exc)[:160]})") from None
        if isinstance(data, Mapping) and "n_mel_channels" in data:  # the original's args.yml
            generator = {"n_mels": data["n_mel_channels"]}
            for ours, theirs in (("ngf", "ngf"), ("residual_layers", "n_residual_layers")):
                if theirs in data:
                    generator[ours] = data[theirs]
            return generator, {"preset": "melgan", "n_mels": data["n_mel_channels"]}
    from gankit.config import load_config  # a gankit config name or YAML path

    try:
        _, gankit_config = load_config(str(config))
    except ConfigError as exc:
        raise CheckpointError(f"{source}: --config {config}: {exc}") from None
    frontend = gankit_config.get("frontend")
    if not isinstance(frontend, Mapping):
        raise CheckpointError(f"{source}: --config {config} has no frontend section to describe the mels")
    generator = gankit_config.get("model", {}).get("generator")
    return (dict(generator) if isinstance(generator, Mapping) else None), dict(frontend)


@dataclass
class OriginalMelGanGenerator:
    """An original MelGAN generator file read into gankit's terms."""

    generator_config: dict[str, Any]  # for MelGanGeneratorConfig.from_dict
    frontend: dict[str, Any]  # for gankit.audio.mel.build_frontend
    state_dict: dict[str, Tensor]  # gankit names; loads strictly into MelGanGenerator


def read_original_melgan_generator(path: str | Path, config: str | Path | None = None) -> OriginalMelGanGenerator:
    """Read a melgan-neurips generator state dict, checked against the generator its weights describe."""
    p = Path(path)
    payload = safe_load(p)
    if not looks_like_original_melgan(payload):
        raise CheckpointError(f"{p}: not an original MelGAN generator file (a state dict with keys model.N.…)")
    generator_config = infer_generator_config(payload, str(p))
    frontend_in: dict[str, Any] = {"preset": "melgan", "n_mels": generator_config["n_mels"]}
    if config is not None:
        given, frontend_in = _read_config(config, str(p))
        for key, value in (given or {}).items():
            if value != generator_config.get(key, value):
                raise CheckpointError(
                    f"{p}: --config {config} says {key} {value!r} but the weights have {generator_config[key]!r}; "
                    "pass the config the model was trained with"
                )
        if given:
            generator_config = {**generator_config, **{k: v for k, v in given.items() if k in generator_config}}
    try:
        cfg = MelGanGeneratorConfig.from_dict(generator_config)
        frontend = build_frontend(frontend_in)
    except ConfigError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    if frontend.n_mels != cfg.n_mels or frontend.hop_length != cfg.hop_length:
        raise CheckpointError(
            f"{p}: the generator takes {cfg.n_mels} mels at hop {cfg.hop_length} but the mel front-end makes "
            f"{frontend.n_mels} at hop {frontend.hop_length}; pass a --config whose frontend matches"
        )
    # Names and shapes only, built on the CPU: the meta device's first weight norm costs ~1.6 s of start-up (see
    # hifigan_original._meta_generator); the forked RNG leaves the caller's random stream as it was.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        expected = MelGanGenerator(cfg).state_dict()
    sd = _fold_plain_weights(original_to_gankit(payload), expected)
    check_state_dict(expected, sd, str(p), "the original MelGAN generator its weights describe")
    return OriginalMelGanGenerator(generator_config=cfg.to_dict(), frontend=frontend.to_config(), state_dict=sd)
