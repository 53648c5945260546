"""`torchrun … -m tests.support.toy_worker TASK RUN_DIR CONFIG_JSON`: train a toy task of tests/support/toy_tasks.py
(TASK: three_groups or two_decoders) with the engine, as `gankit train` would a shipped system."""

from __future__ import annotations

import json
import sys

from gankit.engine.launch import train
from tests.support.toy_tasks import ThreeGroupTask, TwoDecoderTask

TOY_TASKS = {"three_groups": ThreeGroupTask, "two_decoders": TwoDecoderTask}

if __name__ == "__main__":
    name, run_dir, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    raise SystemExit(train(config, TOY_TASKS[name], run_dir, progress=False))
