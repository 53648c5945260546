"""`gankit export --checkpoint CKPT --to-original OUT_DIR`: the generator as the original HiFi-GAN's
`g_XXXXXXXX` + `config.json`, which the original inference.py / inference_e2e.py load.

`gankit export --checkpoint CKPT --to-onnx FILE [--int8 --calibration MEL_DIR]`: the vocoder as one ONNX file with its
front-end in the metadata, which `gankit vocode --backend onnxruntime` runs without torch (`gankit.infer.onnx_export`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a generator in the original HiFi-GAN format (g_XXXXXXXX + config.json) or as ONNX",
        description="Export a HiFi-GAN generator trained on the hifigan mel preset to OUT_DIR/g_<step> (legacy "
        "weight-norm names) and OUT_DIR/config.json, so the original repository's scripts can load it "
        "(--to-original); or any vocoder (HiFi-GAN, MelGAN) as one ONNX file carrying its mel front-end, for "
        "gankit vocode --backend onnxruntime (--to-onnx; needs the onnx extra: pip install 'gankit[onnx]').",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="gankit generator or training-state file, or a run directory (its latest generator)")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint")
    p.add_argument("--config", default=None, metavar="JSON", help="config.json for an original g_ file")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-original", type=Path, metavar="OUT_DIR",
                        help="folder for g_XXXXXXXX and config.json (created if needed); an existing g_XXXXXXXX there "
                        "is refused unless --overwrite, and an existing config.json is kept (refused if it describes "
                        "another model)")
    target.add_argument("--to-onnx", type=Path, metavar="FILE",
                        help="one .onnx file (opset 18, batch and frames dynamic, weight norm folded; the mel "
                        "front-end and family in its metadata), for gankit vocode --backend onnxruntime; an existing "
                        "FILE is refused unless --overwrite")
    p.add_argument("--int8", action="store_true",
                   help="with --to-onnx: quantise to int8 (onnxruntime static quantisation, QDQ) calibrated on "
                   "--calibration mels; the SNR against fp32 PyTorch on them is printed (quality bar: 30 dB)")
    p.add_argument("--calibration", type=Path, default=None, metavar="MEL_DIR",
                   help="with --int8: a folder of .npy mels ([n_mels, frames], the model's own front-end), e.g. "
                   "corpus mels; windows of 128 frames from up to 64 files set the activation ranges")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT_DIR/g_XXXXXXXX or --to-onnx FILE (never the checkpoint being "
                   "exported)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import ConfigError

    if args.to_onnx is not None:
        return run_onnx(args)
    if args.int8 or args.calibration is not None:
        raise ConfigError("--int8 and --calibration go with --to-onnx (the original format has no int8 form)")
    from gankit.audio.mel import build_frontend
    from gankit.compat.hifigan_original import write_original_generator
    from gankit.errors import CheckpointError, ConfigError, OutputPathError, check_output_dir
    from gankit.infer.loading import build_generator_from, read_checkpoint

    check_output_dir(args.to_original, "--to-original")  # before the checkpoint is read: a wrong path costs nothing
    loaded = read_checkpoint(args.checkpoint, config=args.config, best=args.best)
    if loaded.family != "hifigan":
        raise CheckpointError(
            f"{loaded.path}: a {loaded.family} generator has no original HiFi-GAN format; only HiFi-GAN generators "
            "export with --to-original"
        )
    preset = build_frontend(loaded.frontend_config).preset
    if preset != "hifigan":
        raise CheckpointError(
            f"{loaded.path}: trained on mel preset {preset!r}, but the original HiFi-GAN scripts compute the "
            "'hifigan' mel and would feed it other inputs; use the gankit checkpoint with gankit vocode instead"
        )
    step = loaded.step if isinstance(loaded.step, int) and loaded.step >= 0 else 0
    for name in (f"g_{step:08d}", "config.json"):
        if (args.to_original / name).is_dir():
            raise OutputPathError(f"{args.to_original / name}: a folder is in the way of the file export writes "
                                  "there; move it or choose another --to-original")
    # The step, and so the file name, is known only now: an existing g_ is refused before anything is built or
    # written. (config.json is not replaced: write_original_generator keeps one that agrees and refuses another.)
    target = args.to_original / f"g_{step:08d}"
    replacing = os.path.lexists(target)
    if replacing:
        if _same_file(target, loaded.path):
            raise OutputPathError(f"{target}: is the checkpoint being exported; choose another --to-original (an "
                                  "input is never replaced, even with --overwrite)")
        if not args.overwrite:
            raise OutputPathError(f"{target}: already exists; pass --overwrite to replace it or choose another "
                                  "--to-original")
    # Weight norm kept as trained: the g/v pairs are written exactly, not re-derived from folded weights.
    generator = build_generator_from(loaded, "cpu")
    args.to_original.mkdir(parents=True, exist_ok=True)
    try:
        path = write_original_generator(args.to_original, generator, loaded.generator_config,
                                        loaded.frontend_config, step, loaded.fmax_for_loss)
    except ConfigError as exc:
        raise CheckpointError(f"{loaded.path}: cannot be exported: {exc}") from None
    print(f"exported {loaded.describe()} → {path} and {path.parent / 'config.json'}"
          + ("; replaced 1 existing file" if replacing else "")
          + f"; the original scripts load it with --checkpoint_file {path}")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # a dangling link, or a file gone: not the checkpoint
        return False


def run_onnx(args: argparse.Namespace) -> int:
    """`--to-onnx FILE`: every refusal (paths, options, missing packages) before the checkpoint is read."""
    import time

    from gankit.errors import ConfigError, DataError, OutputPathError, check_output_file
    from gankit.infer.onnx_export import require_exporter

    target: Path = args.to_onnx
    check_output_file(target, "--to-onnx")
    if args.calibration is not None and not args.int8:
        raise ConfigError("--calibration is for --int8 (the fp32 export needs no calibration mels); add --int8 or "
                          "drop --calibration")
    if args.int8 and args.calibration is None:
        raise ConfigError("--int8 needs --calibration MEL_DIR: a folder of .npy mels (the model's front-end) that "
                          "sets the activation ranges")
    replacing = os.path.lexists(target)
    if replacing:
        if _same_file(target, Path(args.checkpoint)):  # a run directory's file is caught once it is resolved
            raise OutputPathError(f"{target}: is the checkpoint being exported; choose another --to-onnx (an input "
                                  "is never replaced, even with --overwrite)")
        if not args.overwrite:
            raise OutputPathError(f"{target}: already exists; pass --overwrite to replace it or choose another "
                                  "--to-onnx")
    calibration_files: list[Path] = []
    if args.int8:
        from gankit.infer.files import collect_inputs

        calibration_files = collect_inputs([args.calibration], (".npy",), DataError)
    require_exporter()

    from gankit.audio.mel import build_frontend
    from gankit.infer import onnx_export as ox
    from gankit.infer.loading import build_generator_from, read_checkpoint
    from gankit.infer.mel_input import read_mel
    from gankit.infer.vocoder import Vocoder

    loaded = read_checkpoint(args.checkpoint, config=args.config, best=args.best)
    if _same_file(target, loaded.path):
        raise OutputPathError(f"{target}: is the checkpoint being exported; choose another --to-onnx (an input is "
                              "never replaced, even with --overwrite)")
    vocoder = Vocoder(build_generator_from(loaded, "cpu"), build_frontend(loaded.frontend_config), loaded.family,
                      source=loaded.describe(), step=loaded.step)
    started = time.perf_counter()
    model = ox.onnx_model(vocoder)
    exported = ox.session_of(model)
    worst = ox.max_difference(vocoder, exported, ox.example_mels(vocoder))
    print(f"exported {loaded.describe()} to ONNX in {time.perf_counter() - started:.1f} s; onnxruntime against "
          f"PyTorch on two random mels: max |difference| {worst:.1e}")
    precision = "fp32"
    if args.int8:
        mels = []
        for path in calibration_files[: ox.CALIBRATION_MAX_FILES]:
            mel, warning = read_mel(path, vocoder.frontend, vocoder.min_frames)
            if warning:
                print(f"warning: {path}: {warning}")
            mels.append(mel)
        windows = ox.calibration_windows(mels)
        started = time.perf_counter()
        model = ox.quantize_int8(model, windows)
        quality = ox.measure_quality(vocoder, ox.session_of(model), ox.check_windows(mels))
        meta = json.loads(next(p.value for p in model.metadata_props if p.key == ox.METADATA_KEY))
        meta["int8_check"] = quality.to_dict()
        ox.set_metadata(model, meta)
        precision = "int8"
        print(f"quantised to int8 in {time.perf_counter() - started:.1f} s on {len(windows)} windows of "
              f"{len(mels)} calibration mel{'s' if len(mels) != 1 else ''}; int8 against fp32 PyTorch: "
              f"{quality.describe()}")
    size = ox.write_onnx(target, model)
    print(f"wrote {target} ({precision}, {size / 1e6:.1f} MB, opset {ox.ONNX_OPSET})"
          + ("; replaced 1 existing file" if replacing else "")
          + f"; vocode with: gankit vocode --backend onnxruntime --checkpoint {target} MELS --out-dir DIR")
    return 0
