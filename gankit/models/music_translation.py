"""The Universal Music Translation networks (Mor et al. 2018; facebookresearch/music-translation `src/wavenet.py`,
`src/wavenet_models.py`, with the sizes of its `train.sh`), and cached sample-by-sample WaveNet generation.

- `Encoder`: µ-law classes [B, T] → latent [B, 64, T/800]. A kernel-3 convolution from 1 to 128 channels, then
  3 blocks × 10 non-causal residual layers (dilations 1, 2, …, 512 in each block; a layer adds
  conv1x1(relu(dilated_conv(x))) to its input), a 1×1 convolution to the latent width and an average pool over
  800 samples. No activation after the first or before the last convolution, as the original.
- `DomainClassifier` (the original's `ZDiscriminator`, the domain-confusion network): input dropout (p = 0 by
  default: `train.py`'s `--p-dropout-discriminator`), three 1×1 convolutions of 100 channels each followed by ELU,
  a 1×1 convolution to n_domains logits, averaged over time → [B, n_domains].
- `WaveNetDecoder` (the original's `WaveNet`): 4 blocks × 14 gated layers (kernel 2, dilations 1 … 8192 in each
  block). A layer computes tanh(b) · sigmoid(a) for [a | b] = causal_conv(x) + condition(latent), and 1×1
  `residual` (added to x) and `skip` (summed over layers) convolutions of it. The output head is
  relu(skip) → fc → + condition(latent) → relu → logits (256 µ-law classes). The skip sum starts from a 1×1
  convolution of the first causal convolution's output.

Inputs, as in the original: both networks read µ-law *classes* as one scalar channel c/255 − 0.5 (not one-hot, not
an embedding, not the decoded wave); the decoder shifts that channel one sample right (a zero in front), so the
logits at t predict class t from classes < t. Latent frame f conditions samples f·800 … f·800 + 799.

Deviations from the original (the first two change no output; the third changes the first generated sample's input):

- The decoder applies its 1×1 conditioning convolutions at frame rate and repeats the result (the original repeats
  the latent first); the values are the same. It requires latent length = ⌈T / 800⌉ (the original: T a multiple),
  and the encoder requires T a multiple of 800 (the original's pool drops a remainder).
- The encoder pads (kernel − 1)/2 · dilation on each side, the original's padding for its kernel 3, for any odd kernel.
- Generation feeds the causal shift's zero as the first "previous sample", exactly what teacher forcing sees; the
  original's generator feeds class 128 (0.002) there. Its past-activation queues start at zero, as the original's.

Parameter names are the original's (`start`, `dilated_convs.N.dilated_conv`, `layers.N.causal`, `convs.N`, …), so
its `encoder_state` / `decoder_state` / `discriminator_state` load with `load_state_dict`. As in the original, the
last decoder layer's `residual` convolution has an output nobody reads: it exists (and is counted) but gets no
gradient, so it is built with requires_grad False. Initialisation is PyTorch's default, as the original's.

Generation: `WaveNetDecoder.generate` runs an `IncrementalDecoder`, which keeps, per dilated layer, a ring buffer of
the last (kernel − 1) · dilation inputs of that layer, so one new sample costs two small matrix products per layer
(all taps at once, then the residual) instead of a pass over the 65,534-sample receptive field. `generate_naive`
runs a full forward over the last receptive field for every sample (a reference for tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.models.layers import check_dropout, check_positive_int, config_from_dict, is_int, model_error

Sampler = Callable[[Tensor], Tensor]
"""logits [B, n_classes] → one class per row, int64 [B]."""


@dataclass
class MusicTranslationConfig:
    """Sizes of the three networks; the defaults are the published model's (`train.sh`: latent 64, 4 blocks of
    14 decoder layers, six MusicNet domains; `train.py`'s defaults for the rest)."""

    n_domains: int = 6
    # encoder
    encoder_blocks: int = 3
    encoder_layers: int = 10  # per block; dilations 1 … 2^(layers − 1)
    encoder_channels: int = 128
    encoder_kernel: int = 3
    latent_channels: int = 64
    encoder_pool: int = 800  # samples per latent frame (average pool; the decoder repeats each frame as often)
    # domain classifier
    classifier_layers: int = 3
    classifier_channels: int = 100
    classifier_input_dropout: float = 0.0
    # decoder
    decoder_blocks: int = 4
    decoder_layers: int = 14  # per block; dilations 1 … 2^(layers − 1)
    decoder_kernel: int = 2
    residual_channels: int = 128
    skip_channels: int = 128
    n_classes: int = 256  # µ-law quantisation levels

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MusicTranslationConfig:
        """Build and validate; unknown keys and impossible values raise `ConfigError` naming them."""
        return config_from_dict(cls, d, section="model")

    def validate(self) -> None:
        for name in ("encoder_blocks", "encoder_layers", "encoder_channels", "latent_channels", "encoder_pool",
                     "classifier_layers", "classifier_channels", "decoder_blocks", "decoder_layers",
                     "residual_channels", "skip_channels"):
            check_positive_int(name, getattr(self, name))
        for name in ("n_domains", "n_classes"):
            check_positive_int(name, getattr(self, name))
            if getattr(self, name) < 2:
                model_error(f"{name} must be at least 2, got {getattr(self, name)!r}")
        k = self.encoder_kernel
        if not is_int(k) or k < 1 or k % 2 == 0:
            model_error(f"encoder_kernel must be a positive odd integer (its layers keep the length), got {k!r}")
        k = self.decoder_kernel
        if not is_int(k) or k < 2:
            model_error(f"decoder_kernel must be an integer ≥ 2 (a causal convolution needs a past tap), got {k!r}")
        self.classifier_input_dropout = check_dropout("classifier_input_dropout", self.classifier_input_dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)





def _check_classes(who: str, classes: Tensor, n_classes: int) -> None:
    """[B, T] integer classes in 0 … n_classes − 1 (one device sync)."""
    if classes.dim() != 2 or classes.dtype.is_floating_point or classes.dtype.is_complex or classes.dtype == torch.bool:
        raise ValueError(f"{who}: expected integer µ-law classes [B, T], got {classes.dtype} {list(classes.shape)}")
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= n_classes):
        raise ValueError(f"{who}: classes must lie in 0 … {n_classes - 1}, got {int(classes.min())} … "
                         f"{int(classes.max())}")


def classes_to_input(classes: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """The scalar both networks read: class / (n_classes − 1) − 0.5, in [-0.5, 0.5] (the original's x/255 − .5)."""
    return classes.to(dtype) / (n_classes - 1) - 0.5


class DilatedResConv(nn.Module):
    """x + conv1x1(relu(dilated_conv(x))), non-causal ('same' padding); the encoder's layer."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2 * dilation,
                                      dilation=dilation)
        self.conv_1x1 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_1x1(F.relu(self.dilated_conv(x)))


class Encoder(nn.Module):
    """µ-law classes [B, T] (T a multiple of `encoder_pool`) → latent [B, latent_channels, T / encoder_pool]."""

    def __init__(self, cfg: MusicTranslationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, k = cfg.encoder_channels, cfg.encoder_kernel
        self.dilated_convs = nn.Sequential(*(DilatedResConv(ch, k, 2 ** i)
                                             for _ in range(cfg.encoder_blocks) for i in range(cfg.encoder_layers)))
        self.start = nn.Conv1d(1, ch, k, padding=(k - 1) // 2)  # registered second: the original's key order
        self.conv_1x1 = nn.Conv1d(ch, cfg.latent_channels, 1)
        self.pool = nn.AvgPool1d(cfg.encoder_pool)

    def forward(self, classes: Tensor) -> Tensor:
        _check_classes("Encoder", classes, self.cfg.n_classes)
        pool = self.cfg.encoder_pool
        if classes.shape[1] == 0 or classes.shape[1] % pool:
            raise ValueError(f"Encoder: T must be a positive multiple of encoder_pool = {pool}, got "
                             f"T = {classes.shape[1]}; crop or pad outside")
        x = classes_to_input(classes, self.cfg.n_classes, self.start.weight.dtype)[:, None]
        return self.pool(self.conv_1x1(self.dilated_convs(self.start(x))))


class DomainClassifier(nn.Module):
    """latent [B, latent_channels, L] → domain logits [B, n_domains], the per-frame logits averaged over frames."""

    def __init__(self, cfg: MusicTranslationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        for i in range(cfg.classifier_layers):
            layers += [nn.Conv1d(cfg.latent_channels if i == 0 else cfg.classifier_channels,
                                 cfg.classifier_channels, 1), nn.ELU()]
        layers.append(nn.Conv1d(cfg.classifier_channels, cfg.n_domains, 1))
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.classifier_input_dropout)

    def forward(self, latent: Tensor) -> Tensor:
        if latent.dim() != 3 or latent.shape[1] != self.cfg.latent_channels or latent.shape[2] == 0:
            raise ValueError(f"DomainClassifier: latent must be [B, {self.cfg.latent_channels}, L ≥ 1], got "
                             f"{list(latent.shape)}")
        return self.convs(self.dropout(latent)).mean(dim=2)


class CausalConv1d(nn.Conv1d):
    """A Conv1d whose output at t sees inputs t − (kernel − 1)·dilation … t: zeros padded on the left only."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel, dilation=dilation)
        self.left_padding = (kernel - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))


class WavenetLayer(nn.Module):
    """One gated layer: (residual, skip) contributions for input x [B, R, T] and frame-rate conditioning."""

    def __init__(self, residual: int, skip: int, cond: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.causal = CausalConv1d(residual, 2 * residual, kernel, dilation)
        self.condition = nn.Conv1d(cond, 2 * residual, 1)
        self.residual = nn.Conv1d(residual, residual, 1)
        self.skip = nn.Conv1d(residual, skip, 1)

    def forward(self, x: Tensor, latent: Tensor, pool: int) -> tuple[Tensor, Tensor]:
        z = self.causal(x) + _upsample(self.condition(latent), pool, x.shape[-1])
        gate, filtered = z.chunk(2, dim=1)  # the original's order: sigmoid on the first half
        h = torch.sigmoid(gate) * torch.tanh(filtered)
        return self.residual(h), self.skip(h)


def _upsample(frames: Tensor, pool: int, length: int) -> Tensor:
    """[B, C, L] frame values → [B, C, length], each frame repeated `pool` times (the last one cut at `length`)."""
    return frames.repeat_interleave(pool, dim=2)[:, :, :length]


class WaveNetDecoder(nn.Module):
    """Teacher-forced: µ-law classes [B, T] and latent [B, latent_channels, ⌈T / pool⌉] → logits [B, n_classes, T],
    where logits[:, :, t] depend on classes[:, t − receptive_field … t − 1] only."""

    def __init__(self, cfg: MusicTranslationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        res, skip, cond, k = cfg.residual_channels, cfg.skip_channels, cfg.latent_channels, cfg.decoder_kernel
        self.layers = nn.ModuleList(WavenetLayer(res, skip, cond, k, 2 ** i)
                                    for _ in range(cfg.decoder_blocks) for i in range(cfg.decoder_layers))
        self.first_conv = CausalConv1d(1, res, k)
        self.skip_conv = nn.Conv1d(res, skip, 1)
        self.condition = nn.Conv1d(cond, skip, 1)
        self.fc = nn.Conv1d(skip, skip, 1)
        self.logits = nn.Conv1d(skip, cfg.n_classes, 1)
        # The last layer's residual output is never read (as the original's): frozen, so optimizers, DDP and the
        # unused-parameter probe all know it takes no gradient (its weights still load from the original's files).
        self.layers[-1].residual.requires_grad_(False)

    @property
    def receptive_field(self) -> int:
        """How many past samples one output sees: (kernel − 1)·(1 + Σ dilations) + 1 (the first convolution, every
        layer, and the one-sample shift). 65,534 at the published sizes."""
        cfg = self.cfg
        dilations = cfg.decoder_blocks * (2 ** cfg.decoder_layers - 1)
        return (cfg.decoder_kernel - 1) * (1 + dilations) + 1

    def _check_latent(self, who: str, latent: Tensor, batch: int, length: int) -> None:
        cfg = self.cfg
        frames = math.ceil(length / cfg.encoder_pool)
        if latent.dim() != 3 or latent.shape[0] != batch or latent.shape[1] != cfg.latent_channels \
                or latent.shape[2] != frames:
            raise ValueError(f"{who}: latent must be [{batch}, {cfg.latent_channels}, {frames}] for {length} samples "
                             f"(one frame per {cfg.encoder_pool}), got {list(latent.shape)}")

    def forward(self, classes: Tensor, latent: Tensor) -> Tensor:
        cfg = self.cfg
        _check_classes("WaveNetDecoder", classes, cfg.n_classes)
        batch, length = classes.shape
        self._check_latent("WaveNetDecoder", latent, batch, length)
        x = classes_to_input(classes, cfg.n_classes, self.first_conv.weight.dtype)[:, None]
        x = F.pad(x, (1, 0))[:, :, :length]  # the previous sample at t; zero before the first
        residual = self.first_conv(x)
        skip = self.skip_conv(residual)
        for layer in self.layers:
            r, s = layer(residual, latent, cfg.encoder_pool)
            residual = residual + r
            skip = skip + s
        out = self.fc(F.relu(skip)) + _upsample(self.condition(latent), cfg.encoder_pool, length)
        return self.logits(F.relu(out))

    def _prepare_generation(self, who: str, latent: Tensor, n_samples: int | None,
                            prompt: Tensor | None) -> tuple[int, Tensor]:
        """Check arguments; (n_samples, prompt [B, P]) with the default n filling the latent."""
        batch = latent.shape[0]
        if prompt is None:
            prompt = torch.zeros(batch, 0, dtype=torch.long, device=latent.device)
        _check_classes(who, prompt, self.cfg.n_classes)
        if prompt.shape[0] != batch:
            raise ValueError(f"{who}: prompt has batch {prompt.shape[0]}, latent {batch}")
        if n_samples is None:
            n_samples = latent.shape[-1] * self.cfg.encoder_pool - prompt.shape[1]
        if not is_int(n_samples) or n_samples < 1:
            raise ValueError(f"{who}: n_samples must be a positive integer, got {n_samples!r}")
        self._check_latent(who, latent, batch, prompt.shape[1] + n_samples)
        return n_samples, prompt

    @torch.no_grad()
    def generate(self, latent: Tensor, n_samples: int | None = None, sampler: Sampler | None = None,
                 prompt: Tensor | None = None) -> Tensor:
        """Sample n_samples classes [B, n] autoregressively, each costing one step per layer (`IncrementalDecoder`).

        latent [B, latent_channels, ⌈(P + n) / pool⌉] conditions the prompt (known classes [B, P], fed through the
        same steps) and the new samples; n defaults to the rest of the latent. `sampler` picks each class from the
        logits (default: `SoftmaxSampler()` on torch's global generator)."""
        n_samples, prompt = self._prepare_generation("WaveNetDecoder.generate", latent, n_samples, prompt)
        sampler = SoftmaxSampler() if sampler is None else sampler
        stepper = IncrementalDecoder(self, latent)
        previous: Tensor | None = None
        for t in range(prompt.shape[1]):
            stepper.step(previous)
            previous = prompt[:, t]
        out = torch.empty(latent.shape[0], n_samples, dtype=torch.long, device=stepper.device)
        for t in range(n_samples):
            previous = sampler(stepper.step(previous))
            out[:, t] = previous
        return out

    @torch.no_grad()
    def generate_naive(self, latent: Tensor, n_samples: int | None = None, sampler: Sampler | None = None,
                       prompt: Tensor | None = None) -> Tensor:
        """`generate` by brute force: a full teacher-forced forward for every new sample, over the last
        receptive_field + 1 samples or more (up to a frame more, so that the window starts on a frame boundary);
        the reference the cached path is tested against. Same arguments and result."""
        n_samples, prompt = self._prepare_generation("WaveNetDecoder.generate_naive", latent, n_samples, prompt)
        sampler = SoftmaxSampler() if sampler is None else sampler
        n_prompt, pool, seen = prompt.shape[1], self.cfg.encoder_pool, self.receptive_field
        device = self.first_conv.weight.device
        latent = latent.to(device)
        sequence = torch.zeros(latent.shape[0], n_prompt + n_samples, dtype=torch.long, device=device)
        sequence[:, :n_prompt] = prompt
        for position in range(n_prompt, n_prompt + n_samples):
            # Logits at `position` see classes position − seen … position − 1. The window's first input only ever
            # appears as the zero the shift puts before it, so it starts at or before position − seen: everything
            # the logits see is then real. The class at `position` is a placeholder the shift keeps out of them.
            start = max(0, position - seen) // pool * pool
            window = sequence[:, start:position + 1]
            logits = self(window, latent[:, :, start // pool:position // pool + 1])[:, :, -1]
            sequence[:, position] = sampler(logits)
        return sequence[:, n_prompt:]


class IncrementalDecoder:
    """A `WaveNetDecoder` run one sample at a time with cached past activations (fast generation).

    Each causal convolution of dilation d and kernel k needs, besides its current input, its inputs from d, 2d, …,
    (k − 1)·d steps ago; a ring buffer of (k − 1)·d entries per layer holds them (zeros at first, as the forward's
    padding), so a step is a fixed number of small matrix products per layer. The 1×1 conditioning of every layer
    (and of the output head) is computed once per latent frame. Weights are copied at construction: build a new one
    after changing the decoder. `step` returns the same logits as the teacher-forced forward, up to rounding."""

    def __init__(self, decoder: WaveNetDecoder, latent: Tensor) -> None:
        cfg = decoder.cfg
        if latent.dim() != 3 or latent.shape[1] != cfg.latent_channels or latent.shape[2] == 0:
            raise ValueError(f"IncrementalDecoder: latent must be [B, {cfg.latent_channels}, L ≥ 1], got "
                             f"{list(latent.shape)}")
        self.cfg = cfg
        weight = decoder.first_conv.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.position = 0  # index of the sample whose logits the next `step` returns
        batch, res, k = latent.shape[0], cfg.residual_channels, cfg.decoder_kernel
        with torch.no_grad():
            self._latent = latent.detach().to(device=self.device, dtype=self.dtype)
            # Every weight transposed for `rows @ W`; a k-tap conv as one [k·in, out] matrix over the taps
            # concatenated oldest first (tap i of a conv weight [out, in, k] reads the input (k − 1 − i)·d back).
            self._first_w = _taps_matrix(decoder.first_conv.weight)  # [k, R]
            self._first_b = decoder.first_conv.bias.detach().clone()
            self._first_window = torch.zeros(batch, k, dtype=self.dtype, device=self.device)
            layers = list(decoder.layers)
            self._dilations = [layer.causal.dilation[0] for layer in layers]
            self._causal_w = [_taps_matrix(layer.causal.weight) for layer in layers]  # [k·R, 2R]
            self._residual_w = [layer.residual.weight.detach()[:, :, 0].t().contiguous() for layer in layers]
            self._residual_b = [layer.residual.bias.detach().clone() for layer in layers]
            # Per-layer conditioning for a frame, one batched product: [n_layers, C, 2R] and both biases.
            self._cond_w = torch.stack([layer.condition.weight.detach()[:, :, 0].t() for layer in layers])
            self._cond_b = torch.stack([(layer.condition.bias + layer.causal.bias).detach()[None]
                                        for layer in layers])
            # Skip sum = skip_conv(first output) + Σ skip(h_l): one product over all of them at the end.
            self._skip_w = torch.cat([decoder.skip_conv.weight.detach()[:, :, 0].t()]
                                     + [layer.skip.weight.detach()[:, :, 0].t() for layer in layers]).contiguous()
            self._skip_b = (decoder.skip_conv.bias + sum(layer.skip.bias for layer in layers)).detach()
            self._skip_inputs = torch.zeros(batch, (len(layers) + 1) * res, dtype=self.dtype, device=self.device)
            self._fc_w = decoder.fc.weight.detach()[:, :, 0].t().contiguous()
            self._head_cond_w = decoder.condition.weight.detach()[:, :, 0].t().contiguous()
            self._head_cond_b = (decoder.condition.bias + decoder.fc.bias).detach()
            self._logits_w = decoder.logits.weight.detach()[:, :, 0].t().contiguous()
            self._logits_b = decoder.logits.bias.detach().clone()
            self._buffers = [torch.zeros((k - 1) * d, batch, res, dtype=self.dtype, device=self.device)
                             for d in self._dilations]
        self._frame = -1
        self._layer_cond = torch.empty(0)
        self._head_cond = torch.empty(0)

    def _load_frame(self, frame: int) -> None:
        if frame >= self._latent.shape[2]:
            raise ValueError(f"IncrementalDecoder: sample {self.position} needs latent frame {frame}, but the latent "
                             f"has {self._latent.shape[2]} frames")
        z = self._latent[:, :, frame]  # [B, C]
        self._layer_cond = torch.baddbmm(self._cond_b, z.expand(len(self._buffers), -1, -1), self._cond_w)
        self._head_cond = torch.addmm(self._head_cond_b, z, self._head_cond_w)
        self._frame = frame

    @torch.no_grad()
    def step(self, previous: Tensor | None) -> Tensor:
        """Logits [B, n_classes] of the sample at `position`, given the class of the sample before it ([B] integer;
        None, and only None, for the first sample: the teacher-forced shift's zero); then advances `position`."""
        t = self.position
        if (previous is None) != (t == 0):
            raise ValueError("IncrementalDecoder.step: give the previous sample's classes for every step but the "
                             "first, and None for the first")
        frame = t // self.cfg.encoder_pool
        if frame != self._frame:
            self._load_frame(frame)
        res = self.cfg.residual_channels
        window = self._first_window
        window[:, :-1] = window[:, 1:].clone()
        if previous is None:
            window[:, -1] = 0.0
        else:
            if previous.shape != (window.shape[0],) or previous.dtype.is_floating_point:
                raise ValueError(f"IncrementalDecoder.step: previous must be integer classes [{window.shape[0]}], "
                                 f"got {previous.dtype} {list(previous.shape)}")
            window[:, -1] = classes_to_input(previous, self.cfg.n_classes, self.dtype)
        x = torch.addmm(self._first_b, window, self._first_w)
        skip_inputs = self._skip_inputs
        skip_inputs[:, :res] = x
        last = len(self._buffers) - 1
        for i, (buffer, dilation) in enumerate(zip(self._buffers, self._dilations, strict=True)):
            size = buffer.shape[0]
            taps = [buffer[(t - j * dilation) % size] for j in range(size // dilation, 0, -1)]
            z = torch.addmm(self._layer_cond[i], torch.cat([*taps, x], dim=1), self._causal_w[i])
            buffer[t % size] = x  # after reading: this slot held the oldest tap
            h = skip_inputs[:, (i + 1) * res:(i + 2) * res]
            torch.mul(torch.sigmoid(z[:, :res]), torch.tanh(z[:, res:]), out=h)
            if i != last:  # the last layer's residual output is never read, as in the forward
                x = torch.addmm(x, h, self._residual_w[i]).add_(self._residual_b[i])
        skip = torch.addmm(self._skip_b, skip_inputs, self._skip_w)
        out = torch.addmm(self._head_cond, skip.relu_(), self._fc_w)
        self.position = t + 1
        return torch.addmm(self._logits_b, out.relu_(), self._logits_w)


def _taps_matrix(weight: Tensor) -> Tensor:
    """Conv weight [out, in, k] → [k·in, out]: rows tap-major, for inputs concatenated oldest tap first."""
    out_channels, in_channels, k = weight.shape
    return weight.detach().permute(2, 1, 0).reshape(k * in_channels, out_channels).contiguous()


class SoftmaxSampler:
    """One class per row from softmax(logits / temperature), by inverse CDF on one uniform draw per row.

    The draws come from `generator` (torch's global one if None; it must live on the logits' device), one
    torch.rand per call, so two runs from the same generator state pick the same classes whenever their logits
    agree to within rounding, whichever code path computed them."""

    def __init__(self, generator: torch.Generator | None = None, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"SoftmaxSampler: temperature must be positive, got {temperature!r}")
        self.generator = generator
        self.temperature = float(temperature)

    def __call__(self, logits: Tensor) -> Tensor:
        probabilities = torch.softmax(logits / self.temperature, dim=-1)
        uniform = torch.rand(logits.shape[0], 1, generator=self.generator, dtype=logits.dtype, device=logits.device)
        classes = torch.searchsorted(probabilities.cumsum(dim=-1), uniform).squeeze(1)
        return classes.clamp_(max=logits.shape[-1] - 1)  # a cumulative sum rounded below 1 under a draw near 1


def argmax_sampler(logits: Tensor) -> Tensor:
    """The most likely class of each row (the original generator's 'max' method)."""
    return logits.argmax(dim=-1)
