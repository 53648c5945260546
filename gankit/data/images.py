"""Image corpora: `gankit prepare SRC OUT --format images` writes them, `ImageDataset` reads them.

Layout of OUT (the same for `--builtin digits`, gankit/data/digits.py):
- `images.npy`: uint8 [N, C, S, S] (C = 1 grey or 3 RGB), one row per usable image in sorted id order; a plain
  .npy file, so `np.load(path, mmap_mode="r")` maps it without reading it (a 64×64 RGB image is 12 KiB).
- `images.txt`: row i's id, one per line: the source path relative to SRC (with its extension), UTF-8.
- `train.txt`, `val.txt`: the split, ids in the `id|text` list format of the audio corpora (empty text). The
  validation set is the last `--val-size` ids in sorted order (default min(100, 10 % of the usable images)), so
  it is deterministic and, as rows are sorted by id, train rows come first: rows [0, train) and [train, N).
- `skipped.txt`: every file it could not use, in the audio formats' layout (`# reason\tid\tsource\tdetail`):
  unreadable (not an image), truncated/corrupt, empty, too small (short side below half of `--image-size`), …
- `.gankit_prepared.json`: what gankit prepare wrote (gankit/data/prepare.py's rules hold: OUT apart from SRC, only
  recorded files replaced or deleted).

Each file under SRC (any depth; hidden files and folders and OUT left out) with a PNG, JPEG, WebP, BMP or GIF
extension is decoded with Pillow: a GIF's first frame; the EXIF orientation applied (`ImageOps.exif_transpose`);
palette images through RGB(A); an alpha channel (RGBA, LA, a palette's transparency) composited on WHITE, as
the image shows on a page; CMYK and other colour spaces converted to RGB; 16-bit and 32-bit integer greyscale
(`I;16`, `I`) divided by 257 to 8 bits (Pillow's own conversion would clip everything above 255 to white);
then RGB, or grey (`L`: ITU-R 601 luma) for `--channels 1`. The centre square (side = the short side) is
resized to S×S with `Image.Resampling.LANCZOS`: Pillow widens the filter's support by the scale factor, so a
downscale is properly antialiased, and Lanczos keeps edges sharper than BOX (an area average, which blurs and
leaves more aliasing at non-integer ratios); its cost is small next to decoding. Pixels outside the square but
inside the image feed the filter at the square's edges (Pillow's `box`). Large JPEGs are decoded at 1/2, 1/4 or
1/8 scale by the decoder itself (`draft`) while both sides stay ≥ 2·S, so Lanczos still does the final step.

Work is spread over `--workers` processes (default: the CPU count), each single-threaded (Pillow decodes and
resizes on one thread), so N workers use N cores, never more. Workers return each image's pixels to the parent,
which places them in a scratch array in OUT (a memory map: a corpus never sits in memory), then writes
`images.npy` with the usable rows atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.utils.data

from gankit.data.formats import REASONS, CorpusListing, Skip, SourceItem
from gankit.data.sampler import CROP_STREAM, SampleKey, rng_for
from gankit.errors import DataError

IMAGES_FILE = "images.npy"
IDS_FILE = "images.txt"
IMAGE_OUTPUTS = (IMAGES_FILE, IDS_FILE, "train.txt", "val.txt", "skipped.txt")  # what --format images writes
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".gif")
CHANNELS = (1, 3)
MIN_IMAGE_SIZE = 8
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
# The audio reasons plus the one only images have, in the order reports list them.
IMAGE_REASONS: dict[str, str] = {**REASONS, "too_small": "too small"}
FLIP_STREAM = CROP_STREAM  # a keyed dataset's own random stream (crops for audio, flips here)
_ROWS_PER_CHUNK = 1024  # rows copied at a time from the scratch array to images.npy


# ---- one image ------------------------------------------------------------------------------------------------
class ImageSkip(Exception):
    """Why an image cannot be used: `reason` is a key of IMAGE_REASONS, `detail` says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_INTEGER_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit PNG greyscale opens as I;16 (I in older Pillow)
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def _eight_bit(image: Any, channels: int) -> Any:
    """`image` as 8-bit RGB (channels 3) or L (channels 1): see the module docstring for each mode."""
    from PIL import Image

    if image.mode in _INTEGER_GREY:
        values = np.asarray(image).astype(np.float64)
        image = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8))
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode not in ("RGB", "L"):  # CMYK, YCbCr, LAB, HSV, 1, F, RGBA after compositing
        image = image.convert("RGB")
    target = "RGB" if channels == 3 else "L"
    return image if image.mode == target else image.convert(target)


def load_image(path: str | os.PathLike[str], size: int, channels: int = DEFAULT_CHANNELS) -> np.ndarray:
    """The centre square of the image at `path` as uint8 [channels, size, size] (module docstring); raises
    `ImageSkip` for a file that cannot be used (empty, not an image, truncated/corrupt, short side < size / 2)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageSkip("empty", "0 bytes")
    except OSError as exc:
        raise ImageSkip("unreadable", exc.strerror or str(exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt-EXIF and large-image warnings would tear the progress bar
        try:
            opened = Image.open(path)
        except UnidentifiedImageError:
            raise ImageSkip("unreadable", "not an image Pillow can read (PNG, JPEG, WebP, BMP, GIF)") from None
        except Exception as exc:  # DecompressionBombError, OSError, a decoder's own errors
            raise ImageSkip("unreadable", f"{type(exc).__name__}: {exc}") from None
        with opened:
            width, height = opened.size
            if min(width, height) < size / 2:
                raise ImageSkip("too_small", f"{width}×{height} px: the short side is below half of --image-size "
                                f"{size} ({size / 2:g} px)")
            try:
                if opened.format == "JPEG":
                    opened.draft(None, (2 * size, 2 * size))  # DCT-domain downscale, both sides stay ≥ 2·size
                opened.load()  # a truncated file fails here (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
                image = ImageOps.exif_transpose(opened)
                image = _eight_bit(image, channels)
            except Exception as exc:
                raise ImageSkip("truncated", f"{type(exc).__name__}: {exc}") from None
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


class _Job(NamedTuple):
    index: int  # row in the scratch array
    source: str
    size: int
    channels: int


class _Result(NamedTuple):
    index: int
    reason: str | None  # None when usable
    detail: str
    pixels: np.ndarray | None


def _convert(job: _Job) -> _Result:
    """One image in a worker process; any failure is a skip, never a stop."""
    try:
        return _Result(job.index, None, "", load_image(job.source, job.size, job.channels))
    except ImageSkip as exc:
        return _Result(job.index, exc.reason, exc.detail, None)
    except Exception as exc:  # a decoder crash on one odd file must not end a 100,000-file run
        return _Result(job.index, "unreadable", f"{type(exc).__name__}: {exc}", None)


def list_images(src: Path, exclude: Path | None = None) -> CorpusListing:
    """Every image file under `src` by extension (hidden entries and `exclude` left out), sorted by id = the
    relative path with its extension (so a.png and a.jpg are two images)."""
    listing = CorpusListing()
    excluded = exclude.resolve() if exclude is not None else None
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != excluded)
        for name in files:
            path = here / name
            if not name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append((path.relative_to(src).as_posix(), path))
    for image_id, path in sorted(found):
        listing.add(image_id, path, "", str(path))
    return listing


# ---- the corpus ----------------------------------------------------------------------------------------------
@dataclass
class ImagePrepareReport:
    out: Path
    found: int
    written: int
    train: int
    val: int
    image_size: int
    channels: int
    seconds: float  # wall time of the conversion
    skipped: list[Skip] = field(default_factory=list)
    removed_stale: int = 0
    lines: list[str] = field(default_factory=list)  # more to say (the digits classifier)

    def skipped_by_reason(self) -> dict[str, int]:
        counts = Counter(s.reason for s in self.skipped)
        return {reason: counts[reason] for reason in IMAGE_REASONS if counts[reason]}

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {IMAGE_REASONS[r]}" for r, n in self.skipped_by_reason().items())
        skipped = f"skipped {len(self.skipped)}" + (f" ({reasons}) → {self.out / 'skipped.txt'}" if reasons else "")
        colour = "RGB" if self.channels == 3 else "grey"
        size = self.written * self.channels * self.image_size**2 / 2**20
        lines = [
            f"found {self.found} | written {self.written} | {skipped}",
            f"train {self.train} | val {self.val} | {self.channels}×{self.image_size}×{self.image_size} {colour}, "
            f"{size:.1f} MiB | {self.seconds:.1f} s",
            f"wrote {self.out / IMAGES_FILE}, {IDS_FILE}, train.txt and val.txt",
            *self.lines,
        ]
        if self.removed_stale:
            lines.append(f"removed {self.removed_stale} file(s) a previous run left in {self.out}")
        return "\n".join(lines)


def _write_rows(path: Path, source: np.ndarray, rows: np.ndarray) -> None:
    """`source[rows]` as a .npy file, written atomically a chunk at a time (source may be a memory map)."""
    from gankit.atomic import atomic_open

    shape = (len(rows), *source.shape[1:])
    header = {"descr": np.lib.format.dtype_to_descr(source.dtype), "fortran_order": False, "shape": shape}
    with atomic_open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for first in range(0, len(rows), _ROWS_PER_CHUNK):
            handle.write(np.ascontiguousarray(source[rows[first : first + _ROWS_PER_CHUNK]]).tobytes())


def write_image_corpus(
    out: Path,
    pixels: np.ndarray,
    rows: np.ndarray,
    ids: Sequence[str],
    skipped: list[Skip],
    val_size: int | None,
    extra: Callable[[list[str], list[str]], None] | None = None,
) -> tuple[int, int]:
    """Write the layout of the module docstring: rows `rows` of `pixels` [*, C, S, S] uint8 with their `ids`
    (sorted), the split and skipped.txt; `extra(train_ids, val_ids)` writes anything more. (train, val) sizes."""
    from gankit.atomic import write_text
    from gankit.data.filelist import FileListEntry, write_filelist
    from gankit.data.prepare import _split_ids, _write_skipped

    _write_skipped(out / "skipped.txt", skipped, IMAGE_REASONS)
    if not len(ids):
        counts = Counter(s.reason for s in skipped)
        why = ", ".join(f"{n} {IMAGE_REASONS[r]}" for r, n in counts.most_common()) or "no image files found"
        raise DataError(f"no usable image in the corpus: {why}; see {out / 'skipped.txt'}")
    train_ids, val_ids = _split_ids(list(ids), val_size, out / "skipped.txt")
    _write_rows(out / IMAGES_FILE, pixels, rows)
    write_text(out / IDS_FILE, "".join(f"{i}\n" for i in ids))
    write_filelist(out / "train.txt", [FileListEntry(i, "") for i in train_ids])
    write_filelist(out / "val.txt", [FileListEntry(i, "") for i in val_ids])
    if extra is not None:
        extra(train_ids, val_ids)
    return len(train_ids), len(val_ids)


def check_image_settings(image_size: int, channels: int, val_size: int | None, workers: int | None) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise DataError(f"--image-size must be an integer ≥ {MIN_IMAGE_SIZE} (DCGAN takes 32 or 64), got {image_size}")
    if channels not in CHANNELS:
        raise DataError(f"--channels must be 1 (grey) or 3 (RGB), got {channels}")
    if val_size is not None and val_size < 0:
        raise DataError(f"--val-size must be ≥ 0, got {val_size}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be ≥ 1, got {workers}")


def _convert_and_write(
    out: Path, items: list[SourceItem], skipped: list[Skip], size: int, channels: int, val_size: int | None,
    workers: int, progress: bool,
) -> tuple[np.ndarray, int, int]:
    """Decode `items` in `workers` processes into a scratch array in `out`, then write the corpus from its usable
    rows (failures appended to `skipped`); (usable rows, train size, val size)."""
    from gankit.data.prepare import _run_jobs

    usable = np.zeros(len(items), dtype=bool)
    scratch: np.ndarray = np.zeros((0, channels, size, size), dtype=np.uint8)
    scratch_path: Path | None = None
    try:
        if items:
            # `.images.npy.<random>.tmp`: the scratch of a killed run is a temporary of images.npy, which a rerun
            # removes (prepare._remove_stale).
            fd, name = tempfile.mkstemp(prefix=f".{IMAGES_FILE}.", suffix=".tmp", dir=out)
            os.close(fd)
            scratch_path = Path(name)
            scratch = np.lib.format.open_memmap(scratch_path, mode="w+", dtype=np.uint8,
                                                shape=(len(items), channels, size, size))
        jobs = [_Job(i, str(item.path), size, channels) for i, item in enumerate(items)]
        for result in _run_jobs(_convert, jobs, workers, "images", progress):
            if result.reason is None:
                scratch[result.index] = result.pixels
                usable[result.index] = True
            else:
                item = items[result.index]
                skipped.append(Skip(item.id, str(item.path), result.reason, result.detail))
        rows = np.flatnonzero(usable)
        train, val = write_image_corpus(out, scratch, rows, [items[i].id for i in rows], skipped, val_size)
    finally:
        del scratch  # unmaps it
        if scratch_path is not None:
            with contextlib.suppress(FileNotFoundError):
                scratch_path.unlink()
    return rows, train, val


def prepare_images(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: int = DEFAULT_CHANNELS,
    val_size: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImagePrepareReport:
    """Convert every image under `src` into `out` (module docstring). Raises `DataError` when nothing is usable,
    the split leaves no training images, OUT and SRC overlap, or a file no gankit prepare wrote stands where this
    run would write (checked before any work)."""
    from gankit.data import prepare as common

    started = time.perf_counter()
    check_image_settings(image_size, channels, val_size, workers)
    src_path, out_path = Path(src), Path(out)
    if not src_path.is_dir():
        raise DataError(f"image folder {src_path} not found; check SRC")
    common._check_apart(src_path, out_path)
    listing = list_images(src_path, exclude=out_path)
    items: list[SourceItem] = listing.items
    skipped: list[Skip] = list(listing.problems)
    found = len(items) + len(skipped)
    if val_size is not None and items and val_size >= len(items):
        raise DataError(f"--val-size {val_size} leaves no training images: {src_path} has {len(items)} image "
                        "files; lower --val-size")
    planned = set(IMAGE_OUTPUTS)
    recorded = common._read_record(out_path)
    common._check_targets(src_path, out_path, planned)
    common._refuse_foreign(out_path, planned, recorded)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(items)))

    out_path.mkdir(parents=True, exist_ok=True)
    common._write_record(out_path, recorded | planned)  # before the first write: a killed run's files are known
    try:
        rows, train, val = _convert_and_write(out_path, items, skipped, image_size, channels, val_size, n_workers,
                                              progress)
        # after the scratch array is gone: _remove_stale would take it for an interrupted write's temporary
        removed = len(common._remove_stale(out_path, recorded, planned))
    finally:
        common._write_record(out_path, {p for p in recorded | planned if os.path.lexists(out_path / p)})
    return ImagePrepareReport(
        out=out_path, found=found, written=len(rows), train=train, val=val, image_size=image_size,
        channels=channels, seconds=time.perf_counter() - started, skipped=skipped, removed_stale=removed,
    )



# ---- reading -------------------------------------------------------------------------------------------------
def read_ids(folder: Path) -> list[str]:
    """The ids of images.npy's rows (images.txt; split on newlines only: an id may hold any other character)."""
    path = folder / IDS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} not found; prepare the images with `gankit prepare SRC {folder} --format images`"
                        ) from None
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def open_images(folder: Path) -> np.ndarray:
    """images.npy memory-mapped, checked to be uint8 [N, 1|3, S, S]."""
    path = folder / IMAGES_FILE
    try:
        images = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path} not found; prepare the images with `gankit prepare SRC {folder} --format images`"
                        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc}); prepare the images again") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in CHANNELS or \
            images.shape[2] != images.shape[3]:
        raise DataError(f"{path}: expected uint8 [N, 1|3, S, S], found {images.dtype} {list(images.shape)}; "
                        "prepare the images again")
    return images


class ImageDataset(torch.utils.data.Dataset):
    """The images of a prepared folder's split ("train", "val" or "all"), keyed by `SampleKey`.

    An item is {"image": float32 [C, S, S] in [-1, 1] (x / 127.5 − 1), "id": str}. With `flip`, an image is
    mirrored left–right when the random number of (seed, epoch, position) says so (probability 1/2): the same
    key gives the same flip in any worker, process or resumed run. A plain int i means epoch 0, position i.
    images.npy is memory-mapped on first use in each process (a DataLoader worker maps it again, never copies).
    """

    def __init__(self, folder: str | os.PathLike[str], split: str = "train", flip: bool = False,
                 seed: int = 0) -> None:
        from gankit.data.filelist import read_filelist

        self.folder = Path(folder)
        self.flip = flip
        self.seed = seed
        images = open_images(self.folder)
        all_ids = read_ids(self.folder)
        if len(all_ids) != len(images):
            raise DataError(f"{self.folder / IDS_FILE} lists {len(all_ids)} ids but {self.folder / IMAGES_FILE} "
                            f"holds {len(images)} images; prepare the images again")
        if split == "all":
            rows = list(range(len(all_ids)))
        elif split in ("train", "val"):
            row_of = {image_id: row for row, image_id in enumerate(all_ids)}
            entries = read_filelist(self.folder / f"{split}.txt")
            unknown = [e.id for e in entries if e.id not in row_of]
            if unknown:
                raise DataError(f"{self.folder / f'{split}.txt'}: {len(unknown)} id(s) not in {IDS_FILE}, e.g. "
                                f"{unknown[0]!r}; prepare the images again")
            rows = [row_of[e.id] for e in entries]
        else:
            raise DataError(f"unknown split {split!r}; use train, val or all")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.ids = [all_ids[r] for r in rows]
        self.channels, self.image_size = int(images.shape[1]), int(images.shape[2])
        self._images: np.ndarray | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:  # a spawned worker maps the file itself instead of a pickled copy
        return {**self.__dict__, "_images": None, "_pid": -1}

    def _array(self) -> np.ndarray:
        if self._images is None or self._pid != os.getpid():
            self._images, self._pid = open_images(self.folder), os.getpid()
        return self._images

    def flipped(self, key: SampleKey) -> bool:
        """Whether item `key` is mirrored (always False without `flip`)."""
        return self.flip and bool(rng_for(self.seed, FLIP_STREAM, key.epoch, key.position).random() < 0.5)

    def __getitem__(self, key: SampleKey | int) -> dict[str, Any]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key), int(key))
        pixels = torch.from_numpy(np.array(self._array()[self.rows[key.index]]))
        image = pixels.to(torch.float32).div_(127.5).sub_(1.0)
        if self.flipped(key):
            image = image.flip(-1)
        return {"image": image, "id": self.ids[key.index]}
