"""Universal Music Translation networks and µ-law codec: parameter counts derived by hand from the original's layer
layout (facebookresearch/music-translation src/wavenet_models.py Encoder / ZDiscriminator, src/wavenet.py WaveNet,
train.sh sizes), shapes, the original's parameter names, the receptive field and causality, cached generation
against the teacher-forced forward and against naive generation, and the codec's values and error bound
(src/utils.py mu_law / inv_mu_law)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gankit.audio.mulaw import mu_law_decode, mu_law_encode
from gankit.errors import ConfigError
from gankit.models.music_translation import (
    DomainClassifier,
    Encoder,
    IncrementalDecoder,
    MusicTranslationConfig,
    SoftmaxSampler,
    WaveNetDecoder,
    argmax_sampler,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(c_in: int, c_out: int, k: int = 1) -> int:
    """A Conv1d with bias."""
    return c_in * c_out * k + c_out


# --- parameter counts at the published sizes ------------------------------------------------------------------


def encoder_count(blocks: int = 3, layers: int = 10, ch: int = 128, latent: int = 64, k: int = 3) -> int:
    """start Conv1d(1, 128, 3); per layer a dilated Conv1d(128, 128, 3) and a Conv1d(128, 128, 1); conv_1x1
    Conv1d(128, 64, 1). The pool has no parameters."""
    per_layer = conv(ch, ch, k) + conv(ch, ch)  # 49,280 + 16,512 = 65,792
    return conv(1, ch, k) + blocks * layers * per_layer + conv(ch, latent)  # 512 + 30 · 65,792 + 8,256


def classifier_count(n_domains: int, layers: int = 3, ch: int = 100, latent: int = 64) -> int:
    """Conv1d(64, 100, 1), two Conv1d(100, 100, 1), Conv1d(100, n_domains, 1); ELU and dropout have none."""
    return conv(latent, ch) + (layers - 1) * conv(ch, ch) + conv(ch, n_domains)  # 6,500 + 20,200 + 101·n


def decoder_count(blocks: int = 4, layers: int = 14, res: int = 128, skip: int = 128, latent: int = 64,
                  k: int = 2, classes: int = 256) -> int:
    """Per layer: causal Conv1d(128, 256, 2), condition Conv1d(64, 256, 1), residual Conv1d(128, 128, 1), skip
    Conv1d(128, 128, 1). Then first_conv Conv1d(1, 128, 2), skip_conv Conv1d(128, 128, 1), condition
    Conv1d(64, 128, 1), fc Conv1d(128, 128, 1), logits Conv1d(128, 256, 1)."""
    per_layer = conv(res, 2 * res, k) + conv(latent, 2 * res) + conv(res, res) + conv(res, skip)  # 115,456
    head = conv(1, res, k) + conv(res, skip) + conv(latent, skip) + conv(skip, skip) + conv(skip, classes)  # 74,752
    return blocks * layers * per_layer + head


def test_parameter_counts_follow_the_original_layer_layout() -> None:
    assert encoder_count() == 1_982_528
    assert classifier_count(6) == 27_306
    assert decoder_count() == 6_540_288
    cfg = MusicTranslationConfig()
    assert count(Encoder(cfg)) == 1_982_528
    assert count(DomainClassifier(cfg)) == 27_306
    assert count(WaveNetDecoder(cfg)) == 6_540_288
    assert count(DomainClassifier(MusicTranslationConfig(n_domains=2))) == classifier_count(2) == 26_902


def test_parameter_counts_follow_every_size_in_the_config() -> None:
    cfg = MusicTranslationConfig(n_domains=3, encoder_blocks=2, encoder_layers=4, encoder_channels=24,
                                 encoder_kernel=5, latent_channels=12, classifier_layers=2, classifier_channels=30,
                                 decoder_blocks=3, decoder_layers=5, decoder_kernel=3, residual_channels=20,
                                 skip_channels=28, n_classes=64)
    assert count(Encoder(cfg)) == encoder_count(2, 4, 24, 12, 5)
    assert count(DomainClassifier(cfg)) == classifier_count(3, 2, 30, 12)
    assert count(WaveNetDecoder(cfg)) == decoder_count(3, 5, 20, 28, 12, 3, 64)


def test_parameter_names_are_the_originals_so_its_state_dicts_load() -> None:
    cfg = MusicTranslationConfig()
    encoder, classifier, decoder = (Encoder(cfg).state_dict(), DomainClassifier(cfg).state_dict(),
                                    WaveNetDecoder(cfg).state_dict())
    assert list(encoder)[:4] == ["dilated_convs.0.dilated_conv.weight", "dilated_convs.0.dilated_conv.bias",
                                 "dilated_convs.0.conv_1x1.weight", "dilated_convs.0.conv_1x1.bias"]
    assert list(encoder)[-4:] == ["start.weight", "start.bias", "conv_1x1.weight", "conv_1x1.bias"]
    assert encoder["dilated_convs.29.dilated_conv.weight"].shape == (128, 128, 3) and len(encoder) == 124
    assert list(classifier) == [f"convs.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    assert list(decoder)[:8] == [f"layers.0.{m}.{p}" for m in ("causal", "condition", "residual", "skip")
                                 for p in ("weight", "bias")]
    assert list(decoder)[-10:] == [f"{m}.{p}" for m in ("first_conv", "skip_conv", "condition", "fc", "logits")
                                   for p in ("weight", "bias")]
    assert decoder["layers.55.causal.weight"].shape == (256, 128, 2) and len(decoder) == 56 * 8 + 10


# --- shapes, receptive field, causality -----------------------------------------------------------------------


def test_published_decoder_receptive_field() -> None:
    # (kernel − 1) · (first conv 1 + 4 blocks × (1 + 2 + … + 8192)) + 1 for the one-sample shift
    assert WaveNetDecoder(MusicTranslationConfig()).receptive_field == 1 * (1 + 4 * 16_383) + 1 == 65_534


def test_shapes_at_the_published_sizes() -> None:
    cfg = MusicTranslationConfig()
    torch.manual_seed(0)
    classes = torch.randint(0, 256, (2, 800))
    latent = Encoder(cfg)(classes)
    assert latent.shape == (2, 64, 1)
    assert DomainClassifier(cfg)(latent).shape == (2, 6)
    assert WaveNetDecoder(cfg)(classes[:, :100], latent).shape == (2, 256, 100)


SMALL = MusicTranslationConfig(n_domains=3, encoder_blocks=2, encoder_layers=3, encoder_channels=16,
                               latent_channels=8, encoder_pool=20, classifier_channels=12, decoder_blocks=2,
                               decoder_layers=3, residual_channels=16, skip_channels=24)


def test_encoder_pools_to_one_frame_per_encoder_pool_samples() -> None:
    torch.manual_seed(0)
    encoder = Encoder(SMALL)
    classes = torch.randint(0, 256, (3, 100))
    latent = encoder(classes)
    assert latent.shape == (3, 8, 5)
    # frame f is the mean of the pre-pool activations over its 20 samples
    pre_pool = encoder.conv_1x1(encoder.dilated_convs(encoder.start(classes[:, None].float() / 255 - 0.5)))
    torch.testing.assert_close(latent, pre_pool.reshape(3, 8, 5, 20).mean(-1))
    with pytest.raises(ValueError, match="multiple of encoder_pool"):
        encoder(classes[:, :90])
    with pytest.raises(ValueError, match="integer µ-law classes"):
        encoder(classes.float() / 255 * 2 - 1)  # a wave is not what it reads
    with pytest.raises(ValueError, match="0 … 255"):
        encoder(classes + 1)


def test_classifier_averages_per_frame_logits_over_time() -> None:
    torch.manual_seed(0)
    classifier = DomainClassifier(SMALL).double()
    latent = torch.randn(2, 8, 7, dtype=torch.float64)
    logits = classifier(latent)
    per_frame = torch.stack([classifier(latent[:, :, f:f + 1]) for f in range(7)], dim=-1)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, per_frame.mean(-1))
    classifier.train()  # the default input dropout is 0: training changes nothing
    torch.testing.assert_close(classifier(latent), logits)
    assert len(DomainClassifier(SMALL).convs) == 2 * 3 + 1
    assert sum(isinstance(m, nn.ELU) for m in classifier.modules()) == 3


@pytest.mark.parametrize("kernel", [2, 3])
def test_decoder_is_causal_and_sees_exactly_its_receptive_field(kernel: int) -> None:
    cfg = MusicTranslationConfig(**{**SMALL.to_dict(), "decoder_kernel": kernel})
    torch.manual_seed(0)
    decoder = WaveNetDecoder(cfg).double()
    receptive_field = decoder.receptive_field
    assert receptive_field == (kernel - 1) * (1 + 2 * 7) + 1  # 16 for kernel 2, 31 for kernel 3
    classes = torch.randint(0, 256, (1, 90))
    latent = torch.randn(1, 8, 5, dtype=torch.float64)
    base = decoder(classes, latent)
    for changed in (0, 30):
        other = classes.clone()
        other[0, changed] = (other[0, changed] + 97) % 256
        moved = (decoder(other, latent) - base).abs().amax(dim=1)[0]
        sees = (moved > 0).nonzero().flatten().tolist()
        assert sees == list(range(changed + 1, min(90, changed + receptive_field + 1)))


def test_decoder_conditions_each_sample_on_its_frame() -> None:
    torch.manual_seed(0)
    decoder = WaveNetDecoder(SMALL).double()
    classes = torch.randint(0, 256, (1, 50))  # 3 frames of 20, the last one cut at 10 samples
    latent = torch.randn(1, 8, 3, dtype=torch.float64)
    base = decoder(classes, latent)
    other = latent.clone()
    other[:, :, 1] += 1.0
    moved = (decoder(classes, other) - base).abs().amax(dim=1)[0]
    # frame 1 conditions samples 20 … 39 directly, and later samples through their past
    assert (moved[:20] == 0).all() and (moved[20:] > 0).all()
    with pytest.raises(ValueError, match=r"latent must be \[1, 8, 3\]"):
        decoder(classes, latent[:, :, :2])
    with pytest.raises(ValueError, match=r"latent must be \[1, 8, 3\]"):
        decoder(classes, torch.randn(1, 8, 4, dtype=torch.float64))


# --- cached generation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [2, 3])
def test_cached_step_logits_equal_the_teacher_forced_forward(kernel: int) -> None:
    cfg = MusicTranslationConfig(**{**SMALL.to_dict(), "decoder_kernel": kernel, "decoder_layers": 4})
    torch.manual_seed(0)
    decoder = WaveNetDecoder(cfg)
    classes = torch.randint(0, 256, (3, 150))  # 8 frames, the last one partial; longer than the receptive field
    latent = torch.randn(3, 8, 8)
    expected = decoder(classes, latent)
    stepper = IncrementalDecoder(decoder, latent)
    steps = [stepper.step(None)] + [stepper.step(classes[:, t - 1]) for t in range(1, 150)]
    torch.testing.assert_close(torch.stack(steps, dim=-1), expected, rtol=0, atol=1e-5)
    assert expected.abs().max() > 0.5  # logits of a size where 1e-5 means something
    with pytest.raises(ValueError, match="frame 8"):  # positions 150 … 159 are still frame 7's
        for _ in range(11):
            stepper.step(classes[:, 0])


def test_step_insists_on_none_first_and_classes_after() -> None:
    stepper = IncrementalDecoder(WaveNetDecoder(SMALL), torch.randn(2, 8, 1))
    with pytest.raises(ValueError, match="None for the first"):
        stepper.step(torch.zeros(2, dtype=torch.long))
    stepper.step(None)
    with pytest.raises(ValueError, match="None for the first"):
        stepper.step(None)
    with pytest.raises(ValueError, match="integer classes"):
        stepper.step(torch.zeros(2))


TINY = MusicTranslationConfig(latent_channels=4, encoder_pool=25, decoder_blocks=2, decoder_layers=3,
                              residual_channels=8, skip_channels=8)


@pytest.mark.slow  # ~8 s; in CI's slow step to keep the default suite under 8 minutes on 2 cores
def test_cached_and_naive_generation_draw_the_same_2000_samples() -> None:
    torch.manual_seed(1)
    decoder = WaveNetDecoder(TINY).double()
    latent = torch.randn(2, 4, 80, dtype=torch.float64)
    cached = decoder.generate(latent, 2000, SoftmaxSampler(torch.Generator().manual_seed(7)))
    naive = decoder.generate_naive(latent, 2000, SoftmaxSampler(torch.Generator().manual_seed(7)))
    assert cached.shape == naive.shape == (2, 2000) and cached.dtype == torch.long
    assert torch.equal(cached, naive)
    assert len(cached.unique()) > 100 and not torch.equal(cached[0], cached[1])  # real draws, not a constant
    other_seed = decoder.generate(latent, 2000, SoftmaxSampler(torch.Generator().manual_seed(8)))
    assert (other_seed != cached).float().mean() > 0.5


def test_both_generators_give_the_sampler_the_teacher_forced_logits_of_what_they_drew() -> None:
    torch.manual_seed(3)
    decoder = WaveNetDecoder(TINY).double()
    latent = torch.randn(2, 4, 12, dtype=torch.float64)
    for generate in (decoder.generate, decoder.generate_naive):
        seen: list[torch.Tensor] = []
        draw = SoftmaxSampler(torch.Generator().manual_seed(5))

        def recording(logits: torch.Tensor, seen: list[torch.Tensor] = seen, draw: SoftmaxSampler = draw
                      ) -> torch.Tensor:
            seen.append(logits.clone())
            return draw(logits)

        drawn = generate(latent, 300, recording)
        torch.testing.assert_close(torch.stack(seen, dim=-1), decoder(drawn, latent), rtol=0, atol=1e-10)


def test_generation_continues_a_prompt() -> None:
    torch.manual_seed(2)
    decoder = WaveNetDecoder(TINY).double()
    latent = torch.randn(1, 4, 12, dtype=torch.float64)
    prompt = torch.randint(0, 256, (1, 120))
    cached = decoder.generate(latent, sampler=argmax_sampler, prompt=prompt)  # the rest of the latent: 180
    naive = decoder.generate_naive(latent, sampler=argmax_sampler, prompt=prompt)
    assert cached.shape == (1, 180) and torch.equal(cached, naive)
    sampled = decoder.generate(latent, 180, SoftmaxSampler(torch.Generator().manual_seed(3)), prompt)
    assert torch.equal(sampled, decoder.generate_naive(latent, 180, SoftmaxSampler(torch.Generator().manual_seed(3)),
                                                       prompt))
    with pytest.raises(ValueError, match=r"for 520 samples .* got \[1, 4, 12\]"):
        decoder.generate(latent, 400, prompt=prompt)


def test_softmax_sampler_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]])).expand(20_000, 3)
    draws = SoftmaxSampler(torch.Generator().manual_seed(0))(logits)
    frequencies = torch.bincount(draws, minlength=3).double() / 20_000
    torch.testing.assert_close(frequencies, torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64), rtol=0, atol=0.015)
    cold = SoftmaxSampler(torch.Generator().manual_seed(0), temperature=0.05)(logits)
    assert (cold == 1).float().mean() > 0.99


# --- config -----------------------------------------------------------------------------------------------------


def test_config_round_trips_and_rejects_bad_values() -> None:
    cfg = MusicTranslationConfig.from_dict({"n_domains": 4, "decoder_layers": 10})
    assert MusicTranslationConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"pool": 800}, {"encoder_kernel": 2}, {"decoder_kernel": 1}, {"n_domains": 1}, {"n_classes": 1},
                {"residual_channels": 0}, {"encoder_pool": True}, {"classifier_input_dropout": 1.0}):
        with pytest.raises(ConfigError):
            MusicTranslationConfig.from_dict(bad)


# --- µ-law --------------------------------------------------------------------------------------------------------


def original_classes(x: np.ndarray) -> np.ndarray:
    """src/utils.py mu_law: compand, then (y + 1)/2 · 255 truncated to an integer."""
    y = np.sign(x) * np.log(1 + 255 * np.abs(x)) / np.log(256)
    return ((y + 1) / 2 * 255).astype(np.int64)


def test_mu_law_known_values() -> None:
    assert mu_law_encode(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 127, 255]
    assert mu_law_encode(torch.tensor([-3.0, 2.0])).tolist() == [0, 255]  # clipped, as the original
    assert mu_law_decode(np.array([0, 128])).tolist() == [-1.0, 0.0]
    top, below_middle = mu_law_decode(np.array([255, 127])).tolist()
    assert top == pytest.approx((256 ** (127 / 128) - 1) / 255, rel=1e-6) == pytest.approx(0.95744, abs=1e-5)
    assert below_middle == pytest.approx(-(256 ** (1 / 128) - 1) / 255, rel=1e-6)


def test_mu_law_encode_matches_the_original_formula_for_torch_and_numpy() -> None:
    x = np.linspace(-1.0, 1.0, 100_001)
    expected = original_classes(x)
    assert np.array_equal(mu_law_encode(x), expected) and mu_law_encode(x).dtype == np.int64
    from_torch = mu_law_encode(torch.from_numpy(x).float())
    assert from_torch.dtype == torch.int64 and np.array_equal(from_torch.numpy(), original_classes(
        torch.from_numpy(x).float().double().numpy()))
    assert set(expected.tolist()) == set(range(256))
    decoded = mu_law_decode(torch.arange(256))
    assert decoded.dtype == torch.float32 and np.allclose(decoded.numpy(), mu_law_decode(np.arange(256)))
    assert (decoded.diff() > 0).all()


def test_mu_law_round_trip_error_bound() -> None:
    # Encoding maps y ∈ [2c/255 − 1, 2(c + 1)/255 − 1) to c; decoding reads c as c/128 − 1, at most 1/64 below y.
    # The expansion's slope is ln(256)/255 · 256^|s| and 256^|y| = 255|x| + 1, so the wave error is at most
    # (ln 256 / 64) · 2^(1/8) · (|x| + 1/255), and never negative.
    x = np.linspace(-1.0, 1.0, 200_001)
    error = x - mu_law_decode(mu_law_encode(x)).astype(np.float64)
    bound = math.log(256) / 64 * 2 ** 0.125 * (np.abs(x) + 1 / 255)
    assert (error >= -1e-7).all() and (error <= bound + 1e-7).all()
    assert error.max() > 0.08  # just under +1: class 254 decodes to 0.917 (the original's asymmetry)
    assert error[100_000] == pytest.approx((256 ** (1 / 128) - 1) / 255, rel=1e-6)  # 0 ↦ 127 ↦ −1.74e-4


def test_mu_law_rejects_what_it_cannot_code() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        mu_law_decode(np.array([256]))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        mu_law_decode(torch.tensor([-1]))
