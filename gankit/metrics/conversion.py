"""Objective measures of voice conversion: whether a converted utterance sounds like its target speaker
(a speaker classifier trained on real recordings), whether it still says the source's words (DTW content
distance, voicing agreement), how far its spectrum is from a reference (MCD with DTW), and how far its pitch
moved toward the target (log-F0). Pure functions over numpy waves (float mono, one sample rate); never
imported by training code.

Conventions shared by every function here:
- MFCCs (`mfcc_frames`): 25 ms Hann window, 10 ms hop at any sample rate, 40 mel bands from 0 Hz to Nyquist,
  log-mel floored 60 dB under the loudest band, c1..c_n (c0, the log frame energy, is dropped: it follows the
  recording gain and loudness, not the voice or the words).
- Content: MFCCs c1..c12 (the speech-recognition 13 less c0; higher coefficients resolve harmonics, i.e.
  pitch, which conversion changes on purpose), mean-normalised per utterance (CMN, no variance scaling), compared
  frame by frame by cosine distance 1 − cos θ ∈ [0, 2], aligned by `librosa.sequence.dtw` (steps (1,1), (1,0),
  (0,1), unit weights). Chosen by measurement on festvox-ru (6 pairs of different sentences, one speaker,
  librosa's 80 dB floor): (distance to a different sentence) / (distance to a 10 %-faster time-stretched copy)
  had median 2.62 with CMN + cosine, against 1.67 with CMVN + euclidean and 2.50 with 20 coefficients; and for
  a proxy "converted" copy (pitch-shifted +4 semitones with its formants, plus a spectral tilt), the margin
  ratio d(copy, other sentence) / d(copy, its source) had minimum 1.12 with CMN + cosine while CMVN fell
  below 1 (variance scaling blows up the low-variance coefficients that a formant shift disturbs). With the
  60 dB floor used here: 2.64 and 1.11. Cosine compares the direction of a frame's deviation from the
  utterance mean, not its length.
- MCD alignment: DTW with euclidean cost on the mel-cepstra c̃(1..order), the distance MCD itself sums.
- Pitch: `pitch.f0_track` (pyin, 10 ms hop) with a speech range of 60–500 Hz.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gankit.metrics.cepstral import frame_mcd, loud_frames, mel_cepstrum
from gankit.metrics.pitch import f0_track
from gankit.metrics.summary import Summary, summarise

# Speech F0 range: below 60 Hz is creak, above 500 Hz is beyond ordinary speaking voices (children's
# shouting aside).
SPEECH_FMIN = 60.0
SPEECH_FMAX = 500.0
# 40 mel bands: the usual speech-recognition front-end; librosa's default 128 leaves empty bands at 16 kHz
# with a 512-point FFT.
_N_MELS = 40
# Log-mel floor under the utterance's loudest band: quieter than this is background noise, not voice or words.
_FLOOR_DB = 60.0
# Below this, a per-utterance standard deviation is numerical noise (a coefficient constant over the
# utterance, e.g. digital silence), and dividing by it would blow the noise up.
_STD_FLOOR = 1e-8
# Half a semitone in natural-log F0: below this gap, one pyin bin (0.1 semitone) of error in a mean moves the
# covered fraction by more than 0.2.
_MIN_F0_GAP = math.log(2.0) / 24.0
# c1..c12: see the module notes.
CONTENT_MFCC = 12
ALL_TARGETS = "all"


def _mono(wave: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(wave)
    if array.ndim != 1:
        raise ValueError(f"conversion metrics: the {name} must be a mono [T] wave, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"conversion metrics: the {name} wave is empty")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"conversion metrics: the {name} must be a float wave, got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"conversion metrics: the {name} wave has NaN or infinite samples")
    return array.astype(np.float32, copy=False)


def _frame_sizes(sample_rate: int) -> tuple[int, int, int]:
    window = round(0.025 * sample_rate)
    hop = max(1, round(0.01 * sample_rate))  # the same hop as pitch.f0_track, so their frames correspond
    return window, hop, 1 << (window - 1).bit_length()


def mfcc_frames(wave: np.ndarray, sample_rate: int, n_mfcc: int = 20) -> np.ndarray:
    """[frames, n_mfcc] MFCCs c1..c_n of a wave: 25 ms Hann window, 10 ms hop, 40 mel bands, log-mel floored
    60 dB under the utterance's loudest band, c0 dropped.

    Frame i is centred on sample i · hop (librosa's centred framing), as in `pitch.f0_track`. The floor makes
    pauses read as one flat silence whatever noise fills them: on festvox-ru, white noise 45 dB under the peak
    moved a sentence 4 % of the way to a different sentence with it, 25 % with librosa's 80 dB.
    """
    import librosa

    if n_mfcc < 1:
        raise ValueError(f"mfcc_frames: n_mfcc must be at least 1, got {n_mfcc}")
    window, hop, n_fft = _frame_sizes(sample_rate)
    mel = librosa.feature.melspectrogram(
        y=_mono(wave, "wave"), sr=sample_rate, n_fft=n_fft, hop_length=hop, win_length=window, n_mels=_N_MELS
    )
    log_mel = librosa.power_to_db(mel, ref=np.max, top_db=_FLOOR_DB)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc + 1)[1:].T.astype(np.float64)


def normalised(feats: np.ndarray, variance: bool = True) -> np.ndarray:
    """Per-utterance cepstral mean normalisation of [frames, dims] features, and variance normalisation too
    (CMVN) when `variance`.

    Removes what is constant over the utterance (the speaker's average envelope, the channel) and keeps how
    frames differ from each other, which is what the words are. The content measures use mean only (see the
    module notes for the measurement).
    """
    array = np.asarray(feats, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"normalised: needs [frames, dims] features with at least one frame, got {array.shape}")
    centred = array - array.mean(axis=0)
    return centred / np.maximum(array.std(axis=0), _STD_FLOOR) if variance else centred


def _dtw_path(a: np.ndarray, b: np.ndarray, metric: str) -> tuple[float, np.ndarray]:
    """(accumulated cost, [steps, 2] path from start to end) of DTW between [frames, dims] a and b."""
    import librosa

    cost, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric=metric)
    return float(cost[-1, -1]), path[::-1]


def content_features(wave: np.ndarray, sample_rate: int, n_mfcc: int = CONTENT_MFCC) -> np.ndarray:
    """[frames, n_mfcc] mean-normalised MFCCs c1..c_n, each frame scaled to length 1/√2, so that the squared
    euclidean distance of two frames is their cosine distance 1 − cos θ.

    Computing the cosine distance this way makes a frame's distance to itself exactly 0 (1 − u·u/|u|² can
    round to ±1e-16). A frame equal to the utterance mean has no direction and stays 0, at distance ½ from all.
    """
    centred = normalised(mfcc_frames(wave, sample_rate, n_mfcc), variance=False)
    lengths = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(lengths, _STD_FLOOR) / math.sqrt(2.0)


def _content_path(a: np.ndarray, b: np.ndarray, sample_rate: int, n_mfcc: int) -> tuple[float, np.ndarray]:
    return _dtw_path(content_features(a, sample_rate, n_mfcc), content_features(b, sample_rate, n_mfcc), "sqeuclidean")


def feature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """`content_distance` of two waves' `content_features` (for callers that cache the features)."""
    total, path = _dtw_path(a, b, "sqeuclidean")
    return total / len(path)


def feature_voicing_agreement(output: np.ndarray, source: np.ndarray, output_speech: np.ndarray,
                              source_speech: np.ndarray) -> float:
    """`voicing_agreement` from the waves' `content_features` and `voiced_speech` flags."""
    _, path = _dtw_path(output, source, "sqeuclidean")
    out_frames = np.minimum(path[:, 0], len(output_speech) - 1)
    src_frames = np.minimum(path[:, 1], len(source_speech) - 1)
    return float(np.mean(output_speech[out_frames] == source_speech[src_frames]))


def f0_shift_fraction(output_mean: float, source_mean: float, target_mean: float,
                      min_gap: float = _MIN_F0_GAP) -> float | None:
    """`f0_shift_toward` from the mean log-F0s: (μ_out − μ_src) / (target − μ_src); None under `min_gap`."""
    gap = float(target_mean) - source_mean
    if abs(gap) < min_gap:
        return None
    return (output_mean - source_mean) / gap


def content_distance(a: np.ndarray, b: np.ndarray, sample_rate: int, n_mfcc: int = CONTENT_MFCC) -> float:
    """Mean cosine distance (in [0, 2]) between the frames of two waves along their DTW path: accumulated path
    cost divided by the number of path steps, on `content_features`; 0 for identical waves.

    Small when both say the same sounds in the same order, whatever the tempo.
    """
    total, path = _content_path(a, b, sample_rate, n_mfcc)
    return total / len(path)


def content_margin(
    output: np.ndarray,
    source: np.ndarray,
    other_sentence: np.ndarray,
    sample_rate: int,
    n_mfcc: int = CONTENT_MFCC,
) -> float:
    """content_distance(output, other_sentence) − content_distance(output, source): positive when the output
    is closer to its own source sentence than to a different one, i.e. the words survived conversion.

    `other_sentence` should be a different sentence by the *source* speaker, of similar length: then both
    distances carry the same speaker mismatch (the output is in the target's voice), which cancels in the
    difference. MFCCs are not speaker-free: a copy pitch- and formant-shifted by 4 semitones is about as far
    from its source as a different sentence is, which is why the margin, not the distance, is the measure.
    """
    return content_distance(output, other_sentence, sample_rate, n_mfcc) - content_distance(
        output, source, sample_rate, n_mfcc
    )


def voiced_speech(
    wave: np.ndarray,
    sample_rate: int,
    fmin: float = SPEECH_FMIN,
    fmax: float = SPEECH_FMAX,
    silence_db: float = 40.0,
) -> np.ndarray:
    """[frames] voiced-speech flags on the 10 ms frames of `mfcc_frames`: pyin calls the frame voiced and its
    25 ms RMS is within `silence_db` dB of the utterance's loudest frame.

    pyin judges periodicity alone, so it calls a periodic residue in a pause voiced (a reverberation tail, a
    vocoder's leakage: a 10 % phase-vocoder time stretch of synthetic vowels made every pause frame voiced at
    −40 to −70 dB); a listener hears silence there.
    """
    import librosa

    array = _mono(wave, "wave")
    window, hop, _ = _frame_sizes(sample_rate)
    _, voiced = f0_track(array, sample_rate, fmin, fmax)
    rms = librosa.feature.rms(y=array, frame_length=window, hop_length=hop)[0]
    frames = min(len(voiced), len(rms))  # both are 1 + len // hop; min() guards a one-frame rounding
    level_db = 20.0 * np.log10(np.maximum(rms[:frames], 1e-10))
    return voiced[:frames] & (level_db > level_db.max() - silence_db)


def voicing_agreement(
    output: np.ndarray,
    source: np.ndarray,
    sample_rate: int,
    fmin: float = SPEECH_FMIN,
    fmax: float = SPEECH_FMAX,
    silence_db: float = 40.0,
) -> float:
    """Share in [0, 1] of DTW-aligned frame pairs on which `output` and `source` agree on voiced speech
    (`voiced_speech`: periodic and not silent, so pauses, unvoiced consonants and whisper all count as not).

    Alignment is the content alignment (`content_distance`'s path), so a tempo change costs little; a
    conversion that turns vowels into noise, or fills pauses with buzz, costs.
    """
    return feature_voicing_agreement(
        content_features(output, sample_rate), content_features(source, sample_rate),
        voiced_speech(output, sample_rate, fmin, fmax, silence_db), voiced_speech(source, sample_rate, fmin, fmax,
                                                                                  silence_db))


def mcd_dtw(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    order: int = 24,
    alpha: float | None = None,
    silence_db: float = 40.0,
) -> float | None:
    """Mel-cepstral distortion in dB between waves of different timing (a conversion and a real recording of
    the target saying the same sentence); None when the reference has no non-silent frame. 0 for identical waves.

    `cepstral.mcd` pairs frames by position (it trims to the shorter wave, no DTW), which is right for a
    vocoder's resynthesis only. Here both waves get `cepstral.mel_cepstrum` (25 ms frames, 5 ms hop,
    all-pass warping) and DTW on c̃(1..order) with euclidean cost pairs the frames; per pair
    MCD = 10/ln10 · sqrt(2 · Σ_{d=1..order} (c̃_d − ĉ_d)²), c̃(0) excluded, averaged over the path steps
    whose reference frame is within `silence_db` dB of the reference's loudest frame (as `cepstral.mcd`).
    """
    if order < 1:
        raise ValueError(f"mcd_dtw: order must be at least 1, got {order}")
    ref_mc, ref_energy = mel_cepstrum(_mono(reference, "reference"), sample_rate, order, alpha)
    est_mc, _ = mel_cepstrum(_mono(estimate, "estimate"), sample_rate, order, alpha)
    _, path = _dtw_path(ref_mc[:, 1:], est_mc[:, 1:], "euclidean")
    scored = path[loud_frames(ref_energy, silence_db)[path[:, 0]]]
    if len(scored) == 0:
        return None
    return float(np.mean(frame_mcd(ref_mc[scored[:, 0]], est_mc[scored[:, 1]])))


def _voiced_log_f0(wave: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    f0, voiced = f0_track(_mono(wave, "wave"), sample_rate, fmin, fmax)
    return np.log(f0[voiced])


def log_f0_stats(
    wave: np.ndarray, sample_rate: int, fmin: float = SPEECH_FMIN, fmax: float = SPEECH_FMAX
) -> tuple[float, float] | None:
    """(mean, standard deviation) of natural-log F0 (log Hz) over the wave's pyin-voiced frames; None when
    no frame is voiced."""
    log_f0 = _voiced_log_f0(wave, sample_rate, fmin, fmax)
    if log_f0.size == 0:
        return None
    return float(log_f0.mean()), float(log_f0.std())


def speaker_log_f0_mean(
    waves: Sequence[np.ndarray], sample_rate: int, fmin: float = SPEECH_FMIN, fmax: float = SPEECH_FMAX
) -> float:
    """Mean natural-log F0 over the voiced frames of all of a speaker's recordings pooled (longer recordings
    weigh more): the `target_mean` of `f0_shift_toward`."""
    pooled = np.concatenate([_voiced_log_f0(wave, sample_rate, fmin, fmax) for wave in waves])
    if pooled.size == 0:
        raise ValueError("speaker_log_f0_mean: no recording has a voiced frame")
    return float(pooled.mean())


def f0_shift_toward(
    output: np.ndarray,
    source: np.ndarray,
    target_mean: float,
    sample_rate: int,
    min_gap: float = _MIN_F0_GAP,
) -> float | None:
    """Fraction of the source→target log-F0 gap the output covered: (μ_out − μ_src) / (target_mean − μ_src),
    with μ the mean natural-log F0 over voiced frames (`log_f0_stats`) and `target_mean` in the same unit
    (`speaker_log_f0_mean` of target recordings).

    1 = the output's pitch reached the target's, 0 = unchanged from the source, < 0 = moved away, > 1 =
    overshot. None when the output or source has no voiced frame, or when |target_mean − μ_src| < `min_gap`
    (default half a semitone, ln2/24): one pyin bin of error would move the fraction of a smaller gap by > 0.2.
    """
    source_stats = log_f0_stats(source, sample_rate)
    output_stats = log_f0_stats(output, sample_rate)
    if source_stats is None or output_stats is None:
        return None
    return f0_shift_fraction(output_stats[0], source_stats[0], target_mean, min_gap)


class SpeakerClassifier:
    """Which speaker a recording sounds like: logistic regression (softmax over speakers, lbfgs, fixed
    random_state) on standardised per-utterance MFCC statistics (each coefficient's mean and standard
    deviation over the utterance, a 2·n_mfcc vector; no CMVN, which would remove the speaker).

    Trained on held-out real recordings of the speakers at evaluation time and never saved: it is small,
    fits in well under a second, and retraining keeps it in step with the evaluation's speaker set.
    """

    def __init__(self, n_mfcc: int = 20, regularisation: float = 1.0, random_state: int = 0) -> None:
        self.n_mfcc = n_mfcc
        self.regularisation = regularisation
        self.random_state = random_state
        self.sample_rate: int | None = None
        self._model: Any = None

    def features(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """[utterances, 2·n_mfcc]: per-utterance MFCC means then standard deviations."""
        rows = []
        for wave in waves:
            mfcc = mfcc_frames(wave, sample_rate, self.n_mfcc)
            rows.append(np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)]))
        return np.stack(rows)

    def fit(self, waves: Sequence[np.ndarray], speakers: Sequence[str], sample_rate: int) -> SpeakerClassifier:
        """Train on real recordings `waves` of the named `speakers` (one name per wave, at least two names)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(waves) != len(speakers):
            raise ValueError(f"SpeakerClassifier.fit: {len(waves)} waves but {len(speakers)} speaker names")
        if len(set(speakers)) < 2:
            raise ValueError("SpeakerClassifier.fit: needs recordings of at least two speakers")
        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.regularisation, max_iter=1000, random_state=self.random_state),
        )
        model.fit(self.features(waves, sample_rate), np.asarray(speakers))
        self._model = model
        self.sample_rate = sample_rate
        return self

    def _fitted(self) -> Any:
        if self._model is None:
            raise RuntimeError("SpeakerClassifier: call fit() on real recordings first")
        return self._model

    @property
    def speakers(self) -> list[str]:
        """The speaker names it was trained on, sorted."""
        return [str(name) for name in self._fitted().classes_]

    @property
    def chance(self) -> float:
        """The target share of guessing: 1 / number of speakers."""
        return 1.0 / len(self.speakers)

    def predict(self, waves: Sequence[np.ndarray]) -> list[str]:
        """The most probable speaker of each wave (at the sample rate it was trained on)."""
        model = self._fitted()
        assert self.sample_rate is not None  # set with the model
        return [str(name) for name in model.predict(self.features(waves, self.sample_rate))]

    def target_share(self, waves: Sequence[np.ndarray], targets: Sequence[str]) -> float:
        """Share in [0, 1] of `waves` classified as their target speaker; compare with `chance`."""
        if len(waves) != len(targets):
            raise ValueError(f"SpeakerClassifier.target_share: {len(waves)} waves but {len(targets)} targets")
        if len(waves) == 0:
            raise ValueError("SpeakerClassifier.target_share: no waves")
        unknown = sorted(set(targets) - set(self.speakers))
        if unknown:
            raise ValueError(f"SpeakerClassifier.target_share: targets {unknown} were not in the training speakers")
        predicted = self.predict(waves)
        return float(np.mean([p == t for p, t in zip(predicted, targets, strict=True)]))


def summarise_conversions(
    rows: Sequence[Mapping[str, Any]], target_key: str = "target", confidence: float = 0.95
) -> dict[str, dict[str, Summary]]:
    """Per target speaker, and over all rows pooled (key "all"), each measure's mean with its t-interval
    (`summary.summarise`). A row is one converted utterance: `target_key` names its target speaker, every
    other key is a measure (float, or None where it could not score)."""
    groups: dict[str, list[dict[str, float | None]]] = {}
    pooled: list[dict[str, float | None]] = []
    for index, row in enumerate(rows):
        if target_key not in row:
            raise ValueError(f"summarise_conversions: row {index} has no {target_key!r}")
        target = str(row[target_key])
        if target == ALL_TARGETS:
            raise ValueError(f"summarise_conversions: {ALL_TARGETS!r} is reserved for the pooled summary")
        measures = {key: value for key, value in row.items() if key != target_key}
        groups.setdefault(target, []).append(measures)
        pooled.append(measures)
    result = {target: summarise(group, confidence) for target, group in groups.items()}
    result[ALL_TARGETS] = summarise(pooled, confidence)
    return result
