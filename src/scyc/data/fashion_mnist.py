"""Fashion-MNIST (Xiao et al. 2017): the embedded default data set, real, 60k/10k 28x28 grey images.

Lookup with ``dataset.root`` unset: ``<data_dir>/fashion-mnist`` (and torchvision's layout under
``<data_dir>``) -> ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``) -> torchvision's
download when the internet is there (``dataset.download``). An explicit ``dataset.root`` is used alone.
``make data`` (``python scripts/fetch_data.py fashion_mnist``) fetches Debian's package into
``<data_dir>/fashion-mnist`` ahead of a run; the data set itself never runs ``apt-get``.
"""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from pathlib import Path

import torch

from scyc.data.base import DATASETS, RawData, find_or_fetch
from scyc.foundations.registry import ConfigError

log = logging.getLogger(__name__)

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SUBDIR = "fashion-mnist"
MEAN, STD = (0.2860,), (0.3530,)


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an unsigned-byte IDX file (optionally gzip-compressed), as Fashion-MNIST ships, in memory: a magic
    ``00 00 08 <ndim>``, ``ndim`` big-endian uint32 sizes, the bytes. (torchvision's parser reads only a file on
    disk: a .gz would be decompressed to a temporary file on every run, which a full disk refuses.)"""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or damaged .gz, or not gzip at all
        raise ConfigError(f"{path} cannot be read ({type(exc).__name__}: {exc}): fetch it again") from exc
    ndim = data[3] if len(data) >= 4 and data[:3] == b"\0\0\x08" else 0
    if not 1 <= ndim <= 3:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file of 1 to 3 dimensions (bad magic number)")
    start = 4 * (ndim + 1)
    shape = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1)]
    if len(data) < start or len(data) - start != math.prod(shape):
        raise ConfigError(f"{path} is truncated or malformed: {len(data) - start} bytes of data for shape {shape}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)[start:].view(shape)


def find_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files (plain or .gz) in ``directory`` or torchvision's ``FashionMNIST/raw`` below it."""
    for base in (directory, directory / "FashionMNIST" / "raw"):
        found = {}
        for key, name in FILES.items():
            for candidate in (base / name, base / f"{name}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def fetch_torchvision(dest: Path) -> None:
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(str(dest), train=train, download=True)


def locate(root: str | None, download: bool, data_dir: str | Path = "data") -> dict[str, Path]:
    if root is not None:
        root_path = Path(root).expanduser()
        return find_or_fetch(
            lambda: find_files(root_path),
            download,
            fetch_torchvision,
            root_path,
            "Fashion-MNIST",
            f"dataset.root={root}: no Fashion-MNIST IDX files ({', '.join(FILES.values())}, plain or .gz) "
            f"in {root_path} or {root_path / 'FashionMNIST' / 'raw'}"
            + ("" if download else "; set dataset.download=true to fetch them, or leave dataset.root unset"),
        )
    local, data_dir = Path(data_dir) / SUBDIR, Path(data_dir)
    return find_or_fetch(
        lambda: next(filter(None, map(find_files, (local, data_dir, SYSTEM_DIR))), None),
        download,
        fetch_torchvision,
        data_dir,
        "Fashion-MNIST",
        f"Fashion-MNIST not found in {local}, {data_dir} or {SYSTEM_DIR}; run `make data` (`python "
        f"scripts/fetch_data.py fashion_mnist --data-dir {data_dir}`, which fetches Debian's {DEBIAN_PACKAGE}) "
        "or set dataset.root",
    )


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: str | None = None, *, download: bool, data_dir: str, pad: int) -> RawData:
    """``pad`` zero-pads every image on each side (2: 32x32, the CIFAR presets' input size)."""
    if not isinstance(pad, int) or pad < 0:
        raise ConfigError(f"dataset.pad={pad} is not allowed: it must be an integer >= 0 (zeros added on each side)")
    files = locate(root, download, data_dir)
    tensors = {k: read_idx(p) for k, p in files.items()}
    tensors.update({k: torch.nn.functional.pad(tensors[k], (pad,) * 4) for k in ("train_x", "test_x") if pad})
    train_size, test_size = tuple(tensors["train_x"].shape[1:]), tuple(tensors["test_x"].shape[1:])
    if train_size != test_size:  # the model is built for the training images' size
        size = lambda shape: "x".join(map(str, shape))  # noqa: E731
        raise ConfigError(f"{files['test_x']} holds {size(test_size)} images, {files['train_x'].name} "
                          f"{size(train_size)}: the test images must have the training images' size")  # fmt: skip
    for split in ("train", "test"):
        x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
        if x.dim() != 3 or y.dim() != 1 or len(x) != len(y):
            raise ConfigError(f"Fashion-MNIST {split} files in {files[f'{split}_x'].parent} are malformed")
        if len(y) and int(y.max()) > 9:
            raise ConfigError(f"{files[f'{split}_y']} is malformed: labels outside 0..9 (up to {int(y.max())})")
    return RawData(
        train_x=tensors["train_x"].unsqueeze(1).contiguous(),
        train_y=tensors["train_y"].long(),
        test_x=tensors["test_x"].unsqueeze(1).contiguous(),
        test_y=tensors["test_y"].long(),
        num_classes=10,
        mean=MEAN,
        std=STD,
        source=str(files["train_x"].parent),
    )
