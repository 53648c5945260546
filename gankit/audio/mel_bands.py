"""The band count of each shipped mel preset, readable without torch.

`gankit.infer.mel_input` names the presets that make a refused mel's band count ("80 bands is what preset hifigan /
melgan makes"); the torch-free ONNX Runtime path (`gankit vocode --backend onnxruntime`) reads mels through it and must
not import `gankit.audio.mel` (torch) for a message. A test keeps this table equal to the presets' own defaults.
"""

from __future__ import annotations

import sys

PRESET_BANDS: dict[str, int] = {"hifigan": 80, "melgan": 80, "parallel_wavegan": 80, "vocos": 100}


def presets_with_bands(n_bands: int) -> list[str]:
    """The presets (sorted) whose default mel has `n_bands` bands; once `gankit.audio.mel` is loaded (the torch path
    always loads it), presets registered at run time count too."""
    bands = dict(PRESET_BANDS)
    mel = sys.modules.get("gankit.audio.mel")
    if mel is not None:
        bands.update({name: mel.preset_defaults(name)["n_mels"] for name in mel.PRESETS})
    return sorted(name for name, count in bands.items() if count == n_bands)
