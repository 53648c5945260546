"""The health monitor at its DEFAULT settings on real speech: false alarms on healthy runs, and how soon each induced
failure is named after its onset.

Healthy: `hifigan_tiny` and `melgan_tiny` on festvox-ru (the Debian package's 620 recordings of one Russian speaker,
prepared at 22.05 kHz), one run per seed, default health settings: every warning- or error-level event is a false
alarm. Induced (`--induced-config`, hifigan_tiny or melgan_tiny, one seed): each failure switched on at `--onset`
(after every check's grace period) by the test suite's fault wrappers (tests/support/faulty_tasks.py) and judged
by the step at which its kind is first named, and by any warning raised before the onset. Each induced run resumes
from the first healthy seed's checkpoint at the onset (bit-identical to training on; the faults act from the first
step after it), so the healthy history is trained once (`--from-scratch` trains each from step 0):

    dc_cheat                 the output's DC pinned to grow from 0 to 0.1 (≈ 0.4× the real std) over 300 steps
    frozen_discriminator     the discriminators' learning rate set to 0
    overpowering             the discriminators' learning rate × 100 (_x10: × 10; _stalled_g: × 10, G's lr 0)
    dead_layer               the generator's first upsampling layer's output multiplied by 0 (ups.0 / model.3)
    unused_parameter         a generator module that is never called (named before training: onset 0)
    loss_spike               the generator's loss × 100 for one step
    nonfinite                the generator's loss NaN for one step

    python benchmarks/health_onsets.py                          # everything: hours on a 2-core CPU
    python benchmarks/health_onsets.py --only induced --onset 1500
    python benchmarks/health_onsets.py --only healthy --seeds 1 --steps 3000 --configs hifigan_tiny
    python benchmarks/health_onsets.py --only healthy --seeds 2 --first-seed 2 --configs melgan_tiny

Not a test: it takes long on CPU; the README shows its table with the machine it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
# Induced failure → (the event kind that names it, Faults keyword arguments, config overrides).
INDUCED: dict[str, tuple[str, dict[str, Any]]] = {
    "dc_cheat": ("dc_offset", {"g_offset": 0.1, "g_offset_ramp": 300, "g_offset_pinned": True}),
    "frozen_discriminator": ("discriminator_collapse", {"d_lr_factor": 0.0}),
    "overpowering": ("discriminator_overpowering", {"d_lr_factor": 100.0}),
    "overpowering_x10": ("discriminator_overpowering", {"d_lr_factor": 10.0}),
    "overpowering_stalled_g": ("discriminator_overpowering", {"d_lr_factor": 10.0, "g_lr_from": "onset:0"}),
    "dead_layer": ("dead_layers", {"zero_output_of": "first upsampling"}),
    "unused_parameter": ("unused_parameters", {"unused_module": "never_called"}),
    "loss_spike": ("loss_spike", {"loss_scale_at": "onset:100"}),
    "nonfinite": ("nonfinite", {"nan_loss_at": "onset"}),
}

# The generator's first upsampling layer, per task (HiFi-GAN's `ups.0`; MelGAN's flat Sequential: pad, conv, ReLU, up).
FIRST_UPSAMPLING = {"hifigan": "ups.0", "melgan": "model.3"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="a corpus written by `gankit prepare` at 22.05 kHz "
                   "(default: festvox-ru prepared into --out)")
    p.add_argument("--out", type=Path, default=None, help="where runs go (default: a temporary folder)")
    p.add_argument("--only", choices=("healthy", "induced"), default=None)
    p.add_argument("--configs", default="hifigan_tiny,melgan_tiny", help="healthy runs' configs (comma-separated)")
    p.add_argument("--seeds", type=int, default=3, help="healthy runs per config (default 3)")
    p.add_argument("--first-seed", type=int, default=1, help="seed of the first healthy run (default 1)")
    p.add_argument("--steps", type=int, default=3000, help="steps per healthy run (default 3000)")
    p.add_argument("--onset", type=int, default=1500, help="step at which induced failures start (default 1500)")
    p.add_argument("--after", type=int, default=300, help="steps an induced run goes on after its onset")
    p.add_argument("--scenarios", default=",".join(INDUCED), help="induced scenarios (comma-separated)")
    p.add_argument("--resume-from", type=Path, default=None, help="the healthy run whose checkpoint at --onset "
                   "the induced runs start from (default: OUT/healthy_<induced config>_seed<first seed>)")
    p.add_argument("--from-scratch", action="store_true", help="train each induced run from step 0 instead")
    p.add_argument("--induced-config", default="hifigan_tiny", choices=("hifigan_tiny", "melgan_tiny"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run (repeatable), e.g. loss.lambda_mel=45")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


def festvox_corpus(out: Path) -> Path:
    from gankit.data.prepare import prepare_corpus

    folder = out / "festvox_ru_22k"
    if (folder / "train.txt").is_file():
        return folder
    if not (FESTVOX_RU / "etc" / "txt.done.data").is_file():
        raise SystemExit(f"festvox-ru is not installed ({FESTVOX_RU}): bash scripts/bootstrap.sh festvox-ru")
    prepare_corpus(FESTVOX_RU, folder, "festvox", sample_rate=22050, val_size=20, progress=True)
    return folder


def faults_for(kwargs: dict[str, Any], onset: int, task: str) -> Any:
    from tests.support.faulty_tasks import Faults

    resolved: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value == "first upsampling":
            value = FIRST_UPSAMPLING[task]
        elif value == "onset":  # the first step after the onset (a resumed run's first step is onset + 1)
            value = {onset + 1}
        elif isinstance(value, str) and value.startswith("onset:"):
            value = {onset + 1: float(value.split(":", 1)[1])}
            if key == "g_lr_from":  # (from step, learning rate)
                value = next(iter(value.items()))
        resolved[key] = value
    return Faults(onset=onset, **resolved)


def train_once(config_name: str, corpus: Path, run: Path, steps: int, seed: int, threads: int,
               faults: Any = None, extra: list[str] | None = None, ckpt_every: int | None = None) -> dict[str, Any]:
    """One run at default health settings (resumed if `run` holds a checkpoint); returns its events and timing."""
    import gankit.tasks as tasks
    from gankit.config import load_config
    from gankit.training import train
    from tests.support import faulty_tasks

    overrides = [f"data.dir={corpus}", f"train.max_steps={steps}", f"seed={seed}", f"train.num_threads={threads}",
                 f"train.ckpt_every={ckpt_every or steps}", f"train.keep_last={steps // (ckpt_every or steps) + 1}",
                 "train.val_every=1000", "validation.best_measures=[]", "device=cpu",
                 *(extra or [])]
    _, config = load_config(config_name, overrides)
    task = str(config["task"])
    saved = tasks.TASKS.get(task)
    if faults is not None:
        faulty_tasks.FAULTS = faults
        tasks.TASKS[task] = faulty_tasks.TASK_ENTRIES[task]
    started = time.monotonic()
    try:
        code = train(config, run, progress=False)
    finally:
        if saved is not None:
            tasks.TASKS[task] = saved
        faulty_tasks.remove_hooks()
    events = read_events(run)
    return {"code": code, "seconds": time.monotonic() - started, "events": events}


def resume_point(source: Path, step: int, run: Path) -> bool:
    """Start `run` from `source`'s checkpoint at `step` (state, generator file, config): resuming is bit-identical
    to having trained on, so every induced run shares one healthy history up to its onset. False if absent."""
    import shutil

    state = source / "checkpoints" / f"state_{step:08d}.pt"
    if not state.is_file():
        return False
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in (state.name, f"generator_{step:08d}.pt"):
        if (source / "checkpoints" / name).is_file():
            shutil.copy2(source / "checkpoints" / name, run / "checkpoints" / name)
    shutil.copy2(source / "config.yaml", run / "config.yaml")
    return True


def read_events(run: Path) -> list[dict[str, Any]]:
    from gankit.engine.jsonl import read_jsonl

    path = run / "events.jsonl"
    return list(read_jsonl(path)) if path.is_file() else []


def serious(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("severity") in ("warning", "error")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine

    out = args.out or Path(tempfile.mkdtemp(prefix="health_onsets_"))
    out.mkdir(parents=True, exist_ok=True)
    corpus = args.data or festvox_corpus(out)
    print(f"machine: {describe_machine()}\ncorpus: {corpus}\nruns: {out}\noverrides: {args.override}", flush=True)
    results: dict[str, Any] = {"machine": describe_machine(), "overrides": args.override, "healthy": [], "induced": []}

    if args.only in (None, "healthy"):
        for name in args.configs.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                run = out / f"healthy_{name}_seed{seed}"
                # A checkpoint at the onset too: the induced runs resume from the first seed's.
                every = args.onset if 0 < args.onset < args.steps and args.steps % args.onset == 0 else None
                r = train_once(name, corpus, run, args.steps, seed, args.threads, extra=args.override,
                               ckpt_every=every)
                alarms = [(e["step"], e["kind"]) for e in serious(r["events"])]
                results["healthy"].append({"config": name, "seed": seed, "steps": args.steps, "alarms": alarms,
                                           "seconds": round(r["seconds"])})
                print(f"healthy {name} seed {seed}: {len(alarms)} false alarm(s) {alarms} "
                      f"({r['seconds'] / 60:.1f} min)", flush=True)

    if args.only in (None, "induced"):
        for scenario in args.scenarios.split(","):
            kind, kwargs = INDUCED[scenario]
            onset = 0 if scenario == "unused_parameter" else args.onset
            run = out / f"induced_{args.induced_config}_{scenario}"
            task = args.induced_config.removesuffix("_tiny")
            faults = faults_for(kwargs, onset, task)
            source = args.resume_from or out / f"healthy_{args.induced_config}_seed{args.first_seed}"
            resumed = onset > 0 and not args.from_scratch and not run.exists() and resume_point(source, onset, run)
            faults.from_run_step = resumed
            seed = args.first_seed if resumed else 1
            r = train_once(args.induced_config, corpus, run, onset + args.after if onset else args.after, seed,
                           args.threads, faults, extra=args.override)
            named = [e["step"] for e in r["events"] if e["kind"] == kind and e["step"] >= onset]
            history = read_events(source) if resumed else r["events"]
            before = [(e["step"], e["kind"]) for e in serious(history) if e["step"] < onset]
            row = {"config": args.induced_config, "scenario": scenario, "kind": kind, "onset": onset,
                   "resumed_from": str(source) if resumed else None,
                   "named_at": named[0] if named else None,
                   "false_alarms_before_onset": before, "seconds": round(r["seconds"])}
            results["induced"].append(row)
            print(f"induced {scenario}: {kind} named at {row['named_at']} (onset {onset}); "
                  f"before the onset: {before}", flush=True)

    print("\n| run | kind | onset | named at | delay | warnings before onset / false alarms |")
    print("|---|---|---|---|---|---|")
    for h in results["healthy"]:
        print(f"| healthy {h['config']} seed {h['seed']} ({h['steps']} steps) | — | — | — | — | {len(h['alarms'])} "
              f"{h['alarms'] or ''} |")
    for i in results["induced"]:
        delay = i["named_at"] - i["onset"] if i["named_at"] is not None else "not named"
        print(f"| {i['scenario']} ({i['config']}) | {i['kind']} | {i['onset']} | {i['named_at']} | {delay} | "
              f"{len(i['false_alarms_before_onset'])} |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
