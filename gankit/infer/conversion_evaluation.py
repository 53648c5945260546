"""Score a voice-conversion model on a prepared speaker corpus (`gankit evaluate` given a stargan_vc file).

Every held-out utterance of every speaker the model knows is converted to the other speakers of its group (or a
fixed `targets_per_source` of them), voiced (Griffin-Lim or a gankit vocoder), and scored per conversion:
- `target_share`: 1 when a speaker classifier (`metrics.conversion.SpeakerClassifier`, fitted on the group's real
  training recordings — never trained against) names the target, else 0; its mean is the share. Chance is
  1/speakers of the group; the classifier's accuracy on the real held-out recordings is the ceiling;
- `content_margin`: `content_margin(output, source, another held-out sentence of the source speaker)`, > 0 while
  the words survive; `voicing_agreement`: the share of aligned frames on which output and source agree on voiced
  speech;
- `mcd_db`: MCD-DTW against the target speaker's own recording of the same sentence (None where the corpus has
  none, or no transcript says it is the same sentence);
- `f0_shift`: the fraction of the source→target log-F0 gap the output covered (target mean from its first
  `F0_FILES` training recordings).
The same rows are made for the no-conversion baseline (the source's mel voiced by the same vocoder, scored against
each target) and, when given, an untrained generator. Summaries: per target and pooled ("all").

Speed: Griffin-Lim and pyin dominate (≈ 1 s and 0.3 s per 4 s utterance on one core); every wave is analysed once
(conversion_scores.py), BLAS and torch run one thread each (their small matrices gain nothing from more, and on a
busy machine spinning threads cost several times over), and the source utterances are shared among `workers`
forked processes (CPU models only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from gankit.audio.io import read_audio
from gankit.errors import DataError, GankitError
from gankit.infer.conversion import VoiceConverter
from gankit.infer.conversion_scores import (
    BASELINE,
    MODEL,
    UNTRAINED,
    ConversionResults,
    GroupInfo,
    Row,
    WaveFeatures,
    content_margin_of,
    f0_shift_of,
    voicing_agreement_of,
    wave_features,
)
from gankit.infer.parallel import default_workers, mapped, one_thread
from gankit.infer.vocoder import Vocoder

# Training recordings per target speaker its mean log-F0 is taken over: ~40 s of speech in vc-demo, a stable mean,
# at a fraction of the pyin time of all of them.
F0_FILES = 10


@dataclass(frozen=True)
class Utterance:
    id: str  # <speaker>/<name>
    text: str
    path: Path

    @property
    def speaker(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[-1]


@dataclass
class SpeakerCorpus:
    """The train and held-out utterances of a prepared speaker corpus, per speaker (sorted by id)."""

    root: Path
    train: dict[str, list[Utterance]]
    held_out: dict[str, list[Utterance]]

    def find(self, utterance_id: str) -> Utterance | None:
        speaker = utterance_id.split("/", 1)[0]
        for u in (*self.held_out.get(speaker, ()), *self.train.get(speaker, ())):
            if u.id == utterance_id:
                return u
        return None


def read_speaker_corpus(root: str | Path) -> SpeakerCorpus:
    """DIR written by `gankit prepare … --format speakers` (or `--builtin vc-demo`): its train.txt, val.txt and
    wavs/<speaker>/<utterance>.wav."""
    from gankit.data.filelist import read_filelist

    path = Path(root)
    if not (path / "val.txt").is_file() or not (path / "train.txt").is_file():
        raise DataError(f"{path}: not a prepared speaker corpus (it needs train.txt and val.txt); prepare one with "
                        "`gankit prepare SRC OUT --format speakers` or `gankit prepare --builtin vc-demo OUT`")
    split: list[dict[str, list[Utterance]]] = []
    for name in ("train.txt", "val.txt"):
        by_speaker: dict[str, list[Utterance]] = {}
        for entry in sorted(read_filelist(path / name), key=lambda e: e.id):
            u = Utterance(entry.id, entry.text, path / "wavs" / f"{entry.id}.wav")
            by_speaker.setdefault(u.speaker, []).append(u)
        split.append(by_speaker)
    return SpeakerCorpus(path, split[0], split[1])


@dataclass
class Source:
    """A held-out utterance to convert, another sentence of its speaker (for the content margin) and its targets."""

    utterance: Utterance
    other: Utterance | None
    targets: list[str]


def plan_conversions(converter: VoiceConverter, corpus: SpeakerCorpus, max_utterances: int | None,
                     targets_per_source: int | None) -> list[Source]:
    """Per speaker of the model found in the corpus, its first `max_utterances` held-out utterances, each with its
    targets: the other speakers of its group that the corpus has training recordings of (a fixed subset of
    `targets_per_source`, rotating with the utterance so that every target is used)."""
    plan: list[Source] = []
    for speaker in converter.speakers:
        held = corpus.held_out.get(speaker, [])
        partners = [p for p in converter.partners(speaker) if corpus.train.get(p)]
        if not held or not partners:
            continue
        k = len(partners) if targets_per_source is None else min(targets_per_source, len(partners))
        for i, u in enumerate(held[:max_utterances]):
            plan.append(Source(u, _other_sentence(u, held), [partners[(i + j) % len(partners)] for j in range(k)]))
    if not plan:
        raise DataError(f"{corpus.root}: no held-out utterance of a speaker of the model with a partner to convert "
                        f"to (the model's speakers: {', '.join(converter.speakers)}; the corpus's held-out speakers: "
                        f"{', '.join(sorted(corpus.held_out)) or 'none'})")
    return plan


def _duration(u: Utterance) -> float:
    import soundfile

    try:
        info = soundfile.info(str(u.path))
    except (RuntimeError, OSError):
        return 0.0  # an unreadable file is reported when it is read
    return info.frames / info.samplerate


def _other_sentence(u: Utterance, held: Sequence[Utterance]) -> Utterance | None:
    """The held-out utterance of the same speaker closest in duration whose sentence differs (content_margin asks
    for a similar length)."""
    from gankit.data.speakers import normalise_text

    own = normalise_text(u.text)
    others = [o for o in held if o.id != u.id and (not own or normalise_text(o.text) != own)]
    if not others:
        return None
    length = _duration(u)
    return min(others, key=lambda o: (abs(_duration(o) - length), o.id))


def _reference(corpus: SpeakerCorpus, source: Utterance, target: str) -> tuple[Utterance | None, str]:
    """The target's recording of the source's sentence (same utterance name, same transcript), or why none."""
    from gankit.data.speakers import normalise_text

    ref = corpus.find(f"{target}/{source.name}")
    if ref is None or not ref.path.is_file():
        return None, f"the corpus has no recording {target}/{source.name}"
    if not normalise_text(source.text) or not normalise_text(ref.text):
        return None, f"no transcript says {target}/{source.name} is the sentence of {source.id}"
    if normalise_text(source.text) != normalise_text(ref.text):
        return None, f"{target}/{source.name} is another sentence than {source.id}"
    return ref, ""


class Scorer:
    """Everything one source utterance's conversions need, in one object a forked worker inherits: the systems,
    the voicing, the groups' classifiers, the targets' mean log-F0, and a cache of real recordings (at the model's
    rate, peak-normalised as in training) and their features."""

    def __init__(self, converters: dict[str, VoiceConverter], vocoder: Vocoder | str, griffin_lim_iters: int,
                 corpus: SpeakerCorpus) -> None:
        self.converters = converters
        self.converter = converters[MODEL]
        self.vocoder = vocoder
        self.griffin_lim_iters = griffin_lim_iters
        self.corpus = corpus
        self.rate = self.converter.sample_rate
        self.classifiers: dict[str, Any] = {}
        self.target_f0: dict[str, float | None] = {}
        self._waves: dict[str, np.ndarray] = {}
        self._features: dict[str, WaveFeatures] = {}

    # --- real recordings --------------------------------------------------------------------------------
    def mel(self, u: Utterance) -> Tensor:
        """The normalised log-mel the converter takes (not kept: each source is converted once)."""
        wave, rate = read_audio(u.path, target_sr=self.rate)
        mel, self._waves[u.id] = self.converter.analyse(wave, rate)
        return mel

    def wave(self, u: Utterance) -> np.ndarray:
        if u.id not in self._waves:
            self.mel(u)
        return self._waves[u.id]

    def features(self, u: Utterance) -> WaveFeatures:
        if u.id not in self._features:
            self._features[u.id] = wave_features(self.wave(u), self.rate)
        return self._features[u.id]

    def readable(self, utterances: Sequence[Utterance], log: Callable[[str], None],
                 limit: int | None = None) -> list[Utterance]:
        """The first `limit` (default all) whose recording can be read; each one that cannot is logged."""
        kept: list[Utterance] = []
        for u in utterances:
            if limit is not None and len(kept) >= limit:
                break
            try:
                self.wave(u)
            except GankitError as exc:
                log(f"left out {u.id}: {exc}")
                continue
            kept.append(u)
        return kept

    # --- set-up -----------------------------------------------------------------------------------------
    def fit_classifiers(self, groups: Sequence[str], log: Callable[[str], None]) -> dict[str, GroupInfo]:
        from gankit.metrics.conversion import SpeakerClassifier

        infos = {}
        for group in groups:
            speakers = [s for s, g in zip(self.converter.speakers, self.converter.groups, strict=True)
                        if g == group and self.corpus.train.get(s)]
            if len(speakers) < 2:
                raise DataError(f"{self.corpus.root}: group {group!r} has training recordings of {len(speakers)} "
                                "speaker(s) of the model; the speaker classifier needs two or more")
            train = self.readable([u for s in speakers for u in self.corpus.train[s]], log)
            held = self.readable([u for s in speakers for u in self.corpus.held_out.get(s, [])], log)
            classifier = SpeakerClassifier().fit([self.wave(u) for u in train], [u.speaker for u in train], self.rate)
            ceiling = classifier.target_share([self.wave(u) for u in held], [u.speaker for u in held]) if held else 0.0
            self.classifiers[group] = classifier
            infos[group] = GroupInfo(speakers, 1.0 / len(speakers), ceiling, len(train), len(held))
            log(f"speaker classifier{f' ({group})' if group else ''}: {len(speakers)} speakers, fitted on "
                f"{len(train)} training recordings, {ceiling:.2f} on {len(held)} real held-out ones (chance "
                f"{1 / len(speakers):.2f})")
        self._waves.clear()  # the training recordings are not needed again; forked workers need not copy them
        return infos

    def target_log_f0(self, speaker: str) -> float | None:
        """The speaker's mean log-F0 over its first F0_FILES training recordings (None when none is voiced)."""
        from gankit.metrics.conversion import speaker_log_f0_mean

        files = self.readable(self.corpus.train[speaker], lambda _: None, F0_FILES)
        try:
            return speaker_log_f0_mean([self.wave(u) for u in files], self.rate)
        except ValueError:  # none voiced, or none readable
            return None

    # --- one source utterance ---------------------------------------------------------------------------
    def voice(self, converter: VoiceConverter, norm_mel: Tensor) -> WaveFeatures:
        wave = converter.voice(converter.denormalise(norm_mel), self.vocoder, self.griffin_lim_iters)
        return wave_features(wave, self.rate)

    def score_source(self, source: Source) -> dict[str, list[Row]] | str:
        """Rows per system for one source utterance, or why it could not be scored."""
        u = source.utterance
        try:
            norm_mel = self.mel(u)
            src = self.features(u)
            other: WaveFeatures | str = f"no other held-out sentence of {u.speaker}"
            if source.other is not None:
                try:
                    other = self.features(source.other)
                except GankitError as exc:  # an unreadable other sentence costs the content margin only
                    other = str(exc)
            outputs = {BASELINE: [self.voice(self.converter, norm_mel)]}
            for name, system in self.converters.items():
                batch = norm_mel[None].expand(len(source.targets), -1, -1)
                sources = [u.speaker] * len(source.targets) if system.source_conditioning else None
                outputs[name] = [self.voice(system, mel) for mel in system.convert_mel(batch, source.targets, sources)]
            classifier = self.classifiers[self.converter.group_of(u.speaker)]
            rows: dict[str, list[Row]] = {}
            for name, waves in outputs.items():
                predicted = classifier.predict([w.wave for w in waves])
                if name == BASELINE:  # one output, scored against every target
                    rows[name] = self._rows(waves[0], src, source, other, predicted[0], source.targets)
                else:
                    rows[name] = [row for w, p, t in zip(waves, predicted, source.targets, strict=True)
                                  for row in self._rows(w, src, source, other, p, [t])]
            return rows
        except (GankitError, ValueError, OSError) as exc:  # unreadable, too short: reported, the rest scored
            return str(exc)

    def _rows(self, out: WaveFeatures, src: WaveFeatures, source: Source, other: WaveFeatures | str,
              predicted: str, targets: Sequence[str]) -> list[Row]:
        """`other`: the other sentence's features, or why there are none."""
        from gankit.metrics.conversion import mcd_dtw

        u = source.utterance
        reasons: dict[str, str] = {}
        margin = None
        if isinstance(other, str):
            reasons["content_margin"] = other
        else:
            margin = content_margin_of(out, src, other)
        agreement = voicing_agreement_of(out, src)
        rows = []
        for target in targets:
            why = dict(reasons)
            ref, missing = _reference(self.corpus, u, target)
            mcd = None
            if ref is None:
                why["mcd_db"] = missing
            else:
                try:
                    mcd = mcd_dtw(self.wave(ref), out.wave, self.rate)
                except GankitError as exc:  # an unreadable reference costs this measure only
                    why["mcd_db"] = str(exc)
                else:
                    if mcd is None:
                        why["mcd_db"] = f"{ref.id} has no non-silent frame"
            shift, no_shift = f0_shift_of(out, src, self.target_f0[target])
            if shift is None:
                why["f0_shift"] = no_shift
            rows.append(({"source_id": u.id, "source": u.speaker, "target": target,
                          "target_share": float(predicted == target), "content_margin": margin,
                          "voicing_agreement": agreement, "mcd_db": mcd, "f0_shift": shift}, why))
        return rows


def evaluate_conversion(
    converter: VoiceConverter,
    data: str | Path | SpeakerCorpus,
    vocoder: Vocoder | str = "griffin-lim",
    *,
    untrained: VoiceConverter | None = None,
    max_utterances: int | None = None,
    targets_per_source: int | None = None,
    griffin_lim_iters: int = 32,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ConversionResults:
    """Score `converter` (and the baseline, and `untrained` when given) on the speaker corpus `data`; see the
    module docstring. `workers`: processes (default `default_workers()`; one when a model is not on the CPU). A
    source utterance that cannot be read or scored is logged and left out of every system; DataError when none
    could be scored."""
    from tqdm import tqdm

    for name, value in (("max_utterances", max_utterances), ("targets_per_source", targets_per_source),
                        ("workers", workers)):
        if value is not None and value < 1:
            raise DataError(f"{name} must be at least 1, got {value}")
    corpus = data if isinstance(data, SpeakerCorpus) else read_speaker_corpus(data)
    plan = plan_conversions(converter, corpus, max_utterances, targets_per_source)
    converters = {MODEL: converter, **({UNTRAINED: untrained} if untrained is not None else {})}
    on_cpu = all(c.device.type == "cpu" for c in converters.values()) and (
        isinstance(vocoder, str) or vocoder.device.type == "cpu")
    processes = (workers or default_workers()) if on_cpu else 1  # a forked CUDA context is unusable
    scorer = Scorer(converters, vocoder, griffin_lim_iters, corpus)
    systems = [MODEL, BASELINE, *([UNTRAINED] if untrained is not None else [])]
    with one_thread():
        infos = scorer.fit_classifiers(sorted({converter.group_of(s.utterance.speaker) for s in plan}), log)
        targets = sorted({t for s in plan for t in s.targets})
        with mapped(scorer, "target_log_f0", targets, processes) as means:
            scorer.target_f0 = dict(zip(targets, means, strict=True))
        results = ConversionResults({s: [] for s in systems}, {s: [] for s in systems}, infos,
                                    dict(scorer.target_f0), F0_FILES)
        outputs = [1 + len(s.targets) * len(converters) for s in plan]
        with mapped(scorer, "score_source", plan, processes) as scored_sources, \
                tqdm(total=sum(outputs), desc="evaluate", unit="output", disable=not progress) as bar:
            for source, count, scored in zip(plan, outputs, scored_sources, strict=True):
                bar.update(count)
                if isinstance(scored, str):
                    message = f"skipped {source.utterance.id}: {scored}"
                    if bar.disable:
                        log(message)
                    else:
                        bar.write(message)
                    results.skipped.append({"id": source.utterance.id, "reason": scored})
                    continue
                for name in systems:
                    results.add(name, scored[name])
    if not results.rows[MODEL]:
        raise DataError(f"none of the {len(plan)} held-out utterance(s) could be converted and scored; see the "
                        "messages above")
    return results
