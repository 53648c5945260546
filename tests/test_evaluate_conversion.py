"""`gankit evaluate` given a voice-conversion file: every held-out utterance converted to its group's other speakers,
voiced and scored per target with intervals, next to the unconverted source (whose target share is low and content
margin high) and an untrained generator; the cached measures equal the metrics functions; misuse is refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.infer.conversion import load_converter
from gankit.infer.conversion_evaluation import plan_conversions, read_speaker_corpus
from gankit.infer.conversion_scores import (
    MEASURES,
    content_margin_of,
    f0_shift_of,
    voicing_agreement_of,
    wave_features,
)
from gankit.metrics import conversion as metrics
from gankit.metrics.griffin_lim import griffin_lim_from_mel
from tests.support.speakers import RATE, utterance, write_corpus
from tests.support.vocoder_files import save_generator
from tests.test_convert import export_untrained

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

SPEAKERS = ("a_high", "a_low", "b_high", "b_low")
PARTNER = {"a_high": "a_low", "a_low": "a_high", "b_high": "b_low", "b_low": "b_high"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 speakers × 5 sentences, the last 2 held out; b_low's s004 recording is damaged (one held-out utterance
    that cannot be read, and one MCD reference missing)."""
    root = write_corpus(tmp_path_factory.mktemp("speakers") / "data", sentences=5, val_sentences=2)
    (root / "wavs" / "b_low" / "s004.wav").write_bytes(b"RIFF\x00\x00not audio")
    return root


@pytest.fixture(scope="module")
def vc_file(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_untrained(corpus, tmp_path_factory.mktemp("vc") / "generator_00000000.pt")


@pytest.mark.slow  # ~7 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_evaluate_scores_per_target_next_to_the_baseline(vc_file: Path, corpus: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    code = main(["evaluate", "--checkpoint", str(vc_file), "--data", str(corpus), "--compare-untrained", "--seed",
                 "7", "--out", str(out), "--workers", "2"])
    stdout, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert {"checkpoint", "step", "data", "sample_rate", "vocoder", "measures", "groups", "target_log_f0_mean",
            "skipped", "systems"} <= set(result)
    assert result["vocoder"] == "griffin-lim" and result["untrained_seed"] == 7 and result["step"] == 0
    assert [s["id"] for s in result["skipped"]] == ["b_low/s004"] and "skipped b_low/s004: " in stdout
    for group, speakers in (("a", ["a_high", "a_low"]), ("b", ["b_high", "b_low"])):
        info = result["groups"][group]
        assert info["speakers"] == speakers and info["chance"] == 0.5
        assert info["classifier_ceiling"] >= 0.75  # the synthetic voices differ in pitch and tilt
    assert set(result["systems"]) == {"model", "baseline", "untrained"}
    for system in result["systems"].values():
        rows = system["rows"]
        # 7 of the 8 held-out utterances, each to the other speaker of its group
        assert len(rows) == 7 and all(r["target"] == PARTNER[r["source"]] for r in rows)
        assert set(system["summary"]) == {"all", *SPEAKERS}
        assert system["summary"]["all"]["target_share"]["n"] == 7
        for by_target in system["summary"].values():
            assert set(by_target) == set(MEASURES)
            for s in by_target.values():
                assert set(s) == {"mean", "low", "high", "half_width", "n"}
                if s["n"]:
                    assert s["low"] <= s["mean"] <= s["high"]
        # the damaged b_low/s004 is b_high/s004's MCD reference: that one measure is unscored, with the reason
        unscored = next(r for r in rows if r["source_id"] == "b_high/s004")
        assert unscored["mcd_db"] is None and "b_low/s004.wav" in unscored["unscored"]["mcd_db"]
    baseline = result["systems"]["baseline"]["summary"]["all"]
    # The unconverted source sounds like the source, says its own words and keeps its voicing.
    assert baseline["target_share"]["mean"] <= 0.25
    assert baseline["content_margin"]["mean"] > 0.2 and baseline["voicing_agreement"]["mean"] > 0.9
    assert abs(baseline["f0_shift"]["mean"]) < 0.1
    assert result["systems"]["untrained"]["rows"] != result["systems"]["model"]["rows"]  # another seed
    table = stdout[stdout.index("system"):]
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["model", "baseline", "untrained"]
    assert "target share ↑" in table and "chance 0.500" in table
    assert "7 conversions of 7 held-out utterances" in stdout and f"results: {out}" in stdout


def test_cached_measures_equal_the_metrics_functions() -> None:
    source = utterance(95.0, 1.0, 1, seconds=0.8, seed=1)
    other = utterance(95.0, 1.0, 2, seconds=0.8, seed=2)
    frontend = build_frontend({"preset": "hifigan"})
    # an output unlike its source in pitch and in voicing: another voice, half of it replaced by Griffin-Lim noise
    output = utterance(230.0, 1.6, 1, seconds=0.8, seed=3)
    output[: len(output) // 2] = griffin_lim_from_mel(
        frontend(torch.from_numpy(source)).numpy(), frontend, n_iter=2)[: len(output) // 2] * 0.3
    out, src, oth = (wave_features(w, RATE) for w in (output, source, other))
    assert content_margin_of(out, src, oth) == pytest.approx(metrics.content_margin(output, source, other, RATE),
                                                             rel=1e-12, abs=1e-12)
    agreement = metrics.voicing_agreement(output, source, RATE)
    assert voicing_agreement_of(out, src) == pytest.approx(agreement, rel=1e-12) and 0 < agreement < 1
    target_mean = float(np.log(180.0))
    shift, _ = f0_shift_of(out, src, target_mean)
    assert shift == pytest.approx(metrics.f0_shift_toward(output, source, target_mean, RATE), rel=1e-12)
    assert src.log_f0_mean == pytest.approx(metrics.log_f0_stats(source, RATE)[0], rel=1e-12)
    assert f0_shift_of(out, src, src.log_f0_mean + 0.01) == (None, "the source's mean F0 is within half a semitone "
                                                              "of the target's")


def test_targets_rotate_through_the_group(vc_file: Path, corpus: Path) -> None:
    converter = load_converter(vc_file)
    one_group = replace(converter, groups=("",) * 4)  # four partners for each speaker
    plan = plan_conversions(one_group, read_speaker_corpus(corpus), max_utterances=None, targets_per_source=2)
    for speaker in SPEAKERS:
        mine = [p for p in plan if p.utterance.speaker == speaker]
        assert all(len(p.targets) == 2 and speaker not in p.targets for p in mine)
        assert mine[0].targets != mine[1].targets  # rotated with the utterance
        assert all(p.other is not None and p.other.id != p.utterance.id for p in mine)
    assert len(plan_conversions(converter, read_speaker_corpus(corpus), 1, None)) == 4


def test_misuse_is_refused_before_any_work(vc_file: Path, corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    def error(*args: str | Path) -> str:
        code = main(["evaluate", *map(str, args)])
        err = capsys.readouterr().err
        assert code == 2, err
        return err.strip().splitlines()[-1]

    line = error("--checkpoint", vc_file, "--data", corpus, "--measures", "mel_l1")
    assert line == (f"error: {vc_file}: --measures is for vocoder checkpoints; a voice-conversion model is scored by "
                    "its own measures (the voice-conversion options of `gankit evaluate --help`)")
    vocoder = tmp_path / "vocoder.pt"
    save_generator(vocoder, {"preset": "hifigan"})
    line = error("--checkpoint", vocoder, "--data", corpus, "--compare-untrained", "--vocoder", "griffin-lim")
    assert line == (f"error: {vocoder}: --vocoder, --compare-untrained are for voice-conversion checkpoints; this "
                    "one holds a vocoder")
    no_corpus = tmp_path / "plain"
    shutil.copytree(corpus / "wavs", no_corpus)
    assert "not a prepared speaker corpus" in error("--checkpoint", vc_file, "--data", no_corpus)
    taken = tmp_path / "taken.json"
    taken.write_text("{}\n")
    assert "already exists; pass --overwrite" in error("--checkpoint", vc_file, "--data", corpus, "--out", taken)
    assert taken.read_text() == "{}\n"
    line = error("--checkpoint", vc_file, "--data", corpus, "--vocoder", tmp_path / "missing.pt")
    assert "missing.pt: no such checkpoint" in line, line
