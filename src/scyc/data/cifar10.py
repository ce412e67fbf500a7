"""CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test 32x32 colour images, 10 classes.

Read from the official python layout, ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
(pickled dicts; ``b"data"`` is uint8 N x 3072 in channel-major order, ``b"labels"`` a list of ints).
``dataset.root`` may name that folder or its parent; unset, it is ``<data_dir>/cifar10``. The MD5 sums
of the official files (torchvision's ``CIFAR10.train_list`` / ``test_list`` / ``meta``) are checked
unless ``dataset.verify_checksums=false`` (other copies, generated miniatures). With
``dataset.download=true`` and the files missing, torchvision's downloader fetches the official archive.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import torch

from scyc.data.base import DATASETS, Augment, RawData
from scyc.registry import ConfigError

log = logging.getLogger(__name__)

BASE_FOLDER = "cifar-10-batches-py"
SUBDIR = "cifar10"
# Per-channel statistics of the 50,000 official training images (pixel values scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def official_files() -> tuple[list[tuple[str, str]], list[tuple[str, str]], tuple[str, str]]:
    """(train [(name, md5)], test [(name, md5)], (meta name, md5)) as torchvision records them."""
    from torchvision.datasets import CIFAR10

    train = [(n, m) for n, m in CIFAR10.train_list]
    test = [(n, m) for n, m in CIFAR10.test_list]
    return train, test, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_folder(root: Path) -> Path | None:
    """``root`` itself or ``root/cifar-10-batches-py``, whichever holds ``batches.meta``."""
    for candidate in (root / BASE_FOLDER, root):
        if (candidate / "batches.meta").is_file():
            return candidate
    return None


def load_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> (uint8 (N, 3, 32, 32), int64 (N,)); malformed content is a ConfigError."""
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
    except Exception as exc:
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (unpickling failed: {exc})") from exc
    if not isinstance(entry, dict):
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (expected a pickled dict)")
    data = entry.get(b"data", entry.get("data"))
    labels = entry.get(b"labels", entry.get("labels"))
    if data is None or labels is None:
        raise ConfigError(f"{path} is malformed: it lacks b'data' or b'labels' (keys: {sorted(map(str, entry))})")
    x = torch.as_tensor(data)
    if x.dtype != torch.uint8 or x.dim() != 2 or x.shape[1] != 3 * 32 * 32:
        raise ConfigError(f"{path} is malformed: data is {x.dtype} {tuple(x.shape)}, expected uint8 (N, 3072)")
    y = torch.as_tensor(list(labels), dtype=torch.int64)
    if len(y) != len(x):
        raise ConfigError(f"{path} is malformed: {len(x)} images but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ConfigError(f"{path} is malformed: labels outside 0..9 ({int(y.min())}..{int(y.max())})")
    return x.reshape(-1, 3, 32, 32).contiguous(), y


def fetch(root: Path) -> bool:
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
        return True
    except Exception as exc:  # no network, proxy refusal, ...
        log.warning("torchvision download of CIFAR-10 into %s failed: %s", root, exc)
        return False


HOW_TO_FETCH = (
    "fetch it with dataset.download=true (needs the internet), or put the official python version "
    "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked) there"
)


@DATASETS.register("cifar10")
def cifar10(
    root: str | None = None,
    download: bool = True,
    verify_checksums: bool = True,
    crop_padding: int = 4,
    flip: bool = True,
    data_dir: str = "data",
) -> RawData:
    if not isinstance(crop_padding, int) or crop_padding < 0:
        raise ConfigError(f"dataset.crop_padding={crop_padding} must be an integer >= 0")
    root_path = Path(root).expanduser() if root is not None else Path(data_dir) / SUBDIR
    key = "dataset.root" if root is not None else "data_dir"
    folder = find_folder(root_path)
    if folder is None and download and fetch(root_path):
        folder = find_folder(root_path)
    if folder is None:
        raise ConfigError(
            f"CIFAR-10 not found: no {BASE_FOLDER}/batches.meta in {root_path} ({key}={root or data_dir}); "
            + HOW_TO_FETCH
            + ("" if download else "; dataset.download=false")
        )
    train_files, test_files, meta = official_files()
    missing = [n for n, _ in [*train_files, *test_files, meta] if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"CIFAR-10 in {folder} is incomplete: missing {', '.join(missing)}; " + HOW_TO_FETCH)
    if verify_checksums:
        for name, expected in [*train_files, *test_files, meta]:
            got = md5sum(folder / name)
            if got != expected:
                raise ConfigError(
                    f"{folder / name}: MD5 {got} differs from the official {expected}; the file is corrupt or "
                    "not the official CIFAR-10 (set dataset.verify_checksums=false to use another copy)"
                )
    try:
        with open(folder / meta[0], "rb") as fh:
            names = pickle.load(fh, encoding="bytes").get(b"label_names")
    except Exception as exc:
        raise ConfigError(f"{folder / meta[0]} is malformed: {exc}") from exc
    if names is None or len(names) != 10:
        raise ConfigError(f"{folder / meta[0]} is malformed: expected 10 b'label_names'")
    train = [load_batch(folder / n) for n, _ in train_files]
    test_x, test_y = load_batch(folder / test_files[0][0])
    return RawData(
        train_x=torch.cat([x for x, _ in train]),
        train_y=torch.cat([y for _, y in train]),
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        mean=MEAN,
        std=STD,
        augment=Augment(crop_padding=crop_padding, flip=bool(flip)),
        source=str(folder),
    )
