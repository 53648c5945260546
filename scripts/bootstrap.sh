#!/usr/bin/env bash
# Make a working environment from nothing: Debian packages (when asked for), a virtual environment in
# .venv, the pinned CPU torch, and gankit with its extras (test, onnx). Safe to run again: it skips what is done.
#   bash scripts/bootstrap.sh [debian-package ...]
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  if ! { $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
         || { $sudo apt-get update -qq >/dev/null 2>&1 \
              && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }; }; then
    echo "bootstrap: could not install ${missing[*]} (no root or no package mirror); what needs them is skipped" >&2
    return 1
  fi
}

if [ $# -gt 0 ]; then apt_install "$@" || true; fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.gankit-installed
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv (torch 2.13.0 CPU first, so nothing pulls CUDA)"
  # GANKIT_TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU wheel from PyTorch's own index on a
  # machine that has no local copy of it (PyPI's default Linux wheel is the multi-GB CUDA build).
  .venv/bin/python -m pip install -q --disable-pip-version-check ${GANKIT_TORCH_INDEX:+--index-url "$GANKIT_TORCH_INDEX"} "torch==2.13.0"
  # onnx: the ONNX export / onnxruntime backend tests run instead of skipping.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,onnx]"
  echo "$want" > "$stamp"
fi
