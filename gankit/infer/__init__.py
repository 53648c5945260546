"""Inference: load a generator from any checkpoint kind and turn mels (or audio) into audio.

`from gankit.infer import load_vocoder`; `vocoder = load_vocoder("runs/x")`; `wave = vocoder(mel)`.
`from gankit.infer import load_onnx_vocoder` reads a `gankit export --to-onnx` file with numpy and onnxruntime only.

The names load their module on first use (PEP 562): importing a submodule (say `gankit.infer.onnx_vocoder`, which
must not import torch) runs this file first, so it imports nothing itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Vocoder": "gankit.infer.vocoder",
    "load_vocoder": "gankit.infer.vocoder",
    "OnnxVocoder": "gankit.infer.onnx_vocoder",
    "load_onnx_vocoder": "gankit.infer.onnx_vocoder",
}

__all__ = ["OnnxVocoder", "Vocoder", "load_onnx_vocoder", "load_vocoder"]

if TYPE_CHECKING:
    from gankit.infer.onnx_vocoder import OnnxVocoder, load_onnx_vocoder
    from gankit.infer.vocoder import Vocoder, load_vocoder


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gankit.infer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
