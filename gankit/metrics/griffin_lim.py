"""The Griffin-Lim baseline: a wave from a front-end's log-mel with no learned model, time-aligned with the
wave the mel came from, so it is scored by the same measures as a vocoder's resynthesis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from gankit.audio.mel_base import StftMelFrontend

# How each preset compressed its mel: natural log or log10 (see gankit.audio.mel_presets).
_NATURAL_LOG = frozenset({"hifigan", "vocos"})
_LOG10 = frozenset({"melgan", "parallel_wavegan"})


def mel_magnitude(log_mel: np.ndarray, frontend: StftMelFrontend) -> np.ndarray:
    """Undo the front-end's compression: its (normalised) log-mel → the linear mel magnitudes it came from.

    ParallelWaveGAN's per-band normalisation, when the front-end carries statistics, is undone first.
    Values the front-end clamped to its floor come back as the floor.
    """
    mel = np.asarray(log_mel, dtype=np.float64)
    mean = getattr(frontend, "mean", None)
    scale = getattr(frontend, "scale", None)
    if mean is not None and scale is not None:
        mel = mel * np.asarray(scale)[:, None] + np.asarray(mean)[:, None]
    if frontend.preset in _NATURAL_LOG:
        return np.exp(mel)
    if frontend.preset in _LOG10:
        return np.power(10.0, mel)
    known = ", ".join(sorted(_NATURAL_LOG | _LOG10))
    raise ValueError(f"griffin_lim_from_mel: does not know how preset {frontend.preset!r} compresses; known: {known}")


def griffin_lim_from_mel(
    log_mel: np.ndarray | torch.Tensor,
    frontend: StftMelFrontend,
    n_iter: int = 32,
    length: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """float32 wave [length] from a [n_mels, frames] log-mel of `frontend`, by Griffin-Lim.

    1. `mel_magnitude` undoes the log (and PWG normalisation).
    2. The STFT magnitude is the non-negative least-squares solution against the front-end's own filterbank
       (`frontend.filterbank()`) — exactly what `librosa.feature.inverse.mel_to_stft(power=1)` does, but
       with the filterbank the mel was made with rather than one rebuilt from keyword arguments, so a preset
       with its own normalisation cannot be inverted with the wrong one. The front-ends filter |STFT|, not
       its power, hence power 1.
    3. `librosa.griffinlim` (fast Griffin-Lim, momentum 0.99, random initial phase from `seed`) with the
       front-end's n_fft, hop, win and periodic Hann window, uncentred: it rebuilds the signal as the
       front-end framed it, i.e. with the front-end's padding on each side (reflect padding of n_fft//2 for
       centred presets, (n_fft − hop)//2 for HiFi-GAN/MelGAN). Dropping that padding from the start makes
       sample i of the output line up with sample i of the wave the mel came from.

    `length` defaults to `frontend.output_length(frames)` (what a vocoder makes from the same mel); the
    output is cut or zero-padded to it.
    """
    import librosa

    mel = log_mel.detach().cpu().numpy() if hasattr(log_mel, "detach") else np.asarray(log_mel)
    if mel.ndim != 2 or mel.shape[0] != frontend.n_mels:
        raise ValueError(
            f"griffin_lim_from_mel: expected a [{frontend.n_mels}, frames] log-mel of preset {frontend.preset}, "
            f"got shape {mel.shape}"
        )
    if n_iter < 1:
        raise ValueError(f"griffin_lim_from_mel: n_iter must be at least 1, got {n_iter}")
    frames = mel.shape[1]
    filterbank = frontend.filterbank().numpy().astype(np.float64)
    magnitude = librosa.util.nnls(filterbank, mel_magnitude(mel, frontend))
    wave = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=frontend.hop_length, win_length=frontend.win_length,
        n_fft=frontend.n_fft, window="hann", center=False, random_state=seed,
    )
    target = frontend.output_length(frames) if length is None else length
    wave = wave[frontend.padding : frontend.padding + target]
    if wave.size < target:  # centred framing with hop > n_fft/2 rebuilds slightly less than frames × hop
        wave = np.pad(wave, (0, target - wave.size))
    return wave.astype(np.float32)
