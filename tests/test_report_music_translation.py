"""The report of a music-translation run, by generic rules only: a loss family (`<prefix>_<member>`) drawn on one plot
with one robust range, clipped points and histograms; every classifier's accuracy against its chance level (written
by the health monitor from the task's ClassifierReadout); `gankit evaluate` results in RUN/evaluation/ as a table
beside the baselines; each input translated to each domain as labelled players with spectrograms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from gankit.engine.health.record import StepRecord
from gankit.engine.health_session import output_columns
from gankit.engine.jsonl import read_jsonl
from gankit.report import plots
from gankit.report.build import build_report
from gankit.report.evaluation import table_of
from gankit.report.families import loss_panels
from gankit.report.stats import format_number
from tests.support.report_page import assert_references_resolve, parse

DOMAINS = ("piano", "cello", "violin")
STEPS = 300
SPIKE_STEP = 120  # cello's loss jumps to 150 here, as in the user report
CHANCE = 1.0 / len(DOMAINS)


class Captured:
    """The matplotlib figures the report draws, by file name (plots._save patched to keep them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.figures: dict[str, Any] = {}
        save = plots._save

        def keep(fig: Any, png: Path) -> None:
            self.figures[png.name] = fig
            save(fig, png)

        monkeypatch.setattr(plots, "_save", keep)

    def axes_lines(self, name: str) -> list[Any]:
        return [line for ax in self.figures[name].axes for line in ax.get_lines()]


def _write_wav(path: Path, seed: int) -> None:
    wave = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * np.arange(1600) / 16000)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave.astype(np.float32), 16000)


def _media(folder: Path, items: list[tuple[str, str, str]]) -> None:
    """samples/<folder>/ with index.json: (group, label, role) audio items, as the engine's media sink writes."""
    entries = []
    for k, (group, label, role) in enumerate(items):
        file = f"{group.replace(' ', '_')}__{label.replace(' ', '_')}.wav"
        _write_wav(folder / file, k)
        entries.append({"type": "audio", "file": file, "group": group, "label": label, "role": role,
                        "sample_rate": 16000})
    (folder / "index.json").write_text(json.dumps({"version": 1, "step": 0, "items": entries}))


def _evaluation() -> dict[str, Any]:
    """A results file as `gankit evaluate --out` writes it for a music-translation checkpoint (its own writer)."""
    from gankit.infer.translation_evaluation import TranslationResults, results_json

    results = TranslationResults(classifier_accuracy=0.9, chance=CHANCE)
    pattern = {"no translation": [0, 0, 0, 0], "model": [1, 1, 0, 0], "untrained": [1, 0, 0, 0]}
    for system, shares in pattern.items():
        results.rows[system] = [{"source": "piano", "target": "cello", "id": f"piano/p{k}", "target_share": float(s),
                                 "chroma_margin": 0.1 * k} for k, s in enumerate(shares)]
    return results_json(results, {"checkpoint": "RUN", "step": STEPS})


def make_run(root: Path) -> Path:
    """A music-translation run as the engine writes it: per-domain reconstruction losses (cello spikes once, violin
    has a NaN row), the confusion classifier's accuracy with its chance level, two validations with translations,
    and an evaluation file."""
    rng = np.random.default_rng(0)
    run = root / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("task: music_translation\ntrain:\n  val_every: 150\n")
    rows = []
    for step in range(1, STEPS + 1):
        row: dict[str, Any] = {"step": step, "epoch": 0, "time": 1000.0 + step, "sec_per_step": 0.1}
        for i, domain in enumerate(DOMAINS):
            row[f"loss/g/recon_{domain}"] = 5.5 - 0.004 * step * (1 + i / 2) + 0.05 * rng.standard_normal()
        row["loss/g/recon_cello"] = 150.0 if step == SPIKE_STEP else row["loss/g/recon_cello"]
        row["loss/g/recon_violin"] = "nan" if step == 200 else row["loss/g/recon_violin"]
        row["loss/g/recon"] = 4.0
        row["loss/d/conf"] = 1.1
        row["loss/d/conf_acc"] = row["acc/classifier"] = float(rng.integers(0, 4)) / 3
        row["chance/classifier"] = CHANCE
        row["lr/g"] = 1e-3
        rows.append(row)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "validation.jsonl").write_text("".join(
        json.dumps({"step": s, "epoch": 0, "val/recon": 5.0, "val/confusion_acc": CHANCE, "val/chance": CHANCE}) + "\n"
        for s in (150, 300)))
    translations = [(f"{source} p01", f"to {target}", "generated") for source in DOMAINS for target in DOMAINS
                    if target != source]
    for step in (150, 300):
        _media(run / "samples" / f"step_{step:08d}", translations)
    _media(run / "samples" / "reference", [(f"{d} p01", "source", "reference") for d in DOMAINS])
    (run / "evaluation").mkdir()
    (run / "evaluation" / "translation.json").write_text(json.dumps(_evaluation()))
    return run


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Captured]:
    captured = Captured(monkeypatch)
    run = make_run(tmp_path)
    build_report(run)
    return run, captured


def test_a_loss_family_is_one_plot_with_every_member_one_range_and_the_spike_marked(
        synthetic: tuple[Path, Captured]) -> None:
    run, captured = synthetic
    index = run / "report" / "index.html"
    page = parse(index)
    text = " ".join(page.text)
    images = page.attrs("img", "src")
    family = [s for s in images if s.startswith("figures/loss_") and s.endswith("_g_recon_family.png")]
    assert len(family) == 1
    # The members are drawn there, not one plot each; their rows stay in the table.
    assert not [s for s in images if "recon_cello" in s or "recon_piano" in s]
    assert all(f"loss/g/recon_{d}" in text for d in DOMAINS)
    assert f"loss/g/recon_<member> ({', '.join(sorted(DOMAINS))})" in text  # metrics.jsonl's keys, sorted
    # Cello's one spike of 150 is clipped on the edge (the range stays on the 4-6 bulk), violin's NaN marked.
    assert "cello: 1 above" in text and "(max 150)" in text and "violin: 1 NaN/Inf" in text
    figure = captured.figures[Path(family[0]).name]
    curve, hist = figure.axes
    legend = [t.get_text() for t in curve.get_legend().get_texts()]
    assert legend == sorted(DOMAINS)  # a running median per member, in the member's colour
    assert curve.get_ylim()[1] < 10.0
    colours = {line.get_color() for line in curve.get_lines()}
    assert len(colours) == len(DOMAINS)
    assert len(hist.patches) == len(DOMAINS)  # one step histogram per member
    assert set(assert_references_resolve(index, page)) >= set(images)


def test_the_classifier_accuracy_is_drawn_against_its_chance_level(synthetic: tuple[Path, Captured]) -> None:
    run, captured = synthetic
    page = parse(run / "report" / "index.html")
    text = " ".join(page.text)
    assert "figures/classifier_accuracy.png" in page.attrs("img", "src")
    assert f"acc/classifier against chance {format_number(CHANCE)}" in text
    chance = [line for line in captured.axes_lines("classifier_accuracy.png") if line.get_linestyle() == "--"]
    assert len(chance) == 1 and np.allclose(chance[0].get_ydata(), CHANCE)
    assert chance[0].get_label() == f"chance {format_number(CHANCE)}"
    # acc/… and chance/… are not drawn again among the other scalars.
    scalar_titles = [ax.get_title(loc="left") for ax in captured.figures["scalars.png"].axes]
    assert scalar_titles == ["lr/g"]


def test_the_evaluation_file_is_a_table_beside_the_baselines(synthetic: tuple[Path, Captured]) -> None:
    run, _ = synthetic
    page = parse(run / "report" / "index.html")
    text = " ".join(page.text)
    assert "evaluation" in {a["id"] for t, a in page.tags if t == "section"}
    assert "evaluation/translation.json" in text
    heads = text.split("evaluation/translation.json", 1)[1]
    # The columns: every system the file measured, in its order; the model's pooled target share is 2 of 4.
    assert heads.index("no translation") < heads.index("model") < heads.index("untrained")
    data = json.loads((run / "evaluation" / "translation.json").read_text())
    model = data["summary"]["model"]["all"]["target_share"]
    assert model["mean"] == 0.5 and model["n"] == 4
    assert f"{format_number(0.5)} ± {format_number(model['half_width'])}" in text
    assert "all · target_share" in text and "cello · chroma_margin" in text
    assert "classifier_accuracy" in text and "meta.step" in text


def test_each_translation_is_a_labelled_player_with_a_spectrogram(synthetic: tuple[Path, Captured]) -> None:
    run, _ = synthetic
    page = parse(run / "report" / "index.html")
    audio = page.attrs("audio", "src")
    assert len(audio) == len(DOMAINS) + 2 * len(DOMAINS) * (len(DOMAINS) - 1)  # references + 2 steps × 6
    assert sum(s.startswith("spectrograms/") for s in page.attrs("img", "src")) == len(audio)
    labels = [t for t in page.text if t.startswith("to ")]
    assert sorted(set(labels)) == [f"to {d}" for d in sorted(DOMAINS)] and len(labels) == 12
    header = [t for t, a in page.tags if t == "th"]
    assert header and all(f"{d} p01" in page.text for d in DOMAINS)


def test_an_unreadable_evaluation_file_is_a_problem_on_the_page(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "evaluation" / "broken.json").write_text("{not json")
    text = " ".join(parse(build_report(run)).text)
    assert "evaluation/broken.json could not be read" in text and "evaluation/translation.json" in text


def test_family_rule_groups_per_member_losses_only() -> None:
    music = ["d/conf", "d/conf_acc", "g/conf", "g/conf_acc", "g/recon", "g/recon_acoustic_guitar", "g/recon_cello",
             "g/total"]
    panels = loss_panels(music)
    families = [p for p in panels if p.is_family]
    assert [(p.name, p.members) for p in families] == [
        ("g/recon", {"acoustic_guitar": "g/recon_acoustic_guitar", "cello": "g/recon_cello"})]
    assert [p.name for p in panels if not p.is_family] == ["d/conf", "d/conf_acc", "g/conf", "g/conf_acc", "g/recon",
                                                             "g/total"]
    # StarGAN-VC's and HiFi-GAN's losses form no family (one member per prefix): a plot each, as before.
    stargan = ["d/adv", "d/cls", "d/cls_acc", "d/fake", "d/gp", "d/real", "d/total", "g/adv", "g/cls", "g/cycle",
               "g/identity", "g/target_acc", "g/total"]
    vocoder = ["d/mpd", "d/msd", "d/total", "g/adv", "g/fm", "g/mel", "g/total"]
    for names in (stargan, vocoder):
        assert [p.name for p in loss_panels(names)] == names and not any(p.is_family for p in loss_panels(names))
    # Per-sub-network losses are a family too; a shared `_` start moves into the family's name.
    assert [(p.name, list(p.members)) for p in loss_panels(["d/mpd_0", "d/mpd_1", "g/x_bass_a", "g/x_bass_b"])] == [
        ("d/mpd", ["0", "1"]), ("g/x_bass", ["a", "b"])]


def test_evaluation_tables_read_every_evaluate_schema_by_system() -> None:
    from gankit.infer.evaluation import SystemScores, results_json

    rows = [{"id": "a", "mel_l1": 0.5, "stoi": 0.9}, {"id": "b", "mel_l1": 0.7, "stoi": 0.8}]
    systems = {"model": SystemScores(rows, [{}, {}]), "griffin_lim": SystemScores(rows[:1], [{}])}
    vocoder = results_json(systems, {"step": 7})
    table = table_of(vocoder, "evaluation/vocoder.json")
    assert table.systems == ["model", "griffin_lim"] and list(table.rows) == ["mel_l1", "stoi"]
    assert table.rows["mel_l1"]["model"]["mean"] == pytest.approx(0.6) and ("step", "7") in table.info
    translation = table_of(_evaluation(), "evaluation/translation.json")
    assert translation.systems == ["no translation", "model", "untrained"]
    assert list(translation.rows) == ["all · target_share", "all · chroma_margin", "cello · target_share",
                                      "cello · chroma_margin"]


def test_the_health_monitor_writes_each_classifiers_accuracy_beside_its_chance() -> None:
    record = StepRecord(step=3, losses={}, trained=frozenset({"d"}))
    record.classifiers = {"classifier": (0.5, 0.25, "confusion", "d"), "discriminator": (0.75, 0.1, "auxiliary", "d")}
    columns = output_columns(record)
    assert columns == {"acc/classifier": 0.5, "chance/classifier": 0.25, "acc/discriminator": 0.75,
                       "chance/discriminator": 0.1}


@pytest.mark.slow  # ~8 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_a_real_tiny_music_translation_run_gets_its_family_chance_line_evaluation_and_players(
        tmp_path: Path) -> None:
    """~15 s: six steps validated twice, `gankit evaluate --out RUN/evaluation/translation.json`, the report."""
    from gankit.cli import main
    from gankit.training import train
    from tests.support.domains import write_domain_corpus
    from tests.test_music_translation import config

    data = write_domain_corpus(tmp_path / "data")
    run = tmp_path / "run"
    assert train(config(data, "train.max_steps=6", "train.val_every=3", "train.ckpt_every=3",
                        "health.unused_parameters.enabled=false"), run, progress=False) == 0
    last = list(read_jsonl(run / "metrics.jsonl"))[-1]
    assert last["chance/classifier"] == pytest.approx(1 / 3) and 0.0 <= last["acc/classifier"] <= 1.0
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--max-seconds", "0.05",
                 "--out", str(run / "evaluation" / "translation.json")]) == 0
    index = build_report(run)
    page = parse(index)
    text = " ".join(page.text)
    assert "loss/g/recon_<member> (saw, sine, square)" in text
    assert "acc/classifier against chance 0.3333" in text
    evaluation = text.split("evaluation/translation.json", 1)[1]
    assert "no translation" in evaluation and "model" in evaluation and "all · target_share" in evaluation
    shown = json.loads((run / "samples" / "step_00000006" / "index.json").read_text())["items"]
    audio_items = [m for m in shown if m["type"] == "audio"]
    players = [s for s in page.attrs("audio", "src") if s.startswith("audio/step_00000006/")]
    assert sorted(players) == sorted(f"audio/step_00000006/{m['file']}" for m in audio_items)
    assert all(m["label"] in page.text for m in audio_items)  # "to sine": which domain each player is
    spectrograms = [s for s in page.attrs("img", "src") if s.startswith("spectrograms/step_00000006/")]
    assert len(spectrograms) == len(players)
    assert_references_resolve(index, page)
