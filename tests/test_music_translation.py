"""Universal Music Translation on the shared engine: the task reads a domain corpus with every domain in every batch,
the classifier and generator losses are the original's, each decoder learns from its own domain only, a schedule
that routes every batch to one decoder is named by the health monitor, training validates (reconstruction,
confusion accuracy, translations as audio and spectrograms), trains every decoder, resumes bit-identically and
exports every decoder; the pitch augmentation changes one stretch only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gankit.tasks
from gankit.config import load_config
from gankit.data.sampler import SampleKey
from gankit.engine.data import collate_batch
from gankit.engine.jsonl import read_jsonl
from gankit.errors import ConfigError, DataError
from gankit.tasks import build_task
from gankit.tasks.base import StepContext
from gankit.tasks.music_translation import MusicTranslationTask
from gankit.training import train
from tests.support.domains import write_domain_corpus

TINY = ("model.encoder_layers=2", "model.encoder_channels=8", "model.latent_channels=4", "model.encoder_pool=400",
        "model.classifier_channels=8", "model.decoder_layers=3", "model.residual_channels=8", "model.skip_channels=8",
        "data.segment=800", "data.batch_size=3", "data.domains=null", "validation.items_per_domain=1",
        "validation.max_translations=2", "validation.translate_seconds=0.05", "train.log_every=1",
        "train.num_threads=1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_domain_corpus(tmp_path_factory.mktemp("domains") / "data")


def config(data: Path, *overrides: str) -> dict[str, Any]:
    _, c = load_config("music_translation_tiny", [f"data.dir={data}", "device=cpu", *TINY, *overrides])
    return c


def batch_of(dataset: Any, n: int) -> dict[str, Any]:
    """Items 0, 3, 6, …: with 3 files per domain in domain order, one of each domain in turn."""
    return collate_batch([dataset[SampleKey(0, i, (3 * i) % len(dataset))] for i in range(n)])


def test_the_task_reads_the_domain_corpus_and_refuses_bad_settings(corpus: Path) -> None:
    task = build_task(config(corpus))
    assert task.domains == ("saw", "sine", "square") and task.model.n_domains == 3
    assert set(task.build_networks()) == {"encoder", "classifier", "decoder_saw", "decoder_sine", "decoder_square"}
    dataset, val = task.build_datasets(seed=1, log=lambda _: None)
    item = dataset[SampleKey(0, 0, 0)]
    assert item["audio"].shape == (800,) and item["audio"].dtype == torch.int64 and int(item["domain"]) == 0
    assert sorted(set(dataset.item_domains)) == [0, 1, 2]
    assert [int(b["domain"][0]) for b in val] == [0, 1, 2] and all(b["audio"].shape == (1, 800) for b in val)
    with pytest.raises(ConfigError, match="multiple of the 3 domains"):
        build_task(config(corpus, "data.batch_size=4"))
    with pytest.raises(ConfigError, match=r"multiple of model\.encoder_pool"):
        build_task(config(corpus, "data.segment=900"))
    with pytest.raises(DataError, match=r"data\.domains: flute"):
        build_task(config(corpus, "data.domains=[flute, saw]"))
    with pytest.raises(DataError, match="at least two domains"):
        build_task(config(corpus, "data.domains=[saw]", "data.batch_size=1"))


def test_the_augmentation_shifts_one_stretch_the_same_way_for_the_same_key(corpus: Path) -> None:
    from gankit.audio.mulaw import mu_law_decode

    task = build_task(config(corpus, "data.segment=4000"))
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    a, b = dataset[SampleKey(2, 5, 4)], dataset[SampleKey(2, 5, 4)]
    assert torch.equal(a["augmented"], b["augmented"])  # drawn from the key
    changed = (a["augmented"] != a["audio"]).nonzero().flatten()
    assert 4000 // 4 * 0.5 < len(changed) and changed.min() < 2000  # a stretch starting in the first half …
    span = int(changed.max() - changed.min()) + 1
    assert 4000 // 4 * 0.9 <= span <= 4000 // 2 + 1  # … of ¼ to ½ of the segment
    clean, shifted = mu_law_decode(a["audio"]).numpy(), mu_law_decode(a["augmented"]).numpy()
    assert np.corrcoef(clean, shifted)[0, 1] > 0.5  # the same notes, slightly detuned
    task.augment.enabled = False
    off = dataset[SampleKey(2, 5, 4)]
    assert torch.equal(off["augmented"], off["audio"]) and torch.equal(off["audio"], a["audio"])


def test_the_losses_are_the_originals_and_each_decoder_learns_from_its_domain_only(corpus: Path) -> None:
    task = build_task(config(corpus))
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    batch = batch_of(dataset, 3)
    assert batch["domain"].tolist() == [0, 1, 2]
    torch.manual_seed(0)
    nets = task.build_networks()
    ctx = StepContext(step=0, groups=("d", "g"))
    d_terms = task.loss("d", nets, batch, ctx)
    with torch.no_grad():
        logits = nets["classifier"](nets["encoder"](batch["audio"]))
    expected_d = F.cross_entropy(logits, batch["domain"])
    torch.testing.assert_close(d_terms.total, 1e-2 * expected_d)
    assert d_terms.classifiers[0].role == "confusion" and d_terms.classifiers[0].chance == pytest.approx(1 / 3)
    g_terms = task.loss("g", nets, batch, ctx)
    latent = nets["encoder"](batch["augmented"])
    recon = sum(F.cross_entropy(nets[k](batch["audio"][i: i + 1], latent[i: i + 1]), batch["audio"][i: i + 1])
                for i, k in enumerate(task.decoder_keys)) / 3
    confusion = F.cross_entropy(nets["classifier"](latent), batch["domain"])
    torch.testing.assert_close(g_terms.total, recon - 1e-2 * confusion)
    # Changing the sine item's audio changes only the sine decoder's gradient (and the shared encoder's).
    def grads(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        for net in nets.values():
            net.zero_grad()
        task.loss("g", nets, b, StepContext(step=0, groups=("g",))).total.backward()
        return {k: torch.cat([p.grad.flatten() for p in nets[k].parameters() if p.grad is not None])
                for k in task.decoder_keys}
    before = grads(batch)
    other = dict(batch)
    other["audio"] = batch["audio"].clone()
    other["audio"][1] = torch.flip(batch["audio"][1], dims=[0])
    after = grads(other)
    assert torch.equal(before["decoder_saw"], after["decoder_saw"])
    assert torch.equal(before["decoder_square"], after["decoder_square"])
    assert not torch.equal(before["decoder_sine"], after["decoder_sine"])


class RoutedToFirstDecoder(MusicTranslationTask):
    """The reported bug: every decoder in the optimizer, every batch routed to the first one."""

    def loss(self, group: str, nets: Any, batch: Any, ctx: StepContext) -> Any:
        first = nets[self.decoder_keys[0]]
        return super().loss(group, {**nets, **{k: first for k in self.decoder_keys}}, batch, ctx)


def build_routed_to_first(config: Any) -> RoutedToFirstDecoder:
    return RoutedToFirstDecoder(config)


def test_a_schedule_that_trains_one_decoder_is_named_and_the_right_one_is_not(corpus: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    args = ("train.max_steps=1", "train.val_every=1000", "train.ckpt_every=1000")
    assert train(config(corpus, *args), tmp_path / "right", progress=False) == 0
    assert [e["kind"] for e in read_jsonl(tmp_path / "right" / "events.jsonl")] == []
    monkeypatch.setitem(gankit.tasks.TASKS, "music_translation", (__name__, "build_routed_to_first"))
    assert train(config(corpus, *args), tmp_path / "broken", progress=False) == 0
    events = [e for e in read_jsonl(tmp_path / "broken" / "events.jsonl") if e["kind"] == "unused_parameters"]
    assert len(events) == 1
    layers = " ".join(events[0]["values"]["layers"])
    assert "decoder_sine" in layers and "decoder_square" in layers and "decoder_saw" not in layers


def test_training_validates_translates_trains_every_decoder_and_exports(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    torch.manual_seed(0)
    untrained = build_task(config(corpus)).build_networks()  # the same seed as the run's: its starting weights
    assert train(config(corpus, "train.max_steps=3", "train.val_every=3", "train.ckpt_every=3"), run,
                 progress=False) == 0
    rows = list(read_jsonl(run / "validation.jsonl"))
    assert [r["step"] for r in rows] == [3]
    assert {"val/recon", "val/recon_saw", "val/recon_sine", "val/recon_square", "val/confusion_acc"} <= set(rows[0])
    assert 0 < rows[0]["val/recon"] < np.log(256) + 0.5  # nats per sample, about uniform over 256 classes untrained
    index = json.loads((run / "samples" / "step_00000003" / "index.json").read_text())
    shown = {(m["group"], m["label"], m["type"]) for m in index["items"]}
    assert shown == {("saw p03", "to sine", "audio"), ("saw p03", "to sine", "spectrogram"),
                     ("sine p03", "to square", "audio"), ("sine p03", "to square", "spectrogram")}
    metrics = list(read_jsonl(run / "metrics.jsonl"))
    assert {"loss/d/conf", "loss/g/recon", "loss/g/recon_sine", "loss/g/conf", "lr/g", "lr/d"} <= set(metrics[-1])
    payload = torch.load(run / "checkpoints" / "generator_00000003.pt", weights_only=True)
    assert payload["task"] == "music_translation" and payload["domains"] == ["saw", "sine", "square"]
    for domain in ("saw", "sine", "square"):  # every decoder trained
        start = untrained[f"decoder_{domain}"].state_dict()
        moved = [k for k, v in payload["decoders"][domain].items() if not torch.equal(v, start[k])]
        assert len(moved) > len(start) // 2, domain


@pytest.mark.slow  # ~20 s: three short runs
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


def test_a_new_domain_trains_its_decoder_from_a_run_with_the_encoder_frozen(corpus: Path, tmp_path: Path) -> None:
    """`--init-from` a two-domain run with a three-domain list: the encoder (train.freeze) and the old decoders
    (frozen too here) keep their weights, the classifier is built fresh (train.init_skip: its output size changed),
    the new decoder trains."""
    first = tmp_path / "two"
    args = ("train.val_every=1000", "train.ckpt_every=2", "train.max_steps=2")
    assert train(config(corpus, "data.domains=[saw, sine]", "data.batch_size=2", *args), first, progress=False) == 0
    old = torch.load(first / "checkpoints" / "state_00000002.pt", weights_only=True)["networks"]
    grown = tmp_path / "three"
    freeze = "train.freeze=[encoder, decoder_saw, decoder_sine]"
    with pytest.raises(Exception, match="optimizer state does not fit"):  # g's optimizer now holds a third decoder
        train(config(corpus, freeze, "train.init_skip=[classifier]", *args), grown, init_from=str(first),
              progress=False)
    assert train(config(corpus, freeze, "train.init_skip=[classifier]", *args), tmp_path / "three_fresh",
                 init_from=str(first), reset_optimizer=True, progress=False) == 0
    new = torch.load(tmp_path / "three_fresh" / "checkpoints" / "state_00000002.pt", weights_only=True)["networks"]
    for net in ("encoder", "decoder_saw", "decoder_sine"):
        assert all(torch.equal(v, new[net][k]) for k, v in old[net].items()), net
    torch.manual_seed(1234)  # the run's seed: the fresh networks' starting weights
    start = build_task(config(corpus)).build_networks()
    moved = [k for k, v in new["decoder_square"].items() if not torch.equal(v, start["decoder_square"].state_dict()[k])]
    assert len(moved) > len(new["decoder_square"]) // 2
    assert new["classifier"]["convs.6.weight"].shape[0] == 3
    with pytest.raises(ConfigError, match=r"train\.freeze: no network\(s\) decoder_flute"):
        train(config(corpus, "train.freeze=[decoder_flute]", *args), tmp_path / "bad", progress=False)


def test_an_unreadable_file_is_replaced_by_another_of_its_domain(corpus: Path, tmp_path: Path) -> None:
    import shutil

    from gankit.data.sampler import REPLACED_KEY

    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    task = build_task(config(data))
    dataset, _ = task.build_datasets(seed=1, log=lambda _: None)
    broken = dataset.entries[4]  # a sine file
    (data / "wavs" / f"{broken.id}.wav").write_bytes(b"not audio")
    item = dataset[SampleKey(0, 7, 4)]
    assert item[REPLACED_KEY][0][0] == broken.id and item["id"] != broken.id
    assert item["id"].startswith("sine/") and int(item["domain"]) == 1  # the batch stays balanced
    assert item["id"] == dataset[SampleKey(0, 7, 4)]["id"]  # the replacement is drawn from the key alone
