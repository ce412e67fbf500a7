"""Resets after a pruning step: finetune, rewind_init (exact theta_0), rewind_epoch (snapshot callback), reinit."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from options import build_model, build_pruner
from torch import nn

from scyc.cli import compose
from scyc.foundations.registry import ConfigError
from scyc.lifecycle.callbacks import RunView
from scyc.lifecycle.training import make_optimizer
from scyc.pruning import RESETS, MaskSet, PruneContext
from scyc.pruning.accounting import LayerSparsity, RewindSnapshot, pruning_callbacks


def trained_and_pruned(seed: int = 0):
    """A small BatchNorm conv net: theta_0 saved, a few SGD steps, then 50 % pruned."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)
    )  # fmt: skip
    init = copy.deepcopy(model.state_dict())
    masks = MaskSet.from_model(model)
    opt = make_optimizer(model, 0.1, 0.9, 5e-4, False)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8, generator=g)), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    masks.set_(build_pruner("global_magnitude", rate=0.5).prune(masks, PruneContext(model=model)))
    return model, masks, {"init": init}


def test_rewind_init_restores_theta0_exactly_on_survivors():
    model, masks, snapshots = trained_and_pruned()
    assert not torch.equal(model[0].weight, snapshots["init"]["0.weight"])  # training moved it
    RESETS.get("rewind_init")(model, masks, snapshots, None)
    for name, m in zip(masks.names, masks.masks):
        w, w0 = model.state_dict()[name], snapshots["init"][name]
        assert torch.equal(w[m.bool()], w0[m.bool()])
        assert torch.count_nonzero(w[~m.bool()]) == 0
    assert torch.equal(model[1].running_mean, snapshots["init"]["1.running_mean"])  # buffers too


def test_finetune_keeps_trained_weights():
    model, masks, snapshots = trained_and_pruned()
    before = copy.deepcopy(model.state_dict())
    RESETS.get("finetune")(model, masks, snapshots, None)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def view_of(model, snapshots) -> RunView:
    """What a callback gets: a read-only view over the run's state (here only its model and snapshots)."""
    return RunView(None, None, SimpleNamespace(model=model, snapshots=snapshots), None, None)


def test_a_callback_sees_snapshots_read_only():
    model, _, snapshots = trained_and_pruned()
    view = view_of(model, snapshots)
    with pytest.raises(TypeError):
        view.snapshots["rewind"] = snapshots["init"]  # a view, not the run: only save_snapshot writes
    with pytest.raises(AttributeError):
        view.model = model
    view.save_snapshot("rewind", snapshots["init"])
    assert snapshots["rewind"] is snapshots["init"]


def test_rewind_epoch_snapshot_and_reset():
    model, masks, snapshots = trained_and_pruned()
    exp = view_of(model, snapshots)
    cb = RewindSnapshot(rewind_epoch=2)
    cb.on_run_start(exp)
    cb.on_epoch_end(exp, 0, 0, {})
    assert "rewind" not in snapshots  # after epoch 1: not yet
    cb.on_epoch_end(exp, 0, 1, {})  # after epoch 2 of round 0: taken
    saved = copy.deepcopy(snapshots["rewind"])
    with torch.no_grad():
        model[0].weight.add_(1.0)  # the snapshot is a copy, not a view
        model[4].weight.mul_(3.0)
    cb.on_epoch_end(exp, 1, 1, {})  # later rounds never overwrite it
    assert all(torch.equal(v, saved[k]) for k, v in snapshots["rewind"].items())
    RESETS.get("rewind_epoch")(model, masks, snapshots, None)
    for name, m in zip(masks.names, masks.masks):
        assert torch.equal(model.state_dict()[name], saved[name] * m)


def test_rewind_epoch_zero_is_init_and_bad_values():
    model, masks, snapshots = trained_and_pruned()
    exp = view_of(model, snapshots)
    RewindSnapshot(0).on_run_start(exp)
    assert snapshots["rewind"] is snapshots["init"]
    for bad in (-1, 4):  # refused by validate (scyc.config.check_combinations), 1.5 and null by the schema's int
        with pytest.raises(ConfigError, match=f"pruner.rewind_epoch={bad} is not allowed with train.epochs=3"):
            compose(["pruner.reset=rewind_epoch", f"pruner.rewind_epoch={bad}", "train.epochs=3"])
    compose(["pruner.reset=finetune", "pruner.rewind_epoch=9", "train.epochs=3"])  # unused: not checked
    with pytest.raises(RuntimeError, match="rewind"):
        RESETS.get("rewind_epoch")(model, masks, {"init": snapshots["init"]}, None)


def test_callbacks_follow_the_config():
    assert [type(c) for c in pruning_callbacks("finetune", 9)] == [LayerSparsity]  # rewind_epoch unused
    assert [type(c) for c in pruning_callbacks("rewind_epoch", 1)] == [LayerSparsity, RewindSnapshot]


def test_reinit_is_fresh_seeded_masked_and_leaves_global_rng_alone():
    def reinit(seed):
        model, masks, snapshots = trained_and_pruned()
        trained = copy.deepcopy(model.state_dict())
        torch.manual_seed(123)
        RESETS.get("reinit")(model, masks, snapshots, torch.Generator().manual_seed(seed))
        after_rng = torch.rand(3)
        return model, masks, snapshots, trained, after_rng

    model, masks, snapshots, trained, after_rng = reinit(0)
    torch.manual_seed(123)
    assert torch.equal(after_rng, torch.rand(3))  # the global RNG stream is untouched
    for name, m in zip(masks.names, masks.masks):
        w = model.state_dict()[name]
        assert torch.count_nonzero(w[~m.bool()]) == 0
        assert not torch.equal(w[m.bool()], trained[name][m.bool()])
        assert not torch.equal(w[m.bool()], snapshots["init"][name][m.bool()])
    assert torch.equal(model[1].running_var, torch.ones(4))  # BatchNorm reset too
    same = reinit(0)[0].state_dict()
    other = reinit(1)[0].state_dict()
    assert all(torch.equal(v, same[k]) for k, v in model.state_dict().items())
    assert not torch.equal(model.state_dict()["0.weight"], other["0.weight"])


def test_reinit_follows_the_layer_initialisation():
    torch.manual_seed(0)
    model = build_model("lenet300", num_classes=10, in_channels=1, image_size=(28, 28))
    masks = MaskSet.from_model(model)
    RESETS.get("reinit")(model, masks, {}, torch.Generator().manual_seed(0))
    w = model.net[1].weight  # kaiming_uniform(a=sqrt(5)) of nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / 784**0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
