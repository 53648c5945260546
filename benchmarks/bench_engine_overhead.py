"""What the engine costs: steps/s of `gankit train` against a plain training loop written from the original HiFi-GAN
recipe (train.py) with the same networks, batch and data, and the engine's data loader alone against the step.

Data: `--items` speech-like clips (tests/support/corpus.voiced_clip) in `gankit prepare`'s layout, at 22.05 kHz.
- engine: `gankit train CONFIG` in this process (`data.num_workers=0`, a log row every step, validation and
  checkpoints out of the way, the health monitor at its defaults — it is part of what a user runs); seconds per step
  from metrics.jsonl's `time` column over the steps after `--warmup`;
- plain loop: the original train.py's step, written out — G forward, the loss mel, D: MPD and MSD on real and
  (detached) fake, LSGAN loss, backward, AdamW step; G: mel L1 × 45 + feature matching × 2 + LSGAN, backward, AdamW
  step — over a torch DataLoader of the same dataset (batch, shuffle, the same collate), the networks built by the
  same task from the same seed;
- loader alone: the engine's loader (`engine.data.build_train_data`) iterated without a step.
Runs alternate engine / plain `--pairs` times (a busy machine slows both alike); printed: each pair's seconds per
step, the median ratio plain / engine (≥ 1: the engine is as fast; the goal is ≥ 0.97) and batches/s of the loader
against steps/s.

    .venv/bin/python benchmarks/bench_engine_overhead.py                 # hifigan_tiny, 3 pairs of 40 steps
    .venv/bin/python benchmarks/bench_engine_overhead.py --pairs 5 --steps 60
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repo root on the path (benchmarks.machine, tests.support)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

SEED = 1234


def overrides(corpus: Path, steps: int) -> list[str]:
    return [f"data.dir={corpus}", "data.num_workers=0", f"train.max_steps={steps}", "train.log_every=1",
            f"train.val_every={10**9}", f"train.ckpt_every={10**9}", "validation.best_measures=[]"]


def engine_seconds_per_step(config: str, corpus: Path, steps: int, warmup: int, scratch: Path) -> float:
    from gankit.cli import main

    run = Path(tempfile.mkdtemp(dir=scratch, prefix="engine_"))
    with redirect_stdout(io.StringIO()):
        code = main(["train", config, "--run-dir", str(run), "--no-progress", *overrides(corpus, steps)])
    if code != 0:
        raise SystemExit(f"gankit train exited with {code}")
    times = {row["step"]: row["time"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    return (times[steps] - times[warmup]) / (steps - warmup)


def _lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - r) ** 2) + torch.mean(g**2) for r, g in zip(real, fake, strict=True))


def _lsgan_g(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - g) ** 2) for g in fake)


def _feature(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return 2 * sum(torch.mean(torch.abs(r - g)) for dr, dg in zip(real, fake, strict=True)
                   for r, g in zip(dr, dg, strict=True))


def plain_seconds_per_step(config_name: str, corpus: Path, steps: int, warmup: int) -> float:
    """The original train.py's loop over the same task's networks and dataset."""
    from gankit.config import load_config
    from gankit.engine.data import collate_batch
    from gankit.tasks import build_task

    _, config = load_config(config_name, overrides(corpus, steps))
    task = build_task(config)
    torch.manual_seed(SEED)
    dataset, _ = task.build_datasets(SEED, log=lambda _: None)
    nets = task.build_networks()
    generator, mpd, msd = nets["generator"], nets["mpd"], nets["msd"]
    for net in nets.values():
        net.train()
    g_args, d_args = config["optim"]["g"], config["optim"]["d"]
    optim_g = torch.optim.AdamW(generator.parameters(), g_args["lr"], betas=g_args["betas"],
                                weight_decay=g_args["weight_decay"])
    optim_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], d_args["lr"], betas=d_args["betas"],
                                weight_decay=d_args["weight_decay"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=config["data"]["batch_size"], shuffle=True,
                                         drop_last=True, collate_fn=collate_batch, num_workers=0)
    frontend, loss_frontend = task.frontend, task.loss_frontend
    stamps: list[float] = []
    while len(stamps) <= steps:
        for batch in loader:
            y = batch["audio"]
            x = frontend(y)
            y_mel = loss_frontend(y)
            y_g_hat = generator(x)
            y_g_hat_mel = loss_frontend(y_g_hat.squeeze(1))
            y = y.unsqueeze(1)[..., : y_g_hat.shape[-1]]

            optim_d.zero_grad()
            out_f_r, out_f_g = mpd(y), mpd(y_g_hat.detach())
            out_s_r, out_s_g = msd(y), msd(y_g_hat.detach())
            loss_disc_all = _lsgan_d(out_s_r.scores, out_s_g.scores) + _lsgan_d(out_f_r.scores, out_f_g.scores)
            loss_disc_all.backward()
            optim_d.step()

            optim_g.zero_grad()
            loss_mel = F.l1_loss(y_mel[..., : y_g_hat_mel.shape[-1]], y_g_hat_mel) * 45
            out_f_r, out_f_g = mpd(y), mpd(y_g_hat)
            out_s_r, out_s_g = msd(y), msd(y_g_hat)
            loss_fm = _feature(out_f_r.features, out_f_g.features) + _feature(out_s_r.features, out_s_g.features)
            loss_gen_all = _lsgan_g(out_s_g.scores) + _lsgan_g(out_f_g.scores) + loss_mel + loss_fm
            loss_gen_all.backward()
            optim_g.step()
            stamps.append(time.time())
            float(loss_gen_all.detach())  # the loss read back each step, as a logging loop does
            if len(stamps) > steps:
                break
    # stamps[i] is the end of step i + 1, as metrics.jsonl's time of step i + 1
    return (stamps[steps - 1] - stamps[warmup - 1]) / (steps - warmup)


def loader_seconds_per_batch(config_name: str, corpus: Path, batches: int) -> float:
    from gankit.config import load_config
    from gankit.engine.data import build_train_data
    from gankit.engine.distributed import DistContext
    from gankit.engine.settings import LoaderSettings
    from gankit.tasks import build_task

    _, config = load_config(config_name, overrides(corpus, batches))
    task = build_task(config)
    dataset, _ = task.build_datasets(SEED, log=lambda _: None)
    data = build_train_data(dataset, LoaderSettings.from_data_section(config["data"]), DistContext(), SEED,
                            log=lambda _: None)
    count, started = 0, time.perf_counter()
    while count < batches:
        data.sampler.set_epoch(count // max(1, data.batches_per_epoch))
        for _ in data.loader:
            count += 1
            if count >= batches:
                break
    return (time.perf_counter() - started) / batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="hifigan_tiny")
    parser.add_argument("--steps", type=int, default=40, help="steps per run (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing (default 5)")
    parser.add_argument("--pairs", type=int, default=3, help="engine/plain pairs, alternating (default 3)")
    parser.add_argument("--items", type=int, default=32, help="training clips (default 32, 1-2 s each)")
    args = parser.parse_args()

    from benchmarks.machine import describe_machine
    from tests.support.corpus import write_corpus

    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as scratch:
        root = Path(scratch)
        corpus = write_corpus(root / "corpus", n_train=args.items, n_val=2, seconds=(1.0, 2.0))
        ratios = []
        for pair in range(args.pairs):
            engine = engine_seconds_per_step(args.config, corpus, args.steps, args.warmup, root)
            plain = plain_seconds_per_step(args.config, corpus, args.steps, args.warmup)
            ratios.append(plain / engine)
            print(f"pair {pair + 1}: engine {engine:.4f} s/step, plain loop {plain:.4f} s/step, "
                  f"plain / engine {plain / engine:.3f}", flush=True)
        loader = loader_seconds_per_batch(args.config, corpus, args.steps)
        print(f"median ratio plain / engine: {statistics.median(ratios):.3f} (≥ 1: the engine is as fast; goal ≥ 0.97)")
        print(f"loader alone: {loader * 1000:.1f} ms per batch = {1 / loader:.0f} batches/s, against "
              f"{1 / engine:.1f} steps/s: the loader is {engine / loader:.0f}× faster than the step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
