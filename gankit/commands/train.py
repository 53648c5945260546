"""`gankit train CONFIG [--run-dir DIR] [key=value ...]`: train, or resume the run in DIR."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (or resume the run in --run-dir)",
        description="Train from a shipped config name (e.g. hifigan_v1, hifigan_tiny) or a YAML file. Dotted "
        "overrides (train.max_steps=1000 data.dir=data/ruslan) may stand anywhere on the line. Running the same "
        "command again resumes from the newest checkpoint in the run directory.",
    )
    p.add_argument("items", nargs="+", metavar="CONFIG_OR_OVERRIDE",
                   help="config name or YAML path, then overrides")
    p.add_argument("--run-dir", type=Path, default=None, help="where checkpoints and logs go (default: runs/<config>)")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start a new run from a gankit checkpoint or run directory, or an original HiFi-GAN "
                   "g_XXXXXXXX (with its do_XXXXXXXX beside it, discriminators and optimizers too)")
    p.add_argument("--reset-optimizer", action="store_true",
                   help="with --init-from: start with fresh optimizer state (weights only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the run directory)")
    p.set_defaults(run=run, accepts_overrides=True)


def split_items(items: list[str]) -> tuple[str, list[str]]:
    """CONFIG is the one item without '='; the rest are overrides, wherever they stood."""
    from gankit.errors import ConfigError

    configs = [i for i in items if "=" not in i]
    if len(configs) != 1:
        raise ConfigError(
            f"give exactly one config name or YAML path (got {configs or 'none'}); overrides look like key=value."
        )
    return configs[0], [i for i in items if "=" in i]


def run(args: argparse.Namespace) -> int:
    from gankit.config import config_for_run, read_config_source
    from gankit.training import train

    config_arg, overrides = split_items([*args.items, *getattr(args, "overrides", [])])
    name, _ = read_config_source(config_arg)
    run_dir = args.run_dir or Path("runs") / name
    has_checkpoint = any((run_dir / "checkpoints").glob("state_*.pt"))
    saved = run_dir / "config.yaml" if has_checkpoint else None
    _, config, changed = config_for_run(config_arg, overrides, saved)
    if changed:
        print(f"resuming {run_dir} with changed settings: {', '.join(changed)}")
    return train(config, run_dir, init_from=args.init_from, reset_optimizer=args.reset_optimizer,
                 progress=not args.no_progress)
