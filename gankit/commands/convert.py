"""`gankit convert --checkpoint VC --vocoder VOCODER|griffin-lim --target SPEAKER INPUTS… --out-dir DIR`: speech in
another speaker's voice (a StarGAN-VC model) → `DIR/<stem>_to_<target>.wav`, 16-bit PCM at the model's rate."""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.commands.vocode import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert speech to another speaker's voice (a StarGAN-VC model)",
        description="Read WAV/FLAC/OGG files (resampled to the model's rate when they differ), convert their mel to "
        "the --target speaker's with the voice-conversion model and voice it with --vocoder into "
        "DIR/<stem>_to_<target>.wav. Inputs longer than 512 frames (5.9 s at 22.05 kHz) are converted in "
        "cross-faded chunks. A bad file among several is skipped with its reason; the good ones are written and the "
        "exit status is 2.",
    )
    p.add_argument("inputs", nargs="+", metavar="AUDIO_FILES_OR_DIR", help="audio files, or folders of them")
    p.add_argument("--checkpoint", required=True, metavar="VC",
                   help="a voice-conversion generator file (RUN/checkpoints/generator_N.pt of a stargan_vc run) or "
                   "its run directory (the latest generator)")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint, not the latest")
    p.add_argument("--vocoder", required=True, metavar="VOCODER",
                   help="a gankit vocoder trained on the model's mel (generator file or run directory), or "
                   "griffin-lim (no model, robotic but always available)")
    p.add_argument("--target", required=True, metavar="SPEAKER", help="the speaker to sound like")
    p.add_argument("--source", default=None, metavar="SPEAKER",
                   help="the inputs' speaker, when the model knows them: required by models trained with source "
                   "conditioning, otherwise only checked (one of another group than the target's is warned about)")
    p.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                   help="where <stem>_to_<target>.wav files go; existing files there are refused before any work "
                   "unless --overwrite, and an input is never replaced")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--griffin-lim-iters", type=positive_int, default=32, metavar="N",
                   help="Griffin-Lim iterations with --vocoder griffin-lim (default 32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from gankit.audio.io import read_audio, write_wav
    from gankit.errors import AudioReadError, GankitError, MelInputError, check_output_dir
    from gankit.infer.conversion import load_converter, load_voicer
    from gankit.infer.files import (
        AUDIO_SUFFIXES,
        Console,
        FileResult,
        Job,
        RunReport,
        Skipped,
        check_outputs,
        collect_inputs,
        finish,
    )

    # The command line first: paths, then outputs, before the model is even loaded (nothing is written on a typo).
    check_output_dir(args.out_dir, "--out-dir")
    inputs = collect_inputs(args.inputs, AUDIO_SUFFIXES, AudioReadError,
                            {".npy": "a .npy mel; convert takes audio files (WAV, FLAC, OGG)"})
    jobs: dict[Path, Job] = {}
    for source in inputs:
        out = args.out_dir / f"{source.stem}_to_{args.target}.wav"
        if out in jobs:
            raise GankitError(f"{jobs[out].source} and {source} would both be written to {out}; convert them into "
                              "separate --out-dir folders or rename one")
        jobs[out] = Job(source, out)
    replacing = check_outputs(list(jobs.values()), inputs, args.out_dir, args.overwrite)
    converter = load_converter(args.checkpoint, device=args.device, best=args.best)
    target, source_label = converter.check_speakers(args.target, args.source)
    vocoder = load_voicer(args.vocoder, converter, device=args.device)
    print(f"loaded {converter.source}: {len(converter.speakers)} speakers, {converter.sample_rate} Hz "
          f"(preset {converter.frontend.preset}), on {converter.device}; voicing with "
          f"{vocoder if isinstance(vocoder, str) else vocoder.source}")

    report = RunReport(device=str(converter.device), batch_size=1)
    console = Console(len(jobs), not args.no_progress)
    converter.warn = lambda message: console.warn(f"warning: {message}")
    rates_said: set[int] = set()
    started = time.perf_counter()
    try:
        for job in jobs.values():
            try:
                wave, rate = read_audio(job.source)
                if rate != converter.sample_rate and rate not in rates_said:
                    rates_said.add(rate)
                    console.warn(f"note: {job.source.name} is {rate} Hz; resampling it to the model's "
                                 f"{converter.sample_rate} Hz")
                t0 = time.perf_counter()
                try:
                    log_mel = converter.convert(wave, rate, target, source_label)
                except MelInputError as exc:
                    raise MelInputError(f"{job.source}: {exc}") from None
                out = converter.voice(log_mel, vocoder, args.griffin_lim_iters)
                compute = time.perf_counter() - t0
                try:
                    write_wav(job.out, out, converter.sample_rate)
                except OSError as exc:
                    raise GankitError(f"{job.out}: could not write ({exc.strerror or exc}); the files written "
                                      "before it are complete") from None
                report.written.append(FileResult(job.source, job.out, len(out) / converter.sample_rate, compute))
            except GankitError as exc:
                report.skipped.append(Skipped(job.source, exc))
                if len(jobs) > 1:  # a lone input's error is the command's one-line error (see finish)
                    console.warn(f"skipped: {exc}")
            console.advance()
    finally:
        console.close()
        report.wall_seconds = time.perf_counter() - started
    print(report.speed_line("converted", replacing))
    finish(report, "audio files", args.out_dir)
    return 0
