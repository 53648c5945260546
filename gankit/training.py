"""Train a shipped system from its config: corpus statistics filled in, the task chosen by the config's `task`
key, then the engine (which knows the task only through its contract). What `gankit train` runs.

Everything a user can get wrong that is cheap to check — the run directory, the device, the optimizer and
scheduler settings, the file lists — is checked here, before the engine creates the run directory or builds a
network, so a mistake costs a one-line error and leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def check_train_device(device: Any) -> None:
    """The config's `device` names a device this machine has (the same rules as `gankit vocode --device`)."""
    import torch

    from gankit.errors import ConfigError
    from gankit.infer.loading import resolve_device

    text = str(device)
    try:
        resolved = resolve_device(text)
    except ConfigError as exc:  # its words are the command line's; a config says device=…
        raise ConfigError(str(exc).replace("--device ", "device=")) from None
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"device={text}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered "
                          "from 0; use device=cuda (each process takes its own) or cuda:N with N below that")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={text}: training runs on cpu or cuda; use device=cpu, cuda, cuda:N or auto")


def check_train_settings(config: Mapping[str, Any], task: Any) -> None:
    """The optimizer groups' and schedulers' settings (gankit.engine.optim), and the task's file lists are
    readable (`id|text`, UTF-8): ConfigError/DataError naming the key or file."""
    from gankit.config_legacy import upgrade_legacy_keys
    from gankit.data.settings import DataSettings
    from gankit.engine.optim import parse_groups

    upgraded = upgrade_legacy_keys(config, complete=True)  # as the engine reads it
    parse_groups(upgraded.get("optim"), list(task.optimizer_groups()))
    data = getattr(task, "data", None)
    if isinstance(data, DataSettings):
        from gankit.data.filelist import read_filelist
        from gankit.data.vocoder_data import _resolve_paths

        train_list, val_list, _ = _resolve_paths(data)
        for listed in (train_list, val_list):
            if listed is not None:
                read_filelist(listed)


def train(
    config: Mapping[str, Any],
    run_dir: str | Path,
    init_from: str | None = None,
    reset_optimizer: bool = False,
    progress: bool = True,
) -> int:
    """Train (or resume) the run in `run_dir`; returns the process exit status."""
    from gankit.data.corpus_stats import with_corpus_statistics
    from gankit.engine.launch import train as run_engine
    from gankit.errors import check_output_dir
    from gankit.initial_weights import read_initial_weights
    from gankit.tasks import build_task

    check_output_dir(run_dir, "the run directory")
    check_train_device(config.get("device", "auto"))
    # A preset normalising by corpus statistics takes them from data.dir now, so config.yaml, the checkpoints
    # and every generator file's frontend carry them (resuming keeps the saved ones). One line per run: rank 0's.
    config = with_corpus_statistics(config, log=print if os.environ.get("RANK", "0") == "0" else None)
    task = build_task(config)
    check_train_settings(config, task)
    init = read_initial_weights(init_from, keep_optimizer=not reset_optimizer) if init_from else None
    return run_engine(config, lambda _config: task, run_dir, init=init, progress=progress)
