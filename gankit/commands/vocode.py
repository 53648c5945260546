"""`gankit vocode --checkpoint CKPT MELS… --out-dir DIR`: `.npy` mels → `DIR/<stem>.wav` (16-bit PCM).

Mels longer than `--chunk-frames` (default 512) are read memory-mapped and vocoded in chunks with the generator's
context, the WAV written as it goes (`gankit.infer.chunked_files`): memory does not grow with length, and the audio
equals the whole-utterance audio within float rounding. Shorter ones (all of them with `--chunk-frames 0`) are
vocoded whole, batched by `--batch-size`.

Start-up time matters here (people time the whole process), so this module imports argparse only and `run` imports
just torch, numpy, soundfile and the few gankit modules on the path: no librosa (mels are given), no tqdm for a
single file, no matplotlib or tensorboard. With `--backend onnxruntime` (`gankit.infer.onnx_vocoder`) not even torch:
the checkpoint is an ONNX file from `gankit export --to-onnx`, and the file loops (`infer/files.py`,
`infer/chunked_files.py`, `infer/mel_input.py`) import numpy and soundfile only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The same number as gankit.infer.chunking.DEFAULT_CHUNK_FRAMES (a test keeps them equal), written out so that
# building the parser imports no torch.
DEFAULT_CHUNK_FRAMES = 512
# gankit.infer.precision.PRECISIONS, written out for the same reason (a test keeps them equal).
PRECISIONS = ("fp32", "bf16", "auto")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """The checkpoint, device, batching and output options `vocode` and `resynth` share."""
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="gankit generator or training-state file, run directory (its latest generator), or an "
                   "original HiFi-GAN g_XXXXXXXX with config.json beside it")
    p.add_argument("--config", default=None, metavar="JSON",
                   help="config.json for an original g_ file kept elsewhere")
    p.add_argument("--best", action="store_true",
                   help="with a run directory: the best checkpoint by validation metric instead of the latest")
    p.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                   help="where <stem>.wav files go; existing files there are refused before any work unless "
                   "--overwrite, and an input is never replaced")
    p.add_argument("--overwrite", action="store_true",
                   help="replace <stem>.wav files that already exist in --out-dir (the summary says how many)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="cpu, cuda, cuda:N or auto (CUDA when available; default)")
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="N",
                   help="vocode N files per forward pass, grouped by length (default 1: one at a time)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default; the original HiFi-GAN's output), bf16 (HiFi-GAN's convolutions in bfloat16 "
                   "but the first and the last two; at least 30 dB SNR against fp32; faster only where the CPU or GPU "
                   "has bf16 kernels, far slower on CPUs without them, e.g. AVX2-only ones) or auto (bf16 where the "
                   "device has them, else fp32); the loaded line says which and why")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice, one per core); 1 is often faster on a "
                   "busy machine")
    p.add_argument("--verbose", action="store_true", help="one line per file with its speed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vocode",
        help="turn .npy mel spectrograms into wav files",
        description="Vocode .npy mels as the original HiFi-GAN inference_e2e.py reads them ([80, T] or [1, 80, T], "
        "natural log for the hifigan preset) into DIR/<stem>.wav, 16-bit PCM at the model's sample rate. A bad file "
        "among several is skipped with its reason; the good ones are written and the exit status is 2.",
    )
    p.add_argument("inputs", nargs="+", metavar="MEL_FILES_OR_DIR", help=".npy files, or folders of them")
    p.add_argument("--force", action="store_true",
                   help="vocode mels whose band count does not fit the checkpoint's preset by interpolating the "
                   "bands (a rough preview; without it such files are refused)")
    p.add_argument("--chunk-frames", type=non_negative_int, default=DEFAULT_CHUNK_FRAMES, metavar="N",
                   help=f"mels longer than N frames are read memory-mapped and vocoded N frames at a time with the "
                   f"generator's context, the wav written as it goes: memory stays flat however long the mel, the "
                   f"audio equals whole-utterance vocoding (default {DEFAULT_CHUNK_FRAMES}; 0: every mel whole)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (default), or onnxruntime: --checkpoint is then a .onnx file from gankit export "
                   "--to-onnx, run on the CPU with numpy and onnxruntime only (no torch import: a faster start); "
                   "--threads sets its intra-op threads (default: one per core); needs pip install 'gankit[onnx]'")
    add_inference_arguments(p)
    p.set_defaults(run=run)


BACKENDS = ("torch", "onnxruntime")


def check_backend(args: argparse.Namespace) -> None:
    """Options that cannot work with the chosen backend, refused before any file is read."""
    from gankit.errors import ConfigError

    if getattr(args, "backend", "torch") != "onnxruntime":
        if Path(args.checkpoint).suffix.lower() == ".onnx":
            raise ConfigError(f"{args.checkpoint}: an ONNX file; vocode it with --backend onnxruntime (the torch "
                              "backend reads gankit checkpoints, run directories and original g_ files)")
        return
    if getattr(args, "precision", None) == "bf16":
        raise ConfigError("--precision bf16 is for --backend torch: an ONNX file runs in the precision it was "
                          "exported in (fp32, or int8 with gankit export --int8); drop --precision or use --backend "
                          "torch")
    if args.config is not None or args.best:
        raise ConfigError(f"{'--config' if args.config is not None else '--best'} is for --backend torch; with "
                          "--backend onnxruntime, --checkpoint is the .onnx file, which carries its own config")
    if args.device not in ("auto", "cpu"):
        raise ConfigError(f"--device {args.device}: --backend onnxruntime runs on the CPU here; use --device cpu "
                          "(or auto), or --backend torch for CUDA")
    from gankit.infer.onnx_vocoder import require_onnxruntime

    require_onnxruntime("--backend onnxruntime")


def load_backend(args: argparse.Namespace) -> tuple[Any, Callable[[Any], Any]]:
    """(the vocoder, what turns a read mel into its input) for `--backend`; announces what was loaded."""
    if getattr(args, "backend", "torch") == "onnxruntime":
        from gankit.infer.onnx_vocoder import load_onnx_vocoder

        vocoder = load_onnx_vocoder(args.checkpoint, threads=args.threads)
        print(f"loaded {vocoder.source}: {vocoder.sample_rate} Hz, {vocoder.n_mels} mels "
              f"(preset {vocoder.frontend.preset}), on {vocoder.describe_device()}")
        return vocoder, lambda mel: mel
    import torch

    from gankit.infer.vocoder import load_vocoder

    apply_threads(args.threads)
    vocoder = load_vocoder(args.checkpoint, config=args.config, best=args.best, device=args.device,
                           precision=args.precision)
    print(f"loaded {vocoder.source}: {vocoder.sample_rate} Hz, {vocoder.n_mels} mels "
          f"(preset {vocoder.frontend.preset}), on {vocoder.device}, {vocoder.precision} ({vocoder.precision_reason})")
    return vocoder, torch.from_numpy


def apply_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def check_out_dir(out_dir: Path) -> None:
    from gankit.errors import GankitError

    if out_dir.exists() and not out_dir.is_dir():
        raise GankitError(f"{out_dir}: --out-dir exists and is not a folder; choose another path")


# Over this many frames (~24 s at hop 256) glibc is told to hand chunk-sized blocks back to the OS, which keeps the
# peak flat over hours of audio; process-wide and lasting, so short inputs (and tests calling main) leave it alone.
FLAT_PEAK_FRAMES = 2048


def run(args: argparse.Namespace) -> int:
    from gankit.errors import MelInputError
    from gankit.infer.chunked_files import merge_reports, return_freed_tensors_to_the_os, run_chunked_jobs
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
    from gankit.infer.mel_input import MappedMel, frames_hint, open_mel, read_mel

    check_out_dir(args.out_dir)
    check_backend(args)
    advice = "an audio file; vocode takes .npy mels — use `gankit resynth` to vocode audio"
    inputs = collect_inputs(args.inputs, (".npy",), MelInputError, {s: advice for s in AUDIO_SUFFIXES})
    needs_length = args.batch_size > 1 or args.chunk_frames > 0
    jobs = plan_jobs(inputs, args.out_dir, frames_hint if needs_length else lambda _: 0)
    replacing = check_outputs(jobs, inputs, args.out_dir, args.overwrite)
    long_jobs: list[Job] = []
    whole_jobs: list[Job] = []
    for job in jobs:
        (long_jobs if args.chunk_frames and job.length > args.chunk_frames else whole_jobs).append(job)
    vocoder, analyse = load_backend(args)

    def read(job: Job, console: Console):
        mel, warning = read_mel(job.source, vocoder.frontend, vocoder.min_frames, force=args.force)
        if warning:
            console.warn(f"warning: {job.source}: {warning}")
        return mel

    def open_long(job: Job, console: Console) -> MappedMel:
        mel, warning = open_mel(job.source, vocoder.frontend, vocoder.min_frames, force=args.force)
        if warning:
            console.warn(f"warning: {job.source}: {warning}")
        return mel

    report = run_jobs(whole_jobs, vocoder, read, analyse, batch_size=args.batch_size, verbose=args.verbose,
                      progress=not args.no_progress)
    if len(whole_jobs) == 1 < len(jobs):  # run_jobs announces skips only when it has several files itself
        for skipped in report.skipped:
            print(f"skipped: {skipped.error}", file=sys.stderr, flush=True)
    if long_jobs:
        if max(job.length for job in long_jobs) > FLAT_PEAK_FRAMES:
            return_freed_tensors_to_the_os()  # so the peak stays one chunk's over any number of chunks
        chunked = run_chunked_jobs(long_jobs, vocoder, open_long, args.chunk_frames, announce_skips=len(jobs) > 1,
                                   verbose=args.verbose, progress=not args.no_progress)
        report = merge_reports(report, chunked)
    print(report.speed_line("vocoded", replacing))
    finish(report, "mels", args.out_dir)
    return 0
