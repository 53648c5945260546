"""Seconds per training step on this machine: a config against the original V1 with full-width MPD+MSD.

Measures one optimizer step as the engine runs it (G forward, D loss + backward + step, G loss + backward +
step) on random audio, after warm-up steps, median of repeats, and prints the ratio to the baseline run in
the same process. Also times a mel-only (warm-up) step.

    python benchmarks/bench_train_step.py                      # hifigan_tiny vs hifigan_v1, batch 4 × 8192
    python benchmarks/bench_train_step.py --config hifigan_v3 --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from gankit.config import load_config
from gankit.engine.distributed import DistContext
from gankit.engine.optim import OptimizerSet, parse_groups
from gankit.engine.precision import Precision
from gankit.engine.step import StepRunner
from gankit.tasks import build_task


def seconds_per_step(config_name: str, batch: int, segment: int, repeats: int, adversarial: bool) -> float:
    warmup = 0 if adversarial else 10**9  # a mel-only step is a step inside the warm-up
    _, config = load_config(config_name, [f"data.batch_size={batch}", f"data.segment_size={segment}",
                                          f"schedule.warmup_steps={warmup}"])
    task = build_task(config)
    nets = task.build_networks()
    groups = task.optimizer_groups()
    optim = OptimizerSet(groups, parse_groups(config["optim"], groups), nets)
    stepper = StepRunner(task, nets, nets, optim, Precision("fp32", torch.device("cpu")),
                         should_skip=lambda *a: False, dist=DistContext())
    audio = (0.3 * torch.randn(batch, segment)).clamp(-1, 1)
    window = [[{"audio": audio, "id": ["x"] * batch}]]
    times = []
    for i in range(repeats + 1):  # the first step is warm-up (allocations, kernel selection)
        start = time.perf_counter()
        stepper.run(i, task.schedule(i, {}), window)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="hifigan_tiny")
    parser.add_argument("--baseline", default="hifigan_v1")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segment", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if __package__ in (None, ""):  # run as a script (python benchmarks/bench_train_step.py): the repo root on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.machine import describe_machine

    print(f"machine: {describe_machine()}")
    print(f"batch {args.batch} × {args.segment} samples, median of {args.repeats} steps after one warm-up step")
    rows = []
    for name in (args.config, args.baseline):
        full = seconds_per_step(name, args.batch, args.segment, args.repeats, adversarial=True)
        mel_only = seconds_per_step(name, args.batch, args.segment, args.repeats, adversarial=False)
        rows.append((name, full, mel_only))
        print(f"{name:>14}: full step {full:6.3f} s   mel-only (warm-up) step {mel_only:6.3f} s")
    (_, full, mel_only), (_, base_full, base_mel) = rows
    print(f"ratio {args.baseline} / {args.config}: full step {base_full / full:.1f}×, mel-only step "
          f"{base_mel / mel_only:.1f}×")


if __name__ == "__main__":
    main()
