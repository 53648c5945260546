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
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from gankit.audio.mel import PRESETS, MelFrontend, preset_defaults
from gankit.errors import MelInputError

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
    return [name for name in sorted(PRESETS) if preset_defaults(name)["n_mels"] == n_bands]


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


def load_npy(path: Path) -> np.ndarray:
    """np.load without pickles, with one-line errors for missing, unreadable, pickled and .npz files."""
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
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():  # an object array
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


def check_mel(
    array: np.ndarray, path: Path, frontend: MelFrontend, min_frames: int = 1, force: bool = False
) -> np.ndarray:
    """The mel as float32 [n_mels, T], or a `MelInputError` saying what is wrong with it and what to do.

    `force`: another band count is interpolated onto the checkpoint's instead of refused."""
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
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, which is reported next
        mel = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(mel)
    if not finite.all():
        band, frame = np.argwhere(~finite)[0]
        raise _fail(
            path,
            f"holds {int((~finite).sum())} NaN/infinite values (first at band {band}, frame {frame}); "
            "fix the model or script that made it",
        )
    return interpolate_bands(mel, n_mels)


def range_warning(mel: np.ndarray | object, preset: str) -> str | None:
    """A warning when the values look like another preset's log scale (see the module docstring), else None."""
    floor = LOG_FLOORS.get(preset)
    if floor is None:
        return None
    values = np.asarray(mel)
    low, high = float(values.min()), float(values.max())
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
    warnings = []
    bands = array.shape[-2] if array.ndim >= 2 else frontend.n_mels
    if bands != frontend.n_mels:
        warnings.append(
            f"--force: {bands} bands interpolated onto the {frontend.n_mels} of preset {frontend.preset}"
            f"{_band_origin(bands)}; expect degraded audio"
        )
    value_warning = range_warning(mel, frontend.preset)
    if value_warning is not None:
        warnings.append(value_warning)
    return mel, "; ".join(warnings) or None
