"""The `gankit` command: parses arguments, then imports only what the chosen subcommand needs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gankit import __version__
from gankit.errors import GankitError

# Subcommand → module in gankit.commands. Each module imports only argparse at its top, so building
# the parser is cheap; torch, librosa and matplotlib are imported inside `run`.
COMMANDS: tuple[str, ...] = ("demo", "prepare", "train", "vocode", "resynth", "evaluate", "export", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit",
        description="Train and use GAN audio generators (HiFi-GAN) without silent failures.",
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"gankit.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*getattr(args, "overrides", []), *extra]
    try:
        return int(args.run(args) or 0)
    except GankitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
