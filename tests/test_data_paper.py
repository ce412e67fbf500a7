"""CIFAR-10 and Tiny-ImageNet-200 read from miniatures in their official layouts (tests/miniatures.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from miniatures import make_cifar10, make_tiny_imagenet

from scyc.data import build_data
from scyc.data import imagenet200 as tin
from scyc.foundations.registry import ConfigError

CPU = torch.device("cpu")
CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def yaml_defaults(name: str) -> dict:
    """conf/dataset/<name>.yaml, the one home of a data set's defaults (its augmentation among them)."""
    from options import option_yaml

    return option_yaml("dataset", name)


def cifar_cfg(root, **kw):
    return yaml_defaults("cifar10") | {
        "root": str(root),
        "download": False,
        "verify_checksums": False,
        "val_size": 10,
        **kw,
    }


@pytest.fixture(scope="module")
def mini_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, make_cifar10(root, per_batch=12, n_test=9)


@pytest.fixture(scope="module")
def mini_tin(tmp_path_factory):
    root = tmp_path_factory.mktemp("tin")
    return root, make_tiny_imagenet(root, n_classes=3, train_per_class=6, val_per_class=3)


def test_cifar10_decodes_the_official_pickles_exactly(mini_cifar):
    root, written = mini_cifar
    data = build_data(cifar_cfg(root), CPU, "data")
    raw = data.raw
    assert raw.train_x.shape == (60, 3, 32, 32) and raw.train_x.dtype == torch.uint8
    assert torch.equal(raw.train_x, written["train_x"]) and torch.equal(raw.train_y, written["train_y"])
    assert torch.equal(raw.test_x, written["test_x"]) and torch.equal(raw.test_y, written["test_y"])
    assert data.train[0].shape == (50, 3, 32, 32) and data.val[0].shape == (10, 3, 32, 32)
    assert raw.num_classes == 10 and raw.augment.crop_padding == 4 and raw.augment.flip
    # root may also name cifar-10-batches-py itself
    again = build_data(cifar_cfg(root / "cifar-10-batches-py"), CPU, "data")
    assert torch.equal(again.raw.test_x, written["test_x"])


def test_cifar10_checksums_are_verified_by_default(mini_cifar):
    root, _ = mini_cifar
    with pytest.raises(ConfigError, match=r"data_batch_1: MD5 .* official c99cafc1.*verify_checksums=false"):
        build_data(cifar_cfg(root, verify_checksums=True), CPU, "data")


def test_cifar10_missing_and_malformed_files_are_named(tmp_path, mini_cifar):
    with pytest.raises(ConfigError, match=rf"no cifar-10-batches-py/batches.meta in {tmp_path}.*dataset.download=true"):
        build_data(cifar_cfg(tmp_path), CPU, "data")
    make_cifar10(tmp_path, per_batch=2, n_test=2)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="incomplete: missing data_batch_3"):
        build_data(cifar_cfg(tmp_path), CPU, "data")
    make_cifar10(tmp_path, per_batch=2, n_test=2)
    with open(folder / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": torch.zeros(2, 100, dtype=torch.uint8).numpy(), b"labels": [0, 1]}, fh)
    with pytest.raises(ConfigError, match=r"data_batch_2 is malformed: data is torch.uint8 \(2, 100\)"):
        build_data(cifar_cfg(tmp_path), CPU, "data")
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="data_batch_2 is not a CIFAR-10 python batch"):
        build_data(cifar_cfg(tmp_path), CPU, "data")


def tin_cfg(root, **kw):
    return yaml_defaults("imagenet200") | {"root": str(root), "val_size": 3, **kw}


def test_tiny_imagenet_labels_follow_sorted_wnids_and_val_annotations(mini_tin):
    root, written = mini_tin
    raw = build_data(tin_cfg(root), CPU, "data").raw
    wnids = sorted(written["wnids"])
    assert written["wnids"] != wnids  # the miniature's wnids.txt is not sorted: the test means something
    assert raw.num_classes == 3 and raw.train_x.shape == (18, 3, 64, 64) and raw.test_x.shape == (9, 3, 64, 64)
    assert raw.train_x.dtype == torch.uint8 and raw.augment.crop_padding == 8 and raw.augment.flip
    # train: class folders in sorted wnid order, files sorted inside each
    expected_train = sorted(written["train"], key=lambda t: (wnids.index(t[1]), t[0].name))
    assert raw.train_y.tolist() == [wnids.index(w) for _, w, _ in expected_train]
    # test = val/, labelled through val_annotations.txt in its line order (shuffled classes)
    assert raw.test_y.tolist() == [wnids.index(w) for _, w, _ in written["val"]]
    assert len(set(raw.test_y.tolist())) == 3
    for got, (_, _, img) in zip(raw.test_x, written["val"]):
        ref = img.expand(3, -1, -1).float()  # greyscale JPEGs come back as three equal channels
        assert (got.float() - ref).abs().mean() < 4.0  # JPEG at quality 95 is nearly lossless on smooth images
    grey = [i for i, (_, _, img) in enumerate(expected_train) if img.shape[0] == 1]
    assert grey and all(torch.equal(raw.train_x[i][0], raw.train_x[i][1]) for i in grey)


def test_tiny_imagenet_root_may_be_the_folder_or_its_parent_and_data_dir_is_searched(mini_tin):
    root, _ = mini_tin
    a = build_data(tin_cfg(root), CPU, "data").raw
    b = build_data(tin_cfg(root / "tiny-imagenet-200"), CPU, "data").raw
    c = build_data(yaml_defaults("imagenet200") | {"val_size": 3}, CPU, data_dir=str(root)).raw
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, c.test_y)


def test_tiny_imagenet_cache_is_reused_and_invalidated_when_files_change(tmp_path, monkeypatch):
    written = make_tiny_imagenet(tmp_path, n_classes=2, train_per_class=3, val_per_class=2)
    first = build_data(tin_cfg(tmp_path), CPU, "data").raw
    caches = list((written["folder"] / ".scyc-cache").glob("decoded-*.pt"))
    assert len(caches) == 1
    calls = []
    real = tin.decode_all
    monkeypatch.setattr(tin, "decode_all", lambda files: calls.append(len(files)) or real(files))
    second = build_data(tin_cfg(tmp_path), CPU, "data").raw
    assert calls == [] and torch.equal(first.train_x, second.train_x)
    path, _, _ = written["train"][0]
    other, _, _ = written["train"][1]
    path.write_bytes(other.read_bytes())  # a file changed: content, size and mtime
    os.utime(path, ns=(1, 1))
    third = build_data(tin_cfg(tmp_path), CPU, "data").raw
    assert calls == [10] and torch.equal(third.train_x[0], third.train_x[1])
    assert len(list((written["folder"] / ".scyc-cache").glob("decoded-*.pt"))) == 1  # the stale one is gone
    assert build_data(tin_cfg(tmp_path, cache=False), CPU, "data").raw.train_x.shape == (6, 3, 64, 64)


def test_tiny_imagenet_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=rf"no wnids.txt in {tmp_path}.*scripts/fetch_data.py imagenet200"):
        build_data(tin_cfg(tmp_path), CPU, "data")
    written = make_tiny_imagenet(tmp_path, n_classes=2, train_per_class=2, val_per_class=1)
    ann = written["folder"] / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(ConfigError, match=r"val_annotations.txt:3: wnid 'n99999999' is not in .*wnids.txt"):
        build_data(tin_cfg(tmp_path), CPU, "data")
    ann.unlink()
    with pytest.raises(ConfigError, match="val_annotations.txt is missing; remove that folder and fetch it again"):
        build_data(tin_cfg(tmp_path), CPU, "data")
    written = make_tiny_imagenet(tmp_path, n_classes=2, train_per_class=2, val_per_class=1)
    bad = written["train"][0][0]
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match=f"{bad} is not a readable JPEG"):
        build_data(tin_cfg(tmp_path, cache=False), CPU, "data")
    with pytest.raises(ConfigError, match="dataset.crop_padding=-1"):
        build_data(tin_cfg(tmp_path, crop_padding=-1), CPU, "data")


def test_tiny_imagenet_failed_download_does_not_suggest_download_again(tmp_path, monkeypatch):
    def offline(dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(tin, "fetch", offline)
    with pytest.raises(ConfigError, match="download of Tiny-ImageNet-200 .* failed .*network unreachable") as err:
        build_data(tin_cfg(tmp_path / "tin", download=True), CPU, "data")
    assert "dataset.download=true" not in str(err.value) and "scripts/fetch_data.py imagenet200" in str(err.value)
    assert not (tmp_path / "tin").exists()  # the refused call leaves nothing behind
