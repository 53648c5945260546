"""The report's figures/ folder: the PNG paths one build writes, so that a rebuild can delete the rest."""

from __future__ import annotations

from pathlib import Path


class FigureFolder:
    def __init__(self, out: Path) -> None:
        self.out = out  # the report folder; figures go to out/figures
        self.written: set[Path] = set()

    def path(self, name: str) -> Path:
        """Where figure `name` goes; kept unless `discard`ed (the plot had nothing to draw)."""
        path = self.out / "figures" / f"{name}.png"
        self.written.add(path)
        return path

    def discard(self, path: Path) -> None:
        self.written.discard(path)

    def rel(self, path: Path) -> str:
        """The path as the page links it: relative to the report folder."""
        return path.relative_to(self.out).as_posix()
