"""`gankit evaluate` for a music-translation model: every held-out phrase of every domain translated to every other
domain, and what each translation did — its **target share** (a timbre classifier, MFCC statistics + logistic
regression fitted on the domains' real training recordings, never trained against, says the target) and its
**chroma margin** (the pitch classes it kept of its input, against another phrase: `gankit.metrics.music`) — beside
the no-translation baseline (the input itself: the notes all kept, the source's timbre) and, optionally, the same
model with freshly seeded weights. Per target and pooled, mean and 95 % interval."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import DataError

MODEL, BASELINE, UNTRAINED = "model", "no translation", "untrained"
MEASURES = ("target_share", "chroma_margin")


@dataclass
class DomainCorpus:
    """A prepared domain corpus: its domains and each one's training and held-out recordings (sorted by id)."""

    root: Path
    domains: list[str]
    train: dict[str, list[Path]]
    held_out: dict[str, list[Path]]


def read_domain_corpus(root: Path) -> DomainCorpus:
    """OUT of `gankit prepare … --format domains` (domains.tsv, train.txt, val.txt, wavs/); DataError naming what is
    missing."""
    from gankit.data.domains import DOMAINS_FILE, read_domain_table
    from gankit.data.filelist import read_filelist
    from gankit.data.speakers import speaker_of

    if not (root / DOMAINS_FILE).is_file():
        raise DataError(f"{root}: no {DOMAINS_FILE}; give the folder `gankit prepare SRC OUT --format domains` wrote")
    domains = [d.name for d in read_domain_table(root / DOMAINS_FILE)]
    split: dict[str, dict[str, list[Path]]] = {}
    for name, listing in (("train", "train.txt"), ("held_out", "val.txt")):
        table: dict[str, list[Path]] = {d: [] for d in domains}
        for entry in sorted(read_filelist(root / listing), key=lambda e: e.id):
            if speaker_of(entry.id) in table:
                table[speaker_of(entry.id)].append(root / "wavs" / f"{entry.id}.wav")
        split[name] = table
    return DomainCorpus(root, domains, split["train"], split["held_out"])


@dataclass
class TranslationResults:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # system → one row per translation
    classifier_accuracy: float | None = None  # on the real held-out recordings: the ceiling of target share
    chance: float = 0.0


def untrained_copy(translator: Any, seed: int) -> Any:
    """The same translator with encoder and decoders freshly drawn from `seed` (the global RNG left as it was)."""
    from gankit.infer.vocoder import prepare_for_inference
    from gankit.models.music_translation import Encoder, WaveNetDecoder

    with torch.random.fork_rng(devices=[]), torch.device(translator.device):
        torch.manual_seed(seed)
        encoder = prepare_for_inference(Encoder(translator.model))
        decoders = {d: prepare_for_inference(WaveNetDecoder(translator.model)) for d in translator.domains}
    return dataclasses.replace(translator, encoder=encoder, decoders=decoders, source=f"untrained (seed {seed})",
                               step=0)


def evaluate_translation(
    translator: Any,
    corpus: DomainCorpus,
    max_seconds: float = 1.0,
    max_items: int | None = None,
    untrained: Any | None = None,
    classifier_files: int = 20,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> TranslationResults:
    """Translate the first `max_items` held-out recordings of each domain (cut to `max_seconds`) to every other
    domain of the model, with `translator` (and `untrained`), and score every translation and the baseline."""
    from gankit.audio.io import read_audio
    from gankit.metrics.conversion import SpeakerClassifier
    from gankit.metrics.music import chroma_margin

    domains = [d for d in corpus.domains if d in translator.domains]
    if len(domains) < 2:
        raise DataError(f"{corpus.root}: the model's domains ({', '.join(translator.domains)}) and the corpus's "
                        f"({', '.join(corpus.domains)}) share fewer than two")
    rate = translator.sample_rate

    def load(path: Path) -> np.ndarray:
        wave, sr = read_audio(path)
        return translator.prepare(wave, sr, max_seconds)

    inputs: list[tuple[str, Path, np.ndarray]] = []
    for domain in domains:
        for path in corpus.held_out[domain][:max_items]:
            inputs.append((domain, path, load(path)))
    missing = [d for d in domains if not any(src == d for src, _, _ in inputs)]
    if missing:
        raise DataError(f"{corpus.root}: no held-out recordings of {', '.join(missing)} (val.txt)")
    # Another phrase of the same domain, for the chroma margin: the next held-out one, else a training one.
    others: list[np.ndarray] = []
    for k, (domain, path, _) in enumerate(inputs):
        same = [wave for d, p, wave in inputs if d == domain and p != path]
        if same:
            others.append(same[k % len(same)])
        elif corpus.train[domain]:
            others.append(load(corpus.train[domain][0]))
        else:
            raise DataError(f"{corpus.root}: {domain} has a single recording; the chroma margin needs another")
    training = [(d, load(p)) for d in domains for p in corpus.train[d][:classifier_files]]
    classifier = SpeakerClassifier().fit([w for _, w in training], [d for d, _ in training], rate)
    real = [wave for _, _, wave in inputs]
    results = TranslationResults(chance=1.0 / len(domains))
    results.classifier_accuracy = float(np.mean([p == d for p, (d, _, _) in zip(classifier.predict(real), inputs,
                                                                                   strict=True)]))

    def score(system: str, outputs: Callable[[str, list[int]], list[np.ndarray]]) -> None:
        rows = results.rows.setdefault(system, [])
        for target in domains:
            chosen = [k for k, (d, _, _) in enumerate(inputs) if d != target]
            waves = outputs(target, chosen)
            predicted = classifier.predict(waves)
            for k, wave, guess in zip(chosen, waves, predicted, strict=True):
                source, path, original = inputs[k]
                margin = chroma_margin(wave, original, others[k], rate)
                rows.append({"source": source, "target": target, "id": f"{source}/{path.stem}",
                             "target_share": float(guess == target),
                             "chroma_margin": None if np.isnan(margin) else margin})

    score(BASELINE, lambda target, chosen: [real[k] for k in chosen])
    for system, model in ((MODEL, translator), (UNTRAINED, untrained)):
        if model is not None:
            score(system, lambda target, chosen, m=model: m.translate_prepared(
                [real[k] for k in chosen], target, seed=seed, indices=chosen, progress=progress))
    return results


def summaries(results: TranslationResults) -> dict[str, dict[str, dict[str, Any]]]:
    """system → target ("all" pooled) → measure → Summary as a dict."""
    from gankit.metrics.summary import summarise

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for system, rows in results.rows.items():
        targets = sorted({r["target"] for r in rows})
        groups = {"all": rows, **{t: [r for r in rows if r["target"] == t] for t in targets}}
        out[system] = {}
        for name, group in groups.items():
            measured = summarise([{k: r[k] for k in MEASURES} for r in group])
            out[system][name] = {m: s.to_dict() for m, s in measured.items()}
    return out


def format_table(results: TranslationResults) -> str:
    """Pooled mean ± half-width per system and measure, and the classifier's ceiling and chance."""
    table = summaries(results)
    lines = ["| system | target share ↑ | chroma margin ↑ |", "|---|---|---|"]
    for system, by_target in table.items():
        cells = []
        for measure in MEASURES:
            s = by_target["all"][measure]
            cells.append("—" if s["mean"] is None else f"{s['mean']:.2f} ± {s['half_width']:.2f} (n = {s['n']})")
        lines.append(f"| {system} | {' | '.join(cells)} |")
    lines.append(f"timbre classifier on the real held-out recordings: {results.classifier_accuracy:.2f} "
                 f"(chance {results.chance:.2f})")
    return "\n".join(lines)


def results_json(results: TranslationResults, meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "classifier_accuracy": results.classifier_accuracy, "chance": results.chance,
            "summary": summaries(results), "rows": results.rows}


def inputs_of(corpus: DomainCorpus, checkpoint: Sequence[Path]) -> list[Path]:
    """Every file the evaluation reads (an --out file must not be one of them)."""
    recordings = [p for table in (corpus.train, corpus.held_out) for paths in table.values() for p in paths]
    return [corpus.root / "train.txt", corpus.root / "val.txt", *recordings, *checkpoint]
