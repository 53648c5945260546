"""`gankit report`: the HTML page of a real (tiny) run, partial runs, and the page in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from gankit.cli import main
from gankit.engine.jsonl import read_jsonl
from gankit.report.build import build_report, thin_steps
from gankit.report.rundir import SampleSet
from gankit.report.stats import format_number
from tests.support.report_page import assert_references_resolve, open_in_chromium, parse
from tests.support.training import REPO, train_tiny

ARTIFACTS = REPO / "test-artifacts"
NO_PROBE = "health.unused_parameters.enabled=false"  # the probe step is not what the report is about (saves time)
# Appended to the real run's events.jsonl: the tiny run is healthy, so it writes no warnings of its own.
EVENTS = [
    {"step": 1, "kind": "loss_spike", "severity": "warning", "message": "g/mel jumped <script>alert(1)</script> & more",
     "values": {"ratio": 7.5}},
    {"step": 2, "kind": "dead_layer", "severity": "error", "message": "generator.conv_post got no gradient",
     "values": {"layers": ["generator.conv_post"]}},
]


@pytest.fixture(scope="module")
def run_dir(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 steps, validated after each (two utterances each), every step logged; plus two health events."""
    run = tmp_path_factory.mktemp("report") / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=2", "train.val_every=1", "train.ckpt_every=1",
                      "train.log_every=1", NO_PROBE) == 0
    with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in EVENTS)
    return run


@pytest.fixture(scope="module")
def index(run_dir: Path) -> Path:
    return build_report(run_dir)


def copy_run(run_dir: Path, target: Path, drop: tuple[str, ...] = ()) -> Path:
    """The run without checkpoint files (the report reads only the manifest) and without `drop`."""
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("*.pt", "tensorboard"))
    for name in drop:
        path = target / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return target


def test_page_shows_every_part_of_the_run(run_dir: Path, index: Path) -> None:
    assert index == run_dir / "report" / "index.html"
    page = parse(index)
    text = " ".join(page.text)
    sections = {a["id"] for t, a in page.tags if t == "section"}
    assert sections == {"run", "config", "losses", "validation", "evaluation", "events", "samples", "layers"}

    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["torch"] in text and "data.items" in text and "steps/s" in text
    assert "upsample_initial_channel" in text  # the config text itself
    losses = {k for row in read_jsonl(run_dir / "metrics.jsonl") for k in row if k.startswith("loss/")}
    assert len(losses) >= 4 and all(name in text for name in losses)
    loss_images = [s for s in page.attrs("img", "src") if s.startswith("figures/loss_")]
    assert len(loss_images) == len(losses)

    manifest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())
    best_step = int(manifest["best"].removeprefix("state_").removesuffix(".pt"))
    best_rows = [a for t, a in page.tags if t == "tr" and a.get("class") == "best"]
    assert len(best_rows) == 1 and f"step {best_step}" in text and "★ best checkpoint" in text

    # Health events: escaped message in the table, the raw tag nowhere in the markup.
    html_text = index.read_text(encoding="utf-8")
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html_text
    assert "generator.conv_post got no gradient" in text and "figures/events.png" in page.attrs("img", "src")

    # Samples: reference + 2 validation steps × 2 utterances, each a player next to its spectrogram.
    audio = page.attrs("audio", "src")
    assert sorted(audio) == sorted(
        f"audio/{folder}/{utt}__audio.wav" for folder in ("reference", "step_00000001", "step_00000002")
        for utt in ("utt_010", "utt_011"))
    for src in audio:
        copied, sr = soundfile.read(index.parent / unquote(src), dtype="int16")
        original, sr0 = soundfile.read(run_dir / "samples" / unquote(src).removeprefix("audio/"), dtype="int16")
        assert sr == sr0 == 22050 and copied.size > 0 and np.array_equal(copied, original)
    images = page.attrs("img", "src")
    assert sum(s.startswith("spectrograms/") for s in images) == len(audio)
    assert {"figures/validation.png", "figures/layer_grads.png", "figures/scalars.png"} <= set(images)
    for src in images:
        with Image.open(index.parent / unquote(src)) as image:
            image.load()  # decodes the whole file: a truncated PNG fails here
            assert image.width > 50 and image.height > 50, src
    # The folder stands alone: every reference is relative, stays inside it and names a file there.
    assert set(images + audio) <= set(assert_references_resolve(index, page))


def test_partial_runs_get_a_page_that_says_what_is_missing(run_dir: Path, tmp_path: Path) -> None:
    early = copy_run(run_dir, tmp_path / "early", drop=("validation.jsonl", "events.jsonl", "samples",
                                                       "layer_grads.jsonl", "checkpoints"))
    text = " ".join(parse(build_report(early)).text)
    for sentence in ("No validation yet (train.val_every = 1)", "No health events", "No samples yet",
                     "No per-layer gradient norms logged yet", "none written yet"):
        assert sentence in text, sentence
    assert "loss/g/mel" in text

    (bare := tmp_path / "bare").mkdir()
    shutil.copy(run_dir / "config.yaml", bare)
    page = parse(build_report(bare))
    text = " ".join(page.text)
    assert "No training step logged yet" in text and "No losses logged yet" in text
    assert not page.attrs("img", "src") and not page.attrs("audio", "src")


@pytest.mark.slow  # ~8 s: the slow step keeps the default suite in its budget
def test_outliers_are_clipped_and_stale_media_removed(run_dir: Path, index: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")  # with the report `index` built
    assert (run / "report" / "audio" / "step_00000001" / "utt_010__audio.wav").exists()
    # 60 more logged steps around 5 with one spike of 10⁴ at step 30: the plot range must ignore the spike.
    rng = np.random.default_rng(0)
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        for step in range(3, 63):
            value = 1e4 if step == 30 else 5.0 + 0.1 * rng.standard_normal()
            handle.write(json.dumps({"step": step, "epoch": 1, "time": 0.0, "loss/g/mel": value}) + "\n")
    shutil.rmtree(run / "samples" / "step_00000001")  # e.g. removed by hand to save space
    text = " ".join(parse(build_report(run)).text)
    assert "clipped 0 below, 1 above" in text and f"… {format_number(1e4)})" in text
    assert not (run / "report" / "audio" / "step_00000001").exists()
    assert not (run / "report" / "spectrograms" / "step_00000001").exists()
    assert (run / "report" / "audio" / "step_00000002" / "utt_010__audio.wav").exists()


@pytest.mark.slow  # the slow step: keeps the default suite well inside its 8-minute budget
def test_cli_prints_the_page_path_and_refuses_non_runs(run_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "page"
    assert main(["report", str(run_dir), "--out", str(out), "--percentile", "100"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert (out / "index.html").is_file() and list((out / "figures").glob("loss_*.png"))
    assert main(["report", str(run_dir), "--percentile", "20"]) == 2
    assert "--percentile" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    # A rebuild removes files it no longer shows, so it refuses a folder holding files it did not write.
    (mine := tmp_path / "mine").mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["report", str(run_dir), "--out", str(mine)]) == 2
    assert "did not write" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "mine"


def test_odd_sample_names_are_escaped_and_quoted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    name = 'utt <b>&"1 #2?'  # HTML and URL specials: the page must show it and its players must find the file
    wave = (0.3 * np.sin(np.linspace(0, 2000, 8000))).astype(np.float32)
    for folder in ("reference", "step_00000001"):
        (run / "samples" / folder).mkdir(parents=True)
        soundfile.write(run / "samples" / folder / f"{name}.wav", wave, 16000)
    index = build_report(run)
    page = parse(index)
    assert name in page.text and "<b>" not in index.read_text(encoding="utf-8")
    assert "config.yaml not found" in " ".join(page.text)
    media = page.attrs("audio", "src") + page.attrs("img", "src")
    assert len(media) == 4 and all("#" not in m and "?" not in m for m in media)
    assert set(media) <= set(assert_references_resolve(index, page))


def test_thinning_keeps_first_best_and_last() -> None:
    sets = [SampleSet(step=s, groups={}) for s in range(100, 10100, 100)]
    kept = [s.step for s in thin_steps(sets, 5, {4300})]
    assert kept[0] == 100 and kept[-1] == 10000 and 4300 in kept and len(kept) == 6
    assert [s.step for s in thin_steps(sets[:3], 5, set())] == [100, 200, 300]


@pytest.mark.browser
def test_page_loads_in_headless_chromium(index: Path) -> None:
    page = open_in_chromium(index, ARTIFACTS / "report_page.png")
    assert len(page.images) >= 10
    assert [src for src, complete, width in page.images if not complete or width == 0] == []
    assert len(page.players) == 6
    assert [p for p in page.players if p[1] < 1 or p[2] is not None or not p[3] > 0] == []
    assert page.errors == []


def test_typed_media_from_the_index_render_by_type(tmp_path: Path) -> None:
    """A task that is not a vocoder: an image grid and a spectrogram without audio, described by index.json."""
    from gankit.engine.media import write_media
    from gankit.tasks.base import AudioItem, ImageItem, SpectrogramItem

    run = tmp_path / "run"
    grid = torch.rand(3, 64, 96)
    wave = 0.3 * torch.sin(torch.linspace(0, 2000, 8000))
    write_media(run / "samples", 5, [
        ImageItem(grid, "fixed noise", "grid"),
        SpectrogramItem(torch.randn(80, 40), "mel", "spk1→spk2", "converted"),
        SpectrogramItem(torch.randn(80, 40), "mel", "spk1→spk2", "source", role="source"),
        AudioItem(wave, 16000, "spk1→spk2", "vocoded"),
        ImageItem(torch.rand(1, 32, 32), "fixed noise", "real", role="reference"),
    ])
    index = build_report(run)
    page = parse(index)
    images = page.attrs("img", "src")
    assert any(s.startswith("images/step_00000005/fixed_noise__grid") for s in images), images
    assert any(s.startswith("images/reference/fixed_noise__real") for s in images), images
    # The conversion has audio: the report draws its spectrogram itself and does not repeat the task's images.
    assert not any("spk1" in s and s.startswith("images/") for s in images), images
    assert [unquote(s) for s in page.attrs("audio", "src")] == ["audio/step_00000005/spk1→spk2__vocoded.wav"]
    for src in images:
        if src.startswith("images/"):
            with Image.open(index.parent / unquote(src)) as image:
                image.load()
    with Image.open(run / "samples" / "step_00000005" / "fixed_noise__grid.png") as image:
        assert image.size == (96, 64) and image.mode in ("RGB", "RGBA")
    assert set(images) | set(page.attrs("audio", "src")) <= set(assert_references_resolve(index, page))
