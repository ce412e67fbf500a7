"""Fashion-MNIST (Xiao et al. 2017): the embedded default data set, real, 60k/10k 28x28 grey images.

Lookup with ``dataset.root`` unset: ``<data_dir>/fashion-mnist`` (and torchvision's layout under
``<data_dir>``) -> ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``) -> torchvision's
download when the internet is there (``dataset.download``). An explicit ``dataset.root`` is used alone.
``make data`` (``python scripts/fetch_data.py fashion_mnist``) fetches Debian's package into
``<data_dir>/fashion-mnist`` ahead of a run; the data set itself never runs ``apt-get``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch

from scyc.data.base import DATASETS, RawData, find_or_fetch
from scyc.registry import ConfigError

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
    """Read an unsigned-byte IDX file (optionally gzip-compressed), as Fashion-MNIST ships, with torchvision."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor  # (torchvision.datasets: slow to import)
    from torchvision.datasets.utils import extract_archive

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain = extract_archive(str(path), tmp) if path.suffix == ".gz" else str(path)
        try:
            x = read_sn3_pascalvincent_tensor(plain, strict=False)
        except (AssertionError, KeyError) as exc:  # torchvision's checks of the magic number
            raise ConfigError(f"{path} is not an unsigned-byte IDX file (bad magic number)") from exc
        except RuntimeError as exc:  # the data does not fill the shape of the header
            raise ConfigError(f"{path} is truncated or malformed: {exc}") from exc
    if x.dtype != torch.uint8:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    return x


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
            lambda: fetch_torchvision(root_path),
            f"Fashion-MNIST into {root_path}",
            f"dataset.root={root}: no Fashion-MNIST IDX files ({', '.join(FILES.values())}, plain or .gz) "
            f"in {root_path} or {root_path / 'FashionMNIST' / 'raw'}"
            + ("" if download else "; set dataset.download=true to fetch them, or leave dataset.root unset"),
        )
    local, data_dir = Path(data_dir) / SUBDIR, Path(data_dir)
    return find_or_fetch(
        lambda: next(filter(None, map(find_files, (local, data_dir, SYSTEM_DIR))), None),
        download,
        lambda: fetch_torchvision(data_dir),
        f"Fashion-MNIST into {data_dir}",
        f"Fashion-MNIST not found in {local}, {data_dir} or {SYSTEM_DIR}"
        + (", and torchvision's download could not fetch it" if download else "")
        + f"; run `make data` (`python scripts/fetch_data.py fashion_mnist --data-dir {data_dir}`, which fetches "
        f"Debian's {DEBIAN_PACKAGE}) or set dataset.root",
    )


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: str | None = None, download: bool = True, data_dir: str = "data", pad: int = 0) -> RawData:
    """``pad`` zero-pads every image on each side (2: 32x32, the CIFAR presets' input size)."""
    files = locate(root, download, data_dir)
    tensors = {k: read_idx(p) for k, p in files.items()}
    tensors.update({k: torch.nn.functional.pad(tensors[k], (pad,) * 4) for k in ("train_x", "test_x") if pad})
    for split in ("train", "test"):
        x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
        if x.dim() != 3 or y.dim() != 1 or len(x) != len(y):
            raise ConfigError(f"Fashion-MNIST {split} files in {files[f'{split}_x'].parent} are malformed")
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
