"""CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test 32x32 colour images, 10 classes.

Read from the official python layout, ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
(pickled dicts; ``b"data"`` is uint8 N x 3072 in channel-major order, ``b"labels"`` a list of ints) by
torchvision's ``CIFAR10``; a file it cannot read is then named with what is wrong with it.
``dataset.root`` may name that folder or its parent; unset, it is ``<data_dir>/cifar10``. The MD5 sums
of the official files (torchvision's ``CIFAR10.train_list`` / ``test_list`` / ``meta``) are checked
unless ``dataset.verify_checksums=false`` (other copies, generated miniatures). With
``dataset.download=true`` and the files missing, torchvision's downloader fetches the official archive.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from scyc.data.base import DATASETS, RawData, find_or_fetch
from scyc.foundations.registry import ConfigError

log = logging.getLogger(__name__)

BASE_FOLDER = "cifar-10-batches-py"
SUBDIR = "cifar10"
# Per-channel statistics of the 50,000 official training images (pixel values scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def official_files() -> list[tuple[str, str]]:
    """[(name, md5)] of the official files, as torchvision's ``CIFAR10`` records them (train, test, meta)."""
    from torchvision.datasets import CIFAR10  # imported here: torchvision.datasets takes seconds to import

    return [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]


def torchvision_reader(folder: Path, train: bool):
    """torchvision's ``CIFAR10`` over ``folder`` (whatever its name). The MD5 sums are checked before (or not at
    all, ``dataset.verify_checksums=false``), so torchvision's own check only asks that the files exist."""
    from torchvision.datasets import CIFAR10

    class Files(CIFAR10):
        base_folder = folder.name
        train_list = [(name, None) for name, _ in CIFAR10.train_list]
        test_list = [(name, None) for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return Files(str(folder.parent), train=train)


def find_folder(root: Path) -> Path | None:
    """``root`` itself or ``root/cifar-10-batches-py``, whichever holds ``batches.meta``."""
    for candidate in (root / BASE_FOLDER, root):
        if (candidate / "batches.meta").is_file():
            return candidate
    return None


def diagnose(path: Path) -> None:
    """Raise a ConfigError naming what is wrong with one pickled batch (after torchvision could not read it)."""
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
    except Exception as exc:
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (unpickling failed: {exc})") from exc
    if not isinstance(entry, dict):
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (expected a pickled dict)")
    data, labels = entry.get(b"data", entry.get("data")), entry.get(b"labels", entry.get("labels"))
    if data is None or labels is None:
        raise ConfigError(f"{path} is malformed: it lacks b'data' or b'labels' (keys: {sorted(map(str, entry))})")
    x, y = torch.as_tensor(data), list(labels)
    if x.dtype != torch.uint8 or x.dim() != 2 or x.shape[1] != 3 * 32 * 32:
        raise ConfigError(f"{path} is malformed: data is {x.dtype} {tuple(x.shape)}, expected uint8 (N, 3072)")
    if len(y) != len(x):
        raise ConfigError(f"{path} is malformed: {len(x)} images but {len(y)} labels")


def read_split(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All batches of one split -> (uint8 (N, 3, 32, 32), int64 (N,)); malformed content is a ConfigError."""
    try:
        ds = torchvision_reader(folder, train)
        x, y = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(ds.targets)
    except Exception as exc:
        for name, _ in official_files()[:-1]:  # the batches; batches.meta last
            diagnose(folder / name)
        raise ConfigError(f"{folder / 'batches.meta'} is malformed: {exc}") from exc
    if len(ds.classes) != 10:
        raise ConfigError(f"{folder / 'batches.meta'} is malformed: expected 10 b'label_names'")
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ConfigError(f"CIFAR-10 in {folder} is malformed: labels outside 0..9 ({int(y.min())}..{int(y.max())})")
    return x, y.long()


def fetch(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    CIFAR10(str(root), train=True, download=True)


URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
HOW_TO_FETCH = f"put the official python version ({URL}, unpacked) there"


@DATASETS.register("cifar10")
def cifar10(root: str | None = None, *, download: bool, verify_checksums: bool, data_dir: str) -> RawData:
    root_path = Path(root).expanduser() if root is not None else Path(data_dir) / SUBDIR
    key = "dataset.root" if root is not None else "data_dir"
    folder = find_or_fetch(
        lambda: find_folder(root_path),
        download,
        fetch,
        root_path,
        "CIFAR-10",
        f"CIFAR-10 not found: no {BASE_FOLDER}/batches.meta in {root_path} ({key}={root or data_dir}); "
        + HOW_TO_FETCH
        + ("" if download else "; or fetch it with dataset.download=true (needs the internet)"),
    )
    from torchvision.datasets.utils import calculate_md5

    official = official_files()
    missing = [name for name, _ in official if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"CIFAR-10 in {folder} is incomplete: missing {', '.join(missing)}; " + HOW_TO_FETCH)
    for name, expected in official if verify_checksums else ():
        got = calculate_md5(folder / name)
        if got != expected:
            raise ConfigError(
                f"{folder / name}: MD5 {got} differs from the official {expected}; the file is corrupt or "
                "not the official CIFAR-10 (set dataset.verify_checksums=false to use another copy)"
            )
    (train_x, train_y), (test_x, test_y) = read_split(folder, True), read_split(folder, False)
    return RawData(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        mean=MEAN,
        std=STD,
        source=str(folder),
    )
