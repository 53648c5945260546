"""fp32 against bf16 inference (`gankit vocode --precision`): speed and what bf16 costs in quality, V1 and V3.

For each config a generator with seeded weights (torch.manual_seed(0), the shipped config's layout) vocodes the mel
of a `--seconds`-long speech-like clip (tests/support/corpus.voiced_clip: harmonics, gliding pitch, formants, a noise
burst) through `gankit.infer.Vocoder` at precision fp32 and bf16; the timed runs alternate between the two (so a busy
machine slows both alike) and the median counts. Printed per precision: milliseconds, × real time, the speed ratio
against fp32 (> 1: faster), and for bf16 the waveform SNR and the mel L1 (the model's own front-end) against the fp32
output — the quality bar of tests/test_precision.py is SNR ≥ 30 dB and mel L1 ≤ 0.02. With `--autocast` a third row
times `torch.autocast(bfloat16)` over the same float32 generator with the same layers left float32, the alternative
gankit.infer.precision argues against.

bf16 is faster only where the device has bf16 kernels (`--precision auto` asks the same probe, printed first). On a
CPU without them (AVX2 only) PyTorch runs bf16 convolutions on its reference path: expect 20-35× slower than fp32, a
5 s V1 run then takes ~2 minutes.

    .venv/bin/python benchmarks/bench_precision.py                         # V1 and V3, 5 s, 3 repeats, 1 thread
    .venv/bin/python benchmarks/bench_precision.py --seconds 1 --repeats 1 # a quick look
    .venv/bin/python benchmarks/bench_precision.py --device cuda --repeats 10 --autocast
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

CONFIGS = {"v1": "hifigan_v1", "v3": "hifigan_v3"}

if __package__ in (None, ""):  # run as a script: the repo root on the path (benchmarks.machine, tests.support)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def seeded_vocoder(name: str, precision: str, device: str):  # -> Vocoder
    import torch

    from gankit.config import load_config
    from gankit.infer import Vocoder
    from gankit.models.hifigan import HifiGanGenerator, HifiGanGeneratorConfig

    _, config = load_config(name)
    torch.manual_seed(0)  # the same weights for every precision
    generator = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(config["model"]["generator"])).to(device)
    return Vocoder(generator, config["frontend"], precision=precision)


def autocast_runner(name: str, device: str) -> Callable:
    """The fp32 vocoder's generator under torch.autocast(bfloat16), the layers gankit keeps float32 taken out of it."""
    import torch

    from gankit.infer.precision import float32_layers

    vocoder = seeded_vocoder(name, "fp32", device)
    generator = vocoder.generator
    for layer in float32_layers(generator):
        module = generator.get_submodule(layer)
        forward = module.forward

        def outside(x, forward=forward):
            with torch.autocast(vocoder.device.type, enabled=False):
                return forward(x.float())

        module.forward = outside

    def run(mel):
        with torch.inference_mode(), torch.autocast(vocoder.device.type, dtype=torch.bfloat16):
            return generator(mel.to(vocoder.device)[None]).float()[0, 0]

    return run


def synchronise(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="v1,v3", help="comma-separated: v1, v3 (default both)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per precision first (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per precision; the median counts (3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine OpenMP workers spinning against other "
                        "jobs make timings erratic; 0 = torch's choice)")
    parser.add_argument("--autocast", action="store_true", help="also time torch.autocast(bfloat16)")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    if any(k not in CONFIGS for k in keys) or args.repeats < 1 or args.warmup < 0 or args.seconds <= 0:
        parser.error(f"configs among {', '.join(CONFIGS)}; repeats ≥ 1, warmup ≥ 0, seconds > 0")

    import torch

    from benchmarks.machine import describe_machine
    from gankit.infer.precision import choose_precision
    from tests.support.corpus import voiced_clip

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"machine: {describe_machine()}; python {platform.python_version()}; device {args.device}")
    print(f"--precision auto here: {choose_precision('auto', args.device).describe()}")
    print(f"{args.seconds:g} s of audio per run; median of {args.repeats} alternating runs after {args.warmup} "
          "warm-up", flush=True)
    print(f"{'config':<6} {'precision':<9} {'ms':>10} {'× real time':>12} {'vs fp32':>8} {'SNR dB':>7} {'mel L1':>7}")
    for key in keys:
        vocoders = {p: seeded_vocoder(CONFIGS[key], p, args.device) for p in ("fp32", "bf16")}
        fp32 = vocoders["fp32"]
        mel = fp32.mel(voiced_clip(args.seconds, fp32.sample_rate, f0=120.0, seed=1)).cpu()
        runs: dict[str, Callable] = dict(vocoders)
        if args.autocast:
            runs["autocast"] = autocast_runner(CONFIGS[key], args.device)
        outputs = {}
        for _ in range(args.warmup):
            for run in runs.values():
                run(mel)
        times: dict[str, list[float]] = {p: [] for p in runs}
        for _ in range(args.repeats):
            for precision, run in runs.items():
                synchronise(args.device)
                start = time.perf_counter()
                outputs[precision] = run(mel).cpu()
                synchronise(args.device)
                times[precision].append(time.perf_counter() - start)
        audio_seconds = outputs["fp32"].shape[-1] / fp32.sample_rate
        reference = outputs["fp32"]
        base = statistics.median(times["fp32"])
        for precision, wave in outputs.items():
            seconds = statistics.median(times[precision])
            quality = ""
            if precision != "fp32":
                noise = float((reference - wave).pow(2).sum())
                snr = 10 * math.log10(float(reference.pow(2).sum()) / noise) if noise > 0 else math.inf
                l1 = float((fp32.frontend(reference) - fp32.frontend(wave)).abs().mean())
                quality = f"{snr:>7.1f} {l1:>7.4f}"
            print(f"{key:<6} {precision:<9} {1000 * seconds:>10.0f} {audio_seconds / seconds:>11.2f}× "
                  f"{base / seconds:>7.2f}× {quality}", flush=True)
        del vocoders, runs
    return 0


if __name__ == "__main__":
    sys.exit(main())
