"""CUDA-only tests (marker ``cuda``: skipped without a CUDA device; scripts/device_check.sh runs them)."""

from __future__ import annotations

import gc
import warnings

import pandas as pd
import pytest
import torch
from options import dataset_cfg

from scyc.lifecycle.training import CudaGraphStep, make_optimizer, train_epoch
from scyc.models import create_model
from scyc.pruning.masks import MaskSet

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def run_epochs(graphs: bool, amp_dtype, epochs: int = 2, steps: int = 8):
    """Two epochs of masked ResNet-20 steps (LR changing every step, a short last batch) from a fixed start."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=3, image_size=(32, 32), width=16, shortcut="A")
    model = model.cuda().to(memory_format=torch.channels_last)
    masks = MaskSet.from_model(model)
    g = torch.Generator(device="cuda").manual_seed(1)
    masks.set_([torch.rand(m.shape, device="cuda", generator=g) > 0.5 for m in masks.masks])
    masks.apply_()
    opt = make_optimizer(model, 0.05, 0.9, 5e-4, False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / (epochs * (steps + 1)))
    sizes = [64] * steps + [24]
    batches = [
        (torch.randn(n, 3, 32, 32, device="cuda", generator=g).contiguous(memory_format=torch.channels_last),
         torch.randint(0, 10, (n,), device="cuda", generator=g))
        for n in sizes
    ]  # fmt: skip
    results = [
        train_epoch(model, batches, opt, sched, masks, amp_dtype=amp_dtype, cuda_graphs=graphs) for _ in range(epochs)
    ]
    captured = getattr(opt, "_scyc_graph", None)
    return results, model, masks, captured


@pytest.mark.parametrize("amp_dtype, rtol", [(None, 1e-3), (torch.bfloat16, 3e-2)])
def test_cuda_graph_step_matches_the_eager_step(amp_dtype, rtol):
    eager, m_eager, masks_eager, none = run_epochs(False, amp_dtype)
    graphed, m_graph, masks_graph, step = run_epochs(True, amp_dtype)
    assert none is None and step is not None and step.graph is not None  # captured after the warm-up
    for a, b in zip(eager, graphed):
        assert a.lrs == b.lrs and a.examples == b.examples
        la, lb = torch.stack(a.step_losses).float().cpu(), torch.stack(b.step_losses).float().cpu()
        torch.testing.assert_close(lb, la, rtol=rtol, atol=rtol)
        assert b.loss == pytest.approx(a.loss, rel=rtol) and b.accuracy == pytest.approx(a.accuracy, abs=0.05)
    for ma, mb in zip(masks_eager.masks, masks_graph.masks):
        assert torch.equal(ma, mb)
    for p, m in zip(masks_graph.params, masks_graph.masks):
        assert torch.all(p[m == 0] == 0)  # pruned weights stay exactly zero through the replayed steps
    for pa, pb in zip(m_eager.parameters(), m_graph.parameters()):
        torch.testing.assert_close(pb, pa, rtol=10 * rtol, atol=10 * rtol)


def test_train_run_with_cuda_graphs(tmp_path):
    from conftest import run_train
    from miniatures import make_cifar10

    make_cifar10(tmp_path / "mini", per_batch=60, n_test=40)  # 300 training images, 250 after the 50 held out
    data = [f"dataset.root={tmp_path / 'mini'}", "dataset.download=false", "dataset.verify_checksums=false"]
    for graphs in ("true", "false"):
        run_dir = tmp_path / graphs
        run_train(
            run_dir, "device=cuda", "model=resnet20", "dataset=cifar10", *data, "dataset.val_size=50",
            "train.batch_size=32", "pruner.rounds=2", "train.epochs=2", f"train.cuda_graphs={graphs}",
        )  # fmt: skip
    graphed, eager = (pd.read_csv(tmp_path / g / "results.csv") for g in ("true", "false"))
    assert graphed["sparsity"].tolist() == eager["sparsity"].tolist()
    assert graphed["train_loss"].tolist() == pytest.approx(eager["train_loss"].tolist(), rel=5e-2)  # bf16


# ------------------------------------------------------------------ issue 24: the GPU path on first contact
def mini_cifar(tmp_path):
    from miniatures import make_cifar10

    make_cifar10(tmp_path / "mini", per_batch=60, n_test=40)  # 300 training images, 250 after the 50 held out
    return ["dataset=cifar10", f"dataset.root={tmp_path / 'mini'}", "dataset.download=false",
            "dataset.verify_checksums=false", "dataset.val_size=50"]  # fmt: skip


def test_deterministic_paper_preset_round_runs_and_repeats_bit_for_bit(tmp_path):
    """make reproduce-table EXPERIMENT=paper_resnet20_cifar10's path (deterministic=true: the pools' backward,
    the pruning threshold, the gradient measurement), a pruning step and a round, twice: the same numbers."""
    from conftest import run_train

    args = ["device=cuda", "+experiment=paper_resnet20_cifar10", "deterministic=true", *mini_cifar(tmp_path),
            "pruner.rounds=2", "train.epochs=1", "train.batch_size=32", "analysis.figures=false"]  # fmt: skip
    for name in ("a", "b"):
        run_train(tmp_path / name, *args)
    a, b = (pd.read_csv(tmp_path / n / "results.csv") for n in ("a", "b"))
    cols = [c for c in a.columns if "seconds" not in c]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert a["sparsity"].tolist() == pytest.approx([0.0, 0.2], abs=1e-4)
    grads = [pd.read_csv(tmp_path / n / "grad_stats.csv") for n in ("a", "b")]
    pd.testing.assert_frame_equal(*grads, check_exact=True)


def test_threshold_selection_is_deterministic_on_cuda_and_matches_the_cpu():
    from scyc.pruning.base import select_lowest

    g = torch.Generator(device="cuda").manual_seed(0)
    scores = torch.rand(3_000_000, device="cuda", generator=g).round(decimals=4)  # many ties
    k = 600_000
    torch.use_deterministic_algorithms(True)
    try:
        chosen = select_lowest(scores, k)  # kthvalue's CUDA kernel would raise here
    finally:
        torch.use_deterministic_algorithms(False)
    assert int(chosen.sum()) == k and torch.equal(chosen.cpu(), select_lowest(scores.cpu(), k))


@pytest.mark.parametrize("compile", [False, True])
def test_graph_replay_is_really_used(compile):
    """bf16 graphs replay (not an eager fall-back), with torch.compile too: warm-up and capture agree on
    autocast's weight cache, so the compiled model is not recompiled inside the capture."""
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=3, image_size=(32, 32)).cuda()
    model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    masks = MaskSet.from_model(model)
    opt = make_optimizer(model, 0.05, 0.9, 5e-4, False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    x = torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,), device="cuda")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="train.cuda_graphs")  # a failed capture warns: fail instead
        train_epoch(net, [(x, y)] * 8, opt, sched, masks, amp_dtype=torch.bfloat16, cuda_graphs=True)
    step = opt._scyc_graph
    assert not step.failed and step.error is None and step.replays == 5  # 3 warm-up steps, then captured and replayed


def test_momentum_under_graphs_is_refused_not_frozen(tmp_path):
    from conftest import run_train

    model = create_model("lenet5", num_classes=10, in_channels=3, image_size=(32, 32)).cuda()
    opt = make_optimizer(model, 0.05, 0.9, 0.0, False)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20, cycle_momentum=True)
    x, y = torch.randn(32, 3, 32, 32, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    with pytest.raises(RuntimeError, match="changed SGD's momentum"):
        train_epoch(model, [(x, y)] * 10, opt, sched, None, cuda_graphs=True)
    proc = run_train(tmp_path / "r", "device=cuda", "schedule=one_cycle", "schedule.cycle_momentum=true",
                     "train.cuda_graphs=true", *mini_cifar(tmp_path), "pruner.rounds=1", check=False)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "error: train.cuda_graphs=true cannot be used with schedule.cycle_momentum=true"
    )
    run_train(
        tmp_path / "auto",
        "device=cuda",
        "schedule=one_cycle",
        "schedule.cycle_momentum=true",
        *mini_cifar(tmp_path),
        "pruner.rounds=1",
        "train.epochs=1",
    )  # auto: eager steps, the run completes


def test_graph_memory_is_released_across_rounds():
    """A round's graph (its private pool, the gradients in it) goes with the round: no growth over rounds."""
    model = create_model("resnet20", num_classes=10, in_channels=3, image_size=(32, 32), width=16, shortcut="A").cuda()
    masks = MaskSet.from_model(model)
    x, y = torch.randn(64, 3, 32, 32, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    gc.collect()
    gc.disable()  # the optimiser <-> step cycle would otherwise be broken by a collection at a random time
    try:
        after = []
        for _ in range(4):
            opt = make_optimizer(model, 0.05, 0.9, 5e-4, False)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
            train_epoch(model, [(x, y)] * 6, opt, sched, masks, amp_dtype=torch.bfloat16, cuda_graphs=True)
            assert opt._scyc_graph.replays > 0
            CudaGraphStep.release(opt)
            del opt, sched
            torch.cuda.synchronize()
            after.append(torch.cuda.memory_allocated())
    finally:
        gc.enable()
    assert max(after) - min(after) < 2**20, after  # flat: < 1 MiB apart


def test_gradient_probe_batches_on_the_gpu_when_the_data_is_staged(tmp_path, monkeypatch):
    from miniatures import make_cifar10

    import scyc.data as data_mod
    from scyc.analysis.gradients import fixed_batches
    from scyc.data import build_data

    make_cifar10(tmp_path / "mini", per_batch=20, n_test=10)
    monkeypatch.setattr(data_mod, "fits_on_device", lambda raw, device, fraction=0.25: False)
    data = build_data(dataset_cfg("cifar10", root=str(tmp_path / "mini"), download=False, verify_checksums=False,
                                  val_size=10), torch.device("cuda"), "data")  # fmt: skip
    assert data.train[0].device.type == "cpu" and data.train[0].is_pinned()  # staged
    x, y = next(iter(fixed_batches(data, 16, 1, seed=0)))
    assert x.device.type == "cuda" and y.device.type == "cuda"
