"""One training process per run directory: an exclusive lock that dies with its holder.

`flock` on `<run>/.lock` is released by the kernel when the process exits, however it exits (SIGKILL included),
so a lock is never stale; the file itself only names the holder (pid, host, start time) for the message a second
process gets. On a file system without `flock` (some network mounts) the lock is skipped with a warning."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from gankit.errors import GankitError

LOCK_NAME = ".lock"


class RunLockedError(GankitError):
    """Another process trains in this run directory."""


class RunLock:
    """Hold with `acquire()`, give back with `release()` (or let the process end)."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self, warn: Any = print) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise RunLockedError(
                f"{self.path.parent}: another gankit process is training in this run directory ({holder}); "
                "wait for it to finish or stop it, or choose another run directory"
            ) from None
        except OSError as exc:  # no flock here (e.g. some network file systems): run unlocked, but say so
            warn(f"warning: {self.path}: cannot lock the run directory ({exc.strerror}); make sure no other "
                 "process trains in it")
            handle.close()
            return
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor releases the flock
            self._handle = None


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, started {holder.get('started', '?')}"
    except (ValueError, KeyError, TypeError):
        return "its pid is not recorded yet"
