"""What every data set hands to the training loop: whole splits as uint8 tensors.

All three data sets of the paper (and Fashion-MNIST) fit in memory, so a data set is decoded once
into ``uint8`` tensors of shape (N, C, H, W). The loader (``scyc.data.loader``) then batches,
shuffles, augments and normalises on whichever device those tensors live on, without DataLoader
workers in the hot loop.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from scyc.foundations.registry import ConfigError, Registry

T = TypeVar("T")

DATASETS: Registry[RawData] = Registry("dataset")


def find_or_fetch(
    find: Callable[[], T | None], download: bool, fetch: Callable[[Path], object], dest: Path, name: str, missing: str
) -> T:
    """``find()``; if that finds nothing and ``download`` is set, ``fetch(dest)`` (a download, torchvision's as a
    rule) and ``find()`` again; if still nothing, a ConfigError saying ``missing``. A failed download is a
    ConfigError saying so and why, before ``missing``; the directories it created (still empty) are removed."""
    found = find()
    if found is None and download:
        created = [p for p in (dest, *dest.parents) if not p.exists()]  # deepest first
        try:
            fetch(dest)
        except Exception as exc:  # no network, proxy refusal, bad archive ...
            for path in created:
                with contextlib.suppress(OSError):
                    path.rmdir()
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise ConfigError(f"the download of {name} into {dest} failed ({why}); {missing}") from exc
        found = find()
    if found is None:
        raise ConfigError(missing)
    return found


@dataclass
class Augment:
    """Training augmentation, one definition for every device: random crop with zero padding, flip."""

    crop_padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip

    @classmethod
    def checked(cls, crop_padding: int, flip: bool) -> Augment:
        """From the ``dataset.crop_padding`` / ``dataset.flip`` keys, validated."""
        if not isinstance(crop_padding, int) or crop_padding < 0:
            raise ConfigError(f"dataset.crop_padding={crop_padding} must be an integer >= 0")
        return cls(crop_padding=crop_padding, flip=bool(flip))


@dataclass
class RawData:
    """A data set as decoded tensors: images uint8 (N, C, H, W), labels int64 (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment = field(default_factory=Augment)
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("train_x", "test_x"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(f"{name} must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")
        if len(self.train_x) != len(self.train_y) or len(self.test_x) != len(self.test_y):
            raise ValueError("images and labels differ in length")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:  # the model is built for the training images
            raise ConfigError(
                f"{self.source or 'the data set'}: training images are {'x'.join(map(str, self.train_x.shape[1:]))}, "
                f"test images {'x'.join(map(str, self.test_x.shape[1:]))}: a data set's images must have one size"
            )

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train_x.shape[2:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """Sizes and a SHA-256 of every array (about 1 GB/s: 0.05 s for Fashion-MNIST), recorded in checkpoints:
        resuming on other data is refused (``resume_allow_data_change``)."""
        digest = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            digest.update(f"{tuple(t.shape)} {t.dtype};".encode())
            digest.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
        return f"{len(self.train_x)} train / {len(self.test_x)} test examples, sha256 {digest.hexdigest()[:16]}"
