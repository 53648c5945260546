"""Crash safety of training: SIGKILL at named points of a checkpoint write and at seeded random moments,
running out of disk during a save, SIGINT/SIGTERM, code-carrying checkpoints, retention — each followed by
a resume that must continue from the newest complete checkpoint at the right step.

Kills run `python -m gankit train` as a subprocess (~8 s of start-up each), so the named kill points share
one run directory: each resume is also the next kill. Everything that needs no real process death (ENOSPC,
refused or corrupt files, retention) runs in this process through `gankit.cli.main` or `train_tiny`.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit import atomic
from gankit.checkpoint_io import safe_load
from gankit.cli import main as gankit_main
from gankit.engine.jsonl import read_jsonl
from gankit.errors import CheckpointError
from tests.support.training import REPO, generator_weights, run_gankit, train_tiny

# The probe step before training is not what these tests are about: leaving it out saves ~1 s a start-up.
NO_PROBE = "health.unused_parameters.enabled=false"
# Before a launch's first checkpoint, these are written atomically: each log below that exists (trimmed
# on resume), then config.yaml and environment.json. A checkpoint then writes state, generator, manifest.
LOGS = ("metrics.jsonl", "validation.jsonl", "layer_grads.jsonl", "events.jsonl")
STATE, GENERATOR, MANIFEST = 1, 2, 3
RESUMED = re.compile(r"resumed from (\S+) at step (\d+)")


# --- helpers -------------------------------------------------------------------------------------
def train_args(corpus: Path, run: Path, *extra: str) -> list[str]:
    """The `gankit train` command line every launch of a run uses (the tests' FAST settings, 2 threads)."""
    return ["train", "hifigan_tiny", "--run-dir", str(run), "--no-progress", f"data.dir={corpus}", "device=cpu",
            "data.segment_size=4096", "data.batch_size=2", "train.val_every=1000", "train.num_threads=2", NO_PROBE,
            *extra]


def loadable_states(run: Path) -> dict[int, Path]:
    """Step → state file, for every state_*.pt that loads with weights_only=True and says its own step."""
    found = {}
    for path in sorted((run / "checkpoints").glob("state_*.pt")):
        try:
            state = safe_load(path)
        except CheckpointError:
            continue
        step = int(path.stem.split("_")[1])
        if isinstance(state, dict) and state.get("kind") == "train_state" and state.get("step") == step:
            found[step] = path
    return found


def newest_complete(run: Path) -> int | None:
    states = loadable_states(run)
    return max(states) if states else None


def temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob(".*.tmp"))


def manifest(run: Path) -> dict[str, Any]:
    return json.loads((run / "checkpoints" / "manifest.json").read_text(encoding="utf-8"))


def logged_steps(run: Path) -> list[int]:
    return [int(r["step"]) for r in read_jsonl(run / "metrics.jsonl")]


def resumed_from(output: str) -> tuple[str, int] | None:
    found = RESUMED.findall(output)
    assert len(found) <= 1, f"expected at most one 'resumed from' line, got {found}"
    return (Path(found[0][0]).name, int(found[0][1])) if found else None


def assert_resumed(output: str, step: int | None, what: str) -> None:
    """The launch resumed from state_<step>.pt (the newest complete checkpoint), or started afresh for None."""
    got = resumed_from(output)
    if step is None:
        assert got is None, f"{what}: expected a fresh start (no complete checkpoint), but it {got}"
        return
    assert got == (f"state_{step:08d}.pt", step), (
        f"{what}: expected 'resumed from …/state_{step:08d}.pt at step {step}' (the newest complete checkpoint), "
        f"got {got}; output:\n{output[-1500:]}")


def atomic_write_number(run: Path, which: int) -> int:
    """Which pass of before_fsync/before_rename is the `which`-th file (STATE, GENERATOR, MANIFEST) of the
    first checkpoint the next launch of `run` writes (see LOGS)."""
    resuming = newest_complete(run) is not None
    trimmed = sum((run / name).exists() for name in LOGS) if resuming else 0
    return trimmed + 2 + which


def killed(args: list[str], fault: str) -> str:
    """Run with GANKIT_FAULT=fault; it must die of SIGKILL. Returns its output."""
    result = run_gankit(args, env={"GANKIT_FAULT": fault})
    output = result.stdout + result.stderr
    assert result.returncode == -signal.SIGKILL, (
        f"GANKIT_FAULT={fault}: expected the process killed by SIGKILL, got status {result.returncode}:\n"
        f"{output[-2000:]}")
    return output


def assert_consistent_end(run: Path, max_steps: int) -> None:
    """The run reached max_steps; manifest, files and logs agree; every step was logged exactly once."""
    steps = logged_steps(run)
    assert steps == list(range(1, max_steps + 1)), f"expected metrics.jsonl steps 1..{max_steps} once each: {steps}"
    m = manifest(run)
    assert m["latest"] == f"state_{max_steps:08d}.pt", f"expected the manifest's latest at step {max_steps}: {m}"
    assert m["latest_generator"] == f"generator_{max_steps:08d}.pt", m
    assert safe_load(run / "checkpoints" / m["latest"])["step"] == max_steps
    assert safe_load(run / "checkpoints" / m["latest_generator"])["step"] == max_steps
    for entry in m["checkpoints"]:
        for key in ("state", "generator"):
            assert (run / "checkpoints" / entry[key]).is_file(), f"manifest lists {entry[key]}, missing on disk: {m}"
            assert safe_load(run / "checkpoints" / entry[key])["step"] == entry["step"], (entry, key)
    for key in ("best", "best_generator"):
        if m.get(key):
            assert (run / "checkpoints" / m[key]).is_file(), f"manifest's {key} {m[key]} is missing on disk"
            safe_load(run / "checkpoints" / m[key])


class Launch:
    """`python -m gankit ARGS` in the background (output to a file), for signals and random kills."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._handle = log.open("w", encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
        env.pop("GANKIT_FAULT", None)
        self.started = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "gankit", *args], stdout=self._handle,
                                     stderr=subprocess.STDOUT, env=env, cwd=REPO)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended (status {self.proc.returncode}) before {what}:\n{self.output[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {timeout} s waiting for {what}:\n{self.output[-2000:]}")
            time.sleep(0.02)

    def wait_for_new_step(self, run: Path, after: int) -> None:
        """Until this launch itself has logged a step past `after` (rows carry their unix time)."""
        def ready() -> bool:
            return any(int(r["step"]) > after and float(r["time"]) > self.started
                       for r in read_jsonl(run / "metrics.jsonl"))
        self.wait_until(ready, f"this launch to log a step past {after}")

    def finish(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._handle.close()


# --- SIGKILL at each named point -----------------------------------------------------------------
# Slow: over the default suite's 8-minute budget on 2 cores (CI runs it in the slow step).
@pytest.mark.slow
def test_sigkill_at_each_point_of_a_save_resumes_from_the_last_complete_checkpoint(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = train_args(tiny_corpus, run, "train.max_steps=12", "train.ckpt_every=2")
    ckpt = run / "checkpoints"

    # 1. mid-step: killed inside step 6, with checkpoints at 2 and 4 and steps 1..5 logged.
    out = killed(args, "mid_step:6")
    assert_resumed(out, None, "the first launch")
    assert sorted(loadable_states(run)) == [2, 4], f"expected checkpoints at steps 2 and 4: {os.listdir(ckpt)}"
    assert logged_steps(run) == [1, 2, 3, 4, 5], "expected steps 1..5 logged before the kill inside step 6"

    # 2. before fsync of the state file of the checkpoint at step 6: only a temporary file of it exists.
    out = killed(args, f"before_fsync:{atomic_write_number(run, STATE)}")
    assert_resumed(out, 4, "the launch after the mid-step kill")
    assert [re.sub(r"\.pt\..*\.tmp$", ".pt.*.tmp", n) for n in temporaries(run)] == [".state_00000006.pt.*.tmp"], (
        f"expected the kill inside the write of state_00000006.pt: {temporaries(run)}")
    assert not (ckpt / "state_00000006.pt").exists(), "a write killed before its rename must not create the file"

    # 3. before the rename of the manifest written by the checkpoint at step 6: the old manifest stays whole.
    before = (ckpt / "manifest.json").read_text(encoding="utf-8")
    out = killed(args, f"before_rename:{atomic_write_number(run, MANIFEST)}")
    assert_resumed(out, 4, "the launch after the kill before fsync (the temporary state file is not picked)")
    assert (ckpt / "manifest.json").read_text(encoding="utf-8") == before, (
        "an interrupted manifest write must leave the previous manifest byte for byte")
    assert any(n.startswith(".manifest.json.") for n in temporaries(run)), temporaries(run)
    assert newest_complete(run) == 6, f"expected state_00000006.pt complete: {sorted(loadable_states(run))}"

    # 4. after both files of the checkpoint at step 8 were written, before they were verified.
    out = killed(args, "after_write:1")
    assert_resumed(out, 6, "the launch after the kill before the manifest's rename")
    assert newest_complete(run) == 8, f"expected state_00000008.pt complete: {sorted(loadable_states(run))}"

    # 5. during retention after the checkpoint at step 10.
    out = killed(args, "during_retention:1")
    assert_resumed(out, 8, "the launch after the kill after the write")
    assert newest_complete(run) == 10, f"expected state_00000010.pt complete: {sorted(loadable_states(run))}"

    # 6. resume to the end.
    result = run_gankit(args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert_resumed(result.stdout, 10, "the launch after the kill during retention")
    assert "Traceback" not in result.stdout + result.stderr
    assert_consistent_end(run, 12)


# --- SIGKILL at seeded random moments ------------------------------------------------------------
def random_kills(corpus: Path, tmp_path: Path, seed: int, kills: int, max_steps: int, ckpt_every: int = 1,
                 max_delay: float = 1.2) -> int:
    """Kill a run `kills` times at seeded random moments (a checkpoint every step or two, so many land inside a
    save), resume each time, then compare the end with an uninterrupted run of the same config. Returns how many
    kills landed before the run reached max_steps."""
    rng = random.Random(seed)
    run = tmp_path / "run"
    args = train_args(corpus, run, f"train.max_steps={max_steps}", f"train.ckpt_every={ckpt_every}")
    expected: int | None = None
    history = []
    for k in range(kills):
        launch = Launch(args, tmp_path / f"launch_{k}.log")
        try:
            # Past step 1, so the checkpoint of step 1 is complete: a run killed before its first checkpoint is
            # test_a_run_killed_before_its_first_checkpoint_starts_afresh_without_duplicate_rows.
            launch.wait_for_new_step(run, expected or 1)
            delay = rng.uniform(0.0, max_delay)
            time.sleep(delay)
            launch.proc.send_signal(signal.SIGKILL)
            status = launch.finish()
        finally:
            launch.close()
        output = launch.output
        assert_resumed(output, expected, f"launch {k} (seed {seed}, kills so far {history})")
        if status == 0:  # it reached max_steps before the kill came: nothing more to interrupt
            break
        assert status == -signal.SIGKILL, f"expected launch {k} killed by SIGKILL, got {status}:\n{output[-2000:]}"
        expected = newest_complete(run)
        history.append((round(delay, 2), expected, temporaries(run)))
    result = run_gankit(args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert_resumed(result.stdout, expected, f"the last launch (seed {seed}, kills: (delay, resumable, tmp) {history})")
    assert_consistent_end(run, max_steps)

    # The interrupted run ends exactly where an uninterrupted one does (bit-identical weights).
    whole = tmp_path / "whole"
    assert train_tiny(corpus, whole, f"train.max_steps={max_steps}", "train.num_threads=2", NO_PROBE) == 0
    a, b = generator_weights(whole), generator_weights(run)
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"expected the killed-and-resumed run to equal an uninterrupted one; differs in {differing}"
    return len(history)


# Slow (≈ 22 s): CI runs it in its slow step, beside the many-seed variant below; the default run keeps the kill at
# each named point of a save above.
@pytest.mark.slow
def test_sigkill_at_seeded_random_moments_resumes_to_the_same_end(tiny_corpus: Path, tmp_path: Path) -> None:
    random_kills(tiny_corpus, tmp_path, seed=7, kills=2, max_steps=10)


# Slow (≈ 5 min on the quiet 2-core machine, estimated): twenty kills with a checkpoint every 2 steps; the run ends
# with every step logged once and every file its manifest names loadable (assert_consistent_end), equal to an
# uninterrupted run.
@pytest.mark.slow
def test_twenty_sigkills_at_random_moments_with_a_checkpoint_every_two_steps(
        tiny_corpus: Path, tmp_path: Path) -> None:
    assert random_kills(tiny_corpus, tmp_path, seed=20, kills=20, max_steps=120, ckpt_every=2, max_delay=0.6) == 20


# CI runs one seed (the slow step); the other two are `long` (pytest -m long): ~73 s each, past CI's budget.
@pytest.mark.parametrize("seed", [pytest.param(11, marks=pytest.mark.slow), pytest.param(12, marks=pytest.mark.long),
                                  pytest.param(13, marks=pytest.mark.long)])
def test_sigkill_at_many_seeded_random_moments(tiny_corpus: Path, tmp_path: Path, seed: int) -> None:
    random_kills(tiny_corpus, tmp_path, seed=seed, kills=5, max_steps=24)


# --- running out of disk -------------------------------------------------------------------------
def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = gankit_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fill_disk_when_writing(monkeypatch: pytest.MonkeyPatch, name: str, once: Path | None = None) -> None:
    """Every atomic write of a file called `name` (once `once` exists) fails with ENOSPC after its last byte,
    inside the temporary file, as a full disk makes write/fsync fail."""
    real = atomic.atomic_open

    @contextlib.contextmanager
    def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
        with real(path, mode) as handle:
            yield handle
            if Path(path).name == name and (once is None or once.exists()):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "atomic_open", atomic_open)


# One place in the default suite, the others in the slow step (the default suite's budget).
@pytest.mark.parametrize("where", [*(pytest.param(w, marks=pytest.mark.slow) for w in ("fault_hook", "state",
                                                                                       "generator")), "manifest"])
def test_enospc_during_a_save_keeps_the_previous_checkpoint_and_says_how_to_resume(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """The checkpoint at step 4 cannot be written: in the engine's own hook (GANKIT_FAULT_ACTION=enospc after both
    files are written), or while writing its state file, its generator file or its manifest."""
    run = tmp_path / "run"
    ckpt = run / "checkpoints"
    args = train_args(tiny_corpus, run, "train.max_steps=5", "train.ckpt_every=2", "train.keep_last=1")
    monkeypatch.setattr(atomic, "_fault_hook", None)  # restored after the test: the injector sets it globally
    if where == "fault_hook":
        monkeypatch.setenv("GANKIT_FAULT_ACTION", "enospc")
        monkeypatch.setenv("GANKIT_FAULT", "after_write:2")
    else:
        real_open = atomic.atomic_open
        name = {"state": "state_00000004.pt", "generator": "generator_00000004.pt", "manifest": "manifest.json"}[where]
        fill_disk_when_writing(monkeypatch, name, once=ckpt / "state_00000004.pt" if where == "manifest" else None)
    code, out, err = cli(args, capsys)
    assert code == 2, f"expected exit status 2 after ENOSPC, got {code}:\n{out[-1500:]}\n{err[-1500:]}"
    assert "Traceback" not in out + err, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), f"expected one 'error:' line on stderr: {errors}"
    message = errors[0]
    assert str(ckpt) in message, f"expected the message to name the checkpoint folder: {message}"
    assert "No space left on device" in message and "run the same command to resume" in message, message
    assert "step 4" in message, f"expected the message to say which checkpoint failed: {message}"
    previous = safe_load(ckpt / "state_00000002.pt")  # intact and loadable
    assert previous["step"] == 2 and previous["kind"] == "train_state"
    assert safe_load(ckpt / "generator_00000002.pt")["step"] == 2
    m = manifest(run)
    for key in ("latest", "latest_generator"):
        assert (ckpt / m[key]).is_file(), f"the manifest's {key} {m[key]} is gone: {m}"
    assert temporaries(run) == [], f"a failed write must remove its temporary file: {temporaries(run)}"
    # The state file of step 4 is complete unless its own write failed; resume takes the newest complete one.
    expected = 2 if where == "state" else 4
    assert newest_complete(run) == expected, sorted(loadable_states(run))

    monkeypatch.delenv("GANKIT_FAULT", raising=False)
    monkeypatch.setattr(atomic, "_fault_hook", None)  # the spent injector would fail every later write
    if where != "fault_hook":
        monkeypatch.setattr(atomic, "atomic_open", real_open)
    code, out, err = cli(args, capsys)
    assert code == 0, err[-2000:]
    assert_resumed(out, expected, "the resume after ENOSPC")
    assert_consistent_end(run, 5)


# --- SIGINT / SIGTERM ----------------------------------------------------------------------------
def stop_with(signum: signal.Signals, args: list[str], run: Path, log: Path, resumed: int | None) -> int:
    """Start a launch, let it train a step, send `signum`; it must finish the step, save, say how to resume and
    exit 0. Returns the saved step."""
    launch = Launch(args, log)
    try:
        launch.wait_for_new_step(run, resumed or 0)
        launch.proc.send_signal(signum)
        status = launch.finish()
    finally:
        launch.close()
    out = launch.output
    name = signum.name
    assert status == 0, f"expected exit status 0 after {name}, got {status}:\n{out[-2000:]}"
    assert_resumed(out, resumed, f"the launch stopped by {name}")
    assert f"{name} received: finishing this step, saving a checkpoint" in out, out[-2000:]
    saved = re.findall(r"saved step (\d+) to (\S+); run the same command to resume", out)
    assert len(saved) == 1, f"expected one 'saved step N to …; run the same command to resume' line:\n{out[-2000:]}"
    step = int(saved[0][0])
    assert saved[0][1] == str(run / "checkpoints"), saved
    assert "Traceback" not in out
    assert step > (resumed or 0)
    assert logged_steps(run)[-1] == step, f"expected the last logged step to be the saved one ({step}): no step after"
    assert newest_complete(run) == step, f"expected state_{step:08d}.pt: {sorted(loadable_states(run))}"
    return step


# Slow (≈ 19 s, four launches): in CI's slow step; keeps the default run well under its 8 minutes.
@pytest.mark.slow
def test_sigint_and_sigterm_finish_the_step_save_and_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # No periodic checkpoints: the only ones are those the signals make.
    args = train_args(tiny_corpus, run, "train.max_steps=9", "train.ckpt_every=1000")
    at_int = stop_with(signal.SIGINT, args, run, tmp_path / "int.log", resumed=None)
    at_term = stop_with(signal.SIGTERM, args, run, tmp_path / "term.log", resumed=at_int)
    assert at_term < 9, f"the SIGTERM came too late to test anything (saved at {at_term})"
    result = run_gankit(args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert_resumed(result.stdout, at_term, "the launch after SIGTERM")
    assert_consistent_end(run, 9)


def test_a_signal_during_a_checkpoint_stops_without_starting_another_step(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gankit.engine.checkpoint as checkpoint

    real_save = checkpoint.CheckpointManager.save

    def save(self: Any, step: int, *args: Any, **kwargs: Any) -> Any:
        saved = real_save(self, step, *args, **kwargs)
        if step == 2:  # SIGTERM while the periodic checkpoint of step 2 is being written (the trainer's handler)
            os.kill(os.getpid(), signal.SIGTERM)
        return saved

    monkeypatch.setattr(checkpoint.CheckpointManager, "save", save)
    run = tmp_path / "run"
    assert train_tiny(tiny_corpus, run, "train.max_steps=6", "train.ckpt_every=2", NO_PROBE) == 0
    out = capsys.readouterr().out
    assert "SIGTERM received" in out, out[-1500:]
    assert logged_steps(run) == [1, 2], f"expected no step after the one the signal came in: {logged_steps(run)}"
    assert re.search(r"saved step 2 to \S+; run the same command to resume", out), out[-1500:]


# --- code-carrying, corrupt and missing checkpoints ------------------------------------------------
class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def test_a_checkpoint_carrying_code_is_refused_and_the_previous_one_used(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    common = ("train.ckpt_every=1", NO_PROBE)
    assert train_tiny(tiny_corpus, run, "train.max_steps=2", *common) == 0
    marker = tmp_path / "code_ran"
    evil = run / "checkpoints" / "state_00000003.pt"
    torch.save({"format": "gankit", "kind": "train_state", "step": 3, "payload": RunsCode(f"touch '{marker}'")}, evil)

    # The payload is live: an unsafe load runs it (on a copy, so this proves the marker can appear).
    probe = tmp_path / "copy.pt"
    probe.write_bytes(evil.read_bytes())
    torch.load(probe, weights_only=False)
    assert marker.exists(), "the test's payload should run under an unsafe load"
    marker.unlink()

    with pytest.raises(CheckpointError, match=r"refused to load — it holds pickled Python objects that could run code"):
        safe_load(evil)
    capsys.readouterr()
    assert train_tiny(tiny_corpus, run, "train.max_steps=3", *common) == 0
    out = capsys.readouterr().out
    assert not marker.exists(), "loading the checkpoints ran the code a checkpoint carried"
    assert re.search(r"warning: skipping unusable checkpoint: \S*state_00000003\.pt: refused to load", out), out
    assert_resumed(out, 2, "resuming past a code-carrying newest checkpoint")
    assert safe_load(evil)["step"] == 3, "expected the refused file replaced by a real checkpoint at step 3"
    assert_consistent_end(run, 3)


def test_every_torch_load_in_gankit_is_weights_only() -> None:
    calls = []
    for path in sorted((REPO / "gankit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = f"{owner.id}.{node.func.attr}" if isinstance(owner, ast.Name) else node.func.attr
                if name in ("torch.load", "pickle.load", "pickle.loads", "dill.load"):
                    safe = name == "torch.load" and any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in node.keywords)
                    calls.append((f"{path.relative_to(REPO)}:{node.lineno}", name, safe))
    assert calls, "expected at least one torch.load (in gankit/checkpoint_io.py)"
    unsafe = [c for c in calls if not c[2]]
    assert not unsafe, f"expected every load to be torch.load(weights_only=True); unsafe: {unsafe}"


# --- retention -----------------------------------------------------------------------------------
# Slow: over the default suite's 8-minute budget on 2 cores (CI runs it in the slow step).
@pytest.mark.slow
def test_retention_keeps_the_best_and_the_newest_and_resume_skips_a_bad_newest(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    ckpt = run / "checkpoints"
    # keep_last=1; one validation, at step 2 (so that checkpoint is the best), then a newer one at step 3.
    # Resumes validate no more (val_every is resume-safe), so the best stays at step 2.
    common = ("train.ckpt_every=1", "train.keep_last=1", NO_PROBE)
    assert train_tiny(tiny_corpus, run, "train.max_steps=3", "train.val_every=2", *common) == 0
    m = manifest(run)
    assert (m["latest"], m["best"]) == ("state_00000003.pt", "state_00000002.pt"), m
    assert sorted(loadable_states(run)) == [2, 3], f"expected the best (2) and the newest (3) kept: {os.listdir(ckpt)}"
    assert sorted(p.name for p in ckpt.glob("generator_*.pt")) == ["generator_00000002.pt", "generator_00000003.pt"]

    # A corrupt newest file (cut in half, as a full disk or an interrupted copy leaves it): resume takes the
    # previous one, and the newest is written again when the run gets there.
    newest = ckpt / "state_00000003.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()
    assert train_tiny(tiny_corpus, run, "train.max_steps=4", *common) == 0
    out = capsys.readouterr().out
    assert re.search(r"warning: skipping unusable checkpoint: \S*state_00000003\.pt: not a readable checkpoint", out), (
        f"expected a warning naming the corrupt file:\n{out[-1500:]}")
    assert_resumed(out, 2, "resuming past a corrupt newest checkpoint")
    assert_consistent_end(run, 4)
    assert sorted(loadable_states(run)) == [2, 4], f"expected the best (2) and the newest (4): {os.listdir(ckpt)}"

    # A deleted newest file: resume takes the newest one left (the best, at step 2).
    (ckpt / "state_00000004.pt").unlink()
    assert train_tiny(tiny_corpus, run, "train.max_steps=5", *common) == 0
    assert_resumed(capsys.readouterr().out, 2, "resuming after the newest checkpoint was deleted")
    assert_consistent_end(run, 5)
    assert manifest(run)["best"] == "state_00000002.pt"


def test_a_save_lists_unlisted_checkpoints_removes_half_ones_and_keeps_the_best(tmp_path: Path) -> None:
    """The manager alone: files a killed run left (a complete but unlisted checkpoint, a state file without its
    generator) are accounted for by the next save; retention then treats them like any other."""
    from gankit.checkpoint_io import save_torch
    from gankit.engine.checkpoint import CheckpointManager

    folder = tmp_path / "checkpoints"

    def state(step: int) -> dict[str, Any]:
        return {"format": "gankit", "kind": "train_state", "step": step}

    CheckpointManager(folder, keep_last=2).save(1, state(1), {"step": 1}, metric_value=0.5)
    save_torch(folder / "state_00000002.pt", state(2))  # killed before its manifest update
    save_torch(folder / "generator_00000002.pt", {"step": 2})
    save_torch(folder / "state_00000003.pt", state(3))  # its generator's write failed
    manager = CheckpointManager(folder, keep_last=2)
    manager.save(4, state(4), {"step": 4}, metric_value=0.9)
    m = manifest(tmp_path)
    assert [e["step"] for e in m["checkpoints"]] == [1, 2, 4], m
    assert (m["latest"], m["best"]) == ("state_00000004.pt", "state_00000001.pt"), m
    assert not (folder / "state_00000003.pt").exists(), "a half checkpoint older than a verified one must go"

    manager.save(5, state(5), {"step": 5})  # keep_last=2: 4 and 5, plus the best (1); 2 goes
    on_disk = sorted(p.name for p in folder.glob("*_*.pt"))
    listed = sorted(name for e in manifest(tmp_path)["checkpoints"] for name in (e["state"], e["generator"]))
    assert on_disk == listed == [f"{kind}_{step:08d}.pt" for kind in ("generator", "state") for step in (1, 4, 5)]


def test_a_save_removes_temporary_files_that_killed_writes_left(tmp_path: Path) -> None:
    """A write killed before its rename leaves `.NAME.XXXX.tmp`; the next save deletes those (after its manifest
    is written) and nothing else: not a checkpoint, not a file that is not gankit's."""
    from gankit.checkpoint_io import save_torch
    from gankit.engine.checkpoint import CheckpointManager

    folder = tmp_path / "checkpoints"
    CheckpointManager(folder, keep_last=2).save(1, {"format": "gankit", "kind": "train_state", "step": 1}, {"step": 1})
    stale = [".state_00000002.pt.k1q9.tmp", ".generator_00000002.pt.x7.tmp", ".manifest.json.a3.tmp"]
    for name in stale:
        (folder / name).write_bytes(b"half a file")
    save_torch(folder / ".notes.txt.z.tmp", {"kept": True})  # not a name gankit's checkpoint writes make
    CheckpointManager(folder, keep_last=2).save(2, {"format": "gankit", "kind": "train_state", "step": 2}, {"step": 2})
    left = sorted(p.name for p in folder.iterdir())
    assert left == [".notes.txt.z.tmp", "generator_00000001.pt", "generator_00000002.pt", "manifest.json",
                    "state_00000001.pt", "state_00000002.pt"], left


def test_a_new_checkpoint_is_verified_before_an_old_one_is_deleted(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gankit.engine.checkpoint as checkpoint

    def failing_verify(path: Path, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "state_00000002.pt":
            raise CheckpointError(f"{path}: not a readable checkpoint (simulated)")
        return safe_load(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "safe_load", failing_verify)
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match="simulated"):
        train_tiny(tiny_corpus, run, "train.max_steps=2", "train.ckpt_every=1", "train.keep_last=1", NO_PROBE)
    assert safe_load(run / "checkpoints" / "state_00000001.pt")["step"] == 1, (
        "with keep_last=1 the checkpoint at step 1 must survive a step-2 checkpoint that failed verification")
    assert manifest(run)["latest"] == "state_00000001.pt"


class Killed(BaseException):
    """Stands for SIGKILL in this process: nothing after the fault point runs (the trainer catches no BaseException)."""


def kill_at(point: str, n: int = 1) -> Callable[[str], None]:
    passes = {"count": 0}

    def hook(name: str) -> None:
        if name == point:
            passes["count"] += 1
            if passes["count"] == n:
                raise Killed(point)

    return hook


# The checkpoint at step 4 passes after_write for the second time and during_retention for the first (it deletes 2).
@pytest.mark.parametrize(("point", "n"), [("after_write", 2), ("during_retention", 1)])
def test_after_a_kill_before_the_manifest_update_retention_still_accounts_for_every_file(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, n: int
) -> None:
    run = tmp_path / "run"
    common = ("train.ckpt_every=2", "train.keep_last=1", NO_PROBE)
    monkeypatch.setattr(atomic, "_fault_hook", kill_at(point, n))
    with pytest.raises(Killed):
        train_tiny(tiny_corpus, run, "train.max_steps=4", *common)
    monkeypatch.setattr(atomic, "_fault_hook", None)
    assert newest_complete(run) == 4, f"expected the kill after step 4's files were complete: {loadable_states(run)}"
    assert train_tiny(tiny_corpus, run, "train.max_steps=6", *common) == 0
    on_disk = sorted(p.name for p in (run / "checkpoints").glob("*_*.pt"))
    listed = sorted(name for e in manifest(run)["checkpoints"] for name in (e["state"], e["generator"]))
    assert on_disk == listed == ["generator_00000006.pt", "state_00000006.pt"], (
        f"expected keep_last=1 to leave only step 6, listed in the manifest; on disk {on_disk}, listed {listed}")


def test_a_run_killed_before_its_first_checkpoint_starts_afresh_without_duplicate_rows(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gankit.engine.trainer as trainer

    run = tmp_path / "run"  # FAST: train.ckpt_every=1000, so no checkpoint before the kill
    monkeypatch.setattr(trainer, "install_from_environment", lambda: kill_at("mid_step", 3))
    with pytest.raises(Killed):
        train_tiny(tiny_corpus, run, "train.max_steps=4", NO_PROBE)
    assert logged_steps(run) == [1, 2] and newest_complete(run) is None
    monkeypatch.undo()
    assert train_tiny(tiny_corpus, run, "train.max_steps=4", NO_PROBE) == 0
    assert logged_steps(run) == [1, 2, 3, 4], f"expected each step logged once: {logged_steps(run)}"
    grads = [r["step"] for r in read_jsonl(run / "layer_grads.jsonl")]
    assert grads == [1, 2, 3, 4], f"expected each step in layer_grads.jsonl once: {grads}"
