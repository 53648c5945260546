"""Health events: the row written to events.jsonl, TensorBoard and the console, and per-kind rate limiting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gankit.engine.jsonl import JsonlLog

ACTION_RANK: dict[str, int] = {"continue": 0, "rollback": 1, "stop": 2}
ACTIONS_BY_RANK: dict[int, str] = {v: k for k, v in ACTION_RANK.items()}


@dataclass
class Event:
    step: int
    kind: str
    severity: str  # "info" | "warning" | "error"
    message: str
    values: dict[str, Any]
    action: str  # what was done: "warn", "skip_step", "rollback" or "stop"

    def row(self) -> dict[str, Any]:
        """The events.jsonl row (docs/CONTRACTS.md "run directory"); the action travels with the values."""
        return {
            "step": self.step,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "values": {**self.values, "action": self.action},
        }

    def console_line(self) -> str:
        return f"health {self.severity} [{self.kind}] step {self.step}: {self.message}"


class RateLimiter:
    """At most one event per key every `every` steps, so a persisting problem repeats now and then, not every step."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def allow(self, key: str, step: int, every: int) -> bool:
        last = self.last.get(key)
        if last is not None and 0 <= step - last < every:
            return False
        self.last[key] = step
        return True

    def state_dict(self) -> dict[str, int]:
        return dict(self.last)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = {str(k): int(v) for k, v in (state or {}).items()}


class EventSink:
    """Writes events where people look: events.jsonl at the run's root, TensorBoard text, the console.

    Only the writing rank (rank 0) has a sink that writes; the others build one with `writer=False`.
    """

    def __init__(self, run: Any, console: Callable[[str], None], writer: bool) -> None:
        self.run = run
        self.console = console
        self.log = JsonlLog(run.root / "events.jsonl") if writer else None

    def write(self, event: Event) -> None:
        if self.log is None:
            return
        self.log.append(event.row())
        tb = getattr(self.run, "tensorboard", None)
        if tb is not None:
            tb.add_text(f"health/{event.kind}", f"**{event.severity}** ({event.action}): {event.message}", event.step)
        self.console(event.console_line())

    def truncate_after(self, step: int) -> None:
        if self.log is not None:
            self.log.truncate_after(step)
