#!/usr/bin/env bash
# The main job of the README on built-in data: festvox-ru (a real Russian speaker, Debian package) →
# prepare → train a small HiFi-GAN on CPU for a bounded time → vocode the held-out utterances → report.
#   bash scripts/demo.sh [--minutes 10] [other `gankit demo` options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh festvox-ru
exec .venv/bin/gankit demo "$@"
