"""`gankit evaluate` given a voice-conversion checkpoint (gankit/commands/evaluate.py picks it by the checkpoint's
kind): the measures of gankit/infer/conversion_evaluation.py on a prepared speaker corpus, as a table and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    import time

    from gankit.commands.evaluate import DEFAULT_MEASURES
    from gankit.errors import ConfigError, check_output_file
    from gankit.infer.conversion import GRIFFIN_LIM, load_converter, load_voicer
    from gankit.infer.conversion_evaluation import evaluate_conversion, read_speaker_corpus
    from gankit.infer.conversion_scores import MODEL, format_table, results_json
    from gankit.infer.evaluation import check_results_file, write_results

    # Options, outputs and data first: a typo or a wrong path fails before the model is loaded, and an output that
    # cannot be written, or would replace a file (without --overwrite), before any conversion.
    vocoder_only = [flag for flag, given in (
        ("--wav-dir", args.wav_dir is not None), ("--config", args.config is not None),
        ("--limit", args.limit is not None), ("--audio-dir", args.audio_dir is not None),
        ("--measures", args.measures != DEFAULT_MEASURES), ("--baseline", args.baseline != "griffin-lim"),
    ) if given]
    if vocoder_only:
        raise ConfigError(f"{args.checkpoint}: {', '.join(vocoder_only)} {'is' if len(vocoder_only) == 1 else 'are'} "
                          "for vocoder checkpoints; a voice-conversion model is scored by its own measures (the "
                          "voice-conversion options of `gankit evaluate --help`)")
    if args.out is not None:
        check_output_file(args.out, "--out")
    corpus = read_speaker_corpus(args.data)
    recordings = [u.path for split in (corpus.train, corpus.held_out) for us in split.values() for u in us]
    inputs = [args.data / "train.txt", args.data / "val.txt", *recordings,
              *([Path(args.checkpoint)] if Path(args.checkpoint).is_file() else [])]
    replacing = args.out is not None and check_results_file(args.out, inputs, args.overwrite)
    converter = load_converter(args.checkpoint, device=args.device, best=args.best)
    vocoder = load_voicer(args.vocoder or GRIFFIN_LIM, converter, device=args.device)
    voiced_by = vocoder if isinstance(vocoder, str) else vocoder.source
    seed = 0 if args.seed is None else args.seed
    untrained = converter.untrained(seed) if args.compare_untrained else None
    print(f"loaded {converter.source}: {len(converter.speakers)} speakers, {converter.sample_rate} Hz; voicing with "
          f"{voiced_by}")
    started = time.perf_counter()
    results = evaluate_conversion(converter, corpus, vocoder, untrained=untrained, max_utterances=args.max_utterances,
                                  targets_per_source=args.targets_per_source, workers=args.workers,
                                  progress=not args.no_progress)
    seconds = time.perf_counter() - started
    rows = results.rows[MODEL]
    sources = len({r["source_id"] for r in rows})
    skipped = len(results.skipped)
    print(f"{len(rows)} conversion{'' if len(rows) == 1 else 's'} of {sources} held-out utterance"
          f"{'' if sources == 1 else 's'} from {args.data} in {seconds:.0f} s"
          + (f" ({skipped} skipped)" if skipped else ""))
    print(format_table(results))
    if args.out is not None:
        meta = {"checkpoint": str(args.checkpoint), "step": converter.step, "data": str(args.data),
                "sample_rate": converter.sample_rate, "vocoder": str(args.vocoder or GRIFFIN_LIM),
                "griffin_lim_iters": 32 if vocoder == GRIFFIN_LIM else None, "max_utterances": args.max_utterances,
                "targets_per_source": args.targets_per_source,
                "untrained_seed": seed if args.compare_untrained else None, "seconds": round(seconds, 1)}
        write_results(args.out, results_json(results, meta))
        print(f"results: {args.out}" + ("; replaced the existing file" if replacing else ""))
    return 0
