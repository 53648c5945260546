"""Peak memory and speed of `gankit vocode` on long mels: chunked (memory-mapped mel, WAV written as it goes) vs whole.

Cases, each `gankit vocode` run in a fresh process (so each peak is that run's own):
- floor:         a 1-second mel, whole — what the process needs before any long audio (Python, torch, the model);
- 1 min whole:   a 1-minute mel with `--chunk-frames 0` (the old behaviour: memory grows with length);
- 1 min chunked / 1 h chunked: `--chunk-frames N` (default 512).
Peak memory is the child's maximum resident set size as the kernel reports it to its parent (`os.wait4` →
`ru_maxrss`, `resource`-style; file pages of the memory-mapped mel count too). Speed is what the command prints:
audio seconds over the generator's compute seconds (× real time), and the real-time factor RTF = compute / audio.
The mels are random log-mel values (seeded) written block by block through `np.lib.format.open_memmap`, never held in
RAM; the generator has seeded random weights (speed and memory do not depend on what the weights are).

    nice -n 10 .venv/bin/python benchmarks/bench_long_audio.py                    # V3, 1 min and 1 h
    nice -n 10 .venv/bin/python benchmarks/bench_long_audio.py --hour-config tiny  # the hour case on the tiny model
    .venv/bin/python benchmarks/bench_long_audio.py --long-minutes 10              # a shorter "long" case
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"v1": "hifigan_v1", "v3": "hifigan_v3", "tiny": "hifigan_tiny"}
WRITE_BLOCK_FRAMES = 8192
SPEED = re.compile(r"([0-9.]+) s of audio in ([0-9.]+) s of compute")


@dataclass
class Case:
    label: str
    config: str
    seconds: float  # of audio
    chunk_frames: int


@dataclass
class Result:
    case: Case
    frames: int
    peak_bytes: int
    audio_seconds: float
    compute_seconds: float
    wall_seconds: float

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds

    @property
    def real_time(self) -> float:
        return self.audio_seconds / self.compute_seconds if self.compute_seconds else float("inf")


def write_generator(config_key: str, path: Path) -> tuple[int, int, int]:
    """A generator file of `config_key`'s architecture with seeded random weights; (sample rate, hop, n_mels)."""
    import torch

    from gankit.audio.mel import build_frontend
    from gankit.config import load_config
    from gankit.models import build_generator
    from gankit.tasks.vocoder import vocoder_inference_file

    _, config = load_config(CONFIGS[config_key])
    frontend = build_frontend(config["frontend"])
    torch.manual_seed(0)
    generator = build_generator("hifigan", {"n_mels": frontend.n_mels, **config["model"]["generator"]})
    torch.save(vocoder_inference_file("hifigan", generator.cfg.to_dict(), frontend.to_config(),
                                      generator.state_dict(), 0), path)
    return frontend.sample_rate, frontend.hop_length, frontend.n_mels


def write_mel(path: Path, n_mels: int, frames: int, seed: int) -> None:
    """A [n_mels, frames] float32 .npy of random natural-log mel values, written through a memory map a block at a
    time (the file is never in RAM as a whole)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mel = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_mels, frames))
    for start in range(0, frames, WRITE_BLOCK_FRAMES):
        end = min(frames, start + WRITE_BLOCK_FRAMES)
        mel[:, start:end] = np.maximum(rng.normal(-5.0, 2.5, (n_mels, end - start)), np.log(1e-5))
        mel.flush()
    del mel


def run_case(case: Case, generator: Path, mel: Path, frames: int, out_dir: Path, threads: int) -> Result:
    """`gankit vocode` in a fresh process; its own peak RSS from wait4."""
    command = [sys.executable, "-m", "gankit", "vocode", "--checkpoint", str(generator), str(mel), "--out-dir",
               str(out_dir), "--overwrite", "--chunk-frames", str(case.chunk_frames), "--device", "cpu",
               "--threads", str(threads), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        printed, errors = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"{case.label}: gankit vocode exited {child.returncode}:\n{errors[-2000:]}")
    match = SPEED.search(printed)
    if match is None:
        raise SystemExit(f"{case.label}: no speed line in the output:\n{printed[-2000:]}")
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux reports KiB, macOS bytes
    return Result(case, frames, peak, float(match.group(1)), float(match.group(2)), wall)


def machine_line(threads: int) -> str:
    import torch

    if __package__ in (None, ""):  # run as a script: put the repo root on the path for `benchmarks.machine`
        sys.path.insert(0, str(REPO))
    from benchmarks.machine import describe_machine

    torch.set_num_threads(threads)  # what the children use, so the line reports it
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {describe_machine()}; python {platform.python_version()}; niceness {os.nice(0)}; "
            f"load average {load} (shared machine: other jobs run beside this one)")


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="v3", choices=sorted(CONFIGS),
                        help="generator of the floor, 1-minute and (unless --hour-config) long cases (default v3)")
    parser.add_argument("--hour-config", default=None, choices=sorted(CONFIGS),
                        help="generator of the long case (default: --config); with another one, its own 1-minute "
                        "chunked case is run too, so the ratio compares like with like")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="length of the long case (default 60)")
    parser.add_argument("--chunk-frames", type=int, default=512, help="--chunk-frames of the chunked cases")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each run (default 1: on a shared machine OpenMP workers spinning "
                        "against other jobs make timings erratic)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the mels, generator and wavs go (default: a temporary folder, removed after)")
    args = parser.parse_args(argv)
    if args.chunk_frames < 1 or args.long_minutes <= 0 or args.threads < 1:
        parser.error("--chunk-frames and --threads must be ≥ 1, --long-minutes > 0")
    long_config = args.hour_config or args.config

    print(machine_line(args.threads), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_long_audio_") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        cases = [
            Case("floor: 1 s, whole", args.config, 1.0, 0),
            Case("1 min, whole", args.config, 60.0, 0),
            Case("1 min, chunked", args.config, 60.0, args.chunk_frames),
        ]
        if long_config != args.config:
            cases.append(Case("1 min, chunked", long_config, 60.0, args.chunk_frames))
        cases.append(Case(f"{args.long_minutes:g} min, chunked", long_config, args.long_minutes * 60,
                          args.chunk_frames))
        generators: dict[str, tuple[Path, int, int, int]] = {}
        for key in dict.fromkeys(c.config for c in cases):
            path = work / f"generator_{key}.pt"
            generators[key] = (path, *write_generator(key, path))
        mels: dict[tuple[float, int, int], tuple[Path, int]] = {}
        results = []
        print(f"{'case':<22} {'model':<5} {'frames':>9} {'audio':>9} {'peak RSS':>10} {'compute':>9} {'RTF':>7} "
              f"{'× real time':>12} {'wall':>8}", flush=True)
        for case in cases:
            path, sample_rate, hop, n_mels = generators[case.config]
            frames = max(1, round(case.seconds * sample_rate / hop))
            key = (case.seconds, hop, n_mels)
            if key not in mels:
                mels[key] = (work / f"mel_{len(mels)}_{frames}.npy", frames)
                write_mel(mels[key][0], n_mels, frames, seed=len(mels))
            result = run_case(case, path, mels[key][0], frames, work / "out", args.threads)
            results.append(result)
            print(f"{case.label:<22} {case.config:<5} {frames:>9} {result.audio_seconds:>8.1f}s "
                  f"{_mib(result.peak_bytes):>10} {result.compute_seconds:>8.1f}s {result.rtf:>7.3f} "
                  f"{result.real_time:>11.1f}× {result.wall_seconds:>7.1f}s", flush=True)

    floor = results[0]
    whole_minute = next(r for r in results if r.case.label == "1 min, whole")
    minute = next(r for r in results if r.case.label == "1 min, chunked" and r.case.config == long_config)
    long = results[-1]
    ratio = long.peak_bytes / minute.peak_bytes
    print(f"peak RSS, {long.case.label} / 1 min chunked ({long_config}): {ratio:.3f} "
          f"({'within' if abs(ratio - 1) <= 0.10 else 'outside'} the 10 % target)")
    if long.case.config == floor.case.config:
        grown_long, grown_minute = long.peak_bytes - floor.peak_bytes, minute.peak_bytes - floor.peak_bytes
        print(f"above the 1-second floor ({_mib(floor.peak_bytes)}): 1 min chunked +{_mib(grown_minute)}, "
              f"{long.case.label} +{_mib(grown_long)}")
    same_model = next(r for r in results if r.case.label == "1 min, chunked" and r.case.config == args.config)
    per_second = (whole_minute.peak_bytes - floor.peak_bytes) / 60
    line = (f"1 min whole vs chunked ({args.config}): {_mib(whole_minute.peak_bytes)} vs "
            f"{_mib(same_model.peak_bytes)}; whole grows ≈ {per_second / 2**20:.1f} MiB per second of audio")
    if long.case.config == args.config:
        line += (f", so {long.case.seconds / 60:g} min whole would need ≈ "
                 f"{_mib(floor.peak_bytes + per_second * long.case.seconds)}")
    print(line)
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
