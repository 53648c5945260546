"""The `gankit` command: parses arguments, then imports only what the chosen subcommand needs."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import PurePath

from gankit import __version__
from gankit.errors import GankitError, describe_decode_error, describe_os_error

# Subcommand → module in gankit.commands. Each module imports only argparse at its top, so building
# the parser is cheap; torch, librosa and matplotlib are imported inside `run`.
COMMANDS: tuple[str, ...] = (
    "demo", "prepare", "train", "vocode", "resynth", "convert", "translate", "evaluate", "export", "report",
    "sample",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit",
        description="Train and use GAN generators (HiFi-GAN and MelGAN vocoders, DCGAN images) without silent "
        "failures.",
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (by default an error a user can fix is one line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"gankit.commands.{name}")
        module.register(sub)
    return parser


def _decoded_path(exc: UnicodeDecodeError) -> str | os.PathLike[str] | None:
    """The file whose text failed to decode, from the innermost frame that was reading it (`Path.read_text`'s
    own path, an open text file's name, or a `path` variable)."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        names = frame.f_locals
        if isinstance(names.get("self"), PurePath) and frame.f_code.co_name in ("read_text", "open"):
            return names["self"]
        for value in names.values():
            if isinstance(value, io.TextIOBase) and isinstance(getattr(value, "name", None), (str, PurePath)):
                return value.name
        for key in ("path", "p", "filename", "file", "source"):
            value = names.get(key)
            if isinstance(value, (str, PurePath)) and os.path.isfile(value):
                return value
    return None


def _user_error(exc: BaseException) -> str | None:
    """The one-line message for an error the user caused and can fix, or None for a bug."""
    if isinstance(exc, GankitError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return describe_decode_error(exc, _decoded_path(exc))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*getattr(args, "overrides", []), *extra]
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # sorted here: what a user can fix is one line, a bug re-raises
        message = _user_error(exc)
        if message is None:
            raise  # a programming error: its traceback is what a bug report needs
        if args.debug:
            traceback.print_exc()
        # One line, even where a message quotes a multi-line one (a YAML parser's, a library's).
        print("error: " + " ".join(part.strip() for part in message.splitlines() if part.strip()), file=sys.stderr)
        return 2
