"""The RUSLAN report's discriminator-killing settings next to the defaults, on the tiny config, with the health monitor.

The report trained HiFi-GAN on RUSLAN with λ_fm 0, λ_mel 150, lr_G 5e-4, lr_D 5e-5 and Adam betas 0.3/0.8 for both
optimizers, and its discriminator died. This script trains the tiny config twice — that scenario, and a control with
the default settings — and prints which health events fired at which steps, with the losses at the end.

The health monitor's grace periods and windows are shortened so its checks are armed within a few hundred steps
(thresholds stay at their defaults); a healthy run of this config stays quiet with them (tests/test_health_training.py).

    python benchmarks/ruslan_collapse.py                          # synthetic corpus, 400 steps a run (minutes on CPU)
    python benchmarks/ruslan_collapse.py --data data/festvox_ru   # a folder written by `gankit prepare` (22.05 kHz)
    python benchmarks/ruslan_collapse.py --steps 1000 health.discriminator_collapse.grace=500

Not a test: the outcome is reported in the README, not tuned into CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUSLAN = (
    "loss.lambda_fm=0",
    "loss.lambda_mel=150",
    "optim.g.lr=5e-4",
    "optim.d.lr=5e-5",
    "optim.g.betas=[0.3,0.8]",
    "optim.d.betas=[0.3,0.8]",
)
# Armed within a few hundred steps of this config; quiet on a healthy run of it (see tests/test_health_training.py).
HEALTH = (
    "health.discriminator_collapse.grace=250",
    "health.discriminator_collapse.window=40",
    "health.discriminator_overpowering.grace=20",
    "health.discriminator_overpowering.window=20",
    "health.dc_offset.grace=200",
    "health.dc_offset.window=50",
    "health.dc_offset.persist=20",
    "health.dead_layers.window=10",
    "health.loss_spike.grace=20",
    "health.loss_spike.window=50",
    "health.divergence.steps=10",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="optimizer steps per run (default 400)")
    p.add_argument("--data", type=Path, default=None,
                   help="a corpus folder written by `gankit prepare` at 22.05 kHz (default: a synthetic one)")
    p.add_argument("--out", type=Path, default=None, help="where the two run directories go (default: a temp folder)")
    p.add_argument("--only", choices=("ruslan", "control"), default=None, help="train just one of the two runs")
    p.add_argument("--segment-size", type=int, default=4096, help="training segment in samples (default 4096)")
    p.add_argument("--batch-size", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--val-every", type=int, default=100, help="validation interval in steps (default 100)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides, for both runs")
    return p.parse_args(argv)


def corpus_folder(args: argparse.Namespace, out: Path) -> Path:
    if args.data is not None:
        return args.data
    from tests.support.corpus import write_corpus

    folder = out / "corpus"
    if not (folder / "train.txt").is_file():
        write_corpus(folder)
    return folder


def train_run(
    name: str, scenario: tuple[str, ...], corpus: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from gankit.config import load_config
    from gankit.engine.jsonl import read_jsonl
    from gankit.training import train

    run = out / name
    if (run / "checkpoints").exists():
        raise SystemExit(f"{run} already holds a run; pass another --out (this script starts fresh runs).")
    overrides = [
        f"data.dir={corpus}", f"device={args.device}", f"train.max_steps={args.steps}",
        f"data.segment_size={args.segment_size}", f"data.batch_size={args.batch_size}",
        f"train.val_every={args.val_every}", f"train.ckpt_every={args.steps}", f"train.num_threads={args.threads}",
        *HEALTH, *scenario, *args.overrides,
    ]
    _, config = load_config("hifigan_tiny", overrides)
    print(f"\n== {name}: {' '.join(scenario) or 'default settings'} ({args.steps} steps, {run})", flush=True)
    started = time.monotonic()
    code = train(config, run, progress=False)
    seconds = time.monotonic() - started
    rows = list(read_jsonl(run / "metrics.jsonl"))
    tail = rows[-40:]

    def median(key: str) -> float:
        values = [r[key] for r in tail if isinstance(r.get(key), (int, float))]
        return statistics.median(values) if values else float("nan")

    events: dict[str, dict[str, Any]] = {}
    for event in read_jsonl(run / "events.jsonl"):
        seen = events.setdefault(event["kind"], {"first": event["step"], "count": 0, "severity": event["severity"],
                                                  "values": event["values"]})
        seen["count"] += 1
    val = [v for v in read_jsonl(run / "validation.jsonl") if "val/mel_l1" in v]
    return {
        "name": name, "code": code, "seconds": seconds, "steps": rows[-1]["step"] if rows else 0, "events": events,
        "d_total": median("loss/d/total"), "g_adv": median("loss/g/adv"), "g_mel": median("loss/g/mel"),
        "val": [(v["step"], v["val/mel_l1"]) for v in val],
    }


def describe(kind: str, seen: dict[str, Any]) -> str:
    values = seen["values"]
    detail = ""
    if kind == "discriminator_collapse":
        gap = values.get("median_score_gap") or []
        loss = values.get("median_d_loss") or []
        detail = (f" ({len(values.get('sub_discriminators', []))} of {len(loss)} sub-Ds; evidence "
                  f"{'+'.join(values.get('evidence', []))}; median D loss/sub {statistics.median(loss):.3g}, "
                  f"real−fake score gap {statistics.median(gap):.3g})" if loss and gap else "")
    elif kind == "dc_offset":
        detail = f" ({', '.join(values.get('drifted', []))})"
    elif kind == "discriminator_overpowering":
        detail = f" ({len(values.get('sub_discriminators', []))} sub-Ds ≈ 0)"
    elif kind == "dead_layers":
        detail = f" ({len(values.get('layers', []))} layers)"
    count = f" ×{seen['count']}" if seen["count"] > 1 else ""
    return f"{kind} @ step {seen['first']}{count} [{seen['severity']}]{detail}"


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| run | steps | time | health events (first step) | D loss | G adv | G mel | val mel L1 (step) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        events = "; ".join(describe(k, v) for k, v in sorted(r["events"].items(), key=lambda kv: kv[1]["first"]))
        val = ", ".join(f"{v:.3f} ({s})" for s, v in r["val"][-2:]) or "—"
        print(f"| {r['name']} | {r['steps']} | {r['seconds'] / 60:.1f} min | {events or 'none'} | {r['d_total']:.3f} "
              f"| {r['g_adv']:.3f} | {r['g_mel']:.3f} | {val} |")
    print("\nD loss, G adv and G mel: medians over the last 40 steps (D loss summed over 8 sub-discriminators; "
          "no-information value 0.5 each, 4.0 in all).")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ruslan_collapse_") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        corpus = corpus_folder(args, out)
        runs = [("ruslan", RUSLAN), ("control", ())]
        results = [train_run(name, scenario, corpus, out, args) for name, scenario in runs
                   if args.only in (None, name)]
        print_table(results)
        if args.out is None:
            print("(run directories were in a temporary folder; pass --out to keep them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
