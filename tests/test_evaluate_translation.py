"""`gankit evaluate` on a music-translation model: every held-out phrase to every other domain, scored by target
share (a timbre classifier fitted on real training recordings) and chroma margin, beside the no-translation
baseline and an untrained model; refusals of options that belong to other kinds of checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.config import load_config
from gankit.infer.translation import load_translator
from gankit.infer.translation_evaluation import (
    BASELINE,
    MODEL,
    UNTRAINED,
    evaluate_translation,
    read_domain_corpus,
    untrained_copy,
)
from gankit.tasks import build_task
from tests.support.domains import write_domain_corpus
from tests.support.vocoder_files import save_generator
from tests.test_music_translation import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_domain_corpus(tmp_path_factory.mktemp("domains") / "data", phrases=6, val_phrases=2)


@pytest.fixture(scope="module")
def model(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, config = load_config("music_translation_tiny", [f"data.dir={corpus}", "device=cpu", *TINY])
    task = build_task(config)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "generator_00000000.pt"
    torch.save(task.export(task.build_networks(), 0), path)
    return path


@pytest.mark.slow  # ~8 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_every_held_out_phrase_goes_to_every_other_domain_beside_the_baseline(corpus: Path, model: Path) -> None:
    translator = load_translator(model)
    results = evaluate_translation(translator, read_domain_corpus(corpus), max_seconds=0.2,
                                   untrained=untrained_copy(translator, 3))
    assert set(results.rows) == {BASELINE, MODEL, UNTRAINED}
    for rows in results.rows.values():  # 3 domains × 2 held-out phrases × 2 other domains
        assert len(rows) == 12 and {(r["source"], r["target"]) for r in rows} == {
            (s, t) for s in ("saw", "sine", "square") for t in ("saw", "sine", "square") if s != t}
    assert results.classifier_accuracy == 1.0 and results.chance == pytest.approx(1 / 3)  # timbres tell apart
    baseline = results.rows[BASELINE]
    assert all(r["target_share"] == 0.0 for r in baseline)  # the input keeps its own timbre
    assert min(r["chroma_margin"] for r in baseline) > 0.3  # … and all its notes, against another phrase
    assert {r["target_share"] for r in results.rows[MODEL]} <= {0.0, 1.0}
    first = load_translator(model)
    assert torch.equal(next(first.encoder.parameters()), next(translator.encoder.parameters()))  # copy left alone


def test_the_command_writes_json_and_refuses_other_kinds_options(corpus: Path, model: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mt.json"
    assert main(["evaluate", "--checkpoint", str(model), "--data", str(corpus), "--max-seconds", "0.05",
                 "--max-utterances", "1", "--compare-untrained", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| no translation |" in printed and "timbre classifier on the real held-out recordings: 1.00" in printed
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {BASELINE, MODEL, UNTRAINED}
    assert report["summary"][MODEL]["all"]["target_share"]["n"] == 6 and report["meta"]["max_seconds"] == 0.05
    assert main(["evaluate", "--checkpoint", str(model), "--data", str(corpus), "--vocoder", "griffin-lim"]) == 2
    assert "--vocoder is not for music-translation checkpoints" in capsys.readouterr().err
    save_generator(tmp_path / "g.pt", {"preset": "hifigan"})
    assert main(["evaluate", "--checkpoint", str(tmp_path / "g.pt"), "--data", str(corpus), "--max-seconds", "1"]) == 2
    assert "--max-seconds is for music-translation checkpoints" in capsys.readouterr().err
