"""`gankit evaluate`'s scoring speed: seconds of compute per second of audio, today's path against the serial one
it replaced, in the same run.

Scores `--files` festvox-ru recordings (16 kHz real Russian speech, Debian package festvox-ru) with a seeded
`--config` generator (default hifigan_tiny, the demo's: a trained one costs the same) and the Griffin-Lim baseline,
all measures (mel L1, MR-STFT, PESQ, STOI, MCD, F0), through `gankit.infer.evaluation.evaluate_vocoder`, twice:
- baseline: one process, pyin's dense Viterbi pass (librosa's own), every F0 tracked anew (no cache) — the path
  before the speed-up, results identical;
- gankit: `--workers` processes (default one per core), the sparse Viterbi pass, the reference F0 tracked once.
Printed per path: wall seconds and CPU seconds (this process and its workers) per second of audio, and the ratio of
the two walls. The rows of the two paths are compared: the speed-up must change no number.

    .venv/bin/python benchmarks/bench_evaluate.py               # 10 files (~50 s of audio), a few minutes
    .venv/bin/python benchmarks/bench_evaluate.py --files 3     # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repo root on the path (benchmarks.machine)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FESTVOX_WAV = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav")


def seeded_vocoder(config_name: str):  # -> Vocoder
    import torch

    from gankit.config import load_config
    from gankit.infer import Vocoder
    from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig

    _, config = load_config(config_name)
    torch.manual_seed(0)
    generator = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(config["model"]["generator"]))
    return Vocoder(generator, config["frontend"])


@contextlib.contextmanager
def serial_path() -> Iterator[None]:
    """The scoring path before the speed-up: librosa's dense Viterbi pass and no F0 cache."""
    from gankit.metrics import pitch, viterbi

    fast, cached = viterbi.faster_pyin, pitch.CACHED_TRACKS
    viterbi.faster_pyin = contextlib.nullcontext  # type: ignore[assignment]
    pitch.CACHED_TRACKS = 0
    try:
        yield
    finally:
        viterbi.faster_pyin, pitch.CACHED_TRACKS = fast, cached


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(vocoder, references, workers: int) -> tuple[float, float, dict]:
    from gankit.infer.evaluation import evaluate_vocoder

    wall, cpu = time.perf_counter(), cpu_seconds()
    systems = evaluate_vocoder(vocoder, references, workers=workers, progress=False)
    return time.perf_counter() - wall, cpu_seconds() - cpu, systems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10, help="festvox-ru recordings to score (default 10)")
    parser.add_argument("--config", default="hifigan_tiny", help="shipped generator config (default hifigan_tiny)")
    parser.add_argument("--workers", type=int, default=None, help="gankit's processes (default: one per core)")
    args = parser.parse_args()

    import soundfile

    from benchmarks.machine import describe_machine
    from gankit.infer.evaluation import Reference
    from gankit.infer.parallel import default_workers

    paths = sorted(FESTVOX_WAV.glob("*.wav"))[: args.files]
    if not paths:
        print(f"no festvox-ru recordings in {FESTVOX_WAV}: apt-get install festvox-ru", file=sys.stderr)
        return 1
    references = [Reference(p.stem, p) for p in paths]
    seconds = sum(soundfile.info(p).duration for p in paths)
    workers = args.workers or default_workers()
    vocoder = seeded_vocoder(args.config)
    print(describe_machine())
    print(f"{len(paths)} festvox-ru files, {seconds:.1f} s of audio at {vocoder.sample_rate} Hz; {args.config} "
          f"(seeded) + Griffin-Lim (32 iterations); all measures")
    # Warm-up: numba compiles the sparse Viterbi pass once per machine (cached on disk after).
    timed(vocoder, references[:1], workers=1)
    with serial_path():
        base_wall, base_cpu, base = timed(vocoder, references, workers=1)
    wall, cpu, fast = timed(vocoder, references, workers=workers)
    print(f"{'path':<34} {'wall s/s':>9} {'CPU s/s':>9}")
    print(f"{'baseline: serial, dense Viterbi':<34} {base_wall / seconds:9.3f} {base_cpu / seconds:9.3f}")
    print(f"{f'gankit: {workers} workers, sparse, cached':<34} {wall / seconds:9.3f} {cpu / seconds:9.3f}")
    print(f"speed-up (wall): {base_wall / wall:.2f}×;  CPU: {base_cpu / cpu:.2f}×")
    same = all(fast[s].rows == base[s].rows for s in base)
    print("rows identical to the baseline's: " + ("yes" if same else "NO"))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
