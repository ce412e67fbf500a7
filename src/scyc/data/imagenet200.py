"""Tiny-ImageNet-200 ("ImageNet-200"): 200 classes, 500 train + 50 labelled val images each, 64x64 JPEG.

Official layout (``dataset.root`` may name ``tiny-imagenet-200/`` itself or its parent; unset, it is
looked for as ``<data_dir>/tiny-imagenet-200`` or ``<data_dir>/imagenet200[/tiny-imagenet-200]``)::

    tiny-imagenet-200/wnids.txt                       one WordNet id per line (the classes)
    tiny-imagenet-200/train/<wnid>/images/*.JPEG      training images of class <wnid>
    tiny-imagenet-200/val/images/*.JPEG               labelled evaluation images
    tiny-imagenet-200/val/val_annotations.txt         <file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>

Class index = position of the wnid in ``sorted(wnids.txt)`` (torchvision ImageFolder's convention).
``val/`` is our test split (the official test split has no labels); the validation split is held out
of train by ``build_data``. Every JPEG is decoded once (greyscale ones converted to RGB) into one uint8
tensor, cached as ``<folder>/.scyc-cache/decoded-<fingerprint>.pt``; the fingerprint covers every file's
relative path, size and mtime plus the label files, so any change to the data rebuilds the cache.
Augmentation (``build_data``, from conf/dataset/imagenet200.yaml): random 64x64 crop of the image
zero-padded by ``dataset.crop_padding=8`` (the same 1/8 of the side as CIFAR's 4 of 32) and a horizontal flip.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from scyc.data.base import DATASETS, RawData, find_or_fetch
from scyc.foundations.registry import ConfigError

log = logging.getLogger(__name__)

FOLDER = "tiny-imagenet-200"
SUBDIR = "imagenet200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ZIP_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
SIZE = 64
# Per-channel statistics of the 100,000 official training images (pixel values scaled to [0, 1]).
MEAN = (0.4802, 0.4481, 0.3975)
STD = (0.2770, 0.2691, 0.2821)
CACHE_VERSION = 1
FETCH_SCRIPT = "`python scripts/fetch_data.py imagenet200 --data-dir <dir>`"


def how_to_fetch(download: bool) -> str:
    """What to do when no folder is found; dataset.download=true is suggested only when it was not just tried."""
    offer = "" if download else f" or dataset.download=true (needs the internet; {URL})"
    return f"fetch it with {FETCH_SCRIPT}{offer} and point dataset.root at the unpacked {FOLDER}/ or its parent"


# A folder with wnids.txt counts as found, so dataset.download=true would not fetch over an incomplete one.
REFETCH = f"remove that folder and fetch it again with {FETCH_SCRIPT} (or dataset.download=true)"


def find_folder(root: Path) -> Path | None:
    for candidate in (root, root / FOLDER):
        if (candidate / "wnids.txt").is_file():
            return candidate
    return None


def candidates(root: str | None, data_dir: str) -> list[Path]:
    if root is not None:
        return [Path(root).expanduser()]
    return [Path(data_dir) / FOLDER, Path(data_dir) / SUBDIR]


def fetch(dest: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(URL, str(dest), md5=ZIP_MD5)


def list_files(folder: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(sorted wnids, [(train JPEG, label)], [(val JPEG, label)]); missing or malformed pieces raise."""
    wnids_file = folder / "wnids.txt"
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    if len(wnids) < 2:
        raise ConfigError(f"{wnids_file} is malformed: it lists {len(wnids)} class(es), expected 200")
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[Path, int]] = []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise ConfigError(f"Tiny-ImageNet-200 in {folder} is incomplete: {images} is missing; " + REFETCH)
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
        if not files:
            raise ConfigError(f"{images} holds no JPEG images")
        train += [(p, index[wnid]) for p in files]
    ann = folder / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise ConfigError(f"Tiny-ImageNet-200 in {folder} is incomplete: {ann} is missing; " + REFETCH)
    val: list[tuple[Path, int]] = []
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ConfigError(f"{ann}:{n} is malformed: expected '<file>\\t<wnid>\\t<box>', got {line!r}")
        name, wnid = parts[0].strip(), parts[1].strip()
        if wnid not in index:
            raise ConfigError(f"{ann}:{n}: wnid {wnid!r} is not in {wnids_file}")
        path = folder / "val" / "images" / name
        if not path.is_file():
            raise ConfigError(f"{ann}:{n}: {path} is missing")
        val.append((path, index[wnid]))
    if not val:
        raise ConfigError(f"{ann} lists no images")
    return wnids, train, val


def fingerprint(folder: Path, files: list[Path]) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}".encode())
    for extra in (folder / "wnids.txt", folder / "val" / "val_annotations.txt"):
        h.update(extra.read_bytes())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def decode(path: Path) -> torch.Tensor:
    """One JPEG -> uint8 (64, 64, 3); greyscale and CMYK images are converted to RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path} is not a readable JPEG: {exc}") from exc
    if rgb.size != (SIZE, SIZE):
        raise ConfigError(f"{path} is {rgb.size[0]}x{rgb.size[1]}, Tiny-ImageNet-200 images are {SIZE}x{SIZE}")
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(SIZE, SIZE, 3)


def decode_all(files: list[Path]) -> torch.Tensor:
    """Decode in threads (PIL releases the GIL while decoding) into one uint8 (N, 3, 64, 64) tensor."""
    out = torch.empty((len(files), SIZE, SIZE, 3), dtype=torch.uint8)

    def work(i: int) -> None:
        out[i] = decode(files[i])

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(files)), chunksize=256))
    return out.permute(0, 3, 1, 2).contiguous()


def load_or_decode(folder: Path, train, val, cache: bool) -> dict[str, torch.Tensor]:
    files = [p for p, _ in train] + [p for p, _ in val]
    cache_file = folder / ".scyc-cache" / f"decoded-{fingerprint(folder, files)}.pt" if cache else None
    if cache_file is not None and cache_file.is_file():
        try:
            tensors = torch.load(cache_file, map_location="cpu", weights_only=True)
            if tensors["train_x"].shape[0] == len(train) and tensors["test_x"].shape[0] == len(val):
                return tensors
        except Exception as exc:
            log.warning("ignoring unreadable cache %s: %s", cache_file, exc)
    log.info("decoding %d Tiny-ImageNet-200 JPEGs from %s (once; cached afterwards)", len(files), folder)
    images = decode_all(files)
    tensors = {
        "train_x": images[: len(train)].clone(),
        "train_y": torch.tensor([y for _, y in train], dtype=torch.int64),
        "test_x": images[len(train) :].clone(),
        "test_y": torch.tensor([y for _, y in val], dtype=torch.int64),
    }
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            for stale in cache_file.parent.glob("decoded-*.pt"):
                stale.unlink()
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            torch.save(tensors, tmp)
            os.replace(tmp, cache_file)
        except OSError as exc:
            log.warning("could not write the decoded cache %s (%s); decoding again next time", cache_file, exc)
    return tensors


@DATASETS.register("imagenet200")
def imagenet200(root: str | None = None, *, download: bool, cache: bool, data_dir: str) -> RawData:
    looked = candidates(root, data_dir)
    where = " or ".join(f"{p} ({p / FOLDER})" for p in looked)
    folder = find_or_fetch(
        lambda: next(filter(None, map(find_folder, looked)), None),
        download,
        fetch,
        looked[0],
        "Tiny-ImageNet-200",
        f"Tiny-ImageNet-200 not found: no wnids.txt in {where}; "
        + how_to_fetch(download)
        + ("" if root is not None else "; or set dataset.root"),
    )
    wnids, train, val = list_files(folder)
    if len(wnids) != 200:
        log.warning("%s lists %d classes (the official data set has 200)", folder / "wnids.txt", len(wnids))
    tensors = load_or_decode(folder, train, val, cache)
    return RawData(
        num_classes=len(wnids),
        mean=MEAN,
        std=STD,
        source=str(folder),
        **tensors,
    )
