"""MelGAN on the shared engine: melgan_tiny trains from the CLI, resumes, its checkpoints vocode and resynthesise,
`gankit report` renders the run, the health monitor stays quiet on it;
n_critic and starting from an original netG.pt, the hinge no-information loss the health monitor uses, MelGAN's
feature-matching weights, random gain, `vocode --force`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytest
import soundfile as sf
import torch

from gankit.audio.mel import build_frontend
from gankit.cli import main
from gankit.compat.hifigan_original import original_to_gankit
from gankit.config import load_config
from gankit.data.sampler import SampleKey
from gankit.data.settings import DataSettings
from gankit.engine.distributed import DistContext
from gankit.engine.health_session import HealthSession
from gankit.engine.jsonl import read_jsonl
from gankit.engine.step import StepOutcome
from gankit.errors import ConfigError, MelInputError
from gankit.infer.mel_input import interpolate_bands, read_mel
from gankit.losses.feature_matching import feature_matching_loss
from gankit.report.build import build_report
from gankit.tasks import build_task
from gankit.tasks.vocoder import GeneratorPass
from gankit.training import train
from tests.support import original_melgan
from tests.support.corpus import voiced_clip
from tests.support.report_page import assert_references_resolve, parse

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")

# Small and fast (~0.3 s a step on 2 quiet cores): half-length segments, batch 2, no validation or checkpoints
# except where a test asks.
FAST = ("data.segment_size=4096", "data.batch_size=2", "train.val_every=1000", "train.ckpt_every=1000", "device=cpu")


def melgan_config(corpus: Path, *overrides: str) -> dict[str, Any]:
    _, config = load_config("melgan_tiny", [f"data.dir={corpus}", *FAST, *overrides])
    return config


class CliRun(NamedTuple):
    dir: Path
    first_rows: list[dict[str, Any]]  # metrics.jsonl after the first `gankit train` (2 steps), before the resume


@pytest.fixture(scope="module")
def cli_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """`gankit train` through the CLI entry point (in this process: a subprocess would pay torch's start-up again):
    2 steps, then resumed to 3 and validated there (two utterances). Shared by the tests below, so the report and
    health checks add no training. The unused-parameter probe (before step 1) and the nonfinite gate (every step)
    run by default; dead_layers is armed from step 2 by its window of 2 (free: layer gradient norms are logged
    every step anyway). The other checks need tens to hundreds of steps (tests/test_health_training.py)."""
    run = tmp_path_factory.mktemp("melgan_cli") / "run"
    common = [f"data.dir={tiny_corpus}", *FAST, "train.val_every=3", "health.dead_layers.window=2", "--no-progress"]
    assert main(["train", "melgan_tiny", "--run-dir", str(run), "train.max_steps=2", "train.ckpt_every=2",
                 *common]) == 0
    first_rows = list(read_jsonl(run / "metrics.jsonl"))
    # Resume to step 3: the saved config is reused, the log continues.
    assert main(["train", "melgan_tiny", "--run-dir", str(run), "train.max_steps=3", "train.ckpt_every=3",
                 *common]) == 0
    return CliRun(run, first_rows)


def test_cli_trains_resumes_and_its_checkpoints_vocode(
    cli_run: CliRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, rows = cli_run
    assert [r["step"] for r in rows] == [1, 2]
    assert {"loss/d/msd", "loss/g/adv", "loss/g/fm", "loss/g/mel", "lr/g", "lr/d"} <= set(rows[0])
    assert rows[0]["lr/g"] == pytest.approx(1e-4)
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    manifest = json.loads((run / "checkpoints" / "manifest.json").read_text())
    assert manifest["latest"] == "state_00000003.pt"
    generator_file = torch.load(run / "checkpoints" / manifest["latest_generator"], weights_only=True)
    assert generator_file["task"] == "melgan" and generator_file["frontend"]["preset"] == "melgan"
    capsys.readouterr()

    # vocode: a MelGAN (log10) mel of a clip, and a HiFi-GAN (natural-log) mel, which is vocoded with a warning.
    clip = torch.from_numpy(voiced_clip(0.5, 22050, 140.0, seed=3))
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "log10.npy", build_frontend({"preset": "melgan"})(clip).numpy())
    np.save(mels / "ln.npy", build_frontend({"preset": "hifigan"})(clip).numpy())
    out = tmp_path / "out"
    assert main(["vocode", "--checkpoint", str(run), str(mels), "--out-dir", str(out), "--device", "cpu",
                 "--batch-size", "2", "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "ln.npy" in warnings[0] and "natural-log" in warnings[0]
    for name in ("log10", "ln"):
        audio, rate = sf.read(out / f"{name}.wav")
        assert rate == 22050 and len(audio) == 43 * 256  # 0.5 s → 43 frames × hop

    # Another preset's band count (Vocos: 100) is refused in one line naming both presets.
    vocos = tmp_path / "vocos.npy"
    np.save(vocos, build_frontend({"preset": "vocos"})(clip).numpy())
    assert main(["vocode", "--checkpoint", str(run), str(vocos), "--out-dir", str(out), "--device", "cpu",
                 "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {vocos}: has 100 mel bands"), lines
    assert "preset melgan" in lines[0] and "preset vocos" in lines[0] and "--force" in lines[0]
    # --force vocodes it anyway, bands interpolated 100 → 80, with a warning that says so.
    assert main(["vocode", "--checkpoint", str(run), str(vocos), "--out-dir", str(out), "--device", "cpu",
                 "--no-progress", "--force"]) == 0
    err = capsys.readouterr().err
    assert "100 bands interpolated onto the 80 of preset melgan" in err and (out / "vocos.wav").is_file()

    # resynth from the training state: audio → the checkpoint's own mel → audio.
    wav = tmp_path / "clip.wav"
    sf.write(wav, clip.numpy(), 22050)
    assert main(["resynth", "--checkpoint", str(run / "checkpoints" / "state_00000003.pt"), str(wav),
                 "--out-dir", str(tmp_path / "re"), "--device", "cpu", "--no-progress"]) == 0
    assert sf.info(tmp_path / "re" / "clip.wav").frames == 43 * 256


def test_report_renders_the_run(cli_run: CliRun) -> None:
    run = cli_run.dir
    index = build_report(run)
    assert index == run / "report" / "index.html"
    page = parse(index)
    text = " ".join(page.text)
    assert {a["id"] for t, a in page.tags if t == "section"} >= {"run", "config", "losses", "validation", "samples"}

    # MelGAN's losses: the hinge discriminator's (one multi-scale D, no MPD) and feature matching, each plotted.
    losses = {k for row in read_jsonl(run / "metrics.jsonl") for k in row if k.startswith("loss/")}
    assert {"loss/d/msd", "loss/d/total", "loss/g/adv", "loss/g/fm"} <= losses and "loss/d/mpd" not in losses
    assert all(name in text for name in losses) and "loss/d/mpd" not in text
    assert "adversarial: hinge" in text  # the run's config.yaml on the page
    assert len([s for s in page.attrs("img", "src") if s.startswith("figures/loss_")]) == len(losses)

    # Validation at step 3: its metrics in the table and the plot, the best checkpoint marked.
    validations = list(read_jsonl(run / "validation.jsonl"))
    assert [v["step"] for v in validations] == [3]
    assert "No validation yet" not in text and "val/mel_l1" in text and "★ best checkpoint" in text
    assert "figures/validation.png" in page.attrs("img", "src")

    # A player (and spectrogram) for each reference and each utterance validation generated, at the run's rate.
    utterances = validations[0]["samples"]
    audio = page.attrs("audio", "src")
    assert len(utterances) == 2 and sorted(audio) == sorted(
        f"audio/{folder}/{utt}__audio.wav" for folder in ("reference", "step_00000003") for utt in utterances)
    assert sum(s.startswith("spectrograms/") for s in page.attrs("img", "src")) == len(audio)
    for src in audio:
        info = sf.info(index.parent / src)
        assert info.samplerate == 22050 and info.frames > 0, src

    # Every src/href: relative, inside report/, an existing file.
    assert set(audio) <= set(assert_references_resolve(index, page))


def test_healthy_short_run_raises_no_warning(cli_run: CliRun) -> None:
    events = cli_run.dir / "events.jsonl"
    rows = list(read_jsonl(events)) if events.exists() else []
    serious = [(r["step"], r["kind"], r["message"][:200]) for r in rows if r["severity"] != "info"]
    assert serious == [], "expected no warning-or-worse event in a healthy 3-step MelGAN run"


def test_force_interpolates_bands_and_reports_both_presets(tmp_path: Path) -> None:
    frontend = build_frontend({"preset": "melgan"})
    ramp = np.tile(np.linspace(-5.0, 0.0, 100, dtype=np.float32)[:, None], (1, 6))  # linear in the band index
    np.save(tmp_path / "m.npy", ramp)
    with pytest.raises(MelInputError, match="100 bands is what preset vocos makes"):
        read_mel(tmp_path / "m.npy", frontend)
    mel, warning = read_mel(tmp_path / "m.npy", frontend, force=True)
    assert mel.shape == (80, 6) and mel.dtype == np.float32
    assert np.allclose(mel[:, 0], np.linspace(-5.0, 0.0, 80), atol=1e-5)  # a linear ramp stays that ramp
    assert warning is not None and "vocos" in warning and "melgan" in warning
    assert np.array_equal(interpolate_bands(ramp, 100), ramp)
    np.save(tmp_path / "ok.npy", ramp[:80])
    assert read_mel(tmp_path / "ok.npy", frontend, force=True)[1] is None  # nothing to interpolate, nothing to say


def test_n_critic_two_makes_two_discriminator_updates_per_generator_step_from_an_original_netg(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    # Starting from an original melgan-neurips netG.pt (legacy weight-norm names) of the tiny config's shape.
    original = original_melgan.Generator(80, 8, 3).state_dict()
    torch.save(original, tmp_path / "netG.pt")
    run = tmp_path / "run"
    config = melgan_config(tiny_corpus, "train.max_steps=1", "train.ckpt_every=1", "schedule.n_critic=2")
    assert train(config, run, init_from=str(tmp_path / "netG.pt"), progress=False) == 0
    state = torch.load(run / "checkpoints" / "state_00000001.pt", weights_only=True)

    def adam_steps(name: str) -> set[float]:
        return {float(s["step"]) for s in state["optimizers"][name]["state"].values()}

    assert adam_steps("g") == {1.0} and adam_steps("d") == {2.0}
    assert state["samples_in_epoch"] == 2 * 2  # two batches of 2: one for each D update, G on the last
    start = original_to_gankit(original)
    trained = state["networks"]["generator"]
    assert trained.keys() == start.keys()
    assert max(float((trained[k] - start[k]).abs().max()) for k in start) < 1e-3  # one Adam step of 1e-4 away


def test_d_loss_threshold_holds_the_discriminator(tiny_corpus: Path, tmp_path: Path) -> None:
    # d/total sums the three scales (6.0 when D knows nothing), so a threshold of 100 holds D back from the
    # second step on: the schedule reads the previous step's loss, and the first step has none.
    run = tmp_path / "run"
    config = melgan_config(tiny_corpus, "train.max_steps=3", "train.ckpt_every=3", "schedule.d_loss_threshold=100.0")
    assert train(config, run, progress=False) == 0
    state = torch.load(run / "checkpoints" / "state_00000003.pt", weights_only=True)
    steps = {name: {float(s["step"]) for s in state["optimizers"][name]["state"].values()} for name in ("d", "g")}
    assert steps == {"d": {1.0}, "g": {3.0}}
    rows = list(read_jsonl(run / "metrics.jsonl"))
    assert all("loss/d/total" in r for r in rows)  # held, D's loss is still computed and logged
    assert [r.get("skipped") for r in rows] == [None, ["d_held"], ["d_held"]]


def test_health_monitor_uses_the_hinge_no_information_loss(tmp_path: Path) -> None:
    _, config = load_config("melgan_tiny")
    task = build_task(config)
    nets = task.build_networks()
    run_dir = SimpleNamespace(root=tmp_path, writer=False, tensorboard=None)
    session = HealthSession({}, task, nets, run_dir, DistContext(), console=lambda _: None)
    audio = 0.1 * torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0))
    _, readout = task.discriminator_loss(nets, {}, GeneratorPass(fake=audio, real=audio.flip(-1)))
    assert (readout.no_information_loss, readout.objective) == (2.0, "hinge")
    session.after_step(1, StepOutcome(trained={"d"}, stepped={"d"}, critics={"d": readout}), {}, {})
    levels = {type(c).__name__: c.l0 for c in session.critic_checks["d"]}
    assert levels == {"DiscriminatorCollapseCheck": 2.0, "DiscriminatorOverpoweringCheck": 2.0}


def test_feature_matching_uses_melgans_weights(tmp_path: Path) -> None:
    # 3 sub-discriminators × (6 feature layers + score): each feature layer weighs 4/(4 + 1) · 1/3, the score 0.
    real = [[torch.zeros(1, 2, 3) for _ in range(7)] for _ in range(3)]
    fake = [[torch.ones(1, 2, 3) for _ in range(7)] for _ in range(3)]
    fake[0][-1] = torch.full((1, 1, 3), 100.0)
    got = feature_matching_loss(real, fake, mode="melgan", n_layers=4)
    assert float(got) == pytest.approx(3 * 6 * (4 / 5) / 3)
    _, config = load_config("melgan_tiny")
    task = build_task(config)
    nets = task.build_networks()
    batch = {"audio": torch.zeros(2, 4096).uniform_(-0.5, 0.5), "id": ["a", "b"]}
    gen = task.generate(nets, batch)
    terms = task.generator_loss(nets, batch, gen, adversarial=True)
    out = nets["msd"](torch.cat([gen.real, gen.fake]))
    expected = feature_matching_loss([[f[:2] for f in d] for d in out.features],
                                     [[f[2:] for f in d] for d in out.features], mode="melgan", n_layers=4)
    assert terms.logs["g/fm"] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert terms.logs["g/total"] == pytest.approx(terms.logs["g/adv"] + 10.0 * terms.logs["g/fm"], rel=1e-5)


def test_random_gain_scales_each_crop_and_leaves_validation_alone(tiny_corpus: Path) -> None:
    frontend = build_frontend({"preset": "melgan"})
    data = DataSettings(dir=str(tiny_corpus), segment_size=4096, val_items=1)
    from gankit.data.vocoder_data import build_vocoder_datasets

    plain, val_plain = build_vocoder_datasets(data, frontend, seed=5, log=lambda _: None)
    scaled, val_scaled = build_vocoder_datasets(data, frontend, seed=5, log=lambda _: None, random_gain=(0.3, 1.0))
    gains = []
    for position in range(6):
        key = SampleKey(0, position, position % len(plain))
        a, b = plain[key]["audio"], scaled[key]["audio"]
        gain = float(b.abs().max() / a.abs().max())
        assert torch.allclose(b, a * gain, atol=1e-6)  # the same crop, scaled
        gains.append(gain)
    assert all(0.3 <= g <= 1.0 for g in gains) and len({round(g, 4) for g in gains}) == 6
    assert torch.equal(val_plain[0]["audio"], val_scaled[0]["audio"])
    with pytest.raises(ConfigError, match=r"augment\.random_gain must be"):
        build_task(melgan_config(tiny_corpus, "augment.random_gain=[1.0, 0.3]"))
    task = build_task(melgan_config(tiny_corpus, f"data.mels_dir={tiny_corpus}"))
    with pytest.raises(ConfigError, match=r"data\.mels_dir"):
        task.build_datasets(seed=0)


def test_resume_continues_the_run_bit_identically(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 step + resume + 1 step equals 2 in one go, and the second launch computes step 2 alone (a launch starting
    # again from step 0 would end bit-identical too: training is deterministic). Batch 1: the resume is mid-epoch.
    from tests.support.training import assert_resume_continues

    config_for = lambda *o: melgan_config(tiny_corpus, "data.batch_size=1", "train.num_threads=2", *o)  # noqa: E731
    whole, _ = assert_resume_continues(config_for, tmp_path, monkeypatch, 1, 2)
    assert whole["task"] == "melgan" and whole["samples_in_epoch"] == 2
