#!/usr/bin/env bash
# The test command of the README: set up what the tests need, then lint and run the default test suite.
#   bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
# festvox-ru: the real-speech tests (evaluate ranking, metric ranges, the festvox split) run instead of skipping;
# espeak-ng and the festvox voices (festival comes with them): the vc-demo synthesis tests run instead of skipping;
# fluidsynth and timgm6mb-soundfont: the instruments rendering tests (tests/test_prepare_domains.py) likewise.
bash scripts/bootstrap.sh chromium chromium-driver festvox-ru espeak-ng festvox-kallpc16k festvox-kdlpc16k \
  festvox-us-slt-hts fluidsynth timgm6mb-soundfont
.venv/bin/ruff check gankit tests benchmarks scripts
.venv/bin/python -m pytest -q -rs "$@"  # -rs: every skip prints its reason
