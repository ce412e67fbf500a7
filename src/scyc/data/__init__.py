"""Data sets: a registry of decoders, validation split, subsetting and device-resident loaders."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch

from scyc.data.base import DATASETS, Augment, RawData
from scyc.data.loader import TensorLoader
from scyc.foundations.registry import ConfigError, import_submodules

import_submodules("scyc.data")

log = logging.getLogger(__name__)

__all__ = ["DATASETS", "Augment", "RawData", "TensorLoader", "DataSplits", "build_data"]

# Keys build_data uses for every data set (the split and the training augmentation); the rest, with the run's
# data_dir, go to the registered factory, which only reads the files.
COMMON_KEYS = ("name", "val_size", "train_subset", "test_subset", "split_seed", "crop_padding", "flip")


@dataclass
class DataSplits:
    """Train / validation / test tensors on the target device. Validation is held out of train."""

    raw: RawData
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    device: torch.device | None = None  # where batches are computed (the tensors' device unless staged)
    channels_last: bool = False  # default memory format of the batches every loader hands out

    @property
    def num_classes(self) -> int:
        return self.raw.num_classes

    @property
    def in_channels(self) -> int:
        return self.raw.in_channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.raw.image_size

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        train: bool = False,
        generator=None,
        channels_last=None,
        rank: int = 0,
        world_size: int = 1,
    ):
        """A ``TensorLoader`` over one split; ``rank``/``world_size`` give this rank's share of each global batch."""
        x, y = getattr(self, split)
        return TensorLoader(
            x,
            y,
            batch_size,
            mean=self.raw.mean,
            std=self.raw.std,
            shuffle=train,
            drop_last=train,
            augment=self.raw.augment if train else None,
            generator=generator,
            channels_last=self.channels_last if channels_last is None else channels_last,
            device=self.device,
            rank=rank,
            world_size=world_size,
        )


def split_train_val(raw: RawData, val_size: int, split_seed: int, train_subset: int | None):
    """Hold ``val_size`` random training examples out (seeded), then keep the first ``train_subset``."""
    n = len(raw.train_x)
    if not 0 <= val_size < n:
        raise ConfigError(f"dataset.val_size={val_size} must be in [0, {n}) for this data set ({n} training examples)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:].sort().values
    if train_subset is not None:
        if train_subset < 1:
            raise ConfigError(f"dataset.train_subset={train_subset} must be >= 1 or null")
        train_idx = train_idx[:train_subset]
    return (raw.train_x[train_idx], raw.train_y[train_idx]), (raw.train_x[val_idx], raw.train_y[val_idx])


def test_split(raw: RawData, test_subset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set, or its first ``test_subset`` examples (quick runs: every epoch evaluates on it)."""
    n = len(raw.test_x)
    if test_subset is None:
        return raw.test_x, raw.test_y
    if isinstance(test_subset, bool) or not isinstance(test_subset, int) or not 1 <= test_subset <= n:
        raise ConfigError(f"dataset.test_subset={test_subset} is not allowed: it must be null (the whole test set) "
                          f"or an integer in [1, {n}] for this data set")  # fmt: skip
    return raw.test_x[:test_subset], raw.test_y[:test_subset]


def build_data(cfg: dict[str, Any], device: torch.device, data_dir: str) -> DataSplits:
    cfg = dict(cfg)
    name = cfg.get("name")
    if name is None:
        raise ConfigError("dataset.name is missing")
    params = {k: v for k, v in cfg.items() if k not in COMMON_KEYS}
    params.setdefault("data_dir", data_dir)  # every data-set factory takes the run's data folder
    augment = Augment.checked(cfg.get("crop_padding") or 0, bool(cfg.get("flip")))
    raw = dataclasses.replace(DATASETS.build(name, params, key="dataset"), augment=augment)
    train, val = split_train_val(raw, int(cfg["val_size"]), int(cfg["split_seed"]), cfg.get("train_subset"))
    test = test_split(raw, cfg.get("test_subset"))
    if fits_on_device(raw, device):
        to = lambda t: t.to(device, non_blocking=True)  # noqa: E731
    else:
        log.warning("%s does not fit in %s memory: keeping it in pinned CPU memory (staged batches)", name, device)
        to = lambda t: t.contiguous().pin_memory()  # noqa: E731
    return DataSplits(
        raw=raw,
        train=(to(train[0]), to(train[1])),
        val=(to(val[0]), to(val[1])),
        test=(to(test[0]), to(test[1])),
        device=device,
    )


def fits_on_device(raw: RawData, device: torch.device, fraction: float = 0.25) -> bool:
    """True off CUDA, and on CUDA when the uint8 data takes at most ``fraction`` of the free memory
    (the rest is left to the model, its activations and the optimiser). All the paper's data sets fit:
    CIFAR-10 is 184 MB, Tiny-ImageNet-200 1.35 GB."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = sum(t.numel() * t.element_size() for t in (raw.train_x, raw.train_y, raw.test_x, raw.test_y))
    return nbytes <= fraction * free
