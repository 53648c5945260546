"""The music-translation CPU demo, shortened: `music_translation_tiny` on three instruments of the built-in corpus
(fluidsynth renders) trains every decoder, each domain's teacher-forced reconstruction falls well below the untrained
model's, and piano phrases come out translated to cello (audio of the input's length, finite, not silent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.config import load_config
from gankit.data import instruments
from gankit.engine.jsonl import read_jsonl
from gankit.tasks import build_task
from gankit.training import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("fluidsynth") is None or not any(p.is_file() for p in instruments.SOUNDFONTS),
                       reason=f"needs fluidsynth and a General-MIDI soundfont: {instruments.INSTALL}"),
]
STEPS = 300
# Untrained ≈ ln 256 = 5.55 nats per sample on every domain; measured at 300 steps (2026-12-03, 2-core sandbox):
# 3.56–4.09. The gate: at least 1 nat below the untrained model on every domain.
MARGIN_NATS = 1.0


def test_the_demo_trains_every_decoder_and_translates_piano_to_cello(tmp_path: Path) -> None:
    data = tmp_path / "instruments"
    instruments.prepare_instruments(data, phrases=12, val_size=2, instruments=["piano", "cello", "violin"],
                                    progress=False, log=lambda _: None)
    overrides = [f"data.dir={data}", "device=cpu", f"train.max_steps={STEPS}", f"train.val_every={STEPS}",
                 f"train.ckpt_every={STEPS}", "train.num_threads=2"]
    _, config = load_config("music_translation_tiny", overrides)
    task = build_task(config)
    torch.manual_seed(int(config["seed"]))
    untrained = task.build_networks()
    _, val = task.build_datasets(seed=1, log=lambda _: None)
    with torch.no_grad():
        for net in untrained.values():
            net.eval()
        before = task.validation.run(untrained, val).metrics
    run = tmp_path / "run"
    assert train(config, run, progress=False) == 0
    after = list(read_jsonl(run / "validation.jsonl"))[-1]
    for domain in ("piano", "cello", "violin"):
        assert after[f"val/recon_{domain}"] < before[f"val/recon_{domain}"] - MARGIN_NATS, (domain, before, after)
    payload = torch.load(run / "checkpoints" / f"generator_{STEPS:08d}.pt", weights_only=True)
    for domain in ("piano", "cello", "violin"):  # every decoder trained
        start = untrained[f"decoder_{domain}"].state_dict()
        moved = [k for k, v in payload["decoders"][domain].items() if not torch.equal(v, start[k])]
        assert len(moved) > len(start) // 2, domain
    import soundfile as sf

    translated = sorted((run / "samples" / f"step_{STEPS:08d}").glob("piano_*__to_cello.wav"))
    assert translated, sorted(p.name for p in (run / "samples" / f"step_{STEPS:08d}").iterdir())
    audio, rate = sf.read(translated[0])
    assert rate == 16000 and len(audio) == int(0.25 * 16000) and np.isfinite(audio).all() and audio.std() > 1e-3
