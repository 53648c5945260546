"""PyTorch fp32 against onnxruntime fp32 (and int8 with --int8) on HiFi-GAN V1 and V3, in process and as whole
processes.

In process, for each config and each mel length (5 s and 30 s by default), with the same seeded weights (unit-gain
random convolutions, the last one scaled so the output is loud but not clipped — the default init's ~1e-4 output
would make every error look small): ms per run (median of alternating runs after a warm-up), × real time, the ratio
to PyTorch, and against the PyTorch output the waveform SNR and the mel L1 by the model's front-end (the quality bar:
SNR ≥ 30 dB, mel L1 ≤ 0.02). int8 is calibrated on other random mels of the same kind (windows of 128 frames).

Whole process: `gankit vocode` on one 5 s mel, `--backend torch` with the gankit generator file against
`--backend onnxruntime` with its ONNX export (default-init weights: the time does not depend on them), alternating,
median wall seconds including interpreter start-up, imports and loading — what a TTS system timing the command sees.

    nice .venv/bin/python benchmarks/bench_onnx.py --quick          # 1 s mel, V3 only, 1 repeat: checks it works
    .venv/bin/python benchmarks/bench_onnx.py --int8                 # the README's numbers (quiet machine)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: put the repo root on the path
    sys.path.insert(0, str(REPO))

CONFIGS = {"v1": "hifigan_v1", "v3": "hifigan_v3"}


def lively_weights(generator: Any, n_mels: int, seed: int) -> None:
    """Unit-gain random convolutions, the last scaled to an output std of ~0.35 (see the module docstring)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    with torch.no_grad():
        for conv in convs:
            w = conv.weight
            fan_in = w.shape[0] * w.shape[2] / conv.stride[0] if isinstance(conv, nn.ConvTranspose1d) else \
                w.shape[1] * w.shape[2]
            w.normal_(0.0, fan_in**-0.5)
            conv.bias.normal_(0.0, 0.1)
        captured: list[Any] = []
        handle = convs[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))
        generator(torch.from_numpy(random_mel(n_mels, 40, seed))[None])
        handle.remove()
        scale = 0.4 / captured[0].std()
        convs[-1].weight.mul_(scale)
        convs[-1].bias.mul_(scale)


def random_mel(n_mels: int, frames: int, seed: int) -> np.ndarray:
    """A natural-log mel of random values in the hifigan preset's range."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(-5.0, 2.5, size=(n_mels, frames)), np.log(1e-5)).astype(np.float32)


def median_ms(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median ms of each callable, one warm-up each, then alternating (order flipped each round)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def in_process(key: str, seconds: list[float], args: argparse.Namespace) -> None:
    import torch

    from gankit.config import load_config
    from gankit.infer import Vocoder
    from gankit.infer import onnx_export as ox
    from gankit.metrics.spectral import mel_l1
    from gankit.models import build_generator

    _, config = load_config(CONFIGS[key])
    frontend = config["frontend"]
    vocoder = Vocoder(build_generator("hifigan", {"n_mels": frontend["n_mels"], **config["model"]["generator"]}),
                      frontend, "hifigan", source=f"seeded {key}")
    lively_weights(vocoder.generator, vocoder.n_mels, seed=0)
    t0 = time.perf_counter()
    model = ox.onnx_model(vocoder)
    paths: dict[str, Any] = {"onnx fp32": ox.session_of(model, threads=args.threads)}
    export_s = time.perf_counter() - t0
    line = f"{key}: export {export_s:.1f} s"
    if args.int8:
        calibration = [random_mel(vocoder.n_mels, 256, seed=100 + i) for i in range(8)]
        t0 = time.perf_counter()
        paths["onnx int8"] = ox.session_of(ox.quantize_int8(model, ox.calibration_windows(calibration)),
                                           threads=args.threads)
        line += f", int8 quantisation {time.perf_counter() - t0:.1f} s"
    print(line, flush=True)
    for secs in seconds:
        frames = max(1, round(secs * vocoder.sample_rate / vocoder.hop_length))
        mel = random_mel(vocoder.n_mels, frames, seed=7)
        tensor = torch.from_numpy(mel)
        reference = vocoder(tensor).numpy()
        audio_s = reference.size / vocoder.sample_rate
        runs: dict[str, Callable[[], Any]] = {"torch fp32": lambda t=tensor: vocoder(t)}
        runs.update({name: (lambda v=v, m=mel: v(m)) for name, v in paths.items()})
        ms = median_ms(runs, args.repeats)
        for name in runs:
            quality = ""
            if name != "torch fp32":
                out = paths[name](mel)
                snr = ox.snr_db(reference, out)
                quality = (f"  SNR {snr:6.1f} dB  mel L1 {mel_l1(reference, out, vocoder.frontend):.4f}  "
                           f"max|diff| {np.abs(out - reference).max():.1e}")
            print(f"  {key} {audio_s:5.1f} s  {name:10s} {ms[name]:9.1f} ms  {audio_s * 1000 / ms[name]:6.1f}× real "
                  f"time  ×{ms['torch fp32'] / ms[name]:.2f} vs torch{quality}", flush=True)


def whole_process(key: str, args: argparse.Namespace) -> None:
    import torch

    from gankit.audio.mel import build_frontend
    from gankit.config import load_config
    from gankit.infer import Vocoder
    from gankit.infer import onnx_export as ox
    from gankit.models import build_generator
    from gankit.tasks.vocoder import vocoder_inference_file

    _, config = load_config(CONFIGS[key])
    frontend = build_frontend(config["frontend"])
    torch.manual_seed(0)
    generator = build_generator("hifigan", {"n_mels": frontend.n_mels, **config["model"]["generator"]})
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        root = Path(folder)
        torch.save(vocoder_inference_file("hifigan", generator.cfg.to_dict(), frontend.to_config(),
                                          generator.state_dict(), 0), root / "g.pt")
        ox.write_onnx(root / "g.onnx", ox.onnx_model(Vocoder(generator, frontend, "hifigan")))
        frames = round(args.process_seconds * frontend.sample_rate / frontend.hop_length)
        np.save(root / "m.npy", random_mel(frontend.n_mels, frames, seed=3))
        commands = {
            backend: [sys.executable, "-m", "gankit", "vocode", "--backend", backend, "--checkpoint",
                      str(root / ("g.onnx" if backend == "onnxruntime" else "g.pt")), str(root / "m.npy"),
                      "--out-dir", str(root / backend), "--overwrite", "--no-progress", "--device", "cpu",
                      *(["--threads", str(args.threads)] if args.threads else [])]
            for backend in ("torch", "onnxruntime")
        }
        runs = {name: (lambda c=command: subprocess.run(c, cwd=REPO, check=True, capture_output=True))
                for name, command in commands.items()}
        ms = median_ms(runs, args.process_repeats)
        for name, value in ms.items():
            print(f"  {key} whole process, {args.process_seconds:g} s mel, --backend {name:11s} {value / 1000:6.2f} s "
                  f"wall  ×{ms['torch'] / value:.2f} vs torch", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="v1,v3", help="comma-separated among v1, v3 (default both)")
    parser.add_argument("--seconds", default="5,30", help="mel lengths in seconds of audio (default 5,30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path, median (default 3)")
    parser.add_argument("--process-repeats", type=int, default=3, help="whole-process runs per backend (default 3)")
    parser.add_argument("--process-seconds", type=float, default=5.0, help="the whole-process mel (default 5 s)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for torch and onnxruntime alike (default 0: one per core)")
    parser.add_argument("--int8", action="store_true", help="also onnxruntime int8 (static quantisation)")
    parser.add_argument("--quick", action="store_true",
                        help="a check that it runs: V3, a 1 s mel, 1 repeat, 1 whole-process run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.seconds, args.repeats, args.process_repeats, args.process_seconds = "v3", "1", 1, 1, 1.0
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    if any(k not in CONFIGS for k in keys) or args.repeats < 1 or args.process_repeats < 1:
        parser.error(f"configs among {', '.join(CONFIGS)}; repeats ≥ 1")
    seconds = [float(s) for s in args.seconds.split(",") if s.strip()]
    warnings.filterwarnings("ignore", message=".*weight_norm.*deprecated")

    import onnxruntime
    import torch

    from benchmarks.machine import describe_machine
    from gankit.infer.onnx_vocoder import default_threads

    args.threads = args.threads or default_threads()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe_machine()}; onnxruntime {onnxruntime.__version__}; {args.threads} threads for both; "
          f"pid {os.getpid()}", flush=True)
    for key in keys:
        in_process(key, seconds, args)
    for key in keys:
        whole_process(key, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
