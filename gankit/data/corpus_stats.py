"""Corpus mel statistics: per-band mean and scale of one mel front-end's log-mel over a corpus' training files.

`gankit prepare --mel-stats PRESET` computes them (any preset) over the training files only (never validation)
and writes `OUT/mel_stats.json`. Two readers: `with_corpus_statistics` puts them into a run's `frontend` config
when its preset normalises each band (`parallel_wavegan`), so the run's config.yaml, its checkpoints and every
generator file carry them and inference normalises identically; `read_band_statistics` gives them to a task that
normalises a preset's log-mel itself (StarGAN-VC over `hifigan`), after checking they describe its front-end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.atomic import write_text
from gankit.audio.io import read_audio
from gankit.audio.mel import StftMelFrontend, build_frontend, compute_mel_statistics
from gankit.data.filelist import read_filelist
from gankit.errors import ConfigError, DataError

STATS_FILE = "mel_stats.json"
FORMAT_VERSION = 1
STATISTICS_KEYS = ("mean", "scale")


def uses_statistics(frontend: StftMelFrontend) -> bool:
    """Whether the preset normalises with per-band corpus statistics (it has `with_statistics`)."""
    return callable(getattr(frontend, "with_statistics", None))


def _presets_with_statistics() -> list[str]:
    from gankit.audio.mel import PRESETS

    return sorted(name for name, cls in PRESETS.items() if callable(getattr(cls, "with_statistics", None)))


def statistics_frontend(cfg: Mapping[str, Any]) -> StftMelFrontend:
    """The front-end of `cfg` (any preset) without statistics: the one whose log-mel the statistics describe."""
    return build_frontend({k: v for k, v in cfg.items() if k not in STATISTICS_KEYS})


def refuse_unused_statistics(frontend: StftMelFrontend, what: str) -> None:
    """ConfigError when `what` (a training config) has a front-end that would not use corpus statistics."""
    if not uses_statistics(frontend):
        raise ConfigError(
            f"{what}: its mel preset {frontend.preset} does not normalise with corpus statistics, so training with "
            f"it would not use them; for a config, --mel-stats takes one whose preset does "
            f"({', '.join(_presets_with_statistics())}); pass the preset's name (--mel-stats {frontend.preset}) "
            "for statistics a task normalises with itself (StarGAN-VC)"
        )


def _parameters(frontend: StftMelFrontend) -> dict[str, Any]:
    """The front-end's config without preset and statistics: what the statistics depend on."""
    return {k: v for k, v in frontend.to_config().items() if k not in ("preset", *STATISTICS_KEYS)}


@dataclass(frozen=True)
class MelStatistics:
    """Per-band mean and scale of one front-end's log-mel over a corpus' training files."""

    preset: str
    frontend: dict[str, Any]  # the parameters they were computed with (no preset, no statistics)
    mean: list[float]
    scale: list[float]
    frames: int
    files: int

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "preset": self.preset, "frontend": self.frontend,
                "mean": self.mean, "scale": self.scale, "frames": self.frames, "files": self.files}

    def plain_frontend(self, origin: Path) -> StftMelFrontend:
        """The front-end these statistics were computed with (not normalising)."""
        try:
            return statistics_frontend({"preset": self.preset, **self.frontend})
        except ConfigError as exc:
            raise DataError(f"{origin}: {exc}; recompute it with `gankit prepare … --mel-stats`") from None

    def built_frontend(self, origin: Path) -> StftMelFrontend:
        """The front-end these statistics describe, normalising with them (a preset that normalises only)."""
        plain = self.plain_frontend(origin)
        if not uses_statistics(plain):
            raise DataError(f"{origin}: statistics of mel preset {plain.preset}, which does not normalise with them")
        try:
            return plain.with_statistics(self.mean, self.scale)  # type: ignore[attr-defined]
        except ConfigError as exc:
            raise DataError(f"{origin}: {exc}; recompute it with `gankit prepare … --mel-stats`") from None


def _differences(stats: MelStatistics, origin: Path, frontend: StftMelFrontend, here: str = "here") -> list[str]:
    """`key: value there, value <here>` for each front-end parameter (preset included) that differs."""
    theirs = stats.plain_frontend(origin)
    their_p = {"preset": theirs.preset, **_parameters(theirs)}
    mine_p = {"preset": frontend.preset, **_parameters(frontend)}
    return [f"{k}: {their_p.get(k, '<absent>')!r} there, {mine_p.get(k, '<absent>')!r} {here}"
            for k in sorted(set(mine_p) | set(their_p)) if mine_p.get(k) != their_p.get(k)]


def read_band_statistics(
    path: str | Path, frontend: StftMelFrontend | Mapping[str, Any]
) -> tuple[list[float], list[float]]:
    """(mean, scale) per band of `frontend`'s log-mel from a `mel_stats.json`, for a task that normalises with them.

    DataError when the file is missing or malformed, was computed with another front-end (preset, sample rate,
    n_fft, hop, window, bands, fmin/fmax — each difference named), or holds a band count or values it cannot use.
    """
    path = Path(path)
    mine = frontend if isinstance(frontend, StftMelFrontend) else statistics_frontend(frontend)
    stats = read_statistics(path)
    diffs = _differences(stats, path, mine)
    if diffs:
        raise DataError(f"{path} holds statistics of another mel front-end ({'; '.join(diffs)}); recompute them "
                        f"with `gankit prepare … --mel-stats {mine.preset}` (at {mine.sample_rate} Hz)")
    mean, scale = np.asarray(stats.mean, dtype=np.float64), np.asarray(stats.scale, dtype=np.float64)
    if mean.shape != (mine.n_mels,) or scale.shape != (mine.n_mels,):
        raise DataError(f"{path}: {len(stats.mean)} means and {len(stats.scale)} scales for {mine.n_mels} mel bands")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise DataError(f"{path}: a mean or scale is not finite, or a scale is not positive; recompute the file")
    return [float(v) for v in mean], [float(v) for v in scale]


def read_statistics(path: str | Path) -> MelStatistics:
    """Read a `mel_stats.json`; DataError naming the file when it is unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc}); recompute it with `gankit prepare … --mel-stats`"
                        ) from None
    fields = {"preset": str, "frontend": dict, "mean": list, "scale": list, "frames": int, "files": int}
    bad = [k for k, kind in fields.items() if not isinstance(data, dict) or not isinstance(data.get(k), kind)]
    if bad or data.get("version") != FORMAT_VERSION:
        what = f"missing or malformed {', '.join(bad)}" if bad else f"unknown version {data.get('version')!r}"
        raise DataError(f"{path}: not a gankit mel statistics file ({what}); recompute it with "
                        "`gankit prepare … --mel-stats`")
    return MelStatistics(**{k: data[k] for k in fields})


def write_statistics(path: str | Path, stats: MelStatistics) -> None:
    write_text(path, json.dumps(stats.to_json(), indent=1) + "\n")


def compute_corpus_statistics(
    frontend: StftMelFrontend, wav_paths: Sequence[Path], progress: bool = True
) -> MelStatistics:
    """Statistics of `frontend` over `wav_paths`, streamed one file at a time with a progress bar.

    Each file is peak-normalised ×0.95 first, as the training batches are, so the statistics describe
    the mels the generator is trained on.
    """
    from tqdm import tqdm

    from gankit.data.vocoder_data import peak_normalise

    counted = {"frames": 0, "files": 0}

    def waves() -> Iterator[torch.Tensor]:
        for path in tqdm(wav_paths, desc="mel statistics", unit="file", disable=not progress, dynamic_ncols=True):
            audio, _ = read_audio(path, target_sr=frontend.sample_rate)
            frames = frontend.num_frames(len(audio))
            if frames < 1:  # shorter than one frame: nothing to count (prepare's --min-seconds prevents it)
                continue
            counted["frames"] += frames
            counted["files"] += 1
            yield torch.from_numpy(np.ascontiguousarray(peak_normalise(audio)))

    try:
        mean, scale = compute_mel_statistics(frontend, waves())
    except ValueError:
        raise DataError(f"no file of the {len(wav_paths)} given is long enough for one mel frame") from None
    return MelStatistics(frontend.preset, _parameters(frontend), mean, scale, counted["frames"], counted["files"])


def write_corpus_statistics(
    data_dir: str | Path, frontend_cfg: Mapping[str, Any], progress: bool = True
) -> MelStatistics:
    """Compute the statistics of `frontend_cfg` over `data_dir/train.txt`'s wavs and write `data_dir/mel_stats.json`."""
    root = Path(data_dir)
    frontend = statistics_frontend(frontend_cfg)
    paths = [root / "wavs" / f"{entry.id}.wav" for entry in read_filelist(root / "train.txt")]
    stats = compute_corpus_statistics(frontend, paths, progress)
    write_statistics(root / STATS_FILE, stats)
    return stats


# ---- training: put the statistics into the run's config ----------------------------------------------------
def _missing(frontend_cfg: Mapping[str, Any]) -> bool:
    return all(frontend_cfg.get(k) is None for k in STATISTICS_KEYS)


def with_corpus_statistics(config: Mapping[str, Any], log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`config` with `frontend.mean`/`frontend.scale` read from `<data.dir>/mel_stats.json` when its preset
    normalises with statistics and the frontend section holds none; otherwise `config` unchanged (a copy).

    DataError when the file is missing or unreadable, ConfigError when it was computed with another front-end.
    """
    out = dict(config)
    frontend_cfg = config.get("frontend")
    if not isinstance(frontend_cfg, Mapping) or not _missing(frontend_cfg):
        return out
    frontend = build_frontend(frontend_cfg)
    if not uses_statistics(frontend):
        return out
    data_dir = (config.get("data") or {}).get("dir")
    how = (f"run `gankit prepare SRC {data_dir or 'OUT'} --format … --mel-stats {frontend.preset}` "
           "(or set frontend.mean and frontend.scale)")
    if not data_dir:
        raise ConfigError(f"mel preset {frontend.preset} normalises with corpus statistics, which a prepared "
                          f"data.dir holds in {STATS_FILE}, but data.dir is not set; {how}")
    path = Path(data_dir) / STATS_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: mel preset {frontend.preset} normalises with corpus statistics; {how}")
    stats = read_statistics(path)
    diffs = "; ".join(_differences(stats, path, frontend, here="in the config"))
    if diffs:
        raise ConfigError(
            f"{path} holds statistics of another mel front-end than this config's frontend ({diffs}); recompute "
            f"them for it with `gankit prepare SRC {data_dir} --format … --mel-stats CONFIG` (a config whose "
            "frontend section is this one), or make the config's frontend match"
        )
    theirs = stats.built_frontend(path)
    if log is not None:
        log(f"mel normalisation: statistics of {stats.files} training files ({stats.frames} frames) from {path}")
    out["frontend"] = {**frontend_cfg, "mean": list(theirs.mean), "scale": list(theirs.scale)}  # type: ignore[attr-defined]
    return out
