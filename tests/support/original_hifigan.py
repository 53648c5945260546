"""An independent re-creation of the ORIGINAL HiFi-GAN (jik876/hifi-gan) for tests: its models.py with the LEGACY
`torch.nn.utils.weight_norm` / `spectral_norm` hooks (state dicts carry weight_g/weight_v and
weight_orig/weight_u/weight_v), its files as train.py writes them, and its inference scripts' arithmetic.

Written from the original's published code, not from gankit's, so gankit can be checked against it. `div` shrinks the
discriminators' widths for speed (1 = the original). Constructing these models warns that `weight_norm` is
deprecated; tests that use them filter that warning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import AvgPool1d, Conv1d, Conv2d, ConvTranspose1d

weight_norm = torch.nn.utils.weight_norm
spectral_norm = torch.nn.utils.spectral_norm

LRELU_SLOPE = 0.1


def get_padding(kernel_size, dilation=1):
    return int((kernel_size * dilation - dilation) / 2)


def init_weights(m, mean=0.0, std=0.01):
    if m.__class__.__name__.find("Conv") != -1:
        m.weight.data.normal_(mean, std)


class LegacyResBlock1(nn.Module):
    def __init__(self, channels, kernel_size, dilation):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d)))
            for d in dilation[:3]
        )
        self.convs1.apply(init_weights)
        self.convs2 = nn.ModuleList(
            weight_norm(Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1)))
            for _ in range(3)
        )
        self.convs2.apply(init_weights)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c1(xt)
            xt = F.leaky_relu(xt, LRELU_SLOPE)
            xt = c2(xt)
            x = xt + x
        return x

    def remove_weight_norm(self):
        for layer in self.convs1:
            torch.nn.utils.remove_weight_norm(layer)
        for layer in self.convs2:
            torch.nn.utils.remove_weight_norm(layer)


class LegacyResBlock2(nn.Module):
    def __init__(self, channels, kernel_size, dilation):
        super().__init__()
        self.convs = nn.ModuleList(
            weight_norm(Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d)))
            for d in dilation[:2]
        )
        self.convs.apply(init_weights)

    def forward(self, x):
        for c in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c(xt)
            x = xt + x
        return x

    def remove_weight_norm(self):
        for layer in self.convs:
            torch.nn.utils.remove_weight_norm(layer)


class LegacyGenerator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.num_kernels = len(h.resblock_kernel_sizes)
        self.num_upsamples = len(h.upsample_rates)
        self.conv_pre = weight_norm(Conv1d(80, h.upsample_initial_channel, 7, 1, padding=3))
        resblock = LegacyResBlock1 if h.resblock == "1" else LegacyResBlock2
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(h.upsample_rates, h.upsample_kernel_sizes, strict=True)):
            self.ups.append(
                weight_norm(
                    ConvTranspose1d(
                        h.upsample_initial_channel // (2**i),
                        h.upsample_initial_channel // (2 ** (i + 1)),
                        k,
                        u,
                        padding=(k - u) // 2,
                    )
                )
            )
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = h.upsample_initial_channel // (2 ** (i + 1))
            for k, d in zip(h.resblock_kernel_sizes, h.resblock_dilation_sizes, strict=True):
                self.resblocks.append(resblock(ch, k, d))
        self.conv_post = weight_norm(Conv1d(ch, 1, 7, 1, padding=3))
        self.ups.apply(init_weights)
        self.conv_post.apply(init_weights)

    def forward(self, x):
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = self.ups[i](x)
            xs = None
            for j in range(self.num_kernels):
                if xs is None:
                    xs = self.resblocks[i * self.num_kernels + j](x)
                else:
                    xs += self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = F.leaky_relu(x)
        x = self.conv_post(x)
        return torch.tanh(x)

    def remove_weight_norm(self):
        for layer in self.ups:
            torch.nn.utils.remove_weight_norm(layer)
        for layer in self.resblocks:
            layer.remove_weight_norm()
        torch.nn.utils.remove_weight_norm(self.conv_pre)
        torch.nn.utils.remove_weight_norm(self.conv_post)


class LegacyDiscriminatorP(nn.Module):
    def __init__(self, period, div=1, kernel_size=5, stride=3):
        super().__init__()
        self.period = period
        w = [1] + [c // div for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList(
            [
                weight_norm(Conv2d(w[0], w[1], (kernel_size, 1), (stride, 1), padding=(get_padding(5, 1), 0))),
                weight_norm(Conv2d(w[1], w[2], (kernel_size, 1), (stride, 1), padding=(get_padding(5, 1), 0))),
                weight_norm(Conv2d(w[2], w[3], (kernel_size, 1), (stride, 1), padding=(get_padding(5, 1), 0))),
                weight_norm(Conv2d(w[3], w[4], (kernel_size, 1), (stride, 1), padding=(get_padding(5, 1), 0))),
                weight_norm(Conv2d(w[4], w[5], (kernel_size, 1), 1, padding=(2, 0))),
            ]
        )
        self.conv_post = weight_norm(Conv2d(w[5], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        fmap = []
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        for layer in self.convs:
            x = layer(x)
            x = F.leaky_relu(x, LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class LegacyMPD(nn.Module):
    def __init__(self, div=1):
        super().__init__()
        self.discriminators = nn.ModuleList(LegacyDiscriminatorP(p, div) for p in (2, 3, 5, 7, 11))

    def forward(self, y, y_hat):
        out = ([], [], [], [])
        for d in self.discriminators:
            y_d_r, fmap_r = d(y)
            y_d_g, fmap_g = d(y_hat)
            for lst, v in zip(out, (y_d_r, y_d_g, fmap_r, fmap_g), strict=True):
                lst.append(v)
        return out


class LegacyDiscriminatorS(nn.Module):
    def __init__(self, use_spectral_norm=False, div=1):
        super().__init__()
        norm_f = spectral_norm if use_spectral_norm else weight_norm

        def w(c):
            return c // div

        def g(groups, cin, cout):
            return math.gcd(groups, cin, cout)

        self.convs = nn.ModuleList(
            [
                norm_f(Conv1d(1, w(128), 15, 1, padding=7)),
                norm_f(Conv1d(w(128), w(128), 41, 2, groups=g(4, w(128), w(128)), padding=20)),
                norm_f(Conv1d(w(128), w(256), 41, 2, groups=g(16, w(128), w(256)), padding=20)),
                norm_f(Conv1d(w(256), w(512), 41, 4, groups=g(16, w(256), w(512)), padding=20)),
                norm_f(Conv1d(w(512), w(1024), 41, 4, groups=g(16, w(512), w(1024)), padding=20)),
                norm_f(Conv1d(w(1024), w(1024), 41, 1, groups=g(16, w(1024), w(1024)), padding=20)),
                norm_f(Conv1d(w(1024), w(1024), 5, 1, padding=2)),
            ]
        )
        self.conv_post = norm_f(Conv1d(w(1024), 1, 3, 1, padding=1))

    def forward(self, x):
        fmap = []
        for layer in self.convs:
            x = layer(x)
            x = F.leaky_relu(x, LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class LegacyMSD(nn.Module):
    def __init__(self, div=1):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [LegacyDiscriminatorS(True, div), LegacyDiscriminatorS(False, div), LegacyDiscriminatorS(False, div)]
        )
        self.meanpools = nn.ModuleList([AvgPool1d(4, 2, padding=2), AvgPool1d(4, 2, padding=2)])

    def forward(self, y, y_hat):
        out = ([], [], [], [])
        for i, d in enumerate(self.discriminators):
            if i != 0:
                y = self.meanpools[i - 1](y)
                y_hat = self.meanpools[i - 1](y_hat)
            y_d_r, fmap_r = d(y)
            y_d_g, fmap_g = d(y_hat)
            for lst, v in zip(out, (y_d_r, y_d_g, fmap_r, fmap_g), strict=True):
                lst.append(v)
        return out

# --- the original's files -------------------------------------------------------------------------------

# The published generator layouts (config_v1.json, config_v3.json), without their audio settings (AUDIO).
V1_LAYOUT = {
    "resblock": "1",
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}
V3_LAYOUT = {
    "resblock": "2",
    "upsample_rates": [8, 8, 4],
    "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 256,
    "resblock_kernel_sizes": [3, 5, 7],
    "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]],
}

AUDIO = {
    "segment_size": 8192,
    "num_mels": 80,
    "num_freq": 1025,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "sampling_rate": 22050,
    "fmin": 0,
    "fmax": 8000,
    "fmax_for_loss": None,
}


def h_of(model: dict) -> SimpleNamespace:
    return SimpleNamespace(**model, **AUDIO, learning_rate=0.0002, adam_b1=0.8, adam_b2=0.99)


def write_config(folder: Path, model: dict) -> None:
    (folder / "config.json").write_text(json.dumps({**model, **AUDIO}, indent=4))


def randomize(module: nn.Module) -> None:
    """Random weights everywhere (the legacy init would leave g = ‖v‖ and identical-looking layers)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.rand_like(p) * 0.2 + 0.02 if name.endswith("weight_g") else torch.randn_like(p) * 0.05)




# --- the original's inference scripts ---------------------------------------------------------------------

MAX_WAV_VALUE = 32768.0


def original_mel_spectrogram(y, n_fft, num_mels, sampling_rate, hop_size, win_size, fmin, fmax):
    """meldataset.mel_spectrogram (center=False), with the old real-valued STFT spelled via view_as_real."""
    import librosa

    mel_basis = torch.from_numpy(
        librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
    ).float()
    window = torch.hann_window(win_size)
    pad = int((n_fft - hop_size) / 2)
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(y, n_fft, hop_length=hop_size, win_length=win_size, window=window, center=False,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spec = torch.view_as_real(spec)
    spec = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
    spec = torch.matmul(mel_basis, spec)
    return torch.log(torch.clamp(spec, min=1e-5) * 1)


def _original_generator(checkpoint_file: Path) -> tuple[LegacyGenerator, SimpleNamespace]:
    """As both scripts do: config.json from the checkpoint's folder, strict load, eval, remove_weight_norm."""
    h = SimpleNamespace(**json.loads((Path(checkpoint_file).parent / "config.json").read_text()))
    generator = LegacyGenerator(h)
    generator.load_state_dict(torch.load(checkpoint_file, map_location="cpu")["generator"])
    generator.eval()
    generator.remove_weight_norm()
    return generator, h


def original_inference_e2e(checkpoint_file: Path, mel_file: Path):
    """inference_e2e.py for one file: the int16 samples it writes (`(audio × 32768).astype(int16)` truncates)."""
    import numpy as np

    generator, _ = _original_generator(checkpoint_file)
    with torch.no_grad():
        x = torch.FloatTensor(np.load(mel_file))
        audio = generator(x).squeeze() * MAX_WAV_VALUE
        return audio.cpu().numpy().astype("int16")


def original_inference(checkpoint_file: Path, wav_file: Path):
    """inference.py for one file: scipy's int16 read / 32768 → mel_spectrogram → generator → int16 samples."""
    from scipy.io.wavfile import read

    generator, h = _original_generator(checkpoint_file)
    sampling_rate, data = read(wav_file)
    assert sampling_rate == h.sampling_rate, "the original refuses other rates"
    with torch.no_grad():
        wav = torch.FloatTensor(data / MAX_WAV_VALUE)
        x = original_mel_spectrogram(wav.unsqueeze(0), h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size,
                                     h.fmin, h.fmax)
        audio = generator(x).squeeze() * MAX_WAV_VALUE
        return audio.cpu().numpy().astype("int16")
