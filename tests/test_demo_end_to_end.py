"""The README's main job, shortened: festvox-ru → prepare → train → vocode held-out speech → score → report.

Slow (about 4–5 minutes on 2 cores): CI runs it in its own step (`pytest -m slow`). The run is bounded by steps,
not seconds, so its numbers do not depend on the machine's speed; the floors below were measured first and
leave a margin, so a regression in training, the mel front-end or inference fails CI instead of surprising
a user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")

# Measured on 2026-11-29 with exactly this command on the project's 2-core CPU sandbox (4 held-out utterances,
# 600 steps of which 400 mel-only; 4.4 min wall in all): model mel L1 0.94, MR-STFT 2.24, MCD 9.0 dB, STOI 0.53,
# PESQ-WB 1.03; an untrained generator of the same config on the same mels: mel L1 5.8, MR-STFT 4.6, MCD 26.4 dB,
# STOI 0.42, PESQ-WB 1.14 (PESQ does not separate them yet, so it is not checked); Griffin-Lim: PESQ-WB 2.62,
# STOI 0.97. Each bound sits between the trained and the untrained figure, with room for other CPUs' rounding.
MODEL_MEL_L1_CEILING = 1.2
MODEL_MRSTFT_CEILING = 3.0
MODEL_MCD_CEILING = 12.0
MODEL_STOI_FLOOR = 0.47
GRIFFIN_LIM_PESQ_FLOOR = 2.2
GRIFFIN_LIM_STOI_FLOOR = 0.93

pytestmark = pytest.mark.slow


def test_demo_trains_vocodes_scores_and_reports(tmp_path: Path) -> None:
    if not (FESTVOX_RU / "etc" / "txt.done.data").is_file():
        pytest.skip(f"festvox-ru is not installed ({FESTVOX_RU}); `bash scripts/bootstrap.sh festvox-ru` installs it")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "gankit", "demo", "--no-progress", "--minutes", "30", "--eval-limit", "4",
               "--data", str(tmp_path / "data"), "--run-dir", str(run),
               "train.max_steps=600", "train.warmup_steps=400", "train.val_every=300", "train.ckpt_every=300"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    index = run / "report" / "index.html"
    assert index.is_file() and str(index) in result.stdout, "expected the demo to end by printing the report's path"
    assert (run / "heldout" / "model").is_dir() and len(list((run / "heldout" / "model").glob("*.wav"))) == 4

    systems = json.loads((run / "evaluation.json").read_text())["systems"]
    model = {k: v["mean"] for k, v in systems["model"]["summary"].items()}
    griffin_lim = {k: v["mean"] for k, v in systems["griffin_lim"]["summary"].items()}
    measured = f"model {model}, Griffin-Lim {griffin_lim}"
    assert model["mel_l1"] <= MODEL_MEL_L1_CEILING, measured
    assert model["mrstft_total"] <= MODEL_MRSTFT_CEILING, measured
    assert model["mcd_db"] <= MODEL_MCD_CEILING, measured
    assert model["stoi"] >= MODEL_STOI_FLOOR, measured
    assert griffin_lim["pesq_wb"] >= GRIFFIN_LIM_PESQ_FLOOR, measured
    assert griffin_lim["stoi"] >= GRIFFIN_LIM_STOI_FLOOR, measured
