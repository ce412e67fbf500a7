"""The device-resident augmentation equals torchvision's CPU transforms, and the staged path equals the resident one."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from scyc.data import Augment, TensorLoader

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def reference_batches(x, y, batch_size, aug, seed, shuffle):
    """Replay the loader's random draws (permutation, then per batch: row offsets, column offsets, flips)
    through torchvision's per-image transforms on the CPU."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    normalise = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(MEAN), list(STD))])
    p = aug.crop_padding
    for lo in range(0, n - batch_size + 1, batch_size):
        idx = order[lo : lo + batch_size]
        dy = torch.randint(0, 2 * p + 1, (batch_size,), generator=g)
        dx = torch.randint(0, 2 * p + 1, (batch_size,), generator=g)
        flips = torch.rand(batch_size, generator=g) < 0.5
        imgs = []
        for i, j in enumerate(idx.tolist()):
            img = TF.pad(x[j], [p])  # torchvision's RandomCrop(size, padding=p): zero padding, then crop
            img = TF.crop(img, int(dy[i]), int(dx[i]), h, w)
            if flips[i]:
                img = TF.horizontal_flip(img)
            imgs.append(normalise(img))
        yield torch.stack(imgs), y[idx]


@pytest.mark.parametrize("padding", [4, 8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_device_augmentation_equals_torchvision_transforms(padding, channels_last):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 3, 16, 12), generator=g, dtype=torch.uint8)
    y = torch.arange(40)
    aug = Augment(crop_padding=padding, flip=True)
    loader = TensorLoader(
        x, y, 8, mean=MEAN, std=STD, shuffle=True, drop_last=True, augment=aug,
        generator=torch.Generator().manual_seed(7), channels_last=channels_last,
    )  # fmt: skip
    ours = list(loader)
    ref = list(reference_batches(x, y, 8, aug, seed=7, shuffle=True))
    assert len(ours) == len(ref) == 5
    flipped_any = False
    for (xo, yo), (xr, yr) in zip(ours, ref):
        assert torch.equal(yo, yr)
        assert xo.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.testing.assert_close(xo, xr, rtol=0, atol=1e-5)
        flipped_any |= not torch.allclose(xo, xo.flip(3))
    assert flipped_any


def test_staged_loader_gives_the_resident_loaders_batches():
    """Data in CPU memory, batches for another device: same permutation, crops, flips and values."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (30, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(30)
    kw = dict(mean=MEAN, std=STD, shuffle=True, drop_last=True, augment=Augment(crop_padding=2, flip=True))
    resident = list(TensorLoader(x, y, 7, generator=torch.Generator().manual_seed(3), **kw))
    staged_loader = TensorLoader(x, y, 7, generator=torch.Generator().manual_seed(3), device="cpu", **kw)
    staged_loader.staged = True  # on a CUDA machine this is set when the data stays in pinned CPU memory
    staged = list(staged_loader)
    assert len(staged) == len(resident) == 4
    for (a, ya), (b, yb) in zip(resident, staged):
        assert torch.equal(ya, yb) and torch.equal(a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loader_matches_cpu_semantics():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(64)
    kw = dict(mean=MEAN, std=STD, shuffle=True, drop_last=True, augment=Augment(crop_padding=4, flip=True))
    dev = torch.device("cuda")
    resident = TensorLoader(x.to(dev), y.to(dev), 16, generator=torch.Generator(dev).manual_seed(0), **kw)
    staged = TensorLoader(x, y, 16, generator=torch.Generator(dev).manual_seed(0), device=dev, channels_last=True, **kw)
    assert staged.staged
    for (a, ya), (b, yb) in zip(resident, staged):
        assert a.device.type == b.device.type == "cuda"
        assert torch.equal(ya, yb) and torch.equal(a, b)
        assert b.is_contiguous(memory_format=torch.channels_last)
