"""Fashion-MNIST decoding and lookup, the validation split, the tensor loader and its augmentation."""

from __future__ import annotations

import errno
import gzip
import struct

import pytest
import torch
from options import dataset_cfg

from scyc.data import Augment, RawData, TensorLoader, build_data, split_train_val
from scyc.data.base import find_or_fetch
from scyc.data.fashion_mnist import FILES, read_idx
from scyc.data.loader import augment_batch
from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import NoSpaceLeft, atomic_write


def write_idx(path, array: torch.Tensor, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.to(torch.uint8).numpy().tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_fake_fmnist(root, n_train=120, n_test=30, compress=True):
    g = torch.Generator().manual_seed(0)
    arrays = {
        "train_x": torch.randint(0, 256, (n_train, 28, 28), generator=g),
        "train_y": torch.arange(n_train) % 10,
        "test_x": torch.randint(0, 256, (n_test, 28, 28), generator=g),
        "test_y": torch.arange(n_test) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, name in FILES.items():
        write_idx(root / name, arrays[key], compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    arrays = make_fake_fmnist(tmp_path, compress=compress)
    name = FILES["train_x"] + (".gz" if compress else "")
    assert torch.equal(read_idx(tmp_path / name), arrays["train_x"].to(torch.uint8))


def test_truncated_idx_is_refused(tmp_path):
    make_fake_fmnist(tmp_path, compress=False)
    path = tmp_path / FILES["train_x"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(path)


def test_explicit_root_is_used_alone(tmp_path):
    arrays = make_fake_fmnist(tmp_path / "fm")
    data = build_data(
        dataset_cfg("fashion_mnist", root=str(tmp_path / "fm"), download=False, val_size=20),
        torch.device("cpu"),
        "data",
    )
    assert data.train[0].shape == (100, 1, 28, 28) and data.val[0].shape == (20, 1, 28, 28)
    assert data.test[0].shape == (30, 1, 28, 28)
    assert torch.equal(data.test[1], arrays["test_y"])
    with pytest.raises(ConfigError, match=str(tmp_path / "nothing")):
        build_data(
            dataset_cfg("fashion_mnist", root=str(tmp_path / "nothing"), download=False), torch.device("cpu"), "data"
        )


def test_augmentation_is_every_data_sets_key(tmp_path):
    """build_data, not the factory, applies dataset.crop_padding / dataset.flip: unset, none; set, any data set."""
    make_fake_fmnist(tmp_path / "fm")
    cfg = dataset_cfg("fashion_mnist", root=str(tmp_path / "fm"), download=False, val_size=20)
    assert not build_data(cfg, torch.device("cpu"), "data").raw.augment.active
    aug = build_data(cfg | {"crop_padding": 2, "flip": True}, torch.device("cpu"), "data").raw.augment
    assert (aug.crop_padding, aug.flip) == (2, True)
    with pytest.raises(ConfigError, match="dataset.crop_padding=-1"):
        build_data(cfg | {"crop_padding": -1}, torch.device("cpu"), "data")


def tiny_raw(n=50):
    x = torch.arange(n * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 4, 4)
    return RawData(
        train_x=x,
        train_y=torch.arange(n),
        test_x=x[:5],
        test_y=torch.arange(5),
        num_classes=n,
        mean=(0.5,),
        std=(0.25,),
    )


def test_validation_split_is_disjoint_seeded_and_subset_is_a_prefix():
    raw = tiny_raw()
    (tx, ty), (vx, vy) = split_train_val(raw, 10, split_seed=3, train_subset=None)
    assert set(ty.tolist()).isdisjoint(vy.tolist()) and len(ty) + len(vy) == 50
    (tx2, ty2), (vx2, vy2) = split_train_val(raw, 10, split_seed=3, train_subset=7)
    assert torch.equal(vy, vy2) and torch.equal(ty2, ty[:7])
    (_, _), (_, vy3) = split_train_val(raw, 10, split_seed=4, train_subset=None)
    assert not torch.equal(vy, vy3)
    with pytest.raises(ConfigError, match="val_size"):
        split_train_val(raw, 50, 0, None)


def test_loader_covers_every_example_once_per_epoch_and_normalises():
    raw = tiny_raw(37)
    loader = TensorLoader(
        raw.train_x, raw.train_y, 8, mean=(0.5,), std=(0.25,), shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert len(loader) == 5
    ys = torch.cat([y for _, y in loader])
    assert sorted(ys.tolist()) == list(range(37))
    xb, yb = next(iter(TensorLoader(raw.train_x, raw.train_y, 4, mean=(0.5,), std=(0.25,))))
    assert torch.allclose(xb, (raw.train_x[:4].float() / 255 - 0.5) / 0.25, atol=1e-5)
    dropped = TensorLoader(raw.train_x, raw.train_y, 8, mean=(0.5,), std=(0.25,), drop_last=True)
    assert len(dropped) == 4 and sum(len(y) for _, y in dropped) == 32


def test_augmentation_matches_per_image_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), generator=g, dtype=torch.uint8)
    aug = Augment(crop_padding=2, flip=True)
    out = augment_batch(x, aug, torch.Generator().manual_seed(5))
    # replay the same random draws and build each image by hand
    g2 = torch.Generator().manual_seed(5)
    dy = torch.randint(0, 5, (16,), generator=g2)
    dx = torch.randint(0, 5, (16,), generator=g2)
    flip = torch.rand(16, generator=g2) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        img = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        if flip[i]:
            img = img.flip(2)
        assert torch.equal(out[i], img)


def test_missing_fashion_mnist_says_how_to_fetch_it_and_runs_no_apt(tmp_path, monkeypatch):
    from scyc.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail(f"the data set ran {a}"))
    with pytest.raises(ConfigError, match=r"run `make data` \(`python scripts/fetch_data.py fashion_mnist"):
        build_data(dataset_cfg("fashion_mnist", download=False), torch.device("cpu"), data_dir=str(tmp_path))


def test_failed_download_says_why_and_removes_the_empty_folders_it_made(tmp_path):
    def fetch(dest):
        dest.mkdir(parents=True)  # as torchvision does before it downloads
        raise OSError("Connection refused")

    dest = tmp_path / "a" / "b"
    with pytest.raises(ConfigError, match=rf"download of X into {dest} failed \(OSError: Connection refused\); gone"):
        find_or_fetch(lambda: None, True, fetch, dest, "X", "gone")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_named_and_the_old_file_kept(tmp_path):
    target = tmp_path / "f.pt"
    target.write_bytes(b"old")

    def write(fh):  # torch.save reports a failed write as a RuntimeError raised while handling the OSError
        fh.write(b"new")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("unexpected pos")  # noqa: B904  (implicitly chained, as in torch.save)

    with pytest.raises(NoSpaceLeft, match=rf"no space left in {tmp_path} \(writing f.pt"):
        atomic_write(target, write)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.pt"]
