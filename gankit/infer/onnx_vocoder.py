"""Vocoding with ONNX Runtime and numpy only: no torch is imported (`gankit vocode --backend onnxruntime`).

An `.onnx` file written by `gankit export --to-onnx` (`gankit.infer.onnx_export`) carries, besides the generator's
graph (input `mel` [batch, n_mels, frames] → output [batch, 1, frames·hop], batch and frames dynamic), everything
inference needs in its `metadata_props` under the key `gankit` (JSON): the generator family, its mel front-end's config
(preset, sample rate, hop, bands, …), the shortest mel it takes, the mel context a chunk needs on each side, and the
weights' precision (fp32, or int8 after static quantisation). `OnnxVocoder` reads it back with onnxruntime's own
metadata reader, so the `onnx` package is not needed here either.

A process that vocodes this way starts in a fraction of the torch path's time (importing onnxruntime takes ~0.1 s,
torch ~1.5 s on this project's CPU), which is what a TTS system timing `gankit vocode` as a whole process sees.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gankit.errors import CheckpointError, ConfigError, MelInputError
from gankit.infer.chunking import DEFAULT_CHUNK_FRAMES, FrameContext, MelFrames, plan_windows
from gankit.infer.mel_checks import check_batch_item, check_length, check_mel_shape, chunk_source_frames

METADATA_KEY = "gankit"  # the metadata_props entry holding the JSON below
FORMAT = "gankit-onnx-vocoder"
FORMAT_VERSION = 1
INPUT_NAME = "mel"
OUTPUT_NAME = "audio"
INSTALL_HINT = "install the optional extra: pip install 'gankit[onnx]' (onnx, onnxruntime, onnxscript)"


def require_onnxruntime(what: str) -> Any:
    """The onnxruntime module, or a one-line ConfigError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"{what} needs onnxruntime, which is not installed; {INSTALL_HINT}") from None
    return onnxruntime


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class OnnxFrontend:
    """What the mel reading and the WAV writing need to know of the model's front-end (numpy-only: the torch
    `MelFrontend` it describes is rebuilt from `config` by `gankit.audio.mel.build_frontend` where torch is at hand)."""

    preset: str
    sample_rate: int
    hop_length: int
    n_mels: int
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    def output_length(self, n_frames: int) -> int:
        return n_frames * self.hop_length

    def num_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length

    def to_config(self) -> dict[str, Any]:
        return dict(self.config)


def _int(meta: dict[str, Any], key: str, path: Path, minimum: int = 1) -> int:
    value = meta.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CheckpointError(f"{path}: its gankit metadata has {key} = {value!r}, not an integer ≥ {minimum}; "
                              "re-export it with gankit export --to-onnx")
    return value


def parse_metadata(text: str | None, path: Path) -> dict[str, Any]:
    """The `gankit` metadata of an ONNX file as a dict, checked; a CheckpointError saying what is wrong."""
    if text is None:
        raise CheckpointError(f"{path}: an ONNX file without gankit's metadata (not written by gankit export "
                              "--to-onnx), so its mel front-end is unknown; export the checkpoint with gankit export "
                              "--checkpoint CKPT --to-onnx FILE")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its gankit metadata is not JSON ({exc}); re-export it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: its gankit metadata does not describe a vocoder ({FORMAT}); re-export it")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer gankit (ONNX format version {version!r}, this one reads "
                              f"{FORMAT_VERSION}); upgrade gankit or re-export with this one")
    frontend = meta.get("frontend")
    if not isinstance(frontend, dict) or not isinstance(frontend.get("preset"), str):
        raise CheckpointError(f"{path}: its gankit metadata has no mel front-end; re-export it")
    for key in ("sample_rate", "hop_length", "n_mels"):
        _int(frontend, key, path)
    _int(meta, "min_frames", path)
    context = meta.get("context")
    if not isinstance(context, dict):
        raise CheckpointError(f"{path}: its gankit metadata has no chunk context; re-export it")
    _int(context, "left", path, minimum=0)
    _int(context, "right", path, minimum=0)
    return meta


class OnnxVocoder:
    """Mel → waveform through an ONNX Runtime session, with numpy arrays in and out (no torch).

    `vocoder(mel)`: [n_mels, T] → [T·hop] or [B, n_mels, T] → [B, T·hop], float32 (the call shape of
    `gankit.infer.Vocoder`, numpy instead of tensors). `vocode_batch(mels)`: several mels, each output equal to its
    own call; `vocode_chunked(mel, chunk_frames)`: a long mel in pieces with the exported context (equal to the whole
    call within float rounding).
    """

    def __init__(self, session: Any, meta: dict[str, Any], *, source: str = "(in memory)",
                 threads: int | None = None) -> None:
        self.session = session
        self.meta = meta
        config = dict(meta["frontend"])
        self.frontend = OnnxFrontend(config["preset"], int(config["sample_rate"]), int(config["hop_length"]),
                                     int(config["n_mels"]), config)
        self.family: str = str(meta.get("family", "?"))
        self.step: int | None = meta.get("step") if isinstance(meta.get("step"), int) else None
        self.min_frames = int(meta["min_frames"])
        self.context = FrameContext(int(meta["context"]["left"]), int(meta["context"]["right"]))
        self.precision: str = str(meta.get("precision", "fp32"))
        self.source = source
        self.threads = threads
        self.device = "cpu"  # what files.RunReport prints; onnxruntime's CPU provider is the only one used
        self._input = session.get_inputs()[0].name
        # Reflection padding (MelGAN) sees a padded batch's extra frames, and the length mask the torch path hooks
        # onto HiFi-GAN's convolutions is not part of the graph: only mels of equal length share a run.

    def __repr__(self) -> str:
        return (f"OnnxVocoder({self.family}, {self.sample_rate} Hz, hop {self.hop_length}, {self.n_mels} mels "
                f"[{self.frontend.preset}], {self.precision}, onnxruntime CPU, from {self.source})")

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def hop_length(self) -> int:
        return self.frontend.hop_length

    @property
    def n_mels(self) -> int:
        return self.frontend.n_mels

    def describe_device(self) -> str:
        return f"onnxruntime CPU, {self.threads} thread{'s' if self.threads != 1 else ''}, {self.precision}"

    # --- vocoding ----------------------------------------------------------------------------------------
    def _check_mel(self, mel: np.ndarray, *, whole: bool = True, dims: tuple[int, ...] = (2, 3)) -> np.ndarray:
        """Shape, dtype, values (as `Vocoder._check_mel`); the mel as C-contiguous float32."""
        check_mel_shape(mel.shape, n_mels=self.n_mels, preset=self.frontend.preset, min_frames=self.min_frames,
                        whole=False, dims=dims)
        if mel.dtype.kind != "f":
            raise MelInputError(f"mel of dtype {mel.dtype}: a log-mel is floating point")
        if whole:
            check_length(mel.shape[-1], self.min_frames)
        array = np.ascontiguousarray(mel, dtype=np.float32)
        if not bool(np.isfinite(array).all()):
            raise MelInputError("mel holds NaN or infinite values; the vocoder would output noise or silence")
        return array

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """[B, n_mels, T] float32 → [B, T·hop] float32."""
        (wave,) = self.session.run(None, {self._input: batch})
        return np.asarray(wave, dtype=np.float32)[:, 0, :]

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        array = self._check_mel(np.asarray(mel))
        if array.ndim == 2:
            return self._run(array[None])[0]
        return self._run(array)

    def vocode_batch(self, mels: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several [n_mels, T_i] mels: those of equal length in one run each, the others alone, so every output equals
        what `vocoder(mel)` gives alone (the torch path's padded-and-masked batch has no counterpart in the graph)."""
        arrays = []
        for mel in mels:
            array = np.asarray(mel)
            check_batch_item(array.shape)
            arrays.append(self._check_mel(array))
        by_length: dict[int, list[int]] = {}
        for i, array in enumerate(arrays):
            by_length.setdefault(int(array.shape[-1]), []).append(i)
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(arrays)
        for indices in by_length.values():
            waves = self._run(np.stack([arrays[i] for i in indices]))
            for row, i in enumerate(indices):
                out[i] = waves[row]
        return out

    def vocode_chunked(
        self, mel: np.ndarray | MelFrames, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> Iterator[np.ndarray]:
        """A [n_mels, T] mel's audio in pieces of `chunk_frames`·hop samples (the last may be shorter), each computed
        from a window with the exported context on each side, so the pieces join into `vocoder(mel)` within float
        rounding (`gankit.infer.chunking`'s window plan, as `Vocoder.vocode_chunked`). A numpy memmap or a `MelFrames`
        source is read one window at a time."""
        total = chunk_source_frames(mel, n_mels=self.n_mels, preset=self.frontend.preset, min_frames=self.min_frames)
        hop = self.hop_length
        for window in plan_windows(total, chunk_frames, self.context, self.min_frames):
            if isinstance(mel, np.ndarray):
                piece = mel[:, window.start : window.end]
            else:
                piece = np.asarray(mel.read(window.start, window.end))
            wave = self._run(self._check_mel(piece, whole=False, dims=(2,))[None])[0]
            yield wave[(window.keep_start - window.start) * hop : (window.keep_end - window.start) * hop]


def load_onnx_vocoder(path: str | Path, threads: int | None = None) -> OnnxVocoder:
    """An `OnnxVocoder` from a `gankit export --to-onnx` file; onnxruntime's CPU provider with `threads` intra-op
    threads (default: the cores this process may use) and one inter-op thread (the graph is a chain)."""
    ort = require_onnxruntime("--backend onnxruntime")
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder; with --backend onnxruntime, --checkpoint is the .onnx file that "
                              "gankit export --to-onnx wrote")
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file; check the path (with --backend onnxruntime, --checkpoint is the "
                              ".onnx file that gankit export --to-onnx wrote)")
    count = threads or default_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = count
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its informational warnings are not the user's business
    try:
        session = ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types (InvalidProtobuf, Fail, …) come from its C++ binding
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p}: not an ONNX model onnxruntime can load ({reason[:200]}); give the .onnx file "
                              "that gankit export --to-onnx wrote") from None
    meta = parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), p)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise CheckpointError(f"{p}: the graph has {len(inputs)} inputs and {len(outputs)} outputs, not one mel in "
                              "and one waveform out; re-export it")
    step = f", step {meta['step']}" if isinstance(meta.get("step"), int) else ""
    source = f"{p} (ONNX {meta.get('precision', 'fp32')}, {meta.get('family', '?')}{step})"
    return OnnxVocoder(session, meta, source=source, threads=count)
