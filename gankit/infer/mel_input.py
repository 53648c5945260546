"""Reading and checking a `.npy` mel for vocoding: one-line errors for what cannot work, warnings for what looks off.

Accepted: what the original `inference_e2e.py` reads — `[n_mels, T]` or `[1, n_mels, T]`, any float dtype (float64 and
float16 are converted to float32). Refused (`MelInputError`, naming the file): unreadable or pickled files, `.npz`
archives, other shapes (with a hint when the array looks transposed or batched), another band count (with the presets
that make that many bands), integer/bool/complex values, NaN or infinity, fewer frames than the generator needs.

Value-range heuristic (a WARNING only: TTS models' mels legitimately go below the analysis clamp floor):
- a natural-log preset (hifigan: floor ln 1e-5 ≈ −11.5; vocos: ln 1e-7 ≈ −16.1) given a mel that never goes below −5
  — log10 mels (MelGAN's, floor −5) and mean/variance-normalised mels (ParallelWaveGAN's) look like that;
- a log10 preset (melgan: floor −5) given a mel going below −7, two units under its floor — ln mels look like that.
Presets that normalise (parallel_wavegan) and unknown presets are not checked.

With `force=True` (`gankit vocode --force`) another band count is not refused: the bands are linearly interpolated
onto the checkpoint's count (both taken to span the same frequency range), with a warning. The result is a rough
preview at best — the presets differ in band edges and scale as well — which is why it needs asking for.

Long mels (`gankit vocode --chunk-frames`) are opened memory-mapped (`open_mel` → `MappedMel`): the same checks and
warnings from a pass over the file in blocks, then frames read a window at a time, each block's pages handed back to
the kernel once copied, so the process holds a block, not the file, whatever its length.
"""

from __future__ import annotations

import math
import mmap
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gankit.audio.mel_bands import presets_with_bands
from gankit.errors import MelInputError

if TYPE_CHECKING:  # no torch at run time: the ONNX Runtime path reads mels here with only numpy
    from gankit.audio.mel import MelFrontend

LOG10_FLOOR = math.log10(1e-5)  # −5: what log10(clamp(x, 1e-5)) never goes below
# The log compression floor of each preset the heuristic knows (None: normalised values, nothing to say).
LOG_FLOORS: dict[str, float | None] = {
    "hifigan": math.log(1e-5),
    "vocos": math.log(1e-7),
    "melgan": LOG10_FLOOR,
    "parallel_wavegan": None,
}
_LN_MARGIN = 2.0  # how far below a log10 floor a mel must reach before it looks like ln
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _fail(path: Path, what: str) -> MelInputError:
    return MelInputError(f"{path}: {what}")


def _expected(frontend: MelFrontend) -> str:
    return (
        f"this checkpoint expects {frontend.n_mels} bands (preset {frontend.preset}, {frontend.sample_rate} Hz, "
        f"hop {frontend.hop_length})"
    )


def _presets_with(n_bands: int) -> list[str]:
    return presets_with_bands(n_bands)


def _band_origin(bands: int) -> str:
    makers = _presets_with(bands)
    return f"; {bands} bands is what preset {' / '.join(makers)} makes" if makers else ""


def _band_error(path: Path, bands: int, frontend: MelFrontend) -> MelInputError:
    return _fail(
        path,
        f"has {bands} mel bands but {_expected(frontend)}{_band_origin(bands)}. Use a checkpoint trained on these "
        "mels, or make mels with the checkpoint's own front-end (gankit resynth does that from audio); --force "
        "interpolates the bands instead (a rough preview only)",
    )


def interpolate_bands(mel: np.ndarray, n_bands: int) -> np.ndarray:
    """[B, T] → [n_bands, T] by linear interpolation along the band axis, first and last bands kept in place."""
    source = mel.shape[0]
    if source == n_bands:
        return mel
    if source == 1:
        return np.repeat(mel, n_bands, axis=0)
    position = np.linspace(0.0, source - 1.0, n_bands)
    low = np.floor(position).astype(np.int64).clip(0, source - 2)
    weight = (position - low)[:, None]
    return ((1.0 - weight) * mel[low] + weight * mel[low + 1]).astype(mel.dtype, copy=False)


def load_npy(path: Path, mmap_mode: bool = False) -> np.ndarray:
    """np.load without pickles, with one-line errors for missing, unreadable, pickled and .npz files; `mmap_mode`:
    memory-mapped read-only (the data is read when touched)."""
    if not path.is_file():
        raise _fail(path, "no such file; check the path")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc}); check its permissions") from None
    if head.startswith(_ZIP_MAGIC):
        raise _fail(path, "is an .npz archive; save each mel as its own .npy file ([n_mels, frames]) with np.save")
    if head != _NPY_MAGIC:  # np.load would otherwise try to unpickle it
        raise _fail(path, "not a readable .npy file (no NumPy header: empty, text or another format?); save the mel "
                    "with np.save")
    try:
        return np.load(path, mmap_mode="r" if mmap_mode else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():  # an object array
            raise _fail(
                path, "holds pickled Python objects, which gankit does not load; save a float array with np.save"
            ) from None
        raise _fail(path, f"not a readable .npy file ({exc}); re-save it with np.save") from None
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise _fail(path, f"not a readable .npy file (truncated or corrupt? {reason[:160]}); re-save it") from None


def frames_hint(path: Path) -> int:
    """The frame count from the .npy header only (for sorting inputs by length); 0 when unreadable."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        return int(data.shape[-1]) if isinstance(data, np.ndarray) and data.ndim >= 1 else 0
    except Exception:  # any problem is reported properly when the file is read for vocoding
        return 0


def check_layout(
    array: np.ndarray, path: Path, frontend: MelFrontend, min_frames: int = 1, force: bool = False
) -> np.ndarray:
    """The mel's [bands, T] view after the checks its dtype and shape allow (no value is read, so a memory-mapped
    array stays on disk), or a `MelInputError` saying what is wrong and what to do."""
    n_mels = frontend.n_mels
    kind = array.dtype.kind
    if kind == "c":
        raise _fail(path, f"holds complex values ({array.dtype}), as a raw STFT would; a vocoder takes a real log-mel")
    if kind in "iub":
        raise _fail(
            path,
            f"holds {array.dtype} values; a log-mel is floating point. If the numbers are right, save "
            "mel.astype(np.float32)",
        )
    if kind != "f":
        raise _fail(path, f"holds {array.dtype} values, not numbers; save a float32 array [n_mels, frames]")
    shape = list(array.shape)
    if array.ndim == 3 and shape[0] == 1:
        array = array[0]
    elif array.ndim == 3:
        raise _fail(path, f"holds a batch of {shape[0]} mels {shape}; save one mel per file ([{n_mels}, frames])")
    if array.ndim != 2:
        raise _fail(path, f"has shape {shape}; expected [{n_mels}, frames] or [1, {n_mels}, frames]")
    bands, frames = array.shape
    if bands != n_mels:
        if frames == n_mels:
            raise _fail(
                path,
                f"has shape {shape}, which looks transposed ([frames, bands]); save mel.T, shaped "
                f"[{n_mels}, frames] as the original inference_e2e.py reads it",
            )
        if not force:
            raise _band_error(path, bands, frontend)
    if frames < min_frames:
        raise _fail(path, f"has {frames} frames; the generator needs at least {min_frames}")
    return array


def _as_float32(array: np.ndarray, copy: bool = False) -> np.ndarray:
    """C-contiguous float32; `copy`: never a view (of a memory map, say)."""
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, which is reported as such
        return np.array(array, dtype=np.float32, order="C", copy=True if copy else None)


def _nonfinite_error(path: Path, count: int, band: int, frame: int) -> MelInputError:
    return _fail(
        path,
        f"holds {count} NaN/infinite values (first at band {band}, frame {frame}); fix the model or script that "
        "made it",
    )


def check_mel(
    array: np.ndarray, path: Path, frontend: MelFrontend, min_frames: int = 1, force: bool = False
) -> np.ndarray:
    """The mel as float32 [n_mels, T], or a `MelInputError` saying what is wrong with it and what to do.

    `force`: another band count is interpolated onto the checkpoint's instead of refused."""
    mel = _as_float32(check_layout(array, path, frontend, min_frames, force))
    finite = np.isfinite(mel)
    if not finite.all():
        band, frame = np.argwhere(~finite)[0]
        raise _nonfinite_error(path, int((~finite).sum()), int(band), int(frame))
    return interpolate_bands(mel, frontend.n_mels)


def range_warning(mel: np.ndarray | object, preset: str) -> str | None:
    """A warning when the values look like another preset's log scale (see the module docstring), else None."""
    if LOG_FLOORS.get(preset) is None:
        return None
    values = np.asarray(mel)
    return range_warning_for(float(values.min()), float(values.max()), preset)


def range_warning_for(low: float, high: float, preset: str) -> str | None:
    """`range_warning` from a mel's lowest and highest values (a long mel's, gathered block by block)."""
    floor = LOG_FLOORS.get(preset)
    if floor is None:
        return None
    if floor < LOG10_FLOOR - _LN_MARGIN:  # natural log
        if low > LOG10_FLOOR - 0.01:  # log10(clamp(x, 1e-5)) sits at −5 exactly in silence
            return (
                f"values lie in [{low:.2f}, {high:.2f}] and never go below −5, like log10 mels (MelGAN) or "
                f"normalised mels (ParallelWaveGAN); preset {preset} is natural-log and its quiet frames reach "
                f"{floor:.1f}. If these are log10 mels, multiply them by ln 10 ≈ 2.303. Vocoding anyway"
            )
    elif low < floor - _LN_MARGIN:
        return (
            f"values go down to {low:.2f}, far below the log10 floor {floor:.0f} of preset {preset}, like natural-log "
            f"mels (HiFi-GAN's reach {math.log(1e-5):.1f}); if they are ln mels, divide them by ln 10 ≈ 2.303. "
            "Vocoding anyway"
        )
    return None


def read_mel(
    path: str | Path, frontend: MelFrontend, min_frames: int = 1, force: bool = False
) -> tuple[np.ndarray, str | None]:
    """(float32 mel [n_mels, T], a warning or None) from a `.npy` file, checked as the module says; `force`
    interpolates another band count (and says so in the warning) instead of refusing it."""
    p = Path(path)
    array = load_npy(p)
    mel = check_mel(array, p, frontend, min_frames, force)
    bands = array.shape[-2] if array.ndim >= 2 else frontend.n_mels
    return mel, _warnings(bands, frontend, range_warning(mel, frontend.preset))


def _warnings(bands: int, frontend: MelFrontend, value_warning: str | None) -> str | None:
    warnings = []
    if bands != frontend.n_mels:
        warnings.append(
            f"--force: {bands} bands interpolated onto the {frontend.n_mels} of preset {frontend.preset}"
            f"{_band_origin(bands)}; expect degraded audio"
        )
    if value_warning is not None:
        warnings.append(value_warning)
    return "; ".join(warnings) or None


SCAN_BLOCK_FRAMES = 8192  # frames per block of the checking pass over a memory-mapped mel (80 bands: 2.6 MB)


class MappedMel:
    """A checked `.npy` mel read from its memory map a window at a time (`gankit.infer.chunking.MelFrames`).

    `read(start, end)` gives float32 [n_mels, end − start], bands interpolated under `force`. After each read the
    map's pages are handed back (madvise DONTNEED: the page cache keeps them, the process's resident set drops them),
    so the resident size stays one block's however long the file; where madvise is missing they stay mapped until
    `close`, and the kernel reclaims them under memory pressure.
    """

    def __init__(self, path: Path, mapped: np.ndarray, mel: np.ndarray, n_mels: int) -> None:
        self.path = path
        self._mapped = mapped  # what np.load returned, which owns the map
        self._mel = mel  # its [bands, T] view
        self.n_mels = n_mels

    @property
    def frames(self) -> int:
        return int(self._mel.shape[1])

    @property
    def bands(self) -> int:
        """Bands in the file (≠ n_mels under `force`)."""
        return int(self._mel.shape[0])

    def _raw(self, start: int, end: int) -> np.ndarray:
        block = _as_float32(self._mel[:, start:end], copy=True)
        self.release()
        return block

    def read(self, start: int, end: int) -> np.ndarray:
        return interpolate_bands(self._raw(start, end), self.n_mels)

    def release(self) -> None:
        """Drop the map's resident pages (Linux; elsewhere a no-op)."""
        mapping = getattr(self._mapped, "_mmap", None)  # numpy.memmap's own mmap object
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if mapping is not None and advice is not None and hasattr(mapping, "madvise"):
            mapping.madvise(advice)

    def close(self) -> None:
        """Unmap the file (the array views die with the last reference)."""
        self.release()
        self._mapped = self._mel = np.empty((self.bands, 0), np.float32)

    def scan(self, preset: str) -> str | None:
        """The whole-file checks `check_mel` makes on values, block by block: a `MelInputError` for NaN/infinity
        (counted, the first named by band and frame as check_mel does), else `range_warning`'s verdict."""
        count, first, low, high = 0, (self.bands, self.frames), math.inf, -math.inf
        for start in range(0, self.frames, SCAN_BLOCK_FRAMES):
            block = self._raw(start, min(self.frames, start + SCAN_BLOCK_FRAMES))
            finite = np.isfinite(block)
            if not finite.all():
                count += int((~finite).sum())
                band, frame = np.argwhere(~finite)[0]
                first = min(first, (int(band), start + int(frame)))
                continue
            if count == 0:
                interpolated = interpolate_bands(block, self.n_mels)
                low, high = min(low, float(interpolated.min())), max(high, float(interpolated.max()))
        if count:
            raise _nonfinite_error(self.path, count, *first)
        return range_warning_for(low, high, preset) if self.frames else None


def open_mel(
    path: str | Path, frontend: MelFrontend, min_frames: int = 1, force: bool = False
) -> tuple[MappedMel, str | None]:
    """(a memory-mapped mel, a warning or None) from a `.npy` file: the checks and warnings `read_mel` gives, from a
    pass over the file in blocks; nothing of it stays in memory."""
    p = Path(path)
    mapped = load_npy(p, mmap_mode=True)
    mel = MappedMel(p, mapped, check_layout(mapped, p, frontend, min_frames, force), frontend.n_mels)
    try:
        value_warning = mel.scan(frontend.preset)
    except BaseException:
        mel.close()
        raise
    return mel, _warnings(mel.bands, frontend, value_warning)
