"""Miniature copies of the paper's data sets in their EXACT official on-disk layouts, for tests.

``make_cifar10(root)`` writes ``root/cifar-10-batches-py/`` (pickled dicts with ``"batch_label"``,
``"labels"``, ``"data"``, ``"filenames"``: the official Python 2 pickles' keys as torchvision reads them;
``batches.meta`` with ``"label_names"``), and
``make_tiny_imagenet(root)`` writes ``root/tiny-imagenet-200/`` (``wnids.txt``, ``words.txt``,
``train/<wnid>/images/*.JPEG`` with ``<wnid>_boxes.txt``, ``val/images``, ``val/val_annotations.txt``,
``test/images``). Both return the images and labels they wrote, so tests can compare decoded data.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

CIFAR_LABELS = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def make_cifar10(root: Path, per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    """Five training batches of ``per_batch`` images and a test batch, as the official python version."""
    g = torch.Generator().manual_seed(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (n,), generator=g)
        label = b"testing batch 1 of 1" if name == "test_batch" else f"training batch {name[-1]} of 5".encode("ascii")
        entry = {
            "batch_label": label,
            "labels": y.tolist(),
            "data": x.reshape(n, 3072).numpy(),
            "filenames": [f"mini_{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
        xs.append(x)
        ys.append(y)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"num_cases_per_batch": per_batch, "label_names": CIFAR_LABELS, "num_vis": 3072}, fh)
    (folder / "readme.html").write_text("<html>miniature</html>\n")
    return {"train_x": torch.cat(xs[:5]), "train_y": torch.cat(ys[:5]), "test_x": xs[5], "test_y": ys[5]}


def _write_jpeg(path: Path, img: torch.Tensor) -> None:
    from PIL import Image

    arr = img.permute(1, 2, 0).numpy()
    mode = "L" if img.shape[0] == 1 else "RGB"
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode).save(path, format="JPEG", quality=95)


def _smooth_image(g: torch.Generator, channels: int) -> torch.Tensor:
    """A 64x64 image of smooth colour blobs (JPEG keeps those nearly intact, unlike white noise)."""
    low = torch.randint(0, 256, (1, channels, 4, 4), generator=g).float()
    return torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)[0].to(torch.uint8)


def make_tiny_imagenet(
    root: Path, n_classes: int = 4, train_per_class: int = 25, val_per_class: int = 5, seed: int = 0, grey_every=7
) -> dict:
    """``root/tiny-imagenet-200`` with ``n_classes`` wnids; every ``grey_every``-th image is greyscale."""
    g = torch.Generator().manual_seed(seed)
    folder = Path(root) / "tiny-imagenet-200"
    # deliberately unsorted in wnids.txt: labels follow the sorted order
    wnids = [f"n{(37 * i + 50) % 97:08d}" for i in range(n_classes)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(w + "\n" for w in wnids))
    (folder / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)))
    count = 0
    written = {"train": [], "val": []}
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True, exist_ok=True)
        boxes = []
        for i in range(train_per_class):
            count += 1
            img = _smooth_image(g, 1 if count % grey_every == 0 else 3)
            name = f"{wnid}_{i}.JPEG"
            _write_jpeg(images / name, img)
            boxes.append(f"{name}\t0\t0\t63\t63\n")
            written["train"].append((images / name, wnid, img))
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    order = torch.randperm(n_classes * val_per_class, generator=g).tolist()
    for k, j in enumerate(order):
        wnid = wnids[j % n_classes]
        count += 1
        img = _smooth_image(g, 1 if count % grey_every == 0 else 3)
        name = f"val_{k}.JPEG"
        _write_jpeg(folder / "val" / "images" / name, img)
        lines.append(f"{name}\t{wnid}\t1\t2\t60\t61\n")
        written["val"].append((folder / "val" / "images" / name, wnid, img))
    (folder / "val" / "val_annotations.txt").write_text("".join(lines))
    (folder / "test" / "images").mkdir(parents=True, exist_ok=True)
    _write_jpeg(folder / "test" / "images" / "test_0.JPEG", _smooth_image(g, 3))
    return {"folder": folder, "wnids": wnids, **written}
