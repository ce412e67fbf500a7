"""Fetch a data set ahead of a run: ``python scripts/fetch_data.py [fashion_mnist|cifar10|imagenet200] [--data-dir data]``.

Fashion-MNIST, when it is in none of the places the data set looks, is fetched from Debian's
``dataset-fashion-mnist`` package (``apt-get download`` + ``dpkg -x``, running ``apt-get update`` first if the
download fails) into ``<data-dir>/fashion-mnist``. Then the data set is built once with ``download=true`` (its
own download when the files are missing: torchvision's for Fashion-MNIST and CIFAR-10, the official MD5-checked
zip of Tiny-ImageNet-200, whose JPEGs are then decoded into its cache) and the image counts are printed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scyc.cli import compose
from scyc.data import COMMON_KEYS
from scyc.data import fashion_mnist as fm
from scyc.data.base import DATASETS
from scyc.foundations.registry import ConfigError

log = logging.getLogger("fetch_data")


def fetch_debian(dest: Path) -> bool:
    """Fetch Debian's ``dataset-fashion-mnist`` and unpack its IDX files into ``dest``; True on success."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:

        def download() -> bool:
            return (
                subprocess.run(["apt-get", "download", fm.DEBIAN_PACKAGE], cwd=tmp, capture_output=True).returncode == 0
            )

        if not download():
            log.info("apt-get download %s failed; running apt-get update first", fm.DEBIAN_PACKAGE)
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            if not download():
                return False
        debs = list(Path(tmp).glob("*.deb"))
        unpacked = Path(tmp) / "x"
        if not debs or subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], capture_output=True).returncode:
            return False
        files = fm.find_files(unpacked / fm.SYSTEM_DIR.relative_to("/"))
        if files is None:
            return False
        dest.mkdir(parents=True, exist_ok=True)
        for path in files.values():
            shutil.copy2(path, dest / path.name)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", default="fashion_mnist")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.dataset == "fashion_mnist":
        local = Path(args.data_dir) / fm.SUBDIR
        if not any(fm.find_files(d) for d in (local, Path(args.data_dir), fm.SYSTEM_DIR)) and fetch_debian(local):
            log.info("fetched Fashion-MNIST from Debian's %s into %s", fm.DEBIAN_PACKAGE, local)
    try:
        options = compose([f"dataset={args.dataset}"]).dataset.options(*COMMON_KEYS)
        raw = DATASETS.build(args.dataset, {**options, "data_dir": args.data_dir, "download": True}, key="dataset")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {len(raw.train_x)} train / {len(raw.test_x)} test images from {raw.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
