"""Is a training step of this checkout as fast as one of an earlier commit? Whole `gankit train` runs of the same
config on the same data, the two versions alternating (the earlier one from a git worktree), median seconds per
step of each run (the first steps, warm-up, left out), and the ratio earlier / this per pair and overall.

    python benchmarks/bench_engine_vs_commit.py --rev HEAD~1 --pairs 5 --steps 40
    python benchmarks/bench_engine_vs_commit.py --rev 373c10f --config hifigan_tiny

A ratio ≥ 1 means this checkout is as fast or faster. Run it on a quiet machine: another torch process on the
same cores slows both sides unevenly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = 5  # first steps of each run: allocations, kernel selection, the health probe


def median_step_seconds(tree: Path, run: Path, data: Path, config: str, steps: int, threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    args = [sys.executable, "-m", "gankit", "train", config, "--run-dir", str(run), "--no-progress",
            f"data.dir={data}", f"train.max_steps={steps}", "train.log_every=1", "train.val_every=100000",
            "train.ckpt_every=100000", f"train.num_threads={threads}", "device=cpu"]
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: gankit train failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return statistics.median(r["sec_per_step"] for r in rows[SKIP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD~1", help="the earlier commit (default HEAD~1)")
    parser.add_argument("--config", default="hifigan_tiny")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if __package__ in (None, ""):
        sys.path.insert(0, str(REPO))
    from benchmarks.machine import describe_machine
    from tests.support.corpus import write_corpus

    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = write_corpus(tmp_path / "corpus")
        earlier = tmp_path / "earlier"
        subprocess.run(["git", "worktree", "add", "--detach", str(earlier), args.rev], cwd=REPO, check=True,
                       capture_output=True)
        try:
            ratios = []
            for pair in range(args.pairs):
                order = [("earlier", earlier), ("this", REPO)]
                if pair % 2:
                    order.reverse()  # alternate which version runs first in a pair
                times = {}
                for label, tree in order:
                    times[label] = median_step_seconds(tree, tmp_path / f"{label}_{pair}", data, args.config,
                                                       args.steps, args.threads)
                ratios.append(times["earlier"] / times["this"])
                print(f"pair {pair + 1}: {args.rev} {times['earlier']:.4f} s/step, this checkout "
                      f"{times['this']:.4f} s/step, ratio {ratios[-1]:.3f}")
            print(f"median ratio {args.rev} / this checkout over {args.pairs} pairs: {statistics.median(ratios):.3f} "
                  f"({args.config}, {args.steps} steps a run, first {SKIP} left out, {args.threads} threads)")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)], cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
