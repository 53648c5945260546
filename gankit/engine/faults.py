"""Test-only fault injection: `GANKIT_FAULT=point[:n]` kills the process (or `GANKIT_FAULT_ACTION=enospc`
raises "no space left") at the n-th time training passes a named point. Unset, it costs one dict lookup."""

from __future__ import annotations

import errno
import os
import signal

from gankit import atomic

POINTS = ("before_fsync", "before_rename", "after_write", "during_retention", "mid_step")


class FaultInjector:
    def __init__(self, spec: str | None, action: str = "kill") -> None:
        self.point, self.remaining = None, 0
        self.action = action
        if spec:
            point, _, count = spec.partition(":")
            if point not in POINTS:
                raise ValueError(f"GANKIT_FAULT point '{point}' is not one of {', '.join(POINTS)}")
            self.point, self.remaining = point, int(count or 1)

    def __call__(self, point: str) -> None:
        if point != self.point:
            return
        self.remaining -= 1
        if self.remaining > 0:
            return
        if self.action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), signal.SIGKILL)


def install_from_environment() -> FaultInjector:
    injector = FaultInjector(os.environ.get("GANKIT_FAULT"), os.environ.get("GANKIT_FAULT_ACTION", "kill"))
    if injector.point is not None:
        atomic._fault_hook = injector
    return injector
