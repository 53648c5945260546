"""`gankit sample --checkpoint CKPT --n 64 --out grid.png`: images from an image generator (DCGAN) — a grid, N
separate PNGs (`--out-dir`, for external FID tools), or a latent walk as an animated GIF (`--interpolate K`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.commands.vocode import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="draw images from an image generator (grid, separate PNGs, or a latent walk GIF)",
        description="Draw images from a trained image generator: `--n N --out grid.png` (one grid), `--n N "
        "--out-dir DIR` (DIR/sample_00000.png …), or `--interpolate K --out walk.gif` (a closed walk through "
        "random latent points, K frames between each). The same --seed gives the same images.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="an image generator's generator_N.pt or state_N.pt, or its run directory (latest)")
    p.add_argument("--best", action="store_true", help="with a run directory: its best checkpoint")
    p.add_argument("--n", type=positive_int, default=64, metavar="N", help="images to draw (default 64)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="latent noise seed (default 0)")
    p.add_argument("--interpolate", type=positive_int, default=None, metavar="K",
                   help="a latent walk: K frames between each of --points random latent vectors, as a GIF")
    p.add_argument("--points", type=positive_int, default=4, metavar="P", help="latent points of the walk")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, metavar="FILE", help="grid .png, or the walk's .gif")
    out.add_argument("--out-dir", type=Path, metavar="DIR", help="one PNG per image")
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="cpu, cuda, cuda:N or auto (default)")
    p.set_defaults(run=run)


def _check_outputs(paths: list[Path], overwrite: bool) -> int:
    """Refuse before any work: a folder where a file goes, or (without --overwrite) files that exist."""
    from gankit.errors import OutputPathError

    for path in paths:
        if path.is_dir():
            raise OutputPathError(f"{path}: is a folder; give a file name")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputPathError(f"{existing[0]}: already exists ({len(existing)} of the {len(paths)} outputs exist); "
                              "pass --overwrite to replace them or choose another output")
    return len(existing)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import OutputPathError

    if args.interpolate is not None and (args.out is None or args.out.suffix.lower() != ".gif"):
        raise OutputPathError("--interpolate writes an animated GIF: give --out walk.gif")
    if args.out is not None and args.interpolate is None and args.out.suffix.lower() != ".png":
        raise OutputPathError(f"{args.out}: a grid is written as PNG; give --out with a .png name")
    if args.out_dir is not None:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise OutputPathError(f"{args.out_dir}: is a file; --out-dir needs a folder")
        targets = [args.out_dir / f"sample_{i:05d}.png" for i in range(args.n)]
    else:
        targets = [args.out]
    replaced = _check_outputs(targets, args.overwrite)

    from gankit.infer.images import grid, load_image_generator

    model = load_image_generator(args.checkpoint, best=args.best, device=args.device)
    if args.interpolate is not None:
        frames = model.walk(args.interpolate, args.points, args.seed)
        _write_gif(args.out, [grid(f[None], pad=0) for f in frames])
        what = f"a latent walk of {len(frames)} frames → {args.out}"
    elif args.out_dir is not None:
        images = model.sample(args.n, args.seed)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for image, target in zip(images, targets, strict=True):
            _write_png(target, grid(image[None], pad=0))
        what = f"{args.n} images → {args.out_dir}/sample_*.png"
    else:
        _write_png(args.out, grid(model.sample(args.n, args.seed)))
        what = f"a grid of {args.n} images → {args.out}"
    step = f" (step {model.step})" if model.step is not None else ""
    note = f"; replaced {replaced} existing file(s)" if replaced else ""
    print(f"sampled {what} from {model.path}{step}, seed {args.seed}{note}")
    return 0


def _pil(image: object) -> object:
    import numpy as np
    from PIL import Image

    pixels = (image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())  # type: ignore[attr-defined]
    return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels))


def _write_png(path: Path, image: object) -> None:
    import io

    from gankit import atomic

    buffer = io.BytesIO()
    _pil(image).save(buffer, format="PNG")  # type: ignore[attr-defined]
    atomic.write_bytes(path, buffer.getvalue())


def _write_gif(path: Path, frames: list[object]) -> None:
    import io

    from gankit import atomic

    images = [_pil(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)  # type: ignore
    atomic.write_bytes(path, buffer.getvalue())
