"""`gankit vocode` against the original HiFi-GAN's `inference_e2e.py`, whole process against whole process, on the
same original checkpoint: what a TTS system timing the command sees.

For each config (V1, V3 published layouts) an original-format checkpoint is written from the original generator's
published definition (tests/support/original_hifigan.py, written from jik876/hifi-gan's models.py, checked equal to
gankit's by tests/test_compat_hifigan.py), with random loud weights, beside its config.json. Then, alternating, each
path runs as a fresh process on (a) one 30 s mel and (b) a folder of 20 five-second mels:
- original: a script doing what `inference_e2e.py` does (its imports too: torch, numpy, scipy's wavfile writer, librosa
  for meldataset.py, matplotlib with Agg for utils.py; build, load, remove weight norm, one file at a time, int16 WAV);
- gankit torch: `gankit vocode --checkpoint g_XXXXXXXX --precision auto` (bf16 only where the CPU or GPU has bf16
  kernels; the line it prints says what it picked);
- gankit onnxruntime: `gankit vocode --backend onnxruntime` on the checkpoint exported by `gankit export --to-onnx`
  (the export is not timed), with `--onnx`.
Printed per case: median wall seconds of `--repeats` runs, kHz of audio per wall second, × real time, the child's peak
RSS, the ratio against the original (> 1: faster), and the largest difference of the written samples from the
original's (16-bit steps; the original truncates, gankit rounds).

    .venv/bin/python benchmarks/bench_vs_original.py --onnx        # V1 and V3, 3 repeats (~20 min on 2 cores)
    .venv/bin/python benchmarks/bench_vs_original.py --configs v3 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: the repo root on the path (benchmarks.machine, tests.support)
    sys.path.insert(0, str(REPO))

SAMPLE_RATE, HOP = 22050, 256
ORIGINAL_SCRIPT = '''
import json, os, sys
import numpy as np
import torch
from scipy.io.wavfile import write                      # inference_e2e.py
from librosa.util import normalize                      # meldataset.py
from librosa.filters import mel as librosa_mel_fn       # meldataset.py
import matplotlib                                       # utils.py
matplotlib.use("Agg")
import matplotlib.pylab as plt
sys.path.insert(0, {repo!r})
from tests.support.original_hifigan import LegacyGenerator   # models.py, as published

MAX_WAV_VALUE = 32768.0
checkpoint_file, input_mels_dir, output_dir = sys.argv[1:4]
with open(os.path.join(os.path.split(checkpoint_file)[0], "config.json")) as f:
    h = type("AttrDict", (dict,), {{"__getattr__": dict.__getitem__}})(json.loads(f.read()))
torch.manual_seed(1234)
device = torch.device("cpu")
generator = LegacyGenerator(h).to(device)
state_dict_g = torch.load(checkpoint_file, map_location=device)
generator.load_state_dict(state_dict_g["generator"])
filelist = os.listdir(input_mels_dir)
os.makedirs(output_dir, exist_ok=True)
generator.eval()
generator.remove_weight_norm()
with torch.no_grad():
    for i, filname in enumerate(filelist):
        x = np.load(os.path.join(input_mels_dir, filname))
        x = torch.FloatTensor(x).to(device)
        y_g_hat = generator(x)
        audio = y_g_hat.squeeze()
        audio = audio * MAX_WAV_VALUE
        audio = audio.cpu().numpy().astype("int16")
        output_file = os.path.join(output_dir, os.path.splitext(filname)[0] + ".wav")
        write(output_file, h.sampling_rate, audio)
        print(output_file)
'''


def write_checkpoint(folder: Path, layout: dict) -> Path:
    """An original g_ file with loud random weights (the default init's ~1e-4 output would hide differences)."""
    import torch

    from tests.support.original_hifigan import LegacyGenerator, h_of, randomize, write_config

    torch.manual_seed(0)
    generator = LegacyGenerator(h_of(layout))
    randomize(generator)
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, layout)
    path = folder / "g_00100000"
    torch.save({"generator": generator.state_dict()}, path)
    return path


def write_mels(folder: Path, seconds: float, count: int, seed: int) -> float:
    """`count` mels [1, 80, frames] of natural-log values as the original's meldataset makes them."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = round(seconds * SAMPLE_RATE / HOP)
    for i in range(count):
        mel = np.log(np.clip(rng.gamma(1.0, 0.3, (1, 80, frames)), 1e-5, None)).astype(np.float32)
        np.save(folder / f"mel_{i:02d}.npy", mel)
    return count * frames * HOP / SAMPLE_RATE


def run_process(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one fresh process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    error = child.stderr.read() if child.stderr else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{error[-2000:]}")
    return wall, usage.ru_maxrss


def max_step_difference(a: Path, b: Path) -> int:
    import numpy as np
    import soundfile

    worst = 0
    for left in sorted(a.glob("*.wav")):
        x, _ = soundfile.read(left, dtype="int16")
        y, _ = soundfile.read(b / left.name, dtype="int16")
        n = min(x.size, y.size)
        worst = max(worst, int(np.abs(x[:n].astype(np.int32) - y[:n].astype(np.int32)).max()))
    return worst


def command(path: str, script: Path, checkpoint: Path, mels: Path, out: Path) -> list[str]:
    """The command line of one path; the ONNX file lies beside the checkpoint's folder as `<folder>.onnx`."""
    python = sys.executable
    if path == "original":
        return [python, str(script), str(checkpoint), str(mels), str(out)]
    gankit = [python, "-m", "gankit", "vocode", "--overwrite", str(mels), "--out-dir", str(out)]
    if path == "gankit torch":
        return [*gankit, "--checkpoint", str(checkpoint), "--precision", "auto"]
    return [*gankit, "--backend", "onnxruntime", "--checkpoint", str(checkpoint.parent.with_suffix(".onnx"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="v1,v3", help="comma-separated: v1, v3 (default both)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path and case; the median counts (3)")
    parser.add_argument("--onnx", action="store_true", help="also gankit vocode --backend onnxruntime")
    args = parser.parse_args()

    from benchmarks.machine import describe_machine
    from tests.support.original_hifigan import V1_LAYOUT, V3_LAYOUT

    layouts = {"v1": V1_LAYOUT, "v3": V3_LAYOUT}
    python = sys.executable
    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="bench_vs_original_") as scratch:
        root = Path(scratch)
        script = root / "original_inference_e2e.py"
        script.write_text(ORIGINAL_SCRIPT.format(repo=str(REPO)))
        cases = {"one 30 s mel": (root / "long", write_mels(root / "long", 30.0, 1, seed=1)),
                 "20 × 5 s mels": (root / "short", write_mels(root / "short", 5.0, 20, seed=2))}
        for name in args.configs.split(","):
            checkpoint = write_checkpoint(root / name, layouts[name])
            paths = {"original": None, "gankit torch": None}
            if args.onnx:
                onnx_file = root / f"{name}.onnx"
                subprocess.run([python, "-m", "gankit", "export", "--checkpoint", str(checkpoint), "--to-onnx",
                                str(onnx_file)], check=True, stdout=subprocess.DEVNULL)
                paths["gankit onnxruntime"] = None
            for case, (mels, seconds) in cases.items():
                times: dict[str, list[float]] = {p: [] for p in paths}
                peaks: dict[str, int] = {p: 0 for p in paths}
                outs = {p: root / "out" / name / case.replace(" ", "_") / p.replace(" ", "_") for p in paths}
                for _ in range(args.repeats):  # alternating: a busy machine slows every path alike
                    for path in paths:
                        wall, peak = run_process(command(path, script, checkpoint, mels, outs[path]))
                        times[path].append(wall)
                        peaks[path] = max(peaks[path], peak)
                base = statistics.median(times["original"])
                for path in paths:
                    wall = statistics.median(times[path])
                    diff = "" if path == "original" else \
                        f"  max diff {max_step_difference(outs['original'], outs[path])} steps"
                    khz = seconds * SAMPLE_RATE / wall / 1000
                    print(f"  {name} {case:<14} {path:<19} {wall:7.2f} s  {khz:7.1f} kHz "
                          f"{seconds / wall:6.2f}× real time  peak {peaks[path] / 1024:6.0f} MiB  "
                          f"×{base / wall:.2f} vs original{diff}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
