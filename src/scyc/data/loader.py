"""Device-resident batching: shuffle, augment and normalise where the data lives.

On CUDA this is the airbench approach: the uint8 data set sits on the GPU, each epoch draws one
permutation there, and crops, flips and normalisation are a handful of batched tensor ops. On the CPU
the same code runs on CPU tensors (indexing copies only the batch). There is exactly one definition of
the augmentation (``augment_batch``), used by every path.

When a data set does not fit on the device (``build_data`` keeps it in pinned CPU memory then), the
loader is *staged*: the permutation and every random draw still come from the same generator on the
target device, only the uint8 batch is gathered on the CPU and copied over asynchronously
(``non_blocking``) before being augmented there, so both placements give identical batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from scyc.data.base import Augment


def augment_batch(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``aug.crop_padding`` on each side) and horizontal flip of a uint8 batch.

    Equivalent to torchvision's ``RandomCrop(size, padding=p)`` + ``RandomHorizontalFlip()`` applied to
    each image independently (the padding value 0 is applied to raw pixels, as torchvision does).
    """
    n, _, h, w = x.shape
    dev = x.device
    if aug.crop_padding > 0:
        p = aug.crop_padding
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), device=dev, generator=generator)
        dx = torch.randint(0, 2 * p + 1, (n,), device=dev, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]
        batch = torch.arange(n, device=dev)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=dev)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if aug.flip:
        flip = torch.rand(n, device=dev, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class TensorLoader:
    """Iterates (images, labels) batches over uint8 tensors that already sit on the target device."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        drop_last: bool = False,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        # Never drop everything: with fewer examples than one batch, keep the partial batch.
        self.drop_last = drop_last and len(x) >= batch_size
        self.augment = augment if augment is not None and augment.active else None
        self.generator = generator
        self.channels_last = channels_last
        self.device = torch.device(device) if device is not None else x.device
        # staged: data in (pinned) CPU memory, batches computed on another device
        self.staged = self.device != x.device
        shape = (1, len(mean), 1, 1)
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(shape) * 255
        self.inv_std = 1.0 / (torch.tensor(std, device=self.device, dtype=torch.float32).view(shape) * 255)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.x)

    def normalise(self, xb: torch.Tensor) -> torch.Tensor:
        out = (xb.float() - self.mean) * self.inv_std
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self.generator)
            if self.staged:
                order = order.to(self.x.device)  # one sync per epoch
        else:
            order = None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx]
            if self.staged:
                xb, yb = self._to_device(xb), self._to_device(yb)
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, self.generator)
            yield self.normalise(xb), yb
