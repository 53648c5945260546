"""Interoperability with the ORIGINAL HiFi-GAN files, checked against an independent re-creation of its models.

The Legacy* classes (tests/support/original_hifigan.py) re-create jik876/hifi-gan's models.py with the LEGACY
`torch.nn.utils.weight_norm` / `spectral_norm` hooks (so their state dicts carry weight_g/weight_v and
weight_orig/weight_u/weight_v), and the files are written as its train.py does.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gankit.compat.hifigan_original import (
    check_optimizer_state,
    gankit_to_original,
    generator_parameter_shapes,
    load_state_dict_checked,
    original_to_gankit,
    read_original_generator,
    read_original_training_state,
    write_original_generator,
)
from gankit.errors import CheckpointError
from gankit.models import hifigan
from gankit.models.hifigan import (
    HifiGanGenerator,
    HifiGanGeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from tests.support.original_hifigan import (
    AUDIO,
    V1_LAYOUT,
    V3_LAYOUT,
    LegacyGenerator,
    LegacyMPD,
    LegacyMSD,
    h_of,
    randomize,
    write_config,
)

# The legacy hooks are the point of these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


# --- the original's files -------------------------------------------------------------------------------

V1 = V1_LAYOUT  # the published V1 (config_v1.json)
V2 = {**V1, "upsample_initial_channel": 128}  # the published V2 (config_v2.json)
V3 = V3_LAYOUT  # the published V3 (config_v3.json)
SMALL_V1 = {**V1, "upsample_initial_channel": 64}  # V1's layout (ResBlock1), narrower so the test runs in a blink
DIV = 16  # discriminator width divisor for the do_ file


# --- parity on loud weights --------------------------------------------------------------------------------
# The original's init (and `randomize`) gives outputs of std ~1e-4, where a wrong activation slope moves the output
# by less than any honest tolerance. Loud weights make every layer matter: then a 1% slope change moves the output
# by ~1e-2 of its std (the final LeakyReLU's 0.01 slope: ~2e-4), float32 rounding by ~5e-6 (measured against a
# float64 run of the same weights).

PARITY_TOL = 2e-5  # max |gankit − original| / std(original)


def make_loud(legacy: LegacyGenerator, mel: torch.Tensor) -> None:
    """Weight-norm gains ~U(0.5, 1.5) (about unit gain per conv), random directions, small biases; then conv_post
    scaled so that, on `mel`, the signal tanh sees has std 0.35: a loud output that tanh does not saturate."""
    with torch.no_grad():
        for name, p in legacy.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand_like(p) + 0.5)
            else:
                p.copy_(torch.randn_like(p) * (0.1 if name.endswith("bias") else 1.0))
        seen: list[torch.Tensor] = []
        hook = legacy.conv_post.register_forward_hook(lambda _m, _i, out: seen.append(out))
        legacy(mel)
        hook.remove()
        scale = 0.35 / seen[0].std()
        legacy.conv_post.weight_g.mul_(scale)
        legacy.conv_post.bias.mul_(scale)


def parity_gap(ours: torch.nn.Module, legacy: torch.nn.Module, mel: torch.Tensor) -> float:
    """max |ours(mel) − legacy(mel)| relative to the original's output std, after checking that output is loud
    (std > 0.1) and not saturated by tanh (under 1% of samples beyond ±0.95)."""
    with torch.no_grad():
        theirs = legacy.eval()(mel)
        out = ours.eval()(mel)
    assert out.shape == theirs.shape
    assert theirs.std() > 0.1 and (theirs.abs() > 0.95).float().mean() < 0.01, "weights not loud enough to compare"
    return float((out - theirs).abs().max() / theirs.std())


def loud_pair(layout: dict, seed: int = 0) -> tuple[HifiGanGenerator, LegacyGenerator, torch.Tensor]:
    """The original generator with loud weights, gankit's loaded strictly from its state dict, and an input."""
    torch.manual_seed(seed)
    mel = torch.randn(1, 80, 8)
    legacy = LegacyGenerator(h_of(layout)).eval()
    make_loud(legacy, mel)
    ours = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(layout)).eval()
    ours.load_state_dict(original_to_gankit(legacy.state_dict()), strict=True)
    return ours, legacy, mel


@pytest.mark.parametrize("layout", [V1, V2, V3], ids=["V1", "V2", "V3"])
def test_generator_matches_the_original_on_loud_weights(layout):
    ours, legacy, mel = loud_pair(layout)
    assert parity_gap(ours, legacy, mel) < PARITY_TOL


class _FinalSlopeOff:
    """torch.nn.functional, but leaky_relu's default slope (the generator's last activation) 0.0101, not 0.01."""

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    @staticmethod
    def leaky_relu(x, negative_slope=0.0101):
        return torch.nn.functional.leaky_relu(x, negative_slope)


@pytest.mark.parametrize("layout", [V2, V3], ids=["V2", "V3"])
@pytest.mark.parametrize(("name", "wrong"), [("LRELU_SLOPE", 0.101), ("F", _FinalSlopeOff())],
                         ids=["slope_0.101", "final_slope_0.0101"])
def test_parity_check_catches_a_one_percent_slope_change(monkeypatch, layout, name, wrong):
    """The check above is not vacuous: 1% off one activation slope in gankit's generator fails it."""
    ours, legacy, mel = loud_pair(layout)
    assert parity_gap(ours, legacy, mel) < PARITY_TOL
    monkeypatch.setattr(hifigan, name, wrong)
    assert parity_gap(ours, legacy, mel) > 5 * PARITY_TOL


@pytest.fixture(scope="module")
def original_run(tmp_path_factory):
    """A checkpoint folder as the original train.py leaves it: g_00012345, do_00012345, config.json."""
    torch.manual_seed(1234)
    folder = tmp_path_factory.mktemp("cp_hifigan")
    h = h_of(SMALL_V1)
    generator, mpd, msd = LegacyGenerator(h).eval(), LegacyMPD(DIV), LegacyMSD(DIV)
    make_loud(generator, torch.randn(1, 80, 6))
    for net in (mpd, msd):
        randomize(net)
    optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    optim_d = torch.optim.AdamW(
        itertools.chain(msd.parameters(), mpd.parameters()), h.learning_rate, betas=[h.adam_b1, h.adam_b2]
    )
    for opt in (optim_g, optim_d):  # distinct moments for every parameter
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.randn_like(p)
        opt.step()
    with torch.no_grad():  # converge spectral norm's u, v as training does over its first steps
        for _ in range(50):
            msd(torch.randn(1, 1, 256), torch.randn(1, 1, 256))
    write_config(folder, SMALL_V1)
    torch.save({"generator": generator.state_dict()}, folder / "g_00012345")
    torch.save(
        {
            "mpd": mpd.state_dict(),
            "msd": msd.state_dict(),
            "optim_g": optim_g.state_dict(),
            "optim_d": optim_d.state_dict(),
            "steps": 12345,
            "epoch": 7,
        },
        folder / "do_00012345",
    )
    return SimpleNamespace(folder=folder, generator=generator, mpd=mpd, msd=msd, optim_g=optim_g, optim_d=optim_d)


# --- generator ---------------------------------------------------------------------------------------------


def test_generator_loads_strictly_and_sounds_the_same(original_run):
    read = read_original_generator(original_run.folder / "g_00012345")
    assert read.step == 12345
    assert read.generator_config == HifiGanGeneratorConfig.from_dict({**SMALL_V1, "n_mels": 80}).to_dict()
    assert read.frontend["preset"] == "hifigan"
    assert (read.frontend["sample_rate"], read.frontend["hop_length"], read.frontend["fmax"]) == (22050, 256, 8000)
    assert read.fmax_for_loss is None
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(read.generator_config)).eval()
    gen.load_state_dict(read.state_dict, strict=True)
    mel = torch.randn(1, 80, 6)
    assert gen(mel).shape == (1, 1, 6 * 256)
    assert parity_gap(gen, original_run.generator, mel) < PARITY_TOL


def test_resblock2_generator_matches(tmp_path):
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 3)
    legacy = LegacyGenerator(h_of(V3)).eval()
    make_loud(legacy, mel)
    write_config(tmp_path, V3)
    torch.save({"generator": legacy.state_dict()}, tmp_path / "generator_v3")
    read = read_original_generator(tmp_path / "generator_v3")
    assert read.step is None
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(read.generator_config)).eval()
    load_state_dict_checked(gen, read.state_dict, "generator_v3")
    assert parity_gap(gen, legacy, mel) < PARITY_TOL


def test_generator_saved_without_weight_norm_reads(tmp_path):
    """Some published generators were saved after remove_weight_norm(): plain `X.weight` instead of g/v."""
    torch.manual_seed(1)
    mel = torch.randn(1, 80, 3)
    legacy = LegacyGenerator(h_of({**V3, "upsample_initial_channel": 32})).eval()
    make_loud(legacy, mel)
    for module in legacy.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    write_config(tmp_path, {**V3, "upsample_initial_channel": 32})
    torch.save({"generator": legacy.state_dict()}, tmp_path / "g_00000005")
    read = read_original_generator(tmp_path / "g_00000005")
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(read.generator_config)).eval()
    gen.load_state_dict(read.state_dict, strict=True)
    assert parity_gap(gen, legacy, mel) < PARITY_TOL


def test_full_size_names_shapes_and_parameter_order_match():
    """V1, MPD and MSD at the original widths (on the meta device): same keys, shapes and parameters() order."""
    with torch.device("meta"):
        pairs = [
            (
                LegacyGenerator(h_of({**SMALL_V1, "upsample_initial_channel": 512})),
                HifiGanGenerator(HifiGanGeneratorConfig()),
            ),
            (LegacyMPD(), MultiPeriodDiscriminator()),
            (LegacyMSD(), MultiScaleDiscriminator()),
        ]
    for legacy, ours in pairs:
        mapped = original_to_gankit(legacy.state_dict())
        assert list(mapped) == list(ours.state_dict())
        assert all(mapped[k].shape == v.shape for k, v in ours.state_dict().items())
        legacy_names = [n for n, _ in legacy.named_parameters()]
        assert list(original_to_gankit(dict.fromkeys(legacy_names))) == [n for n, _ in ours.named_parameters()]


# --- discriminators and optimizers -------------------------------------------------------------------------


def test_discriminators_load_and_score_the_same(original_run):
    state = read_original_training_state(
        original_run.folder / "do_00012345", {"channel_divisor": DIV}, {"channel_divisor": DIV}
    )
    assert (state.steps, state.epoch) == (12345, 7)
    mpd, msd = MultiPeriodDiscriminator(channel_divisor=DIV), MultiScaleDiscriminator(channel_divisor=DIV)
    mpd.load_state_dict(state.mpd, strict=True)
    msd.load_state_dict(state.msd, strict=True)
    # spectral norm's power-iteration buffers came across unchanged
    torch.testing.assert_close(
        msd.discriminators[0].convs[3].parametrizations.weight[0]._u,
        original_run.msd.discriminators[0].convs[3].weight_u,
        rtol=0,
        atol=0,
    )
    y, y_hat = torch.randn(2, 1, 700), torch.randn(2, 1, 700)
    with torch.no_grad():
        for mode in ("eval", "train"):  # train: one power iteration per forward on both sides, in either order
            for ours, legacy in ((mpd, original_run.mpd), (msd, original_run.msd)):
                ours.train(mode == "train")
                legacy.train(mode == "train")
                out_r, out_g = ours(y), ours(y_hat)
                y_d_rs, y_d_gs, fmap_rs, _ = legacy(y, y_hat)
                for a, b in zip(out_r.scores + out_g.scores, y_d_rs + y_d_gs, strict=True):
                    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
                for fa, fb in zip(out_r.features, fmap_rs, strict=True):
                    assert len(fa) == len(fb)
                    for a, b in zip(fa, fb, strict=True):
                        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    original_run.msd.eval()


def test_optimizer_state_loads_by_position(original_run):
    state = read_original_training_state(
        original_run.folder / "do_00012345", {"channel_divisor": DIV}, {"channel_divisor": DIV}
    )
    mpd, msd = MultiPeriodDiscriminator(channel_divisor=DIV), MultiScaleDiscriminator(channel_divisor=DIV)
    mpd.load_state_dict(state.mpd)
    msd.load_state_dict(state.msd)
    opt_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), 2e-4, betas=(0.8, 0.99))
    opt_d.load_state_dict(state.optim_d)
    legacy_params = {f"msd.{n}": p for n, p in original_run.msd.named_parameters()}
    legacy_params |= {f"mpd.{n}": p for n, p in original_run.mpd.named_parameters()}
    named = [(f"msd.{n}", p) for n, p in msd.named_parameters()] + [(f"mpd.{n}", p) for n, p in mpd.named_parameters()]
    assert len(named) == len(legacy_params)
    for name, p in named:
        legacy = legacy_params[next(iter(gankit_to_original({name: None})))]
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt_d.state[p][key], original_run.optim_d.state[legacy][key], rtol=0, atol=0)

    check_optimizer_state(state.optim_g, generator_parameter_shapes(SMALL_V1), "optim_g")
    with pytest.raises(CheckpointError, match="covers"):
        check_optimizer_state(state.optim_g, generator_parameter_shapes(V3), "optim_g")
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(SMALL_V1))
    opt_g = torch.optim.AdamW(gen.parameters(), 2e-4, betas=(0.8, 0.99))
    opt_g.load_state_dict(state.optim_g)
    legacy_g = dict(original_run.generator.named_parameters())
    for name, p in gen.named_parameters():
        legacy = legacy_g[next(iter(gankit_to_original({name: None})))]
        torch.testing.assert_close(opt_g.state[p]["exp_avg"], original_run.optim_g.state[legacy]["exp_avg"])


def test_do_file_with_other_widths_names_the_keys(original_run):
    with pytest.raises(CheckpointError) as err:
        read_original_training_state(original_run.folder / "do_00012345")  # expects the original widths
    assert "shape mismatch" in str(err.value) and "discriminators.0.convs.0" in str(err.value)


# --- names, writing, refusing -----------------------------------------------------------------------------


def test_spectral_norm_names_round_trip(original_run):
    legacy = original_run.msd.state_dict()
    ours = original_to_gankit(legacy)
    assert "discriminators.0.convs.0.parametrizations.weight.original" in ours
    assert "discriminators.0.convs.0.parametrizations.weight.0._u" in ours
    assert "discriminators.0.convs.0.parametrizations.weight.0._v" in ours
    assert "discriminators.1.convs.0.parametrizations.weight.original1" in ours  # weight norm's v, not spectral's
    back = gankit_to_original(ours)
    assert list(back) == list(legacy)
    assert all(back[k] is legacy[k] for k in legacy)
    gankit_sd = MultiScaleDiscriminator(channel_divisor=DIV).state_dict()
    again = original_to_gankit(gankit_to_original(gankit_sd))
    assert list(again) == list(gankit_sd) and all(again[k] is gankit_sd[k] for k in gankit_sd)


def test_write_then_read_round_trip(tmp_path):
    torch.manual_seed(3)
    gen = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(SMALL_V1))
    frontend = {
        "preset": "hifigan",
        "sample_rate": 22050,
        "n_fft": 1024,
        "hop_length": 256,
        "win_length": 1024,
        "n_mels": 80,
        "fmin": 0,
        "fmax": 8000,
    }
    path = write_original_generator(tmp_path, gen, gen.cfg.to_dict(), frontend, step=42, fmax_for_loss=None)
    assert path == tmp_path / "g_00000042"
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value in {**SMALL_V1, **AUDIO}.items():
        assert config[key] == value, key
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"generator"} and "conv_pre.weight_g" in raw["generator"]

    read = read_original_generator(path)
    assert read.step == 42
    assert read.state_dict.keys() == gen.state_dict().keys()
    for key, value in gen.state_dict().items():
        assert torch.equal(read.state_dict[key], value), key

    # the original's own model loads the file strictly, from config.json as inference.py does
    legacy = LegacyGenerator(SimpleNamespace(**config)).eval()
    legacy.load_state_dict(raw["generator"], strict=True)
    mel = torch.randn(1, 80, 4)
    with torch.no_grad():
        torch.testing.assert_close(legacy(mel), gen.eval()(mel), atol=1e-5, rtol=0)

    # an inference generator (weight norm removed) writes the same original form
    folded = HifiGanGenerator(HifiGanGeneratorConfig.from_dict(SMALL_V1))
    folded.load_state_dict(gen.state_dict())
    folded.remove_weight_norm()
    path2 = write_original_generator(tmp_path / "g_00000043", folded, gen.cfg.to_dict(), frontend, step=43)
    raw2 = torch.load(path2, weights_only=True)["generator"]
    g, v = raw2["ups.0.weight_g"], raw2["ups.0.weight_v"]
    torch.testing.assert_close(g * v / v.norm(dim=(1, 2), keepdim=True), gen.ups[0].weight.detach())
    assert set(raw2) == set(raw["generator"])
    nested = write_original_generator(tmp_path / "export", gen, gen.cfg.to_dict(), frontend, step=7)
    assert nested == tmp_path / "export" / "g_00000007" and (tmp_path / "export" / "config.json").is_file()

    with pytest.raises(CheckpointError, match="upsample_initial_channel"):  # config.json there says 64 channels
        other = HifiGanGenerator(HifiGanGeneratorConfig.from_dict({**SMALL_V1, "upsample_initial_channel": 32}))
        write_original_generator(tmp_path, other, other.cfg.to_dict(), frontend, step=44)


def test_wrong_architecture_names_differing_keys(tmp_path):
    torch.manual_seed(0)
    legacy = LegacyGenerator(h_of({**V3, "upsample_initial_channel": 32}))
    torch.save({"generator": legacy.state_dict()}, tmp_path / "g_00000001")
    write_config(tmp_path, SMALL_V1)  # says ResBlock1 with 64 channels
    with pytest.raises(CheckpointError) as err:
        read_original_generator(tmp_path / "g_00000001")
    message = str(err.value)
    assert "g_00000001" in message
    assert "missing ups.3, resblocks.0.convs1.0, resblocks.0.convs1.1" in message
    assert "unexpected resblocks.0.convs.0, resblocks.0.convs.1" in message
    assert "shape mismatch conv_pre.bias (file [32], model [64])" in message


def test_missing_config_says_pass_config(tmp_path, original_run):
    lone = tmp_path / "g_00012345"
    lone.write_bytes((original_run.folder / "g_00012345").read_bytes())
    with pytest.raises(CheckpointError, match="--config"):
        read_original_generator(lone)
    read = read_original_generator(lone, config_path=original_run.folder / "config.json")
    assert read.step == 12345


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused(tmp_path, original_run):
    marker = tmp_path / "pwned"
    evil = tmp_path / "g_00000001"
    torch.save({"generator": Evil(marker)}, evil)
    write_config(tmp_path, SMALL_V1)
    with pytest.raises(CheckpointError, match="refused"):
        read_original_generator(evil)
    torch.save(
        {"mpd": Evil(marker), "msd": {}, "optim_g": {}, "optim_d": {}, "steps": 1, "epoch": 0}, tmp_path / "do_00000001"
    )
    with pytest.raises(CheckpointError, match="refused"):
        read_original_training_state(tmp_path / "do_00000001")
    assert not marker.exists()


def test_do_file_given_as_generator(original_run):
    with pytest.raises(CheckpointError, match="do_ file"):
        read_original_generator(original_run.folder / "do_00012345")
