"""Sample-by-sample generation speed of the Universal Music Translation WaveNet decoder at its published size
(4 blocks × 14 layers, 128 residual and skip channels, receptive field 65,534 samples), two paths, same weights:

- cached: `WaveNetDecoder.generate` (an `IncrementalDecoder`: one step per layer per sample), `--samples` samples
  timed after `--warmup` untimed ones;
- naive:  `WaveNetDecoder.generate_naive` (a full forward over the last receptive field for every sample), timed on
  `--naive-samples` samples after a prompt one receptive field long, so that every timed sample pays the steady-state
  cost; samples/s is extrapolated from those few.

It prints both rates, their ratio and × real time at 16 kHz (the original's rate). Random weights and latent: speed
does not depend on them. Timings on a shared machine move with its other load.

    .venv/bin/python benchmarks/bench_wavenet_generation.py                    # CPU, 1 thread: ~2 min
    .venv/bin/python benchmarks/bench_wavenet_generation.py --device cuda --naive-samples 50
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

SAMPLE_RATE = 16_000  # the original's


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch", type=int, default=1, help="sequences generated at once (default 1)")
    parser.add_argument("--samples", type=int, default=2000, help="cached samples timed (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="cached samples generated untimed first (default 200)")
    parser.add_argument("--naive-samples", type=int, default=3,
                        help="naive samples timed, each a forward over ~66 k samples (default 3; ~50 on a GPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1; 0 = torch's choice). One by default: on a shared machine "
                        "OpenMP workers spinning against other jobs make timings erratic")
    args = parser.parse_args(argv)
    if min(args.batch, args.samples, args.naive_samples) < 1 or args.warmup < 0:
        parser.error("batch, samples and naive-samples must be ≥ 1, warmup ≥ 0")

    import torch

    if __package__ in (None, ""):  # run as a script: put the repo root on the path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.machine import describe_machine
    from gankit.models.music_translation import MusicTranslationConfig, SoftmaxSampler, WaveNetDecoder

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    print(f"machine: {describe_machine()}; python {platform.python_version()}; generating on {where}")
    cfg = MusicTranslationConfig()
    torch.manual_seed(0)
    decoder = WaveNetDecoder(cfg).to(device).eval()
    params = sum(p.numel() for p in decoder.parameters())
    pool, field = cfg.encoder_pool, decoder.receptive_field
    print(f"decoder: {params:,} parameters, receptive field {field:,} samples, batch {args.batch}", flush=True)
    generator = torch.Generator(device=device).manual_seed(0)
    sampler = SoftmaxSampler(generator)

    def latent_for(n: int) -> torch.Tensor:
        return torch.randn(args.batch, cfg.latent_channels, math.ceil(n / pool), device=device)

    if args.warmup:
        decoder.generate(latent_for(args.warmup), args.warmup, sampler)
    latent = latent_for(args.samples)
    synchronise()
    start = time.perf_counter()
    decoder.generate(latent, args.samples, sampler)
    synchronise()
    cached_seconds = time.perf_counter() - start
    cached_rate = args.samples / cached_seconds
    print(f"cached: {args.samples} samples in {cached_seconds:.2f} s = {cached_rate:,.1f} samples/s per sequence "
          f"({cached_rate / SAMPLE_RATE:.4f}× real time at 16 kHz)", flush=True)

    prompt = torch.randint(0, cfg.n_classes, (args.batch, field), device=device, generator=generator)
    naive_latent = latent_for(field + args.naive_samples)
    decoder.generate_naive(latent_for(2), 2, sampler)  # warm-up (short: a full-field forward costs a timed one)
    synchronise()
    start = time.perf_counter()
    decoder.generate_naive(naive_latent, args.naive_samples, sampler, prompt)
    synchronise()
    naive_seconds = time.perf_counter() - start
    naive_rate = args.naive_samples / naive_seconds
    print(f"naive:  {args.naive_samples} samples in {naive_seconds:.2f} s = {naive_rate:.4f} samples/s per sequence "
          f"(extrapolated: {args.samples} samples would take {args.samples / naive_rate / 60:,.1f} min)")
    print(f"cached / naive: {cached_rate / naive_rate:,.0f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
