"""`torchrun … -m tests.support.toy_worker TASK RUN_DIR CONFIG_JSON`: train a toy task of tests/support/toy_tasks.py
(TASK: three_groups, two_decoders or image_gan) with the engine, as `gankit train` would a shipped system."""

from __future__ import annotations

import json
import sys

from gankit.engine.launch import train
from tests.support.ddp_worker import install_rank_states
from tests.support.toy_tasks import ImageGanTask, ThreeGroupTask, TwoDecoderTask

TOY_TASKS = {"three_groups": ThreeGroupTask, "two_decoders": TwoDecoderTask, "image_gan": ImageGanTask}

if __name__ == "__main__":
    install_rank_states()  # GANKIT_TEST_RANK_STATES=1: each rank's own networks beside every checkpoint
    name, run_dir, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    raise SystemExit(train(config, TOY_TASKS[name], run_dir, progress=False))
