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


def augment_batch(
    x: torch.Tensor, aug: Augment, generator: torch.Generator, *, draw: int | None = None, offset: int = 0
) -> torch.Tensor:
    """Random crop (zero padding ``aug.crop_padding`` on each side) and horizontal flip of a uint8 batch.

    Equivalent to torchvision's ``RandomCrop(size, padding=p)`` + ``RandomHorizontalFlip()`` applied to
    each image independently (the padding value 0 is applied to raw pixels, as torchvision does).

    ``x`` may be one rank's slice of a larger (global) batch: then ``draw`` is the global batch's size
    and ``offset`` where the slice starts. The random parameters are drawn for the whole global batch
    (so every rank's generator advances identically) and the slice's rows are used, which makes the
    union of the ranks' augmented slices equal to the single-process augmented batch.
    """
    n, _, h, w = x.shape
    dev = x.device
    draw = n if draw is None else draw
    rows_of = slice(offset, offset + n)
    if aug.crop_padding > 0:
        p = aug.crop_padding
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (draw,), device=dev, generator=generator)[rows_of]
        dx = torch.randint(0, 2 * p + 1, (draw,), device=dev, generator=generator)[rows_of]
        rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]
        batch = torch.arange(n, device=dev)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=dev)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if aug.flip:
        flip = torch.rand(draw, device=dev, generator=generator)[rows_of] < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def shard_bounds(m: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s rows [start, stop) of a global batch of ``m`` rows (``torch.tensor_split`` order)."""
    q, r = divmod(m, world_size)
    start = rank * q + min(rank, r)
    return start, start + q + (1 if rank < r else 0)


class TensorLoader:
    """Iterates (images, labels) batches over uint8 tensors that already sit on the target device.

    Data-parallel runs pass ``rank`` and ``world_size``: ``batch_size`` is then the *global* batch. Every
    rank draws the same per-epoch permutation (same generator seed) and takes its contiguous part of each
    global batch (``torch.tensor_split`` order: rank r gets rows ``[r*b/W, (r+1)*b/W)`` of a full batch),
    so the union of the ranks' batches is the single-process batch, augmentation included. ``len()`` is
    the number of global batches, the same on every rank.
    """

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
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        if world_size > 1 and drop_last:
            if batch_size % world_size:
                raise ValueError(f"global batch size {batch_size} is not divisible by the world size {world_size}")
            if len(x) < batch_size:
                raise ValueError(
                    f"{len(x)} examples are fewer than one global batch of {batch_size}: with {world_size} ranks "
                    "every rank needs a full share of every batch"
                )
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

    def _shard(self, m: int) -> tuple[int, int]:
        return shard_bounds(m, self.rank, self.world_size)

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per pass (all of them in a single-process run)."""
        n = len(self.x)
        if self.world_size == 1:
            return len(self) * self.batch_size if self.drop_last else n
        sizes = [min(self.batch_size, n - b * self.batch_size) for b in range(len(self))]
        return sum(stop - start for start, stop in map(self._shard, sizes))

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
            start, stop = (0, hi - lo) if self.world_size == 1 else self._shard(hi - lo)
            if order is None:
                xb, yb = self.x[lo + start : lo + stop], self.y[lo + start : lo + stop]
            else:
                idx = order[lo + start : lo + stop]
                xb, yb = self.x[idx], self.y[idx]
            if self.staged:
                xb, yb = self._to_device(xb), self._to_device(yb)
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, self.generator, draw=hi - lo, offset=start)
            if stop == start:
                continue  # a rank's empty share of a short last (evaluation) batch
            yield self.normalise(xb), yb
