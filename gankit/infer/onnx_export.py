"""A vocoder as an ONNX file that `gankit vocode --backend onnxruntime` runs without torch (`gankit export --to-onnx`).

Exporter: `torch.onnx.export(dynamo=True)` (torch.export + onnxscript), opset 18. Why not the TorchScript exporter
(`dynamo=False`): it is deprecated since torch 2.9 (a DeprecationWarning on every call in 2.13, removal announced),
and it traces, which silently bakes any Python-side shape arithmetic into the graph at the traced length; the dynamo
exporter declares batch and frames as symbolic dimensions (`torch.export.Dim`) and fails at export time when the
model cannot take any length, instead of at inference on another length. Both give the same numbers here (max |diff|
to PyTorch ~3e-8 on V1, equal onnxruntime speed); the cost is the onnxscript dependency and a slower export (~6–9 s
for V1 against ~2 s).

What is exported: the generator as `gankit.infer.vocoder.prepare_for_inference` leaves it (eval, weight norm folded
into plain weights), input `mel` [batch, n_mels, frames] → output `audio` [batch, 1, frames·hop], fp32, one file (the
weights inside, not beside it). The file's `metadata_props["gankit"]` (JSON, `gankit.infer.onnx_vocoder`) carries the
family, the mel front-end's config, the shortest mel, the chunk context and the precision, so inference needs nothing
else.

int8 (`--int8 --calibration MEL_DIR`): onnxruntime's static quantisation (`quantize_static`, QDQ format, int8 weights
per output channel and int8 activations, MinMax ranges) of the stride-1 convolutions but the first and the last
(`quantize_int8` says why), calibrated on windows of the given mels. The export measures
the int8 graph against the fp32 PyTorch generator on those mels (waveform SNR and mel L1 by the model's front-end)
and prints it beside the quality bar (SNR ≥ 30 dB, mel L1 ≤ 0.02); the numbers are also kept in the metadata.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import ConfigError
from gankit.infer.onnx_vocoder import (
    FORMAT,
    FORMAT_VERSION,
    INPUT_NAME,
    INSTALL_HINT,
    METADATA_KEY,
    OUTPUT_NAME,
    OnnxVocoder,
    parse_metadata,
)
from gankit.infer.vocoder import Vocoder

ONNX_OPSET = 18  # what torch 2.13's dynamo exporter targets natively (no version conversion of its graph)
EXAMPLE_FRAMES = 32  # the example mel's length; batch and frames are exported as symbolic dimensions
# Quality bar of issue 18 for every fast path, against the fp32 PyTorch output of the same model.
BAR_SNR_DB = 30.0
BAR_MEL_L1 = 0.02
# Calibration: windows of this many frames (a range needs a window, not a file: shorter runs keep the calibration
# quick), from at most this many files. The calibrator keeps only each tensor's min and max per window.
CALIBRATION_FRAMES = 128
CALIBRATION_MAX_FILES = 64
# The int8 check after quantising: up to this many calibration files, each cut to this many frames (~6 s at hop 256).
CHECK_MAX_FILES = 8
CHECK_FRAMES = 512
INT8_OP_TYPES = ("Conv",)  # see quantize_int8


def require_exporter() -> None:
    """onnx and onnxscript importable, or a one-line ConfigError saying how to install them."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"--to-onnx needs {', '.join(missing)}, not installed here; {INSTALL_HINT}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines and its notes about optional packages (torchvision) are not the user's
    business; its errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def metadata(vocoder: Vocoder, precision: str = "fp32", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `gankit` metadata entry of the ONNX file (see `gankit.infer.onnx_vocoder.parse_metadata`)."""
    context = vocoder.context
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "family": vocoder.family,
        "frontend": vocoder.frontend.to_config(),
        "min_frames": int(vocoder.min_frames),
        "context": {"left": context.left, "right": context.right},
        "precision": precision,
        "step": vocoder.step,
        "source": vocoder.source,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}, opset {ONNX_OPSET}",
        **(extra or {}),
    }


def set_metadata(model: Any, meta: dict[str, Any]) -> None:
    """Replace the model's `gankit` metadata entry with `meta` (JSON)."""
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)


def onnx_model(vocoder: Vocoder, opset: int = ONNX_OPSET) -> Any:
    """The vocoder's generator (already prepared for inference by `Vocoder`) as an `onnx.ModelProto` with the
    weights inside and the `gankit` metadata; exported on the CPU in fp32."""
    require_exporter()
    generator = vocoder.generator
    weights = next(generator.parameters())
    if weights.device.type != "cpu" or weights.dtype != torch.float32:  # the caller's vocoder stays where it is
        generator = copy.deepcopy(generator).to("cpu", torch.float32)
    example = torch.zeros(1, vocoder.n_mels, max(EXAMPLE_FRAMES, vocoder.min_frames))
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("frames", min=vocoder.min_frames)}
    with _quiet_exporter(), torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(generator, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=(dims,))
    model = program.model_proto
    model.producer_name = "gankit"
    set_metadata(model, metadata(vocoder))
    return model


def session_of(model: Any, threads: int | None = None) -> OnnxVocoder:
    """An `OnnxVocoder` over an in-memory model (the export's own checks)."""
    import onnxruntime as ort

    from gankit.infer.onnx_vocoder import default_threads

    count = threads or default_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = count
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    meta = parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), Path("(in memory)"))
    return OnnxVocoder(session, meta, threads=count)


def max_difference(vocoder: Vocoder, onnx_vocoder: OnnxVocoder, mels: Sequence[np.ndarray]) -> float:
    """Largest |PyTorch − onnxruntime| sample over `mels` ([n_mels, T] each)."""
    worst = 0.0
    for mel in mels:
        reference = vocoder(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))).numpy()
        worst = max(worst, float(np.abs(onnx_vocoder(mel) - reference).max()))
    return worst


def example_mels(vocoder: Vocoder, seed: int = 0) -> list[np.ndarray]:
    """Two mels of different lengths in the front-end's value range (for the export's own parity check)."""
    rng = np.random.default_rng(seed)
    floor = -11.5 if vocoder.frontend.preset in ("hifigan", "vocos") else -5.0
    return [np.maximum(rng.normal(floor / 2, 2.0, (vocoder.n_mels, frames)), floor).astype(np.float32)
            for frames in (max(vocoder.min_frames, 24), max(vocoder.min_frames, 41))]


# --- int8 ------------------------------------------------------------------------------------------------------


def calibration_windows(mels: Sequence[np.ndarray], frames: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """Windows of up to `frames` frames covering each mel (the last one ending at the mel's end), as [1, n_mels, t]."""
    windows = []
    for mel in mels:
        total = mel.shape[-1]
        starts = list(range(0, max(1, total - frames + 1), frames))
        if starts[-1] + frames < total:
            starts.append(total - frames)
        windows.extend(np.ascontiguousarray(mel[None, :, s : s + frames], dtype=np.float32) for s in starts)
    return windows


class MelCalibrationReader:
    """onnxruntime's `CalibrationDataReader` protocol over mel windows: `get_next()` → {"mel": [1, n_mels, t]} or
    None when done; `rewind()` starts again."""

    def __init__(self, windows: Sequence[np.ndarray]) -> None:
        self.windows = list(windows)
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.windows):
            return None
        self.position += 1
        return {INPUT_NAME: self.windows[self.position - 1]}

    def rewind(self) -> None:
        self.position = 0

    # quantize_static checks isinstance(reader, CalibrationDataReader) nowhere, but some versions call these:
    def __len__(self) -> int:
        return len(self.windows)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.windows = self.windows[start_index:end_index]
        self.position = 0


def quantize_int8(model: Any, windows: Sequence[np.ndarray]) -> Any:
    """The fp32 `model` statically quantised to int8 (QDQ: int8 weights per output channel, int8 activations with
    MinMax ranges from `windows`), with the same metadata but precision int8. Only the stride-1 convolutions (the
    bulk of the compute) are quantised, and of them not the first (mel in) nor the last (before tanh): measured on
    seeded V1 / V3 weights, quantising every op onnxruntime can (also the transposed convolutions and the residual
    additions) gave SNR 21 / 25 dB against fp32, this recipe 29 / 34 dB (README)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not windows:
        raise ConfigError("int8 calibration needs at least one mel")
    with tempfile.TemporaryDirectory(prefix="gankit-int8-") as folder:
        source, prepared, target = (Path(folder) / f"{name}.onnx" for name in ("fp32", "prepared", "int8"))
        onnx.save(model, str(source))
        with _quiet_exporter():
            # onnxruntime's recommended first step: shape inference and graph optimisation, so that what is quantised
            # is the graph it will run.
            quant_pre_process(str(source), str(prepared))
            convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]  # in graph order
            quantize_static(
                str(prepared), str(target), MelCalibrationReader(windows), quant_format=QuantFormat.QDQ,
                per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(INT8_OP_TYPES),
                nodes_to_exclude=[convs[0], convs[-1]] if len(convs) > 2 else [],
            )
        quantized = onnx.load(str(target))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    meta["precision"] = "int8"
    meta["quantisation"] = (f"onnxruntime {__import__('onnxruntime').__version__} quantize_static: QDQ, the "
                            "stride-1 convolutions but the first and last in int8 (weights per channel, activations "
                            f"MinMax over {len(windows)} windows of up to {CALIBRATION_FRAMES} frames); transposed "
                            "convolutions, residual additions, activations and tanh in fp32")
    set_metadata(quantized, meta)
    return quantized


@dataclass
class Quality:
    """A fast path's output against the fp32 PyTorch output of the same model, over some mels."""

    snr_db: float  # pooled: all reference energy over all error energy
    worst_snr_db: float  # the lowest file's
    mel_l1: float  # mean over files, the model's front-end
    files: int

    @property
    def holds_bar(self) -> bool:
        return self.snr_db >= BAR_SNR_DB and self.worst_snr_db >= BAR_SNR_DB and self.mel_l1 <= BAR_MEL_L1

    def describe(self) -> str:
        verdict = "holds" if self.holds_bar else "does NOT hold"
        return (f"SNR {self.snr_db:.1f} dB (worst file {self.worst_snr_db:.1f} dB), mel L1 {self.mel_l1:.4f} over "
                f"{self.files} mel{'s' if self.files != 1 else ''}: {verdict} the quality bar (SNR ≥ {BAR_SNR_DB:.0f} "
                f"dB, mel L1 ≤ {BAR_MEL_L1})")

    def to_dict(self) -> dict[str, Any]:
        return {"snr_db": round(self.snr_db, 2), "worst_snr_db": round(self.worst_snr_db, 2),
                "mel_l1": round(self.mel_l1, 5), "files": self.files}


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10(Σ reference² / Σ (reference − estimate)²); inf when equal."""
    error = float(np.sum((np.asarray(reference, np.float64) - estimate) ** 2))
    signal = float(np.sum(np.asarray(reference, np.float64) ** 2))
    return math.inf if error == 0 else 10 * math.log10(max(signal, 1e-30) / error)


def measure_quality(vocoder: Vocoder, fast: Any, mels: Sequence[np.ndarray]) -> Quality:
    """`fast(mel) -> wave` (numpy) against `vocoder(mel)` in fp32 PyTorch over `mels`: waveform SNR, and the L1
    between the two waves' mels by the model's own front-end."""
    from gankit.metrics.spectral import mel_l1

    signal = error = 0.0
    per_file, l1 = [], []
    for mel in mels:
        reference = vocoder(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))).numpy()
        estimate = np.asarray(fast(mel), dtype=np.float32)
        signal += float(np.sum(reference.astype(np.float64) ** 2))
        error += float(np.sum((reference.astype(np.float64) - estimate) ** 2))
        per_file.append(snr_db(reference, estimate))
        l1.append(mel_l1(reference, estimate, vocoder.frontend))
    pooled = math.inf if error == 0 else 10 * math.log10(max(signal, 1e-30) / error)
    return Quality(pooled, min(per_file), float(np.mean(l1)), len(mels))


def check_windows(
    mels: Sequence[np.ndarray], limit: int = CHECK_MAX_FILES, frames: int = CHECK_FRAMES
) -> list[np.ndarray]:
    """The first `limit` mels, each cut to its first `frames` frames (what the int8 check vocodes)."""
    return [np.ascontiguousarray(mel[:, :frames], dtype=np.float32) for mel in mels[:limit]]


def write_onnx(path: Path, model: Any) -> int:
    """Write `model` to `path` atomically (a reader never sees half a file; on any error `path` is untouched);
    returns the bytes written."""
    from gankit.atomic import write_bytes

    data = model.SerializeToString()
    write_bytes(path, data)
    return len(data)
