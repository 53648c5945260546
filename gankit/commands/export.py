"""`gankit export --checkpoint CKPT --to-original OUT_DIR`: the generator as the original HiFi-GAN's
`g_XXXXXXXX` + `config.json`, which the original inference.py / inference_e2e.py load."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a generator in the original HiFi-GAN format (g_XXXXXXXX + config.json)",
        description="Export a HiFi-GAN generator trained on the hifigan mel preset to OUT_DIR/g_<step> (legacy "
        "weight-norm names) and OUT_DIR/config.json, so the original repository's scripts can load it.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="gankit generator or training-state file, or a run directory (its latest generator)")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint")
    p.add_argument("--config", default=None, metavar="JSON", help="config.json for an original g_ file")
    p.add_argument("--to-original", required=True, type=Path, metavar="OUT_DIR",
                   help="folder for g_XXXXXXXX and config.json (created if needed); an existing g_XXXXXXXX there is "
                   "refused unless --overwrite, and an existing config.json is kept (refused if it describes "
                   "another model)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT_DIR/g_XXXXXXXX (never the checkpoint being exported)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.audio.mel import build_frontend
    from gankit.compat.hifigan_original import write_original_generator
    from gankit.errors import CheckpointError, ConfigError, OutputPathError, check_output_dir
    from gankit.infer.loading import build_generator_from, read_checkpoint

    check_output_dir(args.to_original, "--to-original")  # before the checkpoint is read: a wrong path costs nothing
    loaded = read_checkpoint(args.checkpoint, config=args.config, best=args.best)
    if loaded.family != "hifigan":
        raise CheckpointError(
            f"{loaded.path}: a {loaded.family} generator has no original HiFi-GAN format; only HiFi-GAN generators "
            "export with --to-original"
        )
    preset = build_frontend(loaded.frontend_config).preset
    if preset != "hifigan":
        raise CheckpointError(
            f"{loaded.path}: trained on mel preset {preset!r}, but the original HiFi-GAN scripts compute the "
            "'hifigan' mel and would feed it other inputs; use the gankit checkpoint with gankit vocode instead"
        )
    step = loaded.step if isinstance(loaded.step, int) and loaded.step >= 0 else 0
    for name in (f"g_{step:08d}", "config.json"):
        if (args.to_original / name).is_dir():
            raise OutputPathError(f"{args.to_original / name}: a folder is in the way of the file export writes "
                                  "there; move it or choose another --to-original")
    # The step, and so the file name, is known only now: an existing g_ is refused before anything is built or
    # written. (config.json is not replaced: write_original_generator keeps one that agrees and refuses another.)
    target = args.to_original / f"g_{step:08d}"
    replacing = os.path.lexists(target)
    if replacing:
        if _same_file(target, loaded.path):
            raise OutputPathError(f"{target}: is the checkpoint being exported; choose another --to-original (an "
                                  "input is never replaced, even with --overwrite)")
        if not args.overwrite:
            raise OutputPathError(f"{target}: already exists; pass --overwrite to replace it or choose another "
                                  "--to-original")
    # Weight norm kept as trained: the g/v pairs are written exactly, not re-derived from folded weights.
    generator = build_generator_from(loaded, "cpu")
    args.to_original.mkdir(parents=True, exist_ok=True)
    try:
        path = write_original_generator(args.to_original, generator, loaded.generator_config,
                                        loaded.frontend_config, step, loaded.fmax_for_loss)
    except ConfigError as exc:
        raise CheckpointError(f"{loaded.path}: cannot be exported: {exc}") from None
    print(f"exported {loaded.describe()} → {path} and {path.parent / 'config.json'}"
          + ("; replaced 1 existing file" if replacing else "")
          + f"; the original scripts load it with --checkpoint_file {path}")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # a dangling link, or a file gone: not the checkpoint
        return False
