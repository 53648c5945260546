"""StarGAN-VC on the shared engine: the task reads a speaker corpus, each loss term is what the original computes,
the gradient penalty accumulates exactly, training validates with conversion measures and media, resumes
bit-identically and exports a generator file that carries its speakers and band statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.config import load_config
from gankit.data.sampler import SampleKey
from gankit.engine.jsonl import read_jsonl
from gankit.errors import ConfigError, DataError
from gankit.tasks import build_task
from gankit.tasks.base import StepContext
from gankit.training import train
from tests.support.speakers import write_corpus

SMALL = ("model.g_channels=16", "model.d_channels=16", "data.batch_size=4", "data.segment_frames=32",
         "data.groups=null", "data.val_max_frames=64", "validation.pairs_per_group=1", "validation.griffin_lim_iters=2",
         "validation.classifier_files=4", "train.log_every=1", "train.num_threads=1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("speakers") / "data", sentences=6, val_sentences=2)


def config(data: Path, *overrides: str) -> dict[str, Any]:
    _, c = load_config("stargan_vc_tiny", [f"data.dir={data}", "device=cpu", *SMALL, *overrides])
    return c


def batch_of(task: Any, dataset: Any, n: int, epoch: int = 0) -> dict[str, Any]:
    items = [dataset[SampleKey(epoch, i, i % len(dataset))] for i in range(n)]
    return {key: (torch.stack([it[key] for it in items]) if isinstance(items[0][key], torch.Tensor)
                  else torch.tensor([it[key] for it in items]) if isinstance(items[0][key], (int, float))
                  else [it[key] for it in items]) for key in items[0]}


def test_the_task_reads_the_speaker_corpus(corpus: Path) -> None:
    task = build_task(config(corpus))
    assert task.speakers.names == ("a_high", "a_low", "b_high", "b_low")
    assert task.model.n_speakers == 4 and task.model.n_mels == 80
    dataset, val = task.build_datasets(seed=1, log=lambda _: None)
    item = dataset[SampleKey(0, 0, 0)]
    assert item["mel"].shape == (80, 32)
    # Targets stay within the source's group; every speaker is a domain of the balanced sampler.
    groups = task.speakers.groups
    for i in range(len(dataset)):
        it = dataset[SampleKey(0, i, i)]
        assert it["target"] != it["speaker"] and groups[it["target"]] == groups[it["speaker"]]
    assert sorted(set(dataset.item_domains)) == [0, 1, 2, 3]
    assert len(val) == 8 and all(b["mel"].shape[-1] % 4 == 0 for b in val)


def test_bad_settings_are_named(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of the 4 speakers"):
        build_task(config(corpus, "data.batch_size=6"))
    with pytest.raises(ConfigError, match="n_speakers is 3"):
        build_task(config(corpus, "model.n_speakers=3"))
    with pytest.raises(DataError, match="single speaker"):
        build_task(config(corpus, "data.speakers=[a_low, a_high, b_low]", "data.batch_size=3"))
    with pytest.raises(DataError, match=r"data\.groups: c"):
        build_task(config(corpus, "data.groups=[c]"))
    with pytest.raises(ConfigError, match=r"loss\.adversarial"):
        build_task(config(corpus, "loss.adversarial=bce"))
    with pytest.raises(DataError, match=r"speakers\.tsv not found"):
        build_task(config(tmp_path))


def _losses(task: Any, batch: dict[str, Any], nets: dict[str, Any], step: int = 0) -> dict[str, Any]:
    ctx = StepContext(step=step, groups=("d", "g"))
    task.prepare(nets, batch, ctx)
    return {"d": task.loss("d", nets, batch, ctx), "g": task.loss("g", nets, batch, ctx), "ctx": ctx}


@pytest.mark.parametrize("objective", ["wgan", "lsgan", "hinge"])
def test_each_loss_term_is_the_originals(corpus: Path, objective: str) -> None:
    torch.manual_seed(0)
    task = build_task(config(corpus, f"loss.adversarial={objective}", "model.d_dropout=0.0"))
    nets = task.build_networks()
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    batch = batch_of(task, dataset, 4)
    out = _losses(task, batch, nets)
    d_terms, g_terms, cache = out["d"], out["g"], out["ctx"].cache["vc"]
    g, d = nets["generator"], nets["discriminator"]
    x, s, t = batch["mel"], batch["speaker"], batch["target"]
    with torch.no_grad():
        r, r_logits = d(x, per_frame=True)
        f, _ = d(torch.cat([cache.converted, cache.identity]), per_frame=True)
        fc, fc_logits = d(cache.converted, per_frame=True)
        fi, fi_logits = d(cache.identity, per_frame=True)
        # The original's formulas (kamepong/StarGAN-VC net.py), written out again here.
        adv_d = {"wgan": -r.mean() + f.mean(), "lsgan": 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
                 "hinge": torch.relu(1 - r).mean() + torch.relu(1 + f).mean()}[objective]
        fake_g = torch.cat([fc, fi])
        adv_g = 0.5 * ((fake_g - 1) ** 2).mean() if objective == "lsgan" else -fake_g.mean()

        def cls(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # CE summed ÷ numel of the logits
            flat = logits.permute(0, 2, 1).reshape(-1, 4)
            return torch.nn.functional.cross_entropy(flat, labels.repeat_interleave(logits.shape[-1]),
                                                     reduction="sum") / flat.numel()

        cycle = (g(cache.converted, s) - x).abs().mean()
        identity = (g(x, s) - x).abs().mean()
    logs_d, logs_g = d_terms.logs, g_terms.logs
    assert logs_d["d/adv"] == pytest.approx(float(adv_d), rel=1e-5, abs=1e-6)
    assert logs_d["d/cls"] == pytest.approx(float(cls(r_logits, s)), rel=1e-5)
    assert logs_g["g/adv"] == pytest.approx(float(adv_g), rel=1e-5, abs=1e-6)
    assert logs_g["g/cls"] == pytest.approx(float(0.5 * (cls(fc_logits, t) + cls(fi_logits, s))), rel=1e-5)
    assert logs_g["g/cycle"] == pytest.approx(float(cycle), rel=1e-5)
    assert logs_g["g/identity"] == pytest.approx(float(identity), rel=1e-5)
    assert float(d_terms.total) == pytest.approx(logs_d["d/adv"] + logs_d["d/gp"] + logs_d["d/cls"], rel=1e-5)
    assert float(g_terms.total) == pytest.approx(
        logs_g["g/adv"] + logs_g["g/cls"] + logs_g["g/cycle"] + logs_g["g/identity"], rel=1e-5)
    assert logs_d["d/gp"] > 0
    # The health monitor's readouts: a critic with the objective's no-information loss, an auxiliary classifier.
    assert d_terms.readout is not None and d_terms.readout.no_information_loss == {
        "wgan": None, "lsgan": 0.25, "hinge": 2.0}[objective]
    assert d_terms.classifiers[0].role == "auxiliary" and d_terms.classifiers[0].chance == 0.25
    # The identity term can be limited to the first steps.
    late = build_task(config(corpus, "loss.identity_steps=10"))
    assert late.loss_settings.identity_weight(9) == 1.0 and late.loss_settings.identity_weight(10) == 0.0


def test_the_gradient_penalty_accumulates_exactly(corpus: Path) -> None:
    """D's gradient from one batch of 8 equals the mean of its gradients from two micro-batches of 4 (the engine's
    accumulation), because the penalty's mix α comes with each item, not from a global random draw."""
    torch.manual_seed(0)
    task = build_task(config(corpus, "loss.adversarial=wgan", "model.d_dropout=0.0", "data.batch_size=8"))
    nets = task.build_networks()
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    batch = batch_of(task, dataset, 8)

    def d_grads(part: dict[str, Any]) -> list[torch.Tensor]:
        nets["discriminator"].zero_grad()
        ctx = StepContext(step=0, groups=("d",))
        task.prepare(nets, part, ctx)
        terms = task.loss("d", nets, part, ctx)
        assert terms.logs["d/gp"] > 0
        terms.total.backward()
        return [p.grad.clone() for p in nets["discriminator"].parameters()]

    whole = d_grads(batch)
    halves = [d_grads({k: v[i: i + 4] for k, v in batch.items()}) for i in (0, 4)]
    for w, a, b in zip(whole, *halves, strict=True):
        torch.testing.assert_close(w, (a + b) / 2, rtol=1e-4, atol=1e-6)


def test_training_validates_converts_and_exports(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(config(corpus, "train.max_steps=4", "train.val_every=2", "train.ckpt_every=2",
                        "train.grad_accum=2"), run, progress=False) == 0
    rows = list(read_jsonl(run / "validation.jsonl"))
    assert [r["step"] for r in rows] == [2, 4]
    for key in ("val/target_share", "val/real_share", "val/d_target_acc", "val/content_margin", "val/cycle_l1",
                "val/identity_l1"):
        assert key in rows[-1], key
    assert rows[-1]["val/real_share"] >= 0.75  # the validation classifier knows the real speakers
    assert json.loads((run / "checkpoints" / "manifest.json").read_text())["best_metric"] == "val/target_share"
    index = json.loads((run / "samples" / "step_00000004" / "index.json").read_text())
    shown = {(m["group"], m["label"], m["type"]) for m in index["items"]}
    assert shown == {(f"{pair} s004", "converted", kind) for pair in ("a_high to a_low", "b_high to b_low")
                     for kind in ("spectrogram", "audio")}
    reference = json.loads((run / "samples" / "reference" / "index.json").read_text())
    assert {(m["label"], m["type"]) for m in reference["items"]} == {("source", "spectrogram"), ("source", "audio")}
    metrics = list(read_jsonl(run / "metrics.jsonl"))
    assert {"loss/d/adv", "loss/d/gp", "loss/d/cls", "loss/g/cycle", "loss/g/identity"} <= set(metrics[-1])
    generator = sorted((run / "checkpoints").glob("generator_*.pt"))[-1]
    payload = torch.load(generator, weights_only=True)
    assert payload["task"] == "stargan_vc" and payload["speakers"] == ["a_high", "a_low", "b_high", "b_low"]
    assert len(payload["band_mean"]) == 80 and payload["frontend"]["preset"] == "hifigan"


def test_training_resumes_bit_identically(corpus: Path, tmp_path: Path) -> None:
    args = ("train.val_every=1000", "train.ckpt_every=2")
    assert train(config(corpus, "train.max_steps=4", *args), tmp_path / "whole", progress=False) == 0
    assert train(config(corpus, "train.max_steps=2", *args), tmp_path / "split", progress=False) == 0
    assert train(config(corpus, "train.max_steps=4", *args), tmp_path / "split", progress=False) == 0
    a = torch.load(tmp_path / "whole" / "checkpoints" / "state_00000004.pt", weights_only=True)["networks"]
    b = torch.load(tmp_path / "split" / "checkpoints" / "state_00000004.pt", weights_only=True)["networks"]
    for net in a:
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), (net, key)


# --- spec256: the 1,479-label attempt's network on the same task ----------------------------------------------------
SPEC256_SMALL = ("model.n_res_blocks=1", "model.d_channels=8", "data.groups=null", "validation.pairs_per_group=1",
                 "validation.griffin_lim_iters=2", "validation.classifier_files=4", "train.log_every=1",
                 "train.num_threads=2")


def spec256_config(data: Path, *overrides: str) -> dict[str, Any]:
    _, c = load_config("stargan_vc_spec256", [f"data.dir={data}", "device=cpu", *SPEC256_SMALL, *overrides])
    return c


def test_spec256_reads_256_band_crops_scaled_onto_0_1_with_a_range_from_the_training_files(corpus: Path) -> None:
    from gankit.audio.mel_scaling import MinMaxScaling
    from gankit.data.filelist import read_filelist
    from gankit.data.speaker_mels import utterance_mel

    task = build_task(spec256_config(corpus))
    assert task.architecture.name == "spec256" and task.model.n_labels == 4 and task.frontend.n_mels == 256
    assert isinstance(task.scaling, MinMaxScaling)
    # The range is the extremes of the training files' log-mels: every training mel scales into [0, 1] and
    # touches both ends; a held-out one may fall outside and is clipped.
    ends = []
    for entry in read_filelist(corpus / "train.txt"):
        mel, _ = utterance_mel(corpus / "wavs" / f"{entry.id}.wav", task.frontend, task.scaling)
        assert 0.0 <= float(mel.min()) and float(mel.max()) <= 1.0
        ends += [float(mel.min()), float(mel.max())]
    assert min(ends) == 0.0 and max(ends) == pytest.approx(1.0)
    dataset, val = task.build_datasets(seed=1, log=lambda _: None)
    item = dataset[SampleKey(0, 0, 0)]
    assert item["mel"].shape == (256, 256) and dataset.item_domains is None  # batch 2 < 4 speakers: not balanced
    assert all(b["mel"].shape == (1, 256, 256) for b in val)  # short utterances padded to the crop
    with pytest.raises(ConfigError, match=r"must be 256 for model\.type spec256"):
        build_task(spec256_config(corpus, "data.segment_frames=128"))
    with pytest.raises(ConfigError, match=r"needs data\.scaling=min_max"):
        build_task(spec256_config(corpus, "data.scaling=band_standardisation"))
    with pytest.raises(ConfigError, match="takes 256 mel bands"):
        build_task(spec256_config(corpus, "frontend.n_mels=80", "frontend.n_fft=1024"))


@pytest.mark.slow  # ~30 s on 2 quiet cores: full-width 256×256 convolutions
def test_spec256_trains_validates_exports_and_converts(corpus: Path, tmp_path: Path) -> None:
    import numpy as np

    from gankit.infer.conversion import load_converter
    from tests.support.speakers import SPEAKERS, utterance

    run = tmp_path / "run"
    assert train(spec256_config(corpus, "train.max_steps=2", "train.val_every=2", "train.ckpt_every=2"), run,
                 progress=False) == 0
    rows = list(read_jsonl(run / "validation.jsonl"))
    assert [r["step"] for r in rows] == [2] and {"val/target_share", "val/content_margin"} <= set(rows[0])
    metrics = list(read_jsonl(run / "metrics.jsonl"))
    assert {"loss/d/adv", "loss/d/gp", "loss/g/cycle", "lr/g"} <= set(metrics[-1]) and metrics[-1]["lr/g"] == 1e-5
    state = torch.load(run / "checkpoints" / "state_00000002.pt", weights_only=True)
    assert "square_avg" in next(iter(state["optimizers"]["g"]["state"].values()))  # RMSprop's, not Adam's
    generator = run / "checkpoints" / "generator_00000002.pt"
    payload = torch.load(generator, weights_only=True)
    assert payload["architecture"] == "spec256" and payload["scaling"]["kind"] == "min_max"
    assert "band_mean" not in payload and payload["frontend"]["n_mels"] == 256
    converter = load_converter(generator)
    name, _, f0, tilt = SPEAKERS[0]
    wave = utterance(f0, tilt, sentence=0, seconds=7.0)  # 602 frames: three overlapping 256-frame crops
    log_mel = converter.convert(wave, 22050, target="a_low", source=name)
    assert log_mel.shape == (256, 602) and torch.isfinite(log_mel).all()
    low, high = converter.scaling.low, converter.scaling.high  # type: ignore[attr-defined]
    assert low <= float(log_mel.min()) and float(log_mel.max()) <= high  # the sigmoid's range, mapped back
    audio = converter.voice(log_mel, griffin_lim_iters=2)
    assert audio.shape == (602 * 256,) and np.isfinite(audio).all()
