"""Inference speed of HiFi-GAN generators, BigVGAN-style: kHz of audio generated, × real time and peak memory.

For each config (V1, V3 and the tiny one by default) it synthesises `--seconds` of audio from one random mel on the
chosen device along two paths with the same weights:
- naive:  the generator as trained — weight norm still parametrized (recomputed at every call), eval + no_grad;
- gankit: `gankit.infer.Vocoder` — weight norm folded into plain weights, `torch.inference_mode`;
and prints both and the speed ratio. Warm-up runs come first; the timed runs alternate between the two paths (so a
busy machine slows both alike) and the median of each is reported. Peak memory: CUDA max allocated over what the
loaded model holds; on CPU the growth of the peak RSS (`resource`; its high-water mark reset first through
/proc/self/clear_refs and freed heap handed back, so each peak is its own) over the RSS just before synthesis.

    .venv/bin/python benchmarks/bench_vocode.py       # quick: 1 s of audio, 3 repeats, 1 CPU thread (< 1 min)
    .venv/bin/python benchmarks/bench_vocode.py --seconds 10 --repeats 10 --threads 0   # longer, all cores
    .venv/bin/python benchmarks/bench_vocode.py --seconds 10 --repeats 20 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIGS = {"v1": "hifigan_v1", "v3": "hifigan_v3", "tiny": "hifigan_tiny"}
PATHS = ("naive", "gankit")


@dataclass
class Peak:
    bytes: int
    is_bound: bool  # CPU without a resettable high-water mark or /proc: an upper bound (includes earlier peaks)


def _current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _release_free_heap() -> None:
    """glibc keeps freed memory resident and reuses it, which would hide a synthesis' growth behind an earlier
    config's leftovers; malloc_trim hands it back to the OS first. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Linux ≥ 4.0: writing 5 to clear_refs resets the high-water mark that ru_maxrss reports to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Setup:
    run: Callable[[Any], Any]  # mel → audio, synchronised on CUDA
    mel: Any
    samples: int  # per run
    sample_rate: int
    params: int


def build(config_key: str, path: str, device: str, seconds: float) -> Setup:
    """One config's generator on one path, and the mel it synthesises from."""
    import torch

    from gankit.config import load_config
    from gankit.infer import Vocoder
    from gankit.infer.loading import resolve_device
    from gankit.models import build_generator

    target = resolve_device(device)
    _, config = load_config(CONFIGS[config_key])
    frontend = config["frontend"]
    torch.manual_seed(0)  # the same weights on both paths
    generator = build_generator("hifigan", {"n_mels": frontend["n_mels"], **config["model"]["generator"]})
    generator = generator.to(target).eval()
    sample_rate, hop = frontend["sample_rate"], frontend["hop_length"]
    frames = max(1, round(seconds * sample_rate / hop))
    mel = torch.randn(frontend["n_mels"], frames, device=target) - 5.0
    if path == "gankit":
        synthesise = Vocoder(generator, frontend, "hifigan")
    else:

        def synthesise(x: Any) -> Any:
            with torch.no_grad():
                return generator(x[None])

    def run(x: Any) -> Any:
        out = synthesise(x)
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        return out

    params = sum(p.numel() for p in generator.parameters())
    return Setup(run, mel, frames * hop, sample_rate, params)


def peak_memory(setup: Setup) -> Peak:
    """Memory one synthesis needs beyond what is already held: CUDA max allocated over the allocation before it,
    or on CPU the peak RSS (`resource`, its high-water mark reset first) over the RSS before it."""
    import gc

    import torch

    gc.collect()
    device = setup.mel.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        setup.run(setup.mel)
        return Peak(torch.cuda.max_memory_allocated(device) - base, False)
    _release_free_heap()
    reset = _reset_peak_rss()
    before = _current_rss_bytes()
    setup.run(setup.mel)
    if before is None:  # no current RSS to subtract: the whole process' peak, an upper bound
        return Peak(_peak_rss_bytes(), True)
    return Peak(max(0, _peak_rss_bytes() - before), not reset)


def time_paths(config_key: str, args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, Setup]]:
    """Seconds per run for each path, the paths alternating (order flipped each round), and the setups."""
    setups = {p: build(config_key, p, args.device, args.seconds) for p in PATHS}
    for setup in setups.values():
        for _ in range(args.warmup):
            setup.run(setup.mel)
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    for i in range(args.repeats):
        for path in PATHS if i % 2 == 0 else PATHS[::-1]:
            setup = setups[path]
            start = time.perf_counter()
            setup.run(setup.mel)
            times[path].append(time.perf_counter() - start)
    return times, setups


def machine_line(device: str) -> str:
    import torch

    from gankit.infer.loading import resolve_device

    if __package__ in (None, ""):  # run as a script (python benchmarks/bench_vocode.py): put the repo root on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.machine import describe_machine

    target = resolve_device(device)
    where = torch.cuda.get_device_name(target) if target.type == "cuda" else "the CPU"
    return f"machine: {describe_machine()}; python {platform.python_version()}; synthesising on {where}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="v1,v3,tiny", help="comma-separated: v1, v3, tiny (default all)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--seconds", type=float, default=1.0, help="audio synthesised per run (default 1.0)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per path first (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the median counts (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1; 0 = torch's choice, one per core). One thread by default: "
                        "on a shared machine, OpenMP workers spinning against other jobs make timings 5-20× slower "
                        "and erratic")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CONFIGS]
    if unknown or args.repeats < 1 or args.warmup < 0 or args.seconds <= 0:
        parser.error(f"configs must be among {', '.join(CONFIGS)} (got {unknown}); repeats ≥ 1, warmup ≥ 0, "
                     "seconds > 0")

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(machine_line(args.device))
    print(f"{args.seconds:g} s of audio per run; median of {args.repeats} alternating runs per path after "
          f"{args.warmup} warm-up", flush=True)
    print(f"{'config':<6} {'params':>8} {'path':<7} {'kHz':>9} {'× real time':>12} {'peak memory':>14}  speed vs naive")
    for key in keys:
        times, setups = time_paths(key, args)
        medians = {p: statistics.median(t) for p, t in times.items()}
        for path in PATHS:
            setup, seconds = setups[path], medians[path]
            peak = peak_memory(setup)
            ratio = f"{medians['naive'] / seconds:.2f}×" if path != "naive" else ""
            memory = ("≤ " if peak.is_bound else "") + _mib(peak.bytes)
            print(f"{key:<6} {setup.params / 1e6:>7.2f}M {path:<7} {setup.samples / seconds / 1000:>9.1f} "
                  f"{setup.samples / setup.sample_rate / seconds:>11.1f}× {memory:>14}  {ratio}", flush=True)
        del setups
    return 0


if __name__ == "__main__":
    sys.exit(main())
