"""Replay the health checks that read only logged numbers (loss_spike/divergence on the losses, dc_offset on the
output statistics) over runs' metrics.jsonl, with any health settings: what those settings would have named.

A run logged at `train.log_every: 1` (the tiny configs) gives the checks exactly what they saw live, so settings
can be judged on measured healthy runs (no finding is a false alarm) and on induced failures (each must still be
named) without training again. The critic checks, dead layers and the unused-parameter probe need readouts and
gradients that metrics.jsonl does not hold: they are not replayed.

    python benchmarks/health_replay.py RUN [RUN ...] [--set dc_offset.onset_flatness_factor=8 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def records(run: Path) -> Iterator[Any]:
    """StepRecords rebuilt from metrics.jsonl rows: losses, and audio statistics where logged."""
    from gankit.engine.health.record import AudioStats, StepRecord

    with open(run / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            losses = {k[5:]: float(v) for k, v in row.items() if k.startswith("loss/")}
            fake = real = None
            if "out/fake_std" in row:
                fake = AudioStats(row["out/fake_dc"], row["out/fake_std"], row["out/fake_flatness"])
                real = AudioStats(row["out/real_dc"], row["out/real_std"], row["out/real_flatness"])
            groups = frozenset(k[3:] for k in row if k.startswith("lr/"))
            yield StepRecord(step=int(row["step"]), losses=losses, trained=groups, stepped=groups,
                             fake_audio=fake, real_audio=real)


def parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def settings_from(overrides: list[str]) -> Any:
    from gankit.engine.health.settings import HealthSettings

    tree: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        tree.setdefault(section, {})[name] = parse_value(value)
    return HealthSettings.from_dict(tree)


def replay(run: Path, settings: Any, floors: dict[str, float]) -> list[tuple[int, str, str]]:
    from gankit.engine.health.audio import DcOffsetCheck
    from gankit.engine.health.losses import LossSpikeCheck

    checks = [DcOffsetCheck(settings.dc_offset),
              LossSpikeCheck(settings.loss_spike, settings.divergence, critic_prefixes={"d/"}, floors=floors)]
    found = []
    for record in records(run):
        for check in checks:
            found.extend((record.step, f.kind, f.message) for f in check.observe(record))
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a health setting, e.g. dc_offset.onset_flatness_factor=8 (repeatable)")
    p.add_argument("--floor", action="append", default=[], metavar="LOSS=VALUE",
                   help="a loss's spike floor as its critic would set it (e.g. g/adv=6 for MelGAN's hinge MSD)")
    args = p.parse_args(argv)
    settings = settings_from(args.overrides)
    floors = {k: float(v) for k, _, v in (f.partition("=") for f in args.floor)}
    for run in args.runs:
        found = replay(run, settings, floors)
        kinds = sorted({kind for _, kind, _ in found})
        print(f"{run}: {len(found)} finding(s) of {len(kinds)} kind(s)")
        for kind in kinds:  # the first of each kind in full, then where the others fell
            steps = [step for step, k, _ in found if k == kind]
            first = next(m for step, k, m in found if k == kind)
            print(f"  [{kind}] first at step {steps[0]}, {len(steps)} in all (last {steps[-1]}): {first[:300]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
