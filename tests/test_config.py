"""Config loading: shipped names, YAML paths, dotted overrides, and which keys a resumed run may change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gankit.commands.train import split_items
from gankit.config import config_for_run, load_config, shipped_config_names
from gankit.errors import ConfigError


def test_shipped_configs_are_listed_and_load() -> None:
    names = shipped_config_names()
    for expected in ("hifigan_v1", "hifigan_v2", "hifigan_v3", "hifigan_v1_16k", "hifigan_v1_24k",
                     "hifigan_v1_44k", "hifigan_ruslan", "hifigan_tiny"):
        assert expected in names
    for name in names:
        _, config = load_config(name)
        assert config["task"] and "base" not in config


def test_ruslan_config_reproduces_the_report_settings() -> None:
    _, c = load_config("hifigan_ruslan")
    assert c["data"]["batch_size"] == 4 and c["train"]["grad_accum"] == 2 and c["data"]["segment_size"] == 8192
    for group in ("g", "d"):
        assert c["optim"][group] == {"type": "AdamW", "lr": 2e-4, "betas": [0.8, 0.99], "weight_decay": 0.01,
                                     "clip": {"type": "norm", "max": 1.0},
                                     "scheduler": {"type": "ExponentialLR", "gamma": 0.999, "interval": "epoch"}}
    assert set(c["optim"]) == {"g", "d"}
    assert c["loss"]["lambda_fm"] == 2.0 and c["loss"]["lambda_mel"] == 45.0
    assert c["train"]["ckpt_every_epochs"] == 5


def test_overrides_parse_yaml_values_and_reject_unknown_keys() -> None:
    _, c = load_config("hifigan_v1", ["train.max_steps=10", "optim.g.betas=[0.5, 0.9]", "data.dir=x"])
    assert c["train"]["max_steps"] == 10 and c["optim"]["g"]["betas"] == [0.5, 0.9]
    assert c["data"]["dir"] == "x"
    with pytest.raises(ConfigError, match=r"train\.max_step"):
        load_config("hifigan_v1", ["train.max_step=10"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("hifigan_v1", ["train.max_steps"])


def test_open_sections_accept_their_own_keys() -> None:
    _, c = load_config("hifigan_v1", ["health.dc_offset.action=stop"])
    assert c["health"] == {"dc_offset": {"action": "stop"}}


def test_config_and_overrides_may_come_in_any_order() -> None:
    assert split_items(["a.b=1", "hifigan_tiny", "c=2"]) == ("hifigan_tiny", ["a.b=1", "c=2"])
    with pytest.raises(ConfigError, match="exactly one config"):
        split_items(["a.b=1"])


def test_unknown_config_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="hifigan_v1"):
        load_config("no_such_config")


def test_resume_keeps_saved_config_and_applies_only_safe_changes(tmp_path: Path) -> None:
    _, saved = load_config("hifigan_tiny", ["train.max_steps=10"])
    saved_path = tmp_path / "config.yaml"
    saved_path.write_text(yaml.safe_dump(saved))
    _, config, changed = config_for_run("hifigan_tiny", ["train.max_steps=20", "device=cpu"], saved_path)
    assert config["train"]["max_steps"] == 20 and config["device"] == "cpu"
    assert changed == ["device", "train.max_steps"]
    with pytest.raises(ConfigError) as info:
        config_for_run("hifigan_tiny", ["optim.g.lr=1e-3", "data.batch_size=2"], saved_path)
    assert "optim.g.lr" in str(info.value) and "data.batch_size" in str(info.value)
    # Without a saved run the requested config is used as is.
    _, fresh, changed = config_for_run("hifigan_tiny", ["data.batch_size=2"], None)
    assert fresh["data"]["batch_size"] == 2 and changed == []


def test_exponent_floats_are_numbers_as_users_write_them(tmp_path: Path) -> None:
    _, c = load_config("hifigan_v1", ["optim.g.lr=1e-4", "train.max_steps=10"])
    assert c["optim"]["g"]["lr"] == 1e-4 and isinstance(c["train"]["max_steps"], int)
    path = tmp_path / "mine.yaml"
    path.write_text("base: hifigan_tiny\noptim:\n  d: {lr: 5e-5}\n")
    _, c = load_config(str(path))
    assert c["optim"]["d"]["lr"] == 5e-5 and c["optim"]["d"]["type"] == "AdamW"
    # A YAML written before optimizer groups (optim.discriminator) extends a base the same way.
    path.write_text("base: hifigan_tiny\noptim:\n  discriminator: {lr: 5e-5}\n")
    _, old = load_config(str(path))
    assert old == c

