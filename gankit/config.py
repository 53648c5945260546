"""Load a run configuration: a shipped name or a YAML path, merged with dotted `key=value` overrides."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gankit.config_legacy import upgrade_legacy_keys
from gankit.errors import ConfigError

# Keys that may differ between a saved run and the command that resumes it.
RESUME_SAFE_PREFIXES: tuple[str, ...] = (
    "train.max_steps",
    "train.max_epochs",
    "train.max_seconds",
    "train.log_every",
    "train.val_every",
    "train.ckpt_every",
    "train.ckpt_every_epochs",
    "train.keep_last",
    "train.num_threads",
    "validation.measures",
    "validation.best_measures",
    "validation.measure_items",
    "data.num_workers",
    "device",
)


# Keys a run fills in at its first start (gankit.data.corpus_stats: a preset's corpus statistics). Resuming with
# a config that leaves them unset keeps the saved values instead of reading (or recomputing) them again.
DERIVED_KEYS: tuple[tuple[str, str], ...] = (("frontend", "mean"), ("frontend", "scale"))


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does: `1e-4` is a number, not the string "1e-4"."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def shipped_config_names() -> list[str]:
    folder = resources.files("gankit.configs")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML ({exc}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a config must be a YAML mapping, got {type(data).__name__}.")
    return data


def read_config_source(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Return (config name, mapping) for a shipped config name or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{name_or_path}: no such config file.")
        data = _read_yaml(path.read_text(encoding="utf-8"), str(path))
        return path.stem, _expand_base(data, str(path))
    folder = resources.files("gankit.configs")
    resource = folder / f"{name_or_path}.yaml"
    if not resource.is_file():
        known = ", ".join(shipped_config_names())
        raise ConfigError(f"unknown config '{name_or_path}': give a YAML path or one of: {known}.")
    data = _read_yaml(resource.read_text(encoding="utf-8"), name_or_path)
    return name_or_path, _expand_base(data, name_or_path)


def _expand_base(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """A config may start from another (`base: hifigan_v1`); its own keys override the base's."""
    base_name = data.pop("base", None)
    if base_name is None:
        return upgrade_legacy_keys(data, complete=True)
    if not isinstance(base_name, str):
        raise ConfigError(f"{origin}: 'base' must name a config.")
    _, base = read_config_source(base_name)
    return merge(base, upgrade_legacy_keys(data, complete=False))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in `override` replace those in `base`."""
    out: dict[str, Any] = {k: v for k, v in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`a.b=1 c=[1,2]` → nested mapping; values are parsed as YAML scalars/lists."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. train.max_steps=100).")
        key, raw = item.split("=", 1)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': empty key.")
        try:
            value = parse_yaml(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override of '{part}'.")
        node[parts[-1]] = value
    return result


def check_override_keys(config: Mapping[str, Any], overrides: Mapping[str, Any], prefix: str = "") -> None:
    """An override must name a key the config has (typos fail loudly, not silently ignored)."""
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(config, Mapping) and not config and prefix:
            return  # an open section such as `health: {}`: its own settings class names unknown keys
        if key not in config:
            known = ", ".join(sorted(str(k) for k in config)) or "(none)"
            raise ConfigError(f"override '{dotted}': no such key; keys here are: {known}.")
        if isinstance(value, Mapping) and isinstance(config[key], Mapping):
            check_override_keys(config[key], value, dotted + ".")


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    name, config = read_config_source(name_or_path)
    parsed = upgrade_legacy_keys(parse_overrides(overrides), complete=False)
    check_override_keys(config, parsed)
    return name, merge(config, parsed)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def differing_keys(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    a, b = flatten(saved), flatten(requested)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def is_resume_safe(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in RESUME_SAFE_PREFIXES)


def dump_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)


def config_for_run(
    name_or_path: str, overrides: Sequence[str], saved_config_path: Path | None
) -> tuple[str, dict[str, Any], list[str]]:
    """The config a `gankit train` invocation uses, and the resume-safe keys it changed.

    With no saved run config it is CONFIG + overrides. When resuming, the saved config wins: keys that are
    safe to change (limits, intervals, device) take the requested values, any other difference is a
    ConfigError listing the keys.
    """
    name, requested = load_config(name_or_path, overrides)
    if saved_config_path is None or not saved_config_path.is_file():
        return name, requested, []
    saved = _read_yaml(saved_config_path.read_text(encoding="utf-8"), str(saved_config_path))
    saved = upgrade_legacy_keys(saved, complete=True)  # a run written before the keys moved resumes
    requested = _with_derived(saved, requested)
    changed = differing_keys(saved, requested)
    unsafe = [k for k in changed if not is_resume_safe(k)]
    if unsafe:
        flat_saved, flat_req = flatten(saved), flatten(requested)
        shown = "; ".join(
            f"{k}: saved {flat_saved.get(k, '<absent>')!r}, requested {flat_req.get(k, '<absent>')!r}"
            for k in unsafe[:6]
        )
        more = f" (and {len(unsafe) - 6} more)" if len(unsafe) > 6 else ""
        raise ConfigError(
            f"{saved_config_path.parent} holds a run with a different config — {shown}{more}. Resuming keeps the "
            "saved config; only limits, intervals and device may change. Use another --run-dir for a new run."
        )
    flat_req = flatten(requested)
    resumed = merge(saved, {})
    for key in changed:
        _set_dotted(resumed, key, flat_req.get(key))
    return name, resumed, changed


def _with_derived(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> dict[str, Any]:
    """`requested` with the saved run's DERIVED_KEYS where it leaves them unset (absent or null)."""
    out = merge(requested, {})
    for section, key in DERIVED_KEYS:
        have, had = out.get(section), saved.get(section)
        unset = isinstance(have, Mapping) and have.get(key) is None
        if unset and isinstance(had, Mapping) and had.get(key) is not None:
            out[section] = {**have, key: had[key]}
    return out


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[last] = value
