"""`gankit translate --checkpoint MODEL --to DOMAIN INPUTS… --out-dir DIR`: music played in another domain (a Universal
Music Translation model) → `DIR/<stem>__to_<domain>.wav`, 16-bit PCM at the model's rate.

Every input is read (and a bad one skipped) before generation starts, so the progress bar counts the samples of the
whole run and a slow sample-by-sample generation never ends in a refusal."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.commands.vocode import positive_int

if TYPE_CHECKING:
    from gankit.infer.files import RunReport


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate music into another domain (a music-translation model)",
        description="Read WAV/FLAC/OGG files (resampled to the model's rate when they differ), encode them with the "
        "music-translation model's shared encoder and generate them sample by sample with the --to domain's "
        "WaveNet decoder into DIR/<stem>__to_<domain>.wav, as long as the input (or --max-seconds). Generation is "
        "slow (one decoder step per sample): a progress bar shows samples per second and the time left. A bad "
        "file among several is skipped with its reason; the good ones are written and the exit status is 2.",
    )
    p.add_argument("inputs", nargs="+", metavar="AUDIO_FILES_OR_DIR", help="audio files, or folders of them")
    p.add_argument("--checkpoint", required=True, metavar="MODEL",
                   help="a music-translation generator file (RUN/checkpoints/generator_N.pt of a music_translation "
                   "run) or its run directory (the latest generator)")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint, not the latest")
    p.add_argument("--to", required=True, metavar="DOMAIN", help="the domain (instrument, style) to render in")
    p.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                   help="where <stem>__to_<domain>.wav files go; existing files there are refused before any work "
                   "unless --overwrite, and an input is never replaced")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--max-seconds", type=positive_float, default=None, metavar="S",
                   help="translate only the first S seconds of each input (default: all of it)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="sampling seed (default 0); each input draws from its own generator seeded by N and its "
                   "place among the inputs, so --batch-size does not change the result")
    p.add_argument("--temperature", type=positive_float, default=1.0, metavar="T",
                   help="sampling temperature: the decoder's softmax over µ-law classes at logits / T (default 1; "
                   "lower is more conservative)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="cpu, cuda, cuda:N or auto (CUDA when available; default)")
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                   help="generate N inputs together, grouped by length (default 8); faster, the same result")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def speed_line(report: RunReport, domain: str, sample_rate: int, replacing: set[Path]) -> str:
    """The summary: audio made, generation speed in samples per second and the real-time factor (seconds of
    generation per second of audio: below 1 is faster than real time)."""
    n = len(report.written)
    audio, compute = report.audio_seconds, report.compute_seconds
    samples = round(audio * sample_rate)
    rate = f"{samples / compute:,.0f} samples/s" if compute > 0 else "— samples/s"
    factor = f"{compute / audio:.2f}" if audio > 0 else "—"
    line = (f"translated {n} file{'s' if n != 1 else ''} to {domain}: {audio:.2f} s of audio ({samples:,} samples "
            f"at {sample_rate} Hz) in {compute:.2f} s of generation = {rate}, real-time factor {factor} "
            f"({report.device}, batch {report.batch_size}); {report.wall_seconds:.2f} s in all with reading and "
            "writing")
    replaced = sum(1 for r in report.written if r.out in replacing)
    if replaced:
        line += f"; replaced {replaced} existing file{'s' if replaced != 1 else ''} in {report.written[0].out.parent}"
    return line


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    import numpy as np
    from tqdm import tqdm

    from gankit.audio.io import read_audio, write_wav
    from gankit.errors import AudioReadError, GankitError, check_output_dir
    from gankit.infer.files import (
        AUDIO_SUFFIXES,
        FileResult,
        Job,
        RunReport,
        Skipped,
        check_outputs,
        collect_inputs,
        finish,
    )
    from gankit.infer.translation import load_translator

    def warn(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # The command line first: paths, then outputs, before the model is even loaded (nothing is written on a typo).
    check_output_dir(args.out_dir, "--out-dir")
    inputs = collect_inputs(args.inputs, AUDIO_SUFFIXES, AudioReadError,
                            {".npy": "a .npy mel; translate takes audio files (WAV, FLAC, OGG)"})
    jobs: dict[Path, Job] = {}
    for source in inputs:
        out = args.out_dir / f"{source.stem}__to_{args.to}.wav"
        if out in jobs:
            raise GankitError(f"{jobs[out].source} and {source} would both be written to {out}; translate them into "
                              "separate --out-dir folders or rename one")
        jobs[out] = Job(source, out)
    replacing = check_outputs(list(jobs.values()), inputs, args.out_dir, args.overwrite)
    translator = load_translator(args.checkpoint, device=args.device, best=args.best)
    domain = translator.check_domain(args.to)
    rate = translator.sample_rate
    print(f"loaded {translator.source}: {len(translator.domains)} domains ({', '.join(translator.domains)}), "
          f"{rate} Hz, on {translator.device}; translating {len(jobs)} file{'s' if len(jobs) != 1 else ''} to "
          f"{domain}")

    report = RunReport(device=str(translator.device), batch_size=args.batch_size)
    started = time.perf_counter()

    def skip(job: Job, exc: GankitError, say: Callable[[str], None] = warn) -> None:
        report.skipped.append(Skipped(job.source, exc))
        if len(jobs) > 1:  # a lone input's error is the command's one-line error (see finish)
            say(f"skipped: {exc}")

    # Read everything first: a bad file is named now, not after hours of generation, and the bar knows its total.
    ready: list[tuple[int, Job, np.ndarray]] = []  # (seed index: the input's place on the command line, job, audio)
    rates_said: set[int] = set()
    for index, job in enumerate(jobs.values()):
        try:
            wave, wave_rate = read_audio(job.source)
            if wave_rate != rate and wave_rate not in rates_said:
                rates_said.add(wave_rate)
                warn(f"note: {job.source.name} is {wave_rate} Hz; resampling it to the model's {rate} Hz")
            try:
                ready.append((index, job, translator.prepare(wave, wave_rate, args.max_seconds)))
            except AudioReadError as exc:
                raise AudioReadError(f"{job.source}: {exc}") from None
        except GankitError as exc:
            skip(job, exc)

    ready.sort(key=lambda item: len(item[2]), reverse=True)  # the batches translate_prepared would make
    bar = tqdm(total=sum(len(audio) for _, _, audio in ready), unit="sample", unit_scale=True, desc=f"to {domain}",
               disable=True if args.no_progress else None, file=sys.stderr, dynamic_ncols=True)

    def warn_over_bar(message: str) -> None:
        bar.write(message, file=sys.stderr)

    try:
        for first in range(0, len(ready), args.batch_size):
            group = ready[first: first + args.batch_size]
            t0 = time.perf_counter()
            waves = translator.translate_prepared([audio for _, _, audio in group], domain, seed=args.seed,
                                                  temperature=args.temperature,
                                                  indices=[index for index, _, _ in group],
                                                  batch_size=len(group), progress=bar.update)
            generation_seconds = time.perf_counter() - t0
            group_samples = sum(len(wave) for wave in waves)
            for (_, job, _), wave in zip(group, waves, strict=True):
                try:
                    write_wav(job.out, wave, rate)
                except OSError as exc:
                    skip(job, GankitError(f"{job.out}: could not write ({exc.strerror or exc}); the files written "
                                          "before it are complete"), warn_over_bar)
                    continue
                share = generation_seconds * len(wave) / group_samples
                report.written.append(FileResult(job.source, job.out, len(wave) / rate, share))
    finally:
        bar.close()
        report.wall_seconds = time.perf_counter() - started
    print(speed_line(report, domain, rate, replacing))
    finish(report, "audio files", args.out_dir)
    return 0
