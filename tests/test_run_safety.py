"""A run directory is never shared, never blocked by its own logs, readable like any tool's output, and never loses
its last good checkpoint to a broken one: the run lock, damaged log lines, the umask, retention after a fallback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gankit.checkpoint_io import safe_load
from gankit.engine.checkpoint import CheckpointManager
from gankit.engine.jsonl import read_jsonl
from gankit.engine.launch import train
from gankit.engine.run_lock import RunLock, RunLockedError
from tests.support.toy_tasks import ThreeGroupTask, toy_config
from tests.support.training import REPO


def toy(steps: int, **train_settings: object) -> dict[str, object]:
    return toy_config(steps=steps, **train_settings)


def start_holder(run: Path) -> subprocess.Popen[str]:
    """A training of the toy task in another process, long enough to be found running."""
    config = toy(100_000, ckpt_every=1_000_000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.support.toy_worker", "three_groups", str(run),
                             json.dumps(config)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_training_stops_at_once_naming_the_holder_and_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run)
    try:
        wait_for(lambda: any(True for _ in read_jsonl(run / "metrics.jsonl")), "the holder's first logged step")
        rows_before = len(list(read_jsonl(run / "metrics.jsonl")))
        started = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"another gankit process is training in this run directory \(pid "
                                                 rf"{holder.pid} on \S+, started"):
            train(toy(3), ThreeGroupTask, run, progress=False)
        assert time.monotonic() - started < 5, "the second training must stop at once, before building anything"
        assert len(list(read_jsonl(run / "metrics.jsonl"))) >= rows_before  # it wrote nothing, truncated nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    assert holder.returncode == -signal.SIGKILL
    # The kernel released the lock with the killed process: the next start takes it (no stale lock to remove).
    assert train(toy(3), ThreeGroupTask, run, progress=False) == 0
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]


@pytest.mark.ddp
@pytest.mark.slow
def test_torchrun_ranks_share_the_lock_and_stop_together(tmp_path: Path) -> None:
    run = tmp_path / "run"
    lock = RunLock(run)
    lock.acquire()
    try:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   "-m", "tests.support.toy_worker", "three_groups", str(run), json.dumps(toy(3))]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    finally:
        lock.release()
    assert done.returncode != 0
    assert f"(pid {os.getpid()} on" in done.stdout + done.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written by either rank


def damage(path: Path, line: int) -> None:
    """Put undecodable bytes before row `line` and cut another row in half (as a disk error or a kill would)."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(line, b'\xff\xfe{"step": 1, "broken\n')
    lines.insert(line + 2, lines[line + 1][: len(lines[line + 1]) // 2] + b"\n")
    lines.append(b"[1, 2]\n")  # valid JSON, not a row
    path.write_bytes(b"".join(lines))


def test_damaged_log_lines_never_block_a_resume_or_a_report(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from gankit.report.build import build_report

    run = tmp_path / "run"
    assert train(toy(4, ckpt_every=4, val_every=2), ThreeGroupTask, run, progress=False) == 0
    for name in ("metrics.jsonl", "validation.jsonl", "layer_grads.jsonl"):
        damage(run / name, 1)
    (run / "events.jsonl").write_bytes(b'{"step": 1, "kind": "x", "severity": "info", "message": "m", "values": {}}\n'
                                       b"\xc3\x28 not utf-8\n")
    capfd.readouterr()
    assert train(toy(6, ckpt_every=4, val_every=2), ThreeGroupTask, run, progress=False) == 0
    err = capfd.readouterr().err
    assert f"warning: {run / 'metrics.jsonl'}: skipped 3 damaged line(s) (line 2, 4, 7" in err, err
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6], steps  # the damaged rows dropped at the resume, every step once
    assert [r["step"] for r in read_jsonl(run / "validation.jsonl")] == [2, 4, 6]
    (run / "metrics.jsonl").open("ab").write(b"\xff\n")
    assert build_report(run).is_file()
    assert "metrics.jsonl: skipped 1 damaged line(s)" in capfd.readouterr().err


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), pytest.param(0o077, 0o600, marks=pytest.mark.slow),
                                             pytest.param(0o002, 0o664, marks=pytest.mark.slow)])
def test_files_follow_the_umask_like_any_tool(tmp_path: Path, umask: int, mode: int) -> None:
    from gankit.report.build import build_report

    old = os.umask(umask)
    try:
        run = tmp_path / "run"
        assert train(toy(2, ckpt_every=2, val_every=2), ThreeGroupTask, run, progress=False) == 0
        build_report(run)
        files = [p for p in run.rglob("*") if p.is_file() and "tensorboard" not in p.parts]
        assert len(files) > 10
        wrong = {str(p.relative_to(run)): oct(p.stat().st_mode & 0o777) for p in files
                 if p.stat().st_mode & 0o777 != mode}
        assert not wrong, f"expected every file {oct(mode)} under umask {oct(umask)}: {wrong}"
        # An overwrite keeps the file's own mode, as a plain open would.
        config = run / "config.yaml"
        config.chmod(0o640)
        assert train(toy(3, ckpt_every=2, val_every=2), ThreeGroupTask, run, progress=False) == 0
        assert config.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_retention_after_a_fallback_keeps_the_last_good_state(tmp_path: Path) -> None:
    """An unusable newest state moves to checkpoints/unusable/ and is not counted among the kept: before, it took a
    keep_last place and the older good state was deleted for it."""
    folder = tmp_path / "checkpoints"
    manager = CheckpointManager(folder, keep_last=2, metric="val/x", mode="min")
    for step in (2, 4):
        manager.save(step, {"format": "gankit", "kind": "train_state", "step": step}, {"step": step})
    (folder / "state_00000004.pt").write_bytes(os.urandom(300))  # the newest is broken
    found = manager.latest_loadable(set_aside=True)
    assert found is not None and found[0].name == "state_00000002.pt"
    assert [e["files"] for e in manager.set_aside] == [["checkpoints/unusable/state_00000004.pt",
                                                       "checkpoints/unusable/generator_00000004.pt"]]
    manager.save(3, {"format": "gankit", "kind": "train_state", "step": 3}, {"step": 3})
    assert sorted(p.name for p in folder.glob("state_*.pt")) == ["state_00000002.pt", "state_00000003.pt"]
    assert (folder / "unusable" / "state_00000004.pt").read_bytes()  # moved, never deleted


def test_a_resume_past_an_unusable_state_names_it_in_the_events(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(toy(4, ckpt_every=2, keep_last=2), ThreeGroupTask, run, progress=False) == 0
    newest = run / "checkpoints" / "state_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    assert train(toy(6, ckpt_every=1, keep_last=2), ThreeGroupTask, run, progress=False) == 0
    [event] = [e for e in read_jsonl(run / "events.jsonl") if e["kind"] == "unusable_checkpoint"]
    assert event["step"] == 2 and event["severity"] == "warning"
    assert "moved to checkpoints/unusable/state_00000004.pt" in event["message"]
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    kept = sorted(p.name for p in (run / "checkpoints").glob("state_*.pt"))
    assert kept == ["state_00000005.pt", "state_00000006.pt"]
    assert all(safe_load(run / "checkpoints" / k)["step"] == int(k[6:14]) for k in kept)
    assert torch.load(run / "checkpoints" / "unusable" / "generator_00000004.pt", weights_only=True)["step"] == 4
