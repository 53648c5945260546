"""`gankit vocode` imports only what vocoding needs (issue 18: start-up counts when a TTS system times the whole
process): no librosa, scipy, matplotlib, tensorboard, scikit-learn, and none of gankit's training, metrics, report,
image, conversion or music code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support.vocoder_files import ln_mel, save_generator

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_PACKAGES = ("librosa", "scipy", "matplotlib", "tensorboard", "sklearn", "numba", "PIL", "pesq", "pystoi")
FORBIDDEN_GANKIT = ("gankit.engine", "gankit.tasks", "gankit.metrics", "gankit.report", "gankit.losses",
                    "gankit.models.dcgan", "gankit.models.stargan_vc", "gankit.models.music_translation",
                    "gankit.infer.conversion", "gankit.infer.images", "gankit.infer.evaluation")

PROBE = """
import json, sys
from gankit.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_vocode_imports_only_what_vocoding_needs(tmp_path: Path) -> None:
    save_generator(tmp_path / "g.pt", {"preset": "hifigan"})
    np.save(tmp_path / "m.npy", ln_mel(40, seed=3))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "vocode", "--checkpoint", str(tmp_path / "g.pt"), str(tmp_path / "m.npy"),
         "--out-dir", str(tmp_path / "out"), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["code"] == 0 and (tmp_path / "out" / "m.wav").is_file()
    modules = report["modules"]
    tops = {m.split(".")[0] for m in modules}
    assert not tops & set(FORBIDDEN_PACKAGES), sorted(tops & set(FORBIDDEN_PACKAGES))
    loaded = [m for m in modules if m.startswith(FORBIDDEN_GANKIT)]
    assert loaded == [], loaded
    assert "gankit.infer.vocoder" in modules and "gankit.models.hifigan" in modules  # the probe saw the real work
