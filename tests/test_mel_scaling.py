"""The conversion models' feature scalings: per-band standardisation and min–max onto [0, 1] invert exactly where
they can, describe themselves as a dict a checkpoint stores, and refuse impossible values."""

from __future__ import annotations

import pytest
import torch

from gankit.audio.mel_scaling import BandStandardisation, MinMaxScaling, log_mel_range, scaling_from_dict


def test_band_standardisation_scales_each_band_and_inverts() -> None:
    scaling = BandStandardisation((1.0, -2.0), (2.0, 0.5))
    mel = torch.tensor([[3.0, 1.0], [-2.0, -1.5]])  # [2 bands, 2 frames]
    torch.testing.assert_close(scaling.normalise(mel), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(scaling.denormalise(scaling.normalise(mel)), mel)
    assert scaling_from_dict(scaling.to_dict()) == scaling
    with pytest.raises(ValueError, match="> 0"):
        BandStandardisation((0.0,), (0.0,))
    with pytest.raises(ValueError, match="one value per band"):
        BandStandardisation((0.0, 1.0), (1.0,))


def test_min_max_maps_the_range_onto_0_1_clips_outside_and_inverts_inside() -> None:
    scaling = MinMaxScaling(-11.5, 2.5)
    mel = torch.tensor([[-11.5, 2.5, -4.5], [-20.0, 9.0, 0.0]])
    scaled = scaling.normalise(mel)
    torch.testing.assert_close(scaled[0], torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(scaled[1, :2], torch.tensor([0.0, 1.0]))  # clipped: the sigmoid's range
    torch.testing.assert_close(scaling.denormalise(scaled[0]), mel[0])
    assert scaling_from_dict(scaling.to_dict()) == scaling
    with pytest.raises(ValueError, match="above its low"):
        MinMaxScaling(1.0, 1.0)


def test_ranges_and_unknown_kinds() -> None:
    assert log_mel_range([torch.tensor([[0.0, -3.0]]), torch.tensor([[4.0]])]) == (-3.0, 4.0)
    with pytest.raises(ValueError, match="no mels"):
        log_mel_range([])
    with pytest.raises(ValueError, match="unknown mel scaling"):
        scaling_from_dict({"kind": "log10"})
    with pytest.raises(ValueError, match="'mean'"):
        scaling_from_dict({"kind": "band_standardisation", "mean": "x", "scale": [1.0]})
