"""CUDA-only tests (marker ``cuda``: skipped without a CUDA device; scripts/device_check.sh runs them)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from scyc.models import create_model
from scyc.pruning.masks import MaskSet
from scyc.training import make_optimizer, train_epoch

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
