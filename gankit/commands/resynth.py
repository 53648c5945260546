"""`gankit resynth --checkpoint CKPT WAVS… --out-dir DIR`: audio → the checkpoint's own mel → `DIR/<stem>.wav`.

Inputs at another sample rate are resampled to the model's (and the command says so); librosa is imported then only.
"""

from __future__ import annotations

import argparse

from gankit.commands.vocode import add_inference_arguments, apply_threads, check_out_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resynth",
        help="re-synthesise audio files through the vocoder (analysis → mel → audio)",
        description="Read WAV/FLAC/OGG files (resampled to the model's rate when they differ), compute the "
        "checkpoint's own mel and vocode it into DIR/<stem>.wav: frames × hop samples, 16-bit PCM. A bad file among "
        "several is skipped with its reason; the good ones are written and the exit status is 2.",
    )
    p.add_argument("inputs", nargs="+", metavar="WAV_FILES_OR_DIR", help="audio files, or folders of them")
    add_inference_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.audio.io import audio_info, read_audio
    from gankit.errors import AudioReadError
    from gankit.infer.files import (
        AUDIO_SUFFIXES,
        Console,
        Job,
        check_outputs,
        collect_inputs,
        finish,
        plan_jobs,
        run_jobs,
    )
    from gankit.infer.vocoder import load_vocoder

    check_out_dir(args.out_dir)
    advice = "a .npy file; resynth takes audio — use `gankit vocode` for mels"
    inputs = collect_inputs(args.inputs, AUDIO_SUFFIXES, AudioReadError, {".npy": advice})
    jobs = plan_jobs(inputs, args.out_dir, lambda _: 0)  # lengths (for batching) need the model's rate: below
    replacing = check_outputs(jobs, inputs, args.out_dir, args.overwrite)
    apply_threads(args.threads)
    vocoder = load_vocoder(args.checkpoint, config=args.config, best=args.best, device=args.device,
                           precision=args.precision)
    print(f"loaded {vocoder.source}: {vocoder.sample_rate} Hz, {vocoder.n_mels} mels "
          f"(preset {vocoder.frontend.preset}), on {vocoder.device}, {vocoder.precision} ({vocoder.precision_reason})")
    model_sr = vocoder.sample_rate

    def length(path):  # samples at the model's rate, from the header only (orders the batches)
        try:
            sr, frames, _ = audio_info(path)
        except AudioReadError:
            return 0  # reported when the file is read
        return frames * model_sr // sr

    if args.batch_size > 1:
        for job in jobs:
            job.length = length(job.source)
    rates_said: set[int] = set()

    def read(job: Job, console: Console):
        sr, _, _ = audio_info(job.source)
        if sr != model_sr and (sr not in rates_said or args.verbose):
            rates_said.add(sr)
            console.warn(f"note: {job.source.name} is {sr} Hz; resampling it to the model's {model_sr} Hz")
        wave, _ = read_audio(job.source, target_sr=model_sr)
        minimum = getattr(vocoder.frontend, "min_samples", 1)
        if wave.shape[0] < minimum:
            raise AudioReadError(
                f"{job.source}: {wave.shape[0]} samples at {model_sr} Hz is too short for the "
                f"{vocoder.frontend.preset} mel (it needs at least {minimum}); remove it from the inputs"
            )
        return wave

    report = run_jobs(jobs, vocoder, read, vocoder.mel, batch_size=args.batch_size, verbose=args.verbose,
                      progress=not args.no_progress)
    print(report.speed_line("resynthesised", replacing))
    finish(report, "audio files", args.out_dir)
    return 0
