"""Inference: load a generator from any checkpoint kind and turn mels (or audio) into audio.

`from gankit.infer import load_vocoder`; `vocoder = load_vocoder("runs/x")`; `wave = vocoder(mel)`.
"""

from gankit.infer.vocoder import Vocoder, load_vocoder

__all__ = ["Vocoder", "load_vocoder"]
