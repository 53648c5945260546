"""A run directory's files: resolved config, environment, metric logs, TensorBoard (rank 0 writes)."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gankit import __version__, atomic
from gankit.config import dump_yaml
from gankit.engine.jsonl import JsonlLog


class RunDirectory:
    def __init__(self, root: str | Path, writer: bool = True) -> None:
        self.root = Path(root)
        self.writer = writer
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.metrics = JsonlLog(self.root / "metrics.jsonl") if writer else None
        self.validation = JsonlLog(self.root / "validation.jsonl") if writer else None
        self.layer_grads = JsonlLog(self.root / "layer_grads.jsonl") if writer else None
        self._tb: Any = None

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def write_config(self, config: Mapping[str, Any]) -> None:
        if self.writer:
            atomic.write_text(self.config_path, dump_yaml(config))

    def write_environment(self, device: torch.device, world_size: int, data: Mapping[str, Any]) -> None:
        if not self.writer:
            return
        import librosa
        import numpy

        env = {
            "gankit": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "librosa": librosa.__version__,
            "platform": platform.platform(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
            or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "world_size": world_size,
            "data": dict(data),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        atomic.write_text(self.root / "environment.json", json.dumps(env, indent=2) + "\n")

    def truncate_logs_after(self, step: int) -> None:
        """On resume, rows past the resumed step are dropped so no step appears twice."""
        for log in (self.metrics, self.validation, self.layer_grads):
            if log is not None:
                log.truncate_after(step)

    @property
    def tensorboard(self) -> Any:
        if self._tb is None and self.writer:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.root / "tensorboard"))
        return self._tb

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        tb = self.tensorboard
        if tb is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)):
                tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
