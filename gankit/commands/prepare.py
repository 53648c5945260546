"""`gankit prepare SRC OUT --format …`: convert a corpus into wavs at one rate plus train/val lists."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    from gankit.data.formats import FORMATS  # a few std-lib imports: keeps parser building cheap

    parser = subparsers.add_parser(
        "prepare",
        help="convert a corpus into OUT/wavs + train.txt/val.txt",
        description=(
            "Convert a corpus into OUT/wavs/<id>.wav (mono 16-bit PCM at one sample rate), OUT/train.txt and "
            "OUT/val.txt (id|text) and OUT/skipped.txt (every file that could not be used, with the reason); "
            "with --mel-stats also OUT/mel_stats.json (per-band mel statistics of the training files)."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="corpus folder")
    parser.add_argument("out", metavar="OUT",
                        help="output folder, apart from SRC (rerunning into it replaces what an earlier gankit "
                        "prepare wrote there, and nothing else)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="corpus layout")
    parser.add_argument("--sample-rate", type=int, default=None, metavar="SR",
                        help="output rate in Hz (default: the source rate, the most common one when mixed)")
    parser.add_argument("--val-size", type=int, default=None, metavar="N",
                        help="validation files: the last N ids in sorted order (default: min(100, 10%% of files))")
    parser.add_argument("--min-seconds", type=float, default=0.5, metavar="S",
                        help="skip files shorter than this (default 0.5)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="conversion processes (default: the CPU count)")
    parser.add_argument("--mel-stats", default=None, metavar="PRESET_OR_CONFIG",
                        help="also write OUT/mel_stats.json: per-band mean/scale of this mel front-end over the "
                        "training files, which training with it normalises by: a preset (parallel_wavegan, at the "
                        "output rate) or a config name/YAML (its frontend section)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.data.prepare import prepare_corpus

    report = prepare_corpus(
        args.src,
        args.out,
        args.format,
        sample_rate=args.sample_rate,
        val_size=args.val_size,
        min_seconds=args.min_seconds,
        workers=args.workers,
        progress=not args.no_progress,
        mel_stats=None if args.mel_stats is None else stats_frontend_config(args.mel_stats),
    )
    print(report.summary())
    return 0


def stats_frontend_config(name: str) -> dict[str, Any]:
    """--mel-stats' front-end config: a preset's name, or a config name/YAML's frontend section."""
    from gankit.audio.mel import PRESETS
    from gankit.config import read_config_source
    from gankit.errors import ConfigError

    if name in PRESETS:
        return {"preset": name}
    try:
        _, config = read_config_source(name)
    except ConfigError as exc:
        raise ConfigError(f"--mel-stats {name}: not a mel preset ({', '.join(sorted(PRESETS))}), and as a "
                          f"config: {exc}") from None
    frontend = config.get("frontend")
    if not isinstance(frontend, dict) or "preset" not in frontend:
        raise ConfigError(f"--mel-stats {name}: the config has no frontend section with a preset")
    return {k: v for k, v in frontend.items() if k not in ("mean", "scale")}
