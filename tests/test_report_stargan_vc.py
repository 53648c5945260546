"""`gankit report` of a StarGAN-VC run: a 4-step `stargan_vc_tiny` run on the synthetic speaker corpus, validated
twice, with a real health finding (the discriminator's speaker classifier judged against chance from its 2nd step);
the page it gets, read as markup and opened in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
import torch

from gankit.engine.jsonl import read_jsonl
from gankit.report.build import build_report
from gankit.training import train
from tests.support.report_page import assert_references_resolve, open_in_chromium, parse
from tests.support.speakers import write_corpus
from tests.support.training import REPO
from tests.test_stargan_vc import config

ARTIFACTS = REPO / "test-artifacts"
STEPS = ("step_00000002", "step_00000004")
PAIRS = ("a_high to a_low s004", "b_high to b_low s004")  # the validation's shown conversions, one per group
METRICS = ("val/target_share", "val/real_share", "val/d_target_acc", "val/content_margin", "val/cycle_l1",
           "val/identity_l1")
# The monitor's auxiliary-classifier check with no grace, a 2-step window and a bound no accuracy exceeds: it names
# D's speaker classifier from step 2 on, a health event of the VC task itself for the events timeline.
AT_CHANCE = ("health.auxiliary_classifier_at_chance.grace=0", "health.auxiliary_classifier_at_chance.window=2",
             "health.auxiliary_classifier_at_chance.margin=1.0",
             "health.auxiliary_classifier_at_chance.repeat_every=1")


def stem(pair: str) -> str:
    return pair.replace(" ", "_")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vc_report")
    corpus = write_corpus(root / "data", sentences=6, val_sentences=2)
    run = root / "run"
    threads = torch.get_num_threads()  # the run sets train.num_threads=1 for the process; later modules get theirs
    try:
        assert train(config(corpus, "train.max_steps=4", "train.val_every=2", "train.ckpt_every=2",
                            "health.unused_parameters.enabled=false", *AT_CHANCE), run, progress=False) == 0
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="module")
def index(run_dir: Path) -> Path:
    return build_report(run_dir)


@pytest.mark.slow  # the shared 4-step run takes ~25 s: CI's slow step (the default suite's budget is spent)
def test_page_shows_the_conversion_metrics_pairs_and_health(run_dir: Path, index: Path) -> None:
    page = parse(index)
    text = " ".join(page.text)
    assert {a["id"] for t, a in page.tags if t == "section"} == {
        "run", "config", "losses", "validation", "evaluation", "events", "samples", "layers"}
    # Validation: every conversion measure a column of the table, the best checkpoint by val/target_share.
    rows = list(read_jsonl(run_dir / "validation.jsonl"))
    assert [r["step"] for r in rows] == [2, 4]
    for key in METRICS:
        assert key in rows[-1] and key in text, key
    assert "by val/target_share" in text and "★ best checkpoint" in text
    images = page.attrs("img", "src")
    assert {"figures/validation.png", "figures/events.png", "figures/outputs.png", "figures/layer_grads.png"} <= set(
        images)
    assert {"loss/d/gp", "loss/g/cycle", "loss/g/identity"} <= set(text.split())
    # Health: the event in the table beside the generated-vs-real statistics the VC task logs (out/… columns).
    events = list(read_jsonl(run_dir / "events.jsonl"))
    assert [e["kind"] for e in events] and {e["kind"] for e in events} == {"auxiliary_classifier_at_chance"}
    assert "auxiliary_classifier_at_chance" in text and "Generated vs real output" in text
    # Samples: a column per shown pair; its source (reference row) and each validation's conversion, each a
    # player and the report's spectrogram of that audio.
    assert all(pair in text for pair in PAIRS)
    audio = page.attrs("audio", "src")
    expected = {f"{folder}/{stem(pair)}__{label}" for pair in PAIRS
                for folder, label in (("reference", "source"), *((s, "converted") for s in STEPS))}
    assert sorted(unquote(a) for a in audio) == sorted(f"audio/{e}.wav" for e in expected)
    assert sorted(unquote(s) for s in images if s.startswith("spectrograms/")) == sorted(
        f"spectrograms/{e}.png" for e in expected)
    # The task's own mel images are not repeated where the report draws the audio's spectrogram.
    assert not [s for s in images if s.startswith("images/")]
    assert set(images + audio) <= set(assert_references_resolve(index, page))


@pytest.mark.slow
@pytest.mark.browser
def test_vc_page_loads_in_headless_chromium(index: Path) -> None:
    page = open_in_chromium(index, ARTIFACTS / "report_page_stargan_vc.png")
    assert page.errors == []
    assert [src for src, complete, width in page.images if not complete or width == 0] == []
    loaded = {unquote(src) for src, complete, width in page.images}
    for pair in PAIRS:
        for folder, label in (("reference", "source"), *((s, "converted") for s in STEPS)):
            assert f"spectrograms/{folder}/{stem(pair)}__{label}.png" in loaded, (pair, folder)
    assert {"figures/validation.png", "figures/events.png", "figures/outputs.png"} <= loaded
    # Every player found its file and read it: 64 frames × hop 256 at 22,050 Hz (the validation's cut).
    assert len(page.players) == len(PAIRS) * (1 + len(STEPS))
    assert [p for p in page.players if p[1] < 1 or p[2] is not None] == []
    assert all(p[3] == pytest.approx(64 * 256 / 22050, abs=1e-3) for p in page.players), page.players


def test_the_spectrograms_use_the_runs_front_end_with_its_presets_defaults() -> None:
    """A saved config may hold only `{preset: hifigan}`: the report draws to that preset's 8 kHz, not to sr/2."""
    from gankit.report.spectrogram import mel_params_from_config

    params = mel_params_from_config({"frontend": {"preset": "hifigan"}, "model": {"n_speakers": 4}})
    assert (params.n_fft, params.hop_length, params.n_mels, params.fmax) == (1024, 256, 80, 8000.0)
    spec256 = mel_params_from_config({"frontend": {"preset": "hifigan", "n_mels": 256, "n_fft": 2048}})
    assert (spec256.n_fft, spec256.n_mels, spec256.fmax) == (2048, 256, 8000.0)
