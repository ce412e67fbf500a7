"""Fashion-MNIST (Xiao et al. 2017): the embedded default data set, real, 60k/10k 28x28 grey images.

Lookup with ``dataset.root`` unset: ``<data_dir>/fashion-mnist`` (and torchvision's layout under
``<data_dir>``) -> ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``) ->
Debian's package fetched with ``apt-get download`` + ``dpkg -x`` into ``<data_dir>`` -> torchvision's
download when the internet is there (``dataset.download``). An explicit ``dataset.root`` is used alone.
"""

from __future__ import annotations

import gzip
import logging
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from scyc.data.base import DATASETS, RawData
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
    """Read an unsigned-byte IDX file (optionally gzip-compressed), as Fashion-MNIST ships, into a tensor."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = bytearray(data[4 + 4 * ndim :])
    expected = math.prod(dims)
    if len(body) != expected:
        raise ConfigError(f"{path} is truncated or malformed: {len(body)} bytes of data, expected {expected}")
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


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


def fetch_debian(dest: Path) -> bool:
    """Fetch Debian's ``dataset-fashion-mnist`` and unpack its IDX files into ``dest``; True on success."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:

        def download() -> bool:
            r = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp, capture_output=True, text=True)
            return r.returncode == 0

        if not download():
            log.info("apt-get download %s failed; running apt-get update first", DEBIAN_PACKAGE)
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            if not download():
                return False
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            return False
        unpacked = Path(tmp) / "x"
        if subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], capture_output=True).returncode != 0:
            return False
        files = find_files(unpacked / SYSTEM_DIR.relative_to("/"))
        if files is None:
            return False
        dest.mkdir(parents=True, exist_ok=True)
        for path in files.values():
            shutil.copy2(path, dest / path.name)
    return True


def fetch_torchvision(dest: Path) -> bool:
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(dest), train=train, download=True)
        return True
    except Exception as exc:  # no network, proxy refusal, ...
        log.warning("torchvision download of Fashion-MNIST failed: %s", exc)
        return False


def locate(root: str | None, download: bool, data_dir: str | Path = "data") -> dict[str, Path]:
    if root is not None:
        root_path = Path(root).expanduser()
        files = find_files(root_path)
        if files is None and download and fetch_torchvision(root_path):
            files = find_files(root_path)
        if files is None:
            raise ConfigError(
                f"dataset.root={root}: no Fashion-MNIST IDX files ({', '.join(FILES.values())}, plain or .gz) "
                f"in {root_path} or {root_path / 'FashionMNIST' / 'raw'}"
                + ("" if download else "; set dataset.download=true to fetch them, or leave dataset.root unset")
            )
        return files
    local = Path(data_dir) / SUBDIR
    for directory in (local, Path(data_dir), SYSTEM_DIR):
        files = find_files(directory)
        if files is not None:
            return files
    if fetch_debian(local) and (files := find_files(local)) is not None:
        log.info("fetched Fashion-MNIST from Debian's %s into %s", DEBIAN_PACKAGE, local)
        return files
    if download and fetch_torchvision(Path(data_dir)) and (files := find_files(Path(data_dir))) is not None:
        return files
    raise ConfigError(
        f"Fashion-MNIST not found in {local}, {data_dir} or {SYSTEM_DIR}, and neither Debian's "
        f"{DEBIAN_PACKAGE} nor torchvision's download could fetch it; run `make data` or set dataset.root"
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
