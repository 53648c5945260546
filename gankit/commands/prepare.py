"""`gankit prepare SRC OUT --format …`: convert a corpus into wavs at one rate plus train/val lists."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from gankit.data.formats import FORMATS  # a few std-lib imports: keeps parser building cheap

    parser = subparsers.add_parser(
        "prepare",
        help="convert a corpus into OUT/wavs + train.txt/val.txt",
        description=(
            "Convert a corpus into OUT/wavs/<id>.wav (mono 16-bit PCM at one sample rate), OUT/train.txt and "
            "OUT/val.txt (id|text) and OUT/skipped.txt (every file that could not be used, with the reason)."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="corpus folder")
    parser.add_argument("out", metavar="OUT", help="output folder (rerunning into it overwrites cleanly)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="corpus layout")
    parser.add_argument("--sample-rate", type=int, default=None, metavar="SR",
                        help="output rate in Hz (default: the source rate, the most common one when mixed)")
    parser.add_argument("--val-size", type=int, default=None, metavar="N",
                        help="validation files: the last N ids in sorted order (default: min(100, 10%% of files))")
    parser.add_argument("--min-seconds", type=float, default=0.5, metavar="S",
                        help="skip files shorter than this (default 0.5)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="conversion processes (default: the CPU count)")
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
    )
    print(report.summary())
    return 0
