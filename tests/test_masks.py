"""Masks and global magnitude pruning: exact counts, ties, pruned weights stay exactly zero."""

from __future__ import annotations

import pytest
import torch
from options import build_model, build_pruner
from torch import nn

from scyc.lifecycle.training import make_optimizer
from scyc.models import create_model
from scyc.pruning import MaskSet, PruneContext, select_lowest


def lenet300():
    torch.manual_seed(0)
    return build_model("lenet300", num_classes=10, in_channels=1, image_size=(28, 28))


def test_prunable_weights_are_conv_and_linear_weights_only():
    model = create_model("lenet5", num_classes=10, in_channels=1, image_size=(28, 28))
    masks = MaskSet.from_model(model)
    assert all(n.endswith(".weight") for n in masks.names)
    assert len(masks) == 5  # 2 conv + 3 linear
    assert masks.total == sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_exact_sparsity_per_round():
    model = lenet300()
    masks = MaskSet.from_model(model)
    pruner = build_pruner("global_magnitude", rate=0.2)
    ctx = PruneContext(model=model)
    for r in range(1, 11):
        before = masks.alive()
        masks.set_(pruner.prune(masks, ctx))
        assert masks.alive() == before - round(0.2 * before)
        assert masks.sparsity() == pytest.approx(1 - 0.8**r, abs=1e-5)
        # every pruned weight is zero, every surviving weight is not smaller than any pruned one
        for p, m in zip(masks.params, masks.masks):
            assert torch.all(p[m == 0] == 0)


def test_select_lowest_breaks_ties_by_position():
    scores = torch.tensor([1.0, 0.5, 0.5, 0.5, 2.0, 0.1])
    chosen = select_lowest(scores, 3)
    assert chosen.tolist() == [False, True, True, False, False, True]
    assert select_lowest(scores, 0).sum() == 0
    assert select_lowest(scores, 6).all()


def test_all_equal_weights_still_exact():
    model = nn.Sequential(nn.Linear(10, 10, bias=False))
    nn.init.constant_(model[0].weight, 0.3)
    masks = MaskSet.from_model(model)
    masks.set_(build_pruner("global_magnitude", rate=0.25).prune(masks, PruneContext(model=model)))
    assert masks.alive() == 75
    masks.set_(build_pruner("global_magnitude", rate=0.25).prune(masks, PruneContext(model=model)))
    assert masks.alive() == 75 - round(0.25 * 75)


def test_already_zero_weights_do_not_count_as_pruned_twice():
    model = nn.Sequential(nn.Linear(20, 5, bias=False))
    with torch.no_grad():
        model[0].weight[:, :10] = 0.0  # half the weights are zero but still alive
    masks = MaskSet.from_model(model)
    new = build_pruner("global_magnitude", rate=0.2).prune(masks, PruneContext(model=model))
    masks.set_(new)
    assert masks.alive() == 80  # exactly 20 removed, all of them among the zeros
    assert masks.masks[0][:, 10:].all()


def test_never_revives():
    model = lenet300()
    masks = MaskSet.from_model(model)
    pruner = build_pruner("global_magnitude", rate=0.5)
    masks.set_(pruner.prune(masks, PruneContext(model=model)))
    dead = [m == 0 for m in masks.masks]
    with torch.no_grad():  # make pruned positions the largest-magnitude ones: they must stay pruned
        for p, d in zip(masks.params, dead):
            p[d] = 100.0
    masks.set_(pruner.prune(masks, PruneContext(model=model)))
    for m, d in zip(masks.masks, dead):
        assert torch.all(m[d] == 0)


def test_pruned_weights_stay_zero_through_sgd_with_momentum_and_weight_decay():
    model = lenet300()
    masks = MaskSet.from_model(model)
    masks.set_(build_pruner("global_magnitude", rate=0.6).prune(masks, PruneContext(model=model)))
    opt = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        x = torch.randn(32, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (32,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        masks.apply_()
    for p, m in zip(masks.params, masks.masks):
        assert torch.count_nonzero(p[m == 0]) == 0
        assert torch.count_nonzero(p[m == 1]) > 0.99 * int(m.sum())
    assert masks.sparsity() == pytest.approx(0.6, abs=1e-6)


def test_mask_state_dict_round_trip():
    model = lenet300()
    masks = MaskSet.from_model(model)
    masks.set_(build_pruner("global_magnitude", rate=0.3).prune(masks, PruneContext(model=model)))
    state = masks.state_dict()
    assert all(v.dtype == torch.bool for v in state.values())
    other = MaskSet.from_model(lenet300())
    other.load_state_dict(state)
    assert other.alive() == masks.alive()


def test_bad_rate():
    from scyc.foundations.registry import ConfigError

    for rate in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="rate"):
            build_pruner("global_magnitude", rate=rate)
