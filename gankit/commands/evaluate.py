"""`gankit evaluate --checkpoint CKPT --data DATA`: objective measures of a vocoder next to Griffin-Lim."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a vocoder (mel L1, MR-STFT, PESQ, STOI, MCD, F0) against Griffin-Lim",
        description="Resynthesise each reference utterance from its mel with the vocoder and with Griffin-Lim, "
        "and report per file and averaged (mean and 95%% interval): mel L1, multi-resolution STFT distance, "
        "PESQ wide-band, STOI, MCD (dB), log-F0 RMSE (cents) and voiced/unvoiced error.",
    )
    p.add_argument("--checkpoint", required=True, help="gankit checkpoint or run directory, or an original g_ file")
    p.add_argument("--data", required=True, type=Path,
                   help="a prepared corpus (its val.txt), a file list (with --wav-dir) or a folder of audio files")
    p.add_argument("--wav-dir", type=Path, default=None, help="folder of <id>.wav for a file list")
    p.add_argument("--config", default=None, help="config.json for an original g_ file not beside it")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint, not the latest")
    p.add_argument("--baseline", choices=("griffin-lim", "none"), default="griffin-lim")
    p.add_argument("--measures", default="mel_l1,mrstft,pesq,stoi,mcd,f0",
                   help="comma-separated subset of mel_l1,mrstft,pesq,stoi,mcd,f0")
    p.add_argument("--limit", type=int, default=None, help="score only the first N utterances")
    p.add_argument("--out", type=Path, default=None,
                   help="write per-file and summary results as JSON; an existing file is refused before any "
                   "scoring unless --overwrite, and a file evaluate reads is never replaced")
    p.add_argument("--audio-dir", type=Path, default=None,
                   help="also write the resyntheses here to listen to (DIR/model/<id>.wav, DIR/griffin_lim/<id>.wav); "
                   "existing files there are refused before any scoring unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file and existing --audio-dir files (the summary says how many)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import check_output_dir, check_output_file
    from gankit.infer import load_vocoder
    from gankit.infer.evaluation import (
        MODEL,
        check_audio_outputs,
        check_measures,
        check_results_file,
        evaluate_vocoder,
        find_references,
        format_table,
        input_files,
        results_json,
        write_results,
        written_audio,
    )

    # Options, outputs and data first: a typo or a wrong path should fail before the checkpoint is loaded, and an
    # output that cannot be written, or would replace a file (without --overwrite), before any scoring.
    measures = check_measures(args.measures.split(","))
    baseline = None if args.baseline == "none" else args.baseline.replace("-", "_")
    system_names = [MODEL, *([baseline] if baseline else [])]
    if args.out is not None:
        check_output_file(args.out, "--out")
    if args.audio_dir is not None:
        check_output_dir(args.audio_dir, "--audio-dir")
        for system in system_names:
            check_output_dir(args.audio_dir / system, "--audio-dir's folder for each system")
    references = find_references(args.data, args.wav_dir, args.limit)
    inputs = [*input_files(args.data, args.checkpoint, references), *([Path(args.config)] if args.config else [])]
    replacing_out = args.out is not None and check_results_file(args.out, inputs, args.overwrite)
    replacing_audio: set[Path] = set()
    if args.audio_dir is not None:
        replacing_audio = check_audio_outputs(references, args.audio_dir, system_names, args.overwrite, inputs)
    vocoder = load_vocoder(args.checkpoint, config=args.config, best=args.best, device=args.device)
    systems = evaluate_vocoder(vocoder, references, baseline=baseline, measures=measures, audio_dir=args.audio_dir,
                               overwrite=args.overwrite)
    scored, skipped = len(systems["model"].rows), len(systems["model"].skipped)
    print(f"{scored} utterance{'' if scored == 1 else 's'} from {args.data} at {vocoder.sample_rate} Hz"
          + (f" ({skipped} skipped)" if skipped else ""))
    print(format_table(systems))
    if args.audio_dir is not None:
        written = written_audio(systems, args.audio_dir)
        replaced = sum(1 for path in written if path in replacing_audio)
        print(f"audio: {len(written)} file{'' if len(written) == 1 else 's'} in "
              f"{', '.join(str(args.audio_dir / name) for name in systems)}"
              + (f"; replaced {replaced} existing file{'' if replaced == 1 else 's'}" if replaced else ""))
    if args.out is not None:
        meta = {"checkpoint": str(args.checkpoint), "step": vocoder.step, "data": str(args.data),
                "sample_rate": vocoder.sample_rate, "measures": measures, "baseline": baseline}
        write_results(args.out, results_json(systems, meta))
        print(f"results: {args.out}" + ("; replaced the existing file" if replacing_out else ""))
    return 0
