"""`gankit evaluate --checkpoint CKPT --data DATA`: objective measures of a vocoder next to Griffin-Lim, or of a
voice-conversion model next to no conversion (gankit/commands/evaluate_conversion.py), by the checkpoint's kind."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from gankit.commands.vocode import PRECISIONS, positive_int

DEFAULT_MEASURES = "mel_l1,mrstft,pesq,stoi,mcd,f0"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a vocoder (mel L1, MR-STFT, PESQ, STOI, MCD, F0) against Griffin-Lim, or a voice-conversion "
        "model against no conversion",
        description="A vocoder: resynthesise each reference utterance from its mel with the vocoder and with "
        "Griffin-Lim, and report per file and averaged (mean and 95%% interval): mel L1, multi-resolution STFT "
        "distance, PESQ wide-band, STOI, MCD (dB), log-F0 RMSE (cents) and voiced/unvoiced error. A voice-conversion "
        "model (stargan_vc) and a prepared speaker corpus: convert every held-out utterance to the other speakers of "
        "its group, voice it, and report per target and pooled the speaker classifier's target share, content "
        "margin, voicing agreement, MCD-DTW against the target's recording and F0 shift, next to the unconverted "
        "source (and an untrained generator with --compare-untrained).",
    )
    p.add_argument("--checkpoint", required=True, help="gankit checkpoint or run directory, or an original g_ file")
    p.add_argument("--data", required=True, type=Path,
                   help="a prepared corpus (its val.txt), a file list (with --wav-dir) or a folder of audio files")
    p.add_argument("--wav-dir", type=Path, default=None, help="folder of <id>.wav for a file list")
    p.add_argument("--config", default=None, help="config.json for an original g_ file not beside it")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint, not the latest")
    p.add_argument("--baseline", choices=("griffin-lim", "none"), default="griffin-lim")
    p.add_argument("--measures", default=DEFAULT_MEASURES,
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="processes that resynthesise (or convert) and score files in parallel, each on one thread so "
                   "that N processes use N cores (default: one per CPU core, at most 8; one for a model not on the "
                   "CPU); the results do not depend on N")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="a vocoder's precision: fp32 (default), bf16 or auto (bf16 where the device has bf16 kernels); "
                   "as gankit vocode --precision")
    vc = p.add_argument_group("voice-conversion checkpoints (stargan_vc); --data is a prepared speaker corpus")
    vc.add_argument("--vocoder", default=None, metavar="VOCODER",
                    help="voice the conversions with this gankit vocoder (generator file or run directory, on the "
                    "model's mel) or griffin-lim (the default, 32 iterations)")
    vc.add_argument("--max-utterances", type=positive_int, default=None, metavar="N",
                    help="convert the first N held-out utterances of each speaker (default: all)")
    vc.add_argument("--targets-per-source", type=positive_int, default=None, metavar="K",
                    help="convert each utterance to K of the other speakers of its group (a fixed rotation; default: "
                    "all of them)")
    vc.add_argument("--compare-untrained", action="store_true",
                    help="also score the same model config with freshly seeded weights (--seed)")
    vc.add_argument("--seed", type=int, default=None, help="the untrained generator's seed (default 0)")
    mt = p.add_argument_group("music-translation checkpoints; --data is a prepared domain corpus (--max-utterances, "
                              "--compare-untrained and --seed apply too)")
    mt.add_argument("--max-seconds", type=positive_float, default=None, metavar="S",
                    help="translate the first S seconds of each held-out recording (default 1)")
    p.set_defaults(run=run)


# What a conversion option set means: these are refused for a vocoder rather than silently ignored.
CONVERSION_OPTIONS = (("--vocoder", "vocoder"), ("--max-utterances", "max_utterances"),
                      ("--targets-per-source", "targets_per_source"), ("--compare-untrained", "compare_untrained"),
                      ("--seed", "seed"))


def checkpoint_kind(checkpoint: str, best: bool) -> str | None:
    """The kind of model CKPT holds (infer/registry.py, by the task that wrote it), or None when it cannot be read
    (the evaluation reports that after checking its options and data, as it does for any checkpoint)."""
    from gankit.checkpoint_io import safe_load
    from gankit.errors import CheckpointError
    from gankit.infer.loading import resolve_checkpoint
    from gankit.infer.registry import TASKS, task_of

    try:
        obj = safe_load(resolve_checkpoint(checkpoint, best))
    except CheckpointError:
        return None
    entry = TASKS.get(task_of(obj) or "hifigan")  # the original HiFi-GAN and MelGAN files carry no task
    return entry.kind if entry is not None else None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _run_translation(args: argparse.Namespace) -> int:
    from gankit.commands.evaluate_translation import run as run_translation

    return run_translation(args)


def _run_conversion(args: argparse.Namespace) -> int:
    from gankit.commands.evaluate_conversion import run as run_conversion

    return run_conversion(args)


def run(args: argparse.Namespace) -> int:
    kind = checkpoint_kind(args.checkpoint, args.best)
    given = [flag for flag, name in CONVERSION_OPTIONS if getattr(args, name) not in (None, False)]
    if kind is None and given:
        kind = "converter"  # what the options say it is; its loader names the problem
    evaluation: Callable[[argparse.Namespace], int] = EVALUATIONS.get(kind or "vocoder", run_vocoder)
    if kind != "translator" and args.max_seconds is not None:
        from gankit.errors import ConfigError

        raise ConfigError(f"{args.checkpoint}: --max-seconds is for music-translation checkpoints")
    if kind in ("converter", "translator") and args.precision is not None:
        from gankit.errors import ConfigError

        raise ConfigError(f"{args.checkpoint}: --precision is for vocoder checkpoints; this one holds a {kind}")
    if kind == "vocoder" and given:
        from gankit.errors import ConfigError

        raise ConfigError(f"{args.checkpoint}: {', '.join(given)} {'is' if len(given) == 1 else 'are'} for "
                          "voice-conversion checkpoints; this one holds a vocoder")
    return evaluation(args)


def run_vocoder(args: argparse.Namespace) -> int:
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
    vocoder = load_vocoder(args.checkpoint, config=args.config, best=args.best, device=args.device,
                           precision=args.precision or "fp32")
    print(f"loaded {vocoder.source}: on {vocoder.device}, {vocoder.precision} ({vocoder.precision_reason})")
    systems = evaluate_vocoder(vocoder, references, baseline=baseline, measures=measures, audio_dir=args.audio_dir,
                               overwrite=args.overwrite, workers=args.workers,
                               progress=not args.no_progress)
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
                "sample_rate": vocoder.sample_rate, "measures": measures, "baseline": baseline,
                "precision": vocoder.precision}
        write_results(args.out, results_json(systems, meta))
        print(f"results: {args.out}" + ("; replaced the existing file" if replacing_out else ""))
    return 0


# The evaluation of each kind of model (infer/registry.py); any other kind goes to the vocoder's, which refuses it
# naming what the file holds.
EVALUATIONS: dict[str, Callable[[argparse.Namespace], int]] = {"vocoder": run_vocoder, "converter": _run_conversion,
                                                                "translator": _run_translation}
