"""The GAN health monitor at its DEFAULT settings on real, healthy training: festvox-ru speech, long enough that
every windowed check is armed and has judged at least one full window, and no warning or error is raised.

tests/test_health_training.py shortens grace periods and windows so that induced failures are named inside
short runs; this test is the other half of the claim: the defaults (health/settings.py, none overridden here)
stay quiet on a run that is actually healthy.

Config: hifigan_tiny with the tests' fast data settings (4096-sample segments, batch 2) and discriminators at
1/8 of the original width (model.mpd/msd.channel_divisor=8) instead of the tiny config's 1/32. Why: on the README
demo run (1/32-width discriminators, batch 4 of 8192 samples) discriminator_collapse fires after ~1,500
adversarial steps on 4 of 8 sub-discriminators: those discriminators are too weak to keep separating real from
generated speech, which is a real collapse the check is right to name, not a healthy run. 1/8 width gives them
the capacity to keep learning. Measured (this config, these 80 utterances, 1,600 steps, default health settings,
2026-12, shared 2-core sandbox): no discriminator_collapse, overpowering, dc_offset or dead_layers event; at
step 1,600 the 8 sub-discriminators' median losses were 0.02-0.23 (no-information 0.5) with median real-fake
score gaps 0.49-0.92 (collapse needs ≤ 0.05), D's gradient norm 15 against 19 when judging began, the DC offset
0.02× the real std; val mel L1 0.95 at step 1,000. This test found a false alarm: loss_spike (a warning) fired
twice on d/msd, at steps 237 (2.06 against a recent median 0.18) and 1,211 (1.52 against 0.11) — the multi-scale
discriminators' loss climbing back from near 0 towards equilibrium, which is the adversarial balance the collapse
and overpowering checks judge. loss_spike now leaves the critics' own d/… losses out by default
(`health.loss_spike.critic_losses`), and this run raises nothing. Speed: 1,400 steps took 6.5 min on the quiet
2-core sandbox (7.1 min for the whole test with the corpus preparation).

Long: 7+ minutes, more than CI's whole-run budget leaves for one test, so CI does not run it; `pytest -m long` does
(and `benchmarks/health_onsets.py` measures the same no-false-alarm question over 3,000-step runs). Skipped when
festvox-ru is not installed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from gankit.checkpoint_io import safe_load
from gankit.data.prepare import prepare_corpus
from gankit.engine.health.settings import HealthSettings
from gankit.engine.jsonl import read_jsonl
from tests.support.training import tiny_config, train_tiny

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
UTTERANCES = 80  # the first 80 recordings (~0.19 h): 76 to train on, 4 held out for validation
DEFAULTS = HealthSettings.from_dict({})
COLLAPSE, OVERPOWERING, DC = DEFAULTS.discriminator_collapse, DEFAULTS.discriminator_overpowering, DEFAULTS.dc_offset
# Every windowed check judges from here on (collapse and overpowering count D-optimised steps, dc_offset G-optimised
# adversarial steps; with no warm-up every step optimises both): the latest arming, dc_offset's grace + window +
# persist (1,300), plus 100 steps in which every check has judged full windows.
STEPS = max(COLLAPSE.grace + COLLAPSE.window, OVERPOWERING.grace + OVERPOWERING.window,
            DC.grace + DC.window + DC.persist) + 100
WIDER_DISCRIMINATORS = ("model.mpd.channel_divisor=8", "model.msd.channel_divisor=8")

pytestmark = pytest.mark.long  # 7+ minutes: over what CI can spend; `pytest -m long` runs it


@pytest.fixture(scope="module")
def festvox_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first UTTERANCES festvox-ru recordings, prepared as the README does (festvox, 22.05 kHz)."""
    if not (FESTVOX_RU / "etc" / "txt.done.data").is_file():
        pytest.skip(f"festvox-ru is not installed ({FESTVOX_RU}); `bash scripts/bootstrap.sh festvox-ru` installs it")
    root = tmp_path_factory.mktemp("festvox")
    src = root / "src"
    (src / "etc").mkdir(parents=True)
    lines = (FESTVOX_RU / "etc" / "txt.done.data").read_text(encoding="utf-8").splitlines()[:UTTERANCES]
    (src / "etc" / "txt.done.data").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (src / "wav").symlink_to(FESTVOX_RU / "wav")
    out = root / "data"
    prepare_corpus(src, out, "festvox", sample_rate=22050, val_size=4, progress=False, log=lambda _: None)
    assert len((out / "train.txt").read_text().splitlines()) == UTTERANCES - 4
    return out


def test_default_health_settings_stay_quiet_on_healthy_speech_training(festvox_subset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = (f"train.max_steps={STEPS}", "train.warmup_steps=0", *WIDER_DISCRIMINATORS)
    config = tiny_config(festvox_subset, *overrides)
    assert not config.get("health"), f"expected no health override in the config: {config.get('health')}"
    assert train_tiny(festvox_subset, run, *overrides) == 0

    rows = list(read_jsonl(run / "events.jsonl")) if (run / "events.jsonl").exists() else []
    serious = [(r["step"], r["kind"], r["message"][:300]) for r in rows if r["severity"] != "info"]
    assert serious == [], f"expected no warning-or-worse event in a healthy {STEPS}-step run at default settings"
    logged = list(read_jsonl(run / "metrics.jsonl"))
    assert [r["step"] for r in logged] == list(range(1, STEPS + 1))
    # Healthy, read from the log: the mel loss fell (measured: median 3.6 over steps 1-50, 1.2 over steps 301-400).
    first_mel = statistics.median(r["loss/g/mel"] for r in logged[:50])
    last_mel = statistics.median(r["loss/g/mel"] for r in logged[-200:])
    assert last_mel < 0.7 * first_mel, f"expected the mel loss to fall in a healthy run: {first_mel} → {last_mel}"

    # Armed: the monitor's own state, saved with the final checkpoint, shows every windowed check judged full windows.
    health = safe_load(run / "checkpoints" / f"state_{STEPS:08d}.pt")["health"]
    assert health["step"] == STEPS
    checks: dict[str, Any] = health["checks"]
    collapse = checks["discriminator_collapse"]
    assert collapse["d_steps"] > COLLAPSE.grace + COLLAPSE.window, collapse["d_steps"]
    assert collapse["grad_reference"] is not None, "expected collapse's gradient reference set (a full window judged)"
    assert len(collapse["losses"]) == 8 and all(len(w) == COLLAPSE.window for w in collapse["losses"] + [
        collapse["gaps"][0], collapse["grad"]]), "expected full collapse windows for all 8 sub-discriminators"
    overpowering = checks["discriminator_overpowering"]
    assert overpowering["d_steps"] > OVERPOWERING.grace + OVERPOWERING.window, overpowering["d_steps"]
    assert all(len(w) == OVERPOWERING.window for w in overpowering["losses"]) and len(overpowering["adv"]) == (
        OVERPOWERING.window), "expected full overpowering windows"
    dc = checks["dc_offset"]
    assert dc["adversarial"] is True and dc["g_steps"] >= DC.grace + DC.window + DC.persist, dc["g_steps"]
    assert all(len(w) == DC.window for w in dc["windows"].values()) and set(dc["best"]) == {"dc", "std", "flatness"}
    dead = checks["dead_layers"]
    assert all(dead["net_steps"].get(net, 0) >= DEFAULTS.dead_layers.window for net in ("generator", "mpd", "msd"))
    spikes = checks["loss_spike"]
    assert set(spikes["windows"]) == {"g/mel", "g/adv", "g/fm", "g/total"}  # the critics' d/… losses left out
    assert all(len(w) >= DEFAULTS.loss_spike.grace for w in spikes["windows"].values()), "loss_spike not armed"
    assert all(len(flags) == DEFAULTS.divergence.steps for flags in spikes["out"].values()), "divergence not armed"
