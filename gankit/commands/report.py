"""`gankit report RUN_DIR`: a static HTML page of a run (RUN_DIR/report/index.html) to open in a browser."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML page of a run: losses, validation, health events, samples, layer gradients",
        description="Read a run directory (also while it trains, or a partial one) and write RUN_DIR/report/"
        "index.html with its figures, audio and spectrograms beside it; the folder is self-contained, so it can "
        "be copied elsewhere. Running it again updates the page.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the folder training writes to (holds config.yaml)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="write the page here (default RUN_DIR/report)")
    p.add_argument("--percentile", type=float, default=99.0,
                   help="loss plots clip values beyond this percentile and mark them (default 99; 100 = no clipping)")
    p.add_argument("--max-sample-steps", type=int, default=40, metavar="N",
                   help="validation steps with audio players; more are thinned evenly (default 40)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import ConfigError, check_output_dir
    from gankit.report.build import ReportOptions, build_report

    if not 50.0 < args.percentile <= 100.0:
        raise ConfigError(f"--percentile must be in (50, 100], got {args.percentile}")
    if args.max_sample_steps < 1:
        raise ConfigError(f"--max-sample-steps must be at least 1, got {args.max_sample_steps}")
    if args.out is not None:
        check_output_dir(args.out, "--out")
    elif args.run_dir.is_dir():  # (a missing or wrong RUN_DIR is reported by the report's own checks)
        check_output_dir(args.run_dir / "report", "the report folder (RUN_DIR/report; --out DIR writes elsewhere)")
    options = ReportOptions(percentile=args.percentile, max_sample_steps=args.max_sample_steps)
    index = build_report(args.run_dir, args.out, options)
    print(index)
    return 0
