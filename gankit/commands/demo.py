"""`gankit demo`: the README's main job on built-in data — festvox-ru → prepare → train a small HiFi-GAN on
CPU for a bounded time → vocode the held-out utterances → measure them against Griffin-Lim → report."""

from __future__ import annotations

import argparse
from pathlib import Path

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
HELD_OUT = 20  # the last 20 recordings by name (ru_0818 … ru_0844), as every published number uses


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="prepare festvox-ru, train a small HiFi-GAN briefly on CPU, vocode held-out speech, report",
        description="The main job on built-in data. Needs the Debian package festvox-ru (scripts/demo.sh "
        "installs it). Running it again resumes the same run and trains for another --minutes.",
    )
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    p.add_argument("--warmup-fraction", type=float, default=0.6,
                   help="share of the expected steps trained on the mel loss alone before the discriminators join")
    p.add_argument("--source", type=Path, default=FESTVOX_RU, help="festvox voice folder (etc/txt.done.data, wav/)")
    p.add_argument("--data", type=Path, default=Path("data/festvox_ru_22k"), help="where the prepared corpus goes")
    p.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    p.add_argument("--eval-limit", type=int, default=HELD_OUT, help="held-out utterances to score (default all 20)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("items", nargs="*", metavar="OVERRIDE", help="extra key=value overrides of the hifigan_tiny config")
    p.set_defaults(run=run, accepts_overrides=True)


def _prepare(args: argparse.Namespace) -> None:
    from gankit.data.prepare import prepare_corpus
    from gankit.errors import DataError

    if (args.data / "train.txt").is_file() and (args.data / "val.txt").is_file():
        print(f"[1/5] corpus already prepared in {args.data}")
        return
    if not (args.source / "etc" / "txt.done.data").is_file():
        raise DataError(f"{args.source}: festvox-ru is not installed; run `bash scripts/demo.sh` (it installs the "
                        "Debian package festvox-ru) or pass --source.")
    print(f"[1/5] preparing {args.source} → {args.data} (22050 Hz, last {HELD_OUT} recordings held out)")
    prepare_corpus(args.source, args.data, "festvox", sample_rate=22050, val_size=HELD_OUT,
                   progress=not args.no_progress)


def _steps_per_second_estimate() -> float:
    # Measured for hifigan_tiny on 2 CPU cores (benchmarks/bench_train_step.py): ~4 mel-only steps/s.
    return 4.0


def run(args: argparse.Namespace) -> int:
    from gankit.config import config_for_run

    _prepare(args)
    seconds = args.minutes * 60
    warmup = int(args.warmup_fraction * seconds * _steps_per_second_estimate())
    overrides = [f"data.dir={args.data}", f"train.max_seconds={seconds}", f"schedule.warmup_steps={warmup}",
                 "train.val_every=500", "train.ckpt_every=500", "train.log_every=10",
                 *[i for i in [*args.items, *getattr(args, "overrides", [])] if "=" in i]]
    has_checkpoint = any((args.run_dir / "checkpoints").glob("state_*.pt"))
    _, config, _ = config_for_run("hifigan_tiny", overrides, args.run_dir / "config.yaml" if has_checkpoint else None)

    from gankit.training import train

    train_cfg = config["train"]  # overrides on the command line win over the demo's own settings
    limit = f"{args.minutes:g} min" + (f" or {train_cfg['max_steps']} steps" if train_cfg.get("max_steps") else "")
    print(f"[2/5] training hifigan_tiny for {limit} in {args.run_dir} "
          f"(mel-loss warm-up for the first {config['schedule']['warmup_steps']} steps)")
    code = train(config, args.run_dir, progress=not args.no_progress)
    if code != 0:
        return code
    return _vocode_and_measure(args)


def _vocode_and_measure(args: argparse.Namespace) -> int:
    from gankit.infer import load_vocoder
    from gankit.infer.evaluation import evaluate_vocoder, find_references, format_table, results_json, write_results

    out = args.run_dir / "heldout"
    print(f"[3/5] vocoding the held-out utterances into {out} and scoring them against Griffin-Lim")
    vocoder = load_vocoder(args.run_dir)
    references = find_references(args.data, limit=args.eval_limit)
    # overwrite=True: RUN_DIR/heldout is the demo's own output folder inside the run directory it has just trained,
    # so what is there is what a previous demo wrote, and a rerun (which resumes the same run) replaces it with the
    # newer model's resyntheses. A user's folder, `gankit evaluate --audio-dir`, refuses existing files instead.
    systems = evaluate_vocoder(vocoder, references, audio_dir=out, progress=not args.no_progress, overwrite=True)
    write_results(args.run_dir / "evaluation.json", results_json(systems, {"data": str(args.data)}))
    print(format_table(systems))

    from gankit.report.build import build_report

    print("[4/5] writing the HTML report")
    index = build_report(args.run_dir)
    print(f"[5/5] done.\n  report: {index} (open it in a browser: plots, health events, audio players)\n"
          f"  audio: {out}/model (vocoder) and {out}/griffin_lim (baseline)\n"
          f"  checkpoints: {args.run_dir / 'checkpoints'}\n  logs: {args.run_dir} (metrics.jsonl, events.jsonl; "
          f"tensorboard --logdir {args.run_dir / 'tensorboard'})\n  scores: {args.run_dir / 'evaluation.json'}")
    return 0
