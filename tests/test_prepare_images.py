"""`gankit prepare --format images` and `--builtin digits` (issue 15, data side): every kind of damaged or odd image
kept correctly or skipped with its reason, the array layout, the split, reruns, `ImageDataset` and its keyed flip,
the loader's speed, and the digits corpus with its classifier."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data.images import IMAGE_REASONS, ImageDataset, write_image_corpus
from gankit.data.sampler import EpochBatchSampler, SampleKey
from tests.support.tree import assert_unchanged, changes, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")

RECORD = ".gankit_prepared.json"
RED, GREEN, WHITE = (255, 0, 0), (0, 255, 0), (255, 255, 255)


def gankit(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def prepare(capsys: pytest.CaptureFixture[str], src: Path, out: Path, *extra: str) -> str:
    code, stdout, err = gankit(capsys, "prepare", src, out, "--format", "images", "--no-progress", *extra)
    assert code == 0, err
    return stdout


def refused(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def save(path: Path, image: Image.Image | np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(path, **kw)
    return path


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> Image.Image:
    return Image.new("RGB", size, colour)


def read_corpus(out: Path) -> dict[str, np.ndarray]:
    """id → uint8 [C, S, S] of a prepared folder, checking images.npy maps and matches images.txt."""
    images = np.load(out / "images.npy", mmap_mode="r")
    assert isinstance(images, np.memmap) and images.dtype == np.uint8
    ids = (out / "images.txt").read_text(encoding="utf-8").splitlines()
    assert len(ids) == len(images) and ids == sorted(ids)
    return {i: np.array(images[row]) for row, i in enumerate(ids)}


def skipped_rows(out: Path) -> dict[str, tuple[str, str]]:
    """id → (reason, detail) from skipped.txt, checking its header is the audio formats' one."""
    lines = (out / "skipped.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# reason\tid\tsource\tdetail"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 4 and r[0] in IMAGE_REASONS for r in rows), rows
    return {r[1]: (r[0], r[3]) for r in rows}


# ---- a folder of damaged and odd images ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("damaged") / "src"
    save(src / "deep" / "er" / "red.png", solid(RED))
    good = save(src / "cut.jpg", np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8), quality=90)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # truncated JPEG
    (src / "zero.png").write_bytes(b"")
    (src / "text.png").write_text("this is not an image\n" * 20)
    save(src / "tiny.png", solid(RED, (1, 1)))
    save(src / "cmyk.jpg", Image.new("CMYK", (48, 48), (255, 0, 0, 0)), quality=95)  # pure cyan
    palette = Image.new("P", (48, 48), 0)
    palette.putpalette([*RED, *GREEN] + [0] * 762)
    palette.paste(1, (24, 0, 48, 48))  # right half: index 1, green but fully transparent
    save(src / "palette.png", palette, transparency=1)
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 0  # blue, all transparent
    rgba[:, :24, 3] = 255  # left half opaque
    save(src / "rgba.png", rgba)
    save(src / "grey16.png", Image.fromarray(np.full((30, 30), 128 * 257, np.uint16)))  # I;16 at mid-grey
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[20:] = 255  # stored: top dark, bottom bright; EXIF 6 displays it turned 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    save(src / "rotated.jpg", stored, exif=exif, quality=95)
    frames = [solid(RED), solid((0, 0, 255))]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    save(src / ".hidden.png", solid(RED))
    (src / "notes.txt").write_text("not an image extension: not listed")
    return src


EXPECTED_SKIPS = {"cut.jpg": "truncated", "zero.png": "empty", "text.png": "unreadable", "tiny.png": "too_small"}
KEPT = ["anim.gif", "cmyk.jpg", "deep/er/red.png", "grey16.png", "palette.png", "rgba.png", "rotated.jpg"]


def test_damaged_images_are_kept_correctly_or_skipped_with_a_reason(capsys, tmp_path, damaged):
    out = tmp_path / "out"
    stdout = prepare(capsys, damaged, out, "--image-size", "32", "--val-size", "2", "--workers", "2")
    assert "found 11 | written 7 | skipped 4 (1 unreadable, 1 truncated/corrupt, 1 empty, 1 too small)" in stdout
    assert "removed" not in stdout  # a first run: nothing stale, its scratch array gone before the clean-up
    assert {i: r for i, (r, _) in skipped_rows(out).items()} == EXPECTED_SKIPS
    assert "1×1 px" in skipped_rows(out)["tiny.png"][1] and "16 px" in skipped_rows(out)["tiny.png"][1]
    images = read_corpus(out)
    assert list(images) == KEPT
    assert all(a.shape == (3, 32, 32) for a in images.values())

    def mean(image_id: str, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        return images[image_id][:, rows, cols].reshape(3, -1).mean(axis=1)

    close = lambda got, want, tol=6: np.allclose(got, want, atol=tol)  # noqa: E731
    assert close(mean("deep/er/red.png"), RED, 1)
    assert close(mean("cmyk.jpg"), (0, 255, 255))  # CMYK cyan → RGB cyan
    assert close(mean("anim.gif"), RED, 1)  # the first frame, not the blue second one
    assert close(mean("grey16.png"), (128, 128, 128), 1)  # 16-bit scaled, not clipped to 255
    # transparency on white: palette index 1 (green, transparent) and RGBA alpha 0 (blue) become white
    left, right = slice(0, 12), slice(20, None)
    assert close(mean("palette.png", cols=left), RED, 1) and close(mean("palette.png", cols=right), WHITE, 1)
    assert close(mean("rgba.png", cols=left), (0, 0, 255), 1) and close(mean("rgba.png", cols=right), WHITE, 1)
    # EXIF orientation 6: the stored image turned 90° clockwise, its dark top now on the right
    rotated = images["rotated.jpg"].astype(float)
    left, right = rotated[:, :, :12].mean(), rotated[:, :, 20:].mean()
    top, bottom = rotated[:, :12].mean(), rotated[:, 20:].mean()
    assert left > 200 and right < 55 and abs(top - bottom) < 30, (left, right, top, bottom)
    split = [(out / f).read_text().splitlines() for f in ("train.txt", "val.txt")]
    assert split == [[f"{i}|" for i in KEPT[:5]], [f"{i}|" for i in KEPT[5:]]]
    assert sorted(json.loads((out / RECORD).read_text())["written"]) == sorted(
        ["images.npy", "images.txt", "skipped.txt", "train.txt", "val.txt"])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the scratch array is gone


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (64, 3)])
def test_sizes_and_channels_and_workers_agree(capsys, tmp_path, damaged, size, channels):
    one, two = tmp_path / "one", tmp_path / "two"
    prepare(capsys, damaged, one, "--image-size", str(size), "--channels", str(channels), "--workers", "1")
    prepare(capsys, damaged, two, "--image-size", str(size), "--channels", str(channels), "--workers", "2")
    assert (one / "images.npy").read_bytes() == (two / "images.npy").read_bytes()
    images = read_corpus(one)
    wanted = [i for i in KEPT if not (size == 64 and i == "grey16.png")]  # 30 px < 64 / 2: too small at 64
    assert list(images) == wanted and all(a.shape == (channels, size, size) for a in images.values())
    if channels == 1:
        assert abs(images["deep/er/red.png"].mean() - 0.299 * 255) < 1.5  # ITU-R 601 luma of pure red
    else:
        assert skipped_rows(one)["grey16.png"][0] == "too_small"


def test_centre_crop_and_antialiased_resize(capsys, tmp_path):
    src = tmp_path / "src"
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, :32], wide[:, 32:96], wide[:, 96:] = RED, GREEN, RED  # only the centre square is green
    save(src / "wide.png", wide)
    stripes = np.zeros((128, 128), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: a plain subsample would keep only black or only white
    save(src / "stripes.png", stripes)
    prepare(capsys, src, tmp_path / "out", "--image-size", "32", "--val-size", "0", "--workers", "1")
    images = read_corpus(tmp_path / "out")
    off_green = np.abs(images["wide.png"].astype(float) - np.array(GREEN, float)[:, None, None])
    # the filter reads the red just outside the square at its edges (Pillow's box), a little only
    assert off_green[:, :, 2:-2].max() <= 2 and off_green.max() < 24
    grey = np.abs(images["stripes.png"].astype(float) - 127.5)
    assert grey[:, :, 2:-2].max() < 4 and grey.max() < 16  # antialiased to mid-grey (Lanczos rings at the border)


def test_rerun_replaces_only_its_own_files(capsys, tmp_path, damaged):
    src = tmp_path / "src"
    for i in range(4):
        save(src / f"img{i}.png", solid((60 * i, 0, 0)))
    out = tmp_path / "out"
    prepare(capsys, src, out, "--image-size", "32", "--val-size", "1", "--workers", "1")
    (out / "mine.txt").write_text("a file gankit did not write")
    (out / ".images.npy.abcdefgh.tmp").write_bytes(b"scratch of a killed run")
    (src / "img3.png").unlink()
    before = snapshot(tmp_path)
    stdout = prepare(capsys, src, out, "--image-size", "32", "--val-size", "1", "--workers", "1")
    diff = changes(before, snapshot(tmp_path))
    assert diff["removed"] == ["out/.images.npy.abcdefgh.tmp"] and diff["added"] == [], diff
    assert set(diff["changed"]) <= {f"out/{f}" for f in ("images.npy", "images.txt", "train.txt", "val.txt", RECORD)}
    assert "removed 1 file(s)" in stdout and (out / "mine.txt").is_file()
    assert list(read_corpus(out)) == ["img0.png", "img1.png", "img2.png"]

    # a file gankit did not write where it would write: refused before any work, nothing touched
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    np.save(fresh / "images.npy", np.zeros(3))
    before = snapshot(tmp_path)
    code, _, err = gankit(capsys, "prepare", src, fresh, "--format", "images", "--no-progress")
    refused(code, err, f"{fresh / 'images.npy'}: exists and no gankit prepare wrote it")
    assert_unchanged(before, snapshot(tmp_path))
    # SRC and OUT nested: refused
    code, _, err = gankit(capsys, "prepare", src, src / "out", "--format", "images", "--no-progress")
    refused(code, err, "lies inside the corpus folder SRC")
    assert not (src / "out").exists()


# ---- the dataset --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256 random 64×64 RGB images in the prepared layout (written directly: the loader is under test)."""
    out = tmp_path_factory.mktemp("corpus64")
    pixels = np.random.default_rng(1).integers(0, 256, (256, 3, 64, 64), dtype=np.uint8)
    write_image_corpus(out, pixels, np.arange(256), [f"i{n:03d}" for n in range(256)], [], 16)
    return out


def test_dataset_gives_unit_range_tensors_and_a_keyed_flip(corpus64):
    raw = np.load(corpus64 / "images.npy")
    train, val = ImageDataset(corpus64, "train"), ImageDataset(corpus64, "val")
    assert (len(train), len(val), train.channels, train.image_size) == (240, 16, 3, 64)
    assert val.ids[0] == "i240" and ImageDataset(corpus64, "all").ids == train.ids + val.ids
    item = train[SampleKey(0, 5, 7)]
    assert item["id"] == "i007" and item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
    assert torch.equal(item["image"], torch.from_numpy(raw[7]).float() / 127.5 - 1)
    assert item["image"].min() == -1.0 and item["image"].max() == 1.0  # 0 → −1, 255 → 1

    flipping = ImageDataset(corpus64, "train", flip=True, seed=3)
    keys = [SampleKey(epoch, position, 7) for epoch in range(2) for position in range(40)]
    flips = []
    for key in keys:
        image = flipping[key]["image"]
        plain = torch.equal(image, item["image"])
        mirrored = torch.equal(image, item["image"].flip(-1))
        assert plain != mirrored
        assert torch.equal(image, ImageDataset(corpus64, "train", flip=True, seed=3)[key]["image"])  # same key
        flips.append(mirrored)
    assert 20 < sum(flips) < 60  # about half, decided per (epoch, position), not per image
    assert [flipping.flipped(k) for k in keys] != [ImageDataset(corpus64, "train", True, seed=4).flipped(k)
                                                   for k in keys]


def test_flips_do_not_depend_on_loader_workers(corpus64):
    from gankit.engine.data import collate_batch

    dataset = ImageDataset(corpus64, "train", flip=True, seed=5)

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochBatchSampler(len(dataset), batch_size=16, seed=5)
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                             collate_fn=collate_batch)
        return [b["image"] for _, b in zip(range(4), loader, strict=False)]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_loader_is_far_faster_than_a_dcgan_step(corpus64, capsys):
    """A CPU DCGAN 64×64 step at batch 64 takes ~1 s (64 images/s); the loader must not be what waits."""
    from gankit.engine.data import collate_batch

    dataset = ImageDataset(corpus64, "train", flip=True)
    sampler = EpochBatchSampler(len(dataset), batch_size=64, seed=0, min_batches=24)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch)
    next(iter(loader))
    started = time.perf_counter()
    count = sum(batch["image"].shape[0] for batch in loader)
    rate = count / (time.perf_counter() - started)
    with capsys.disabled():
        print(f"\nimage loader: {rate:.0f} images/s (64×64 RGB, batches of 64, flip, one process)")
    assert count == 24 * 64 and rate > 640, rate  # ≥ 10× what a ~1 s DCGAN step consumes


# ---- the command line ---------------------------------------------------------------------------------------
def test_options_of_the_other_kind_are_refused(capsys, tmp_path, damaged):
    out = str(tmp_path / "o")
    cases = [
        (["prepare", damaged, out, "--format", "images", "--sample-rate", "16000"], "--sample-rate: not used"),
        (["prepare", damaged, out, "--format", "folder", "--channels", "1"], "--channels: not used"),
        (["prepare", "--builtin", "digits", out, "--image-size", "64"], "--image-size: not used"),
        (["prepare", "--builtin", "digits", damaged, out], "takes OUT only"),
        (["prepare", damaged, out], "needs SRC OUT --format"),
        (["prepare", damaged, out, "--format", "images", "--image-size", "4"], "--image-size must be"),
    ]
    for args, needle in cases:
        code, _, err = gankit(capsys, *args)
        refused(code, err, needle)
    assert not (tmp_path / "o").exists()


# ---- the built-in digits ------------------------------------------------------------------------------------
def test_builtin_digits_with_labels_and_a_classifier(capsys, tmp_path, damaged):
    from sklearn.datasets import load_digits

    from gankit.data.digits import load_classifier, to_unit_range
    from gankit.models.digits_classifier import downsample

    out = tmp_path / "digits"
    code, stdout, err = gankit(capsys, "prepare", "--builtin", "digits", out)
    assert code == 0, err
    images = np.load(out / "images.npy", mmap_mode="r")
    labels = np.load(out / "labels.npy")
    assert images.shape == (1797, 1, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.array_equal(labels, load_digits().target)
    assert len((out / "train.txt").read_text().splitlines()) == 1697
    assert (out / "val.txt").read_text().splitlines()[-1] == "digit_1796|"
    assert (out / "images.txt").read_text().splitlines()[:2] == ["digit_0000", "digit_0001"]
    # 32→8 by 4×4 means undoes the 8→32 bilinear upscale up to its [1/8, 3/4, 1/8] blur (interior pixels)
    original = torch.from_numpy(np.rint(load_digits().images * 255 / 16)).float() / 127.5 - 1
    blur = torch.tensor([[0.125, 0.75, 0.125]])
    expected = torch.nn.functional.conv2d(original[:, None], (blur.T @ blur)[None, None])[:, 0]
    assert (downsample(to_unit_range(images[:50]))[:, 0, 1:-1, 1:-1] - expected[:50]).abs().max() < 0.02

    data = torch.load(out / "digits_classifier.pt", weights_only=True)  # plain tensors and numbers
    assert data["kind"] == "digits_classifier" and data["accuracy"] >= 0.95 and data["val_images"] == 100
    assert f"held-out accuracy {data['accuracy']:.3f}" in stdout
    classifier = load_classifier(out)
    probabilities, features = classifier.classify(to_unit_range(images[1697:]))
    assert probabilities.shape == (100, 10) and features.shape == (100, 128)
    assert torch.allclose(probabilities.sum(1), torch.ones(100))
    accuracy = (probabilities.argmax(1).numpy() == labels[1697:]).mean()
    assert accuracy == pytest.approx(data["accuracy"]) and accuracy >= 0.95

    # another kind of prepare into the same OUT removes the digits' own extra files, and only those
    (out / "mine.txt").write_text("kept")
    prepare(capsys, damaged, out, "--image-size", "32", "--val-size", "1", "--workers", "1")
    assert not (out / "labels.npy").exists() and not (out / "digits_classifier.pt").exists()
    assert (out / "mine.txt").is_file() and len(read_corpus(out)) == len(KEPT)


def test_an_audio_run_and_an_image_run_into_one_out_replace_each_other(capsys, tmp_path):
    import soundfile as sf

    audio, images, out = tmp_path / "audio", tmp_path / "images", tmp_path / "out"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"u{i}.wav", np.random.default_rng(i).uniform(-0.3, 0.3, 9600), 16000)
        save(images / f"i{i}.png", solid((80 * i, 0, 0)))
    assert gankit(capsys, "prepare", audio, out, "--format", "folder", "--val-size", "1", "--workers", "1",
                  "--no-progress")[0] == 0
    assert len(list((out / "wavs").iterdir())) == 3
    stdout = prepare(capsys, images, out, "--image-size", "32", "--val-size", "1", "--workers", "1")
    assert "removed 3 file(s)" in stdout and not list((out / "wavs").iterdir())
    code, stdout, _ = gankit(capsys, "prepare", audio, out, "--format", "folder", "--val-size", "1", "--workers",
                             "1", "--no-progress")
    assert code == 0 and "removed 2 other file(s) a previous run left in" in stdout
    assert not (out / "images.npy").exists() and not (out / "images.txt").exists()
    assert sorted(json.loads((out / RECORD).read_text())["written"]) == [
        "skipped.txt", "train.txt", "val.txt", "wavs/u0.wav", "wavs/u1.wav", "wavs/u2.wav"]
