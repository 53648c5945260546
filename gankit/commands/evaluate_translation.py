"""`gankit evaluate` given a music-translation checkpoint (gankit/commands/evaluate.py picks it by the checkpoint's
kind): the measures of gankit/infer/translation_evaluation.py on a prepared domain corpus, as a table and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from gankit.commands.evaluate import DEFAULT_MEASURES
    from gankit.errors import ConfigError, check_output_file
    from gankit.infer.evaluation import check_results_file, write_results
    from gankit.infer.translation import load_translator
    from gankit.infer.translation_evaluation import (
        MODEL,
        evaluate_translation,
        format_table,
        inputs_of,
        read_domain_corpus,
        results_json,
        untrained_copy,
    )

    # Options, outputs and data first: a wrong option or path fails before the model is loaded, and an output that
    # cannot be written, or would replace a file (without --overwrite), before any translation.
    not_here = [flag for flag, given in (
        ("--wav-dir", args.wav_dir is not None), ("--config", args.config is not None),
        ("--limit", args.limit is not None), ("--audio-dir", args.audio_dir is not None),
        ("--measures", args.measures != DEFAULT_MEASURES), ("--baseline", args.baseline != "griffin-lim"),
        ("--vocoder", args.vocoder is not None), ("--targets-per-source", args.targets_per_source is not None),
        ("--workers", args.workers is not None),
    ) if given]
    if not_here:
        raise ConfigError(f"{args.checkpoint}: {', '.join(not_here)} {'is' if len(not_here) == 1 else 'are'} not "
                          "for music-translation checkpoints (see the music-translation options of "
                          "`gankit evaluate --help`)")
    if args.out is not None:
        check_output_file(args.out, "--out")
    corpus = read_domain_corpus(args.data)
    checkpoint = [Path(args.checkpoint)] if Path(args.checkpoint).is_file() else []
    replacing = args.out is not None and check_results_file(args.out, inputs_of(corpus, checkpoint), args.overwrite)
    translator = load_translator(args.checkpoint, device=args.device, best=args.best)
    seed = 0 if args.seed is None else args.seed
    untrained = untrained_copy(translator, seed) if args.compare_untrained else None
    seconds_each = args.max_seconds if args.max_seconds is not None else 1.0
    print(f"loaded {translator.source}: {len(translator.domains)} domains ({', '.join(translator.domains)}), "
          f"{translator.sample_rate} Hz; translating ≤ {seconds_each:g} s of each held-out recording")
    started = time.perf_counter()
    with tqdm(unit="sample", unit_scale=True, dynamic_ncols=True, desc="translate", disable=args.no_progress) as bar:
        results = evaluate_translation(translator, corpus, max_seconds=seconds_each, max_items=args.max_utterances,
                                       untrained=untrained, seed=seed, progress=bar.update)
    seconds = time.perf_counter() - started
    rows = results.rows[MODEL]
    print(f"{len(rows)} translation{'' if len(rows) == 1 else 's'} from {args.data} in {seconds:.0f} s")
    print(format_table(results))
    if args.out is not None:
        meta = {"checkpoint": str(args.checkpoint), "step": translator.step, "data": str(args.data),
                "sample_rate": translator.sample_rate, "max_seconds": seconds_each,
                "max_utterances": args.max_utterances, "untrained_seed": seed if args.compare_untrained else None,
                "seconds": round(seconds, 1)}
        write_results(args.out, results_json(results, meta))
        print(f"results: {args.out}" + ("; replaced the existing file" if replacing else ""))
    return 0
