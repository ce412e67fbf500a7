"""Pruners: exact counts (ties, already-zero weights), never reviving, exclusions, the per-layer floor,
LAMP on a hand-computed example, SNIP against magnitude, random under a seed, plug-in by dotted path."""

from __future__ import annotations

import itertools

import pytest
import torch
from options import build_pruner
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.models import create_model
from scyc.pruning import MaskSet, PruneContext, Pruner
from scyc.pruning.base import apportion
from scyc.pruning.lamp import lamp_scores

ALL = ["global_magnitude", "layerwise_magnitude", "random", "lamp", "snip"]


class ReverseMagnitude(Pruner):
    """A user's pruner, given by dotted path (``test_pruners.ReverseMagnitude``): prunes the largest |w|."""

    scope = "global"

    def scores(self, masks, ctx):
        return [-p.detach().abs() for p in masks.params]


def lenet5(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("lenet5", num_classes=10, in_channels=1, image_size=(28, 28))
    with torch.no_grad():  # ties and already-zero (but alive) weights in every layer
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                flat = m.weight.view(-1)
                flat[: flat.numel() // 10] = 0.0
                flat[flat.numel() // 10 : flat.numel() // 5] = 0.01
    return model


def batches_of(seed: int = 1, n: int = 16):
    def batches():
        g = torch.Generator().manual_seed(seed)
        while True:
            yield torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)

    return batches


def ctx_for(model, seed: int = 0) -> PruneContext:
    return PruneContext(model=model, batches=batches_of(), generator=torch.Generator().manual_seed(seed))


def prune_rounds(name: str, rounds: int = 3, rate: float = 0.2, seed: int = 0, **kw):
    model = lenet5()
    masks = MaskSet.from_model(model, exclude=kw.pop("exclude", ()))
    pruner = build_pruner(name, rate=rate, **kw)
    ctx = ctx_for(model, seed)
    history = [[m.clone() for m in masks.masks]]
    for _ in range(rounds):
        before = masks.alive()
        masks.set_(pruner.prune(masks, ctx))
        assert masks.alive() == before - round(rate * before)
        history.append([m.clone() for m in masks.masks])
    return model, masks, history


@pytest.mark.parametrize("name", ALL)
def test_exact_counts_never_revive_pruned_are_zero(name):
    _, masks, history = prune_rounds(name, rounds=4, rate=0.3)
    assert masks.sparsity() == pytest.approx(1 - 0.7**4, abs=2e-4)
    for old, new in itertools.pairwise(history):
        for o, n in zip(old, new):
            assert torch.all(n <= o)  # a pruned weight never comes back
    for p, m in zip(masks.params, masks.masks):
        assert torch.all(p[m == 0] == 0)


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name):
    a = prune_rounds(name, rounds=2)[1].masks
    b = prune_rounds(name, rounds=2)[1].masks
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_random_depends_on_seed_and_is_uniform():
    a = prune_rounds("random", rounds=1, rate=0.5, seed=0)[1]
    b = prune_rounds("random", rounds=1, rate=0.5, seed=1)[1]
    assert not all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    # uniform among survivors: the zeros and ties of lenet5() do not matter, every big layer loses ~half
    for name, s in a.layer_sparsity().items():
        if a.numels[a.names.index(name)] > 1000:
            assert s == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("name", ALL)
def test_exclude_keeps_layers_dense(name):
    model, masks, _ = prune_rounds(name, rounds=1, rate=0.2, exclude=["features.0", "classifier.5"])
    assert "features.0.weight" not in masks.names and "classifier.5.weight" not in masks.names
    fresh = lenet5()
    assert torch.equal(model.features[0].weight, fresh.features[0].weight)
    assert torch.equal(model.classifier[5].weight, fresh.classifier[5].weight)


@pytest.mark.parametrize("name", ALL)
def test_min_remaining_floor_is_kept_and_total_stays_exact(name):
    # 12.5 % of lenet5's 61,470 weights survive; the floors need 6,147 (10 % of each layer): feasible but tight
    model, masks, _ = prune_rounds(name, rounds=3, rate=0.5, min_remaining=0.1)  # counts checked per round
    for a, n in zip(masks.alive_counts(), masks.numels):
        assert a >= -(-n // 10)


def test_min_remaining_binds_for_global_magnitude_and_redistributes():
    model = nn.Sequential(nn.Linear(100, 10, bias=False), nn.Linear(10, 100, bias=False))
    with torch.no_grad():
        model[0].weight.uniform_(1.0, 2.0)
        model[1].weight.uniform_(0.001, 0.002)  # the whole layer is below every weight of layer 0
    masks = MaskSet.from_model(model)
    plain = build_pruner("global_magnitude", rate=0.6).prune(masks, PruneContext(model=model))
    assert int(plain[1].sum()) == 1 and int(plain[0].sum()) == 1000 + 1000 - 1200 - 1  # default: one survivor
    floored = build_pruner("global_magnitude", rate=0.6, min_remaining=0.25).prune(masks, PruneContext(model=model))
    assert int(floored[1].sum()) == 250  # the floor, the largest 250 of layer 1
    assert int(floored[0].sum()) + 250 == 800  # exactly 1200 removed: 249 more from layer 0
    kept = model[1].weight[floored[1]]
    assert kept.min() >= model[1].weight[~floored[1]].max()


def test_min_remaining_infeasible_and_bad_values():
    model = nn.Sequential(nn.Linear(10, 10, bias=False))
    masks = MaskSet.from_model(model)
    with pytest.raises(ConfigError, match="min_remaining"):
        build_pruner("lamp", rate=0.9, min_remaining=0.5).prune(masks, PruneContext(model=model))
    for bad in (-0.1, 1.0, "x"):
        with pytest.raises(ConfigError, match="min_remaining"):
            build_pruner("random", min_remaining=bad)
    with pytest.raises(ConfigError, match="batches"):
        build_pruner("snip", batches=0)
    with pytest.raises(ConfigError, match="unknown key"):
        build_pruner("lamp", batches=2)


@pytest.mark.parametrize("name", ["global_magnitude", "layerwise_magnitude"])
@pytest.mark.parametrize(
    "rate, rounds, min_remaining", [(0.9, 4, 0.0), (0.99, 3, 0.0), (0.5, 5, 0.1), (0.3, 6, 0.2), (0.2, 4, 0.1)]
)
def test_check_rounds_refuses_exactly_what_pruning_would_fail(name, rate, rounds, min_remaining):
    """check_rounds (start-up) refuses exactly the settings whose pruning would fail in some round, and the
    rate it offers instead passes both."""
    model = nn.Sequential(nn.Linear(8, 6, bias=False), nn.Linear(6, 3, bias=False))

    def outcome(r: float) -> tuple[bool, bool]:
        masks, pruner = MaskSet.from_model(model), build_pruner(name, rate=r, min_remaining=min_remaining)
        try:
            pruner.check_rounds(masks, rounds)
            checked = True
        except ConfigError as exc:
            checked, offered = False, float(str(exc).split("pruner.rate <= ")[1].split(",")[0])
        try:
            for _ in range(rounds - 1):
                masks.set_(pruner.prune(masks, PruneContext(model=model)))
            pruned = True
        except ConfigError:
            pruned = False
        return (checked, pruned) if checked else (checked, pruned, offered)

    result = outcome(rate)
    assert result[0] == result[1], result
    if not result[0]:
        assert outcome(result[2])[:2] == (True, True)


def test_layerwise_equal_fraction_and_exact_total():
    _, masks, history = prune_rounds("layerwise_magnitude", rounds=3, rate=0.2)
    for old, new in itertools.pairwise(history):
        for o, n in zip(old, new):
            a = int(o.sum())
            assert abs((a - int(n.sum())) - 0.2 * a) <= 1
    by_layer = list(masks.layer_sparsity().values())
    assert max(by_layer) - min(by_layer) < 0.01


def test_apportion():
    assert apportion(10, [50, 30, 20], [50, 30, 20]) == [5, 3, 2]
    assert sum(apportion(7, [3, 3, 3], [3, 3, 3])) == 7
    assert apportion(7, [3, 3, 3], [3, 3, 3]) == [3, 2, 2]  # ties go to the earlier layer
    assert apportion(60, [100, 100], [10, 100]) == [10, 50]  # what layer 0 cannot take goes to layer 1
    with pytest.raises(ValueError):
        apportion(5, [3, 3], [1, 1])


def test_lamp_hand_computed():
    # layer [1, 2, 3]: squares 1, 4, 9; suffix sums 14, 13, 9 -> 1/14, 4/13, 1
    torch.testing.assert_close(lamp_scores(torch.tensor([2.0, -1.0, 3.0])), torch.tensor([4 / 13, 1 / 14, 1.0]))
    # only survivors count: with 5 pruned, [0.3, 0.4, 0.5] -> .09/.5, .16/.41, 1
    w = torch.tensor([0.3, 5.0, 0.4, 0.5])
    alive = torch.tensor([True, False, True, True])
    torch.testing.assert_close(lamp_scores(w, alive)[alive], torch.tensor([0.09 / 0.5, 0.16 / 0.41, 1.0]))
    # ties: the earlier of two equal weights sorts first and gets the larger denominator; a zero scores 0
    torch.testing.assert_close(lamp_scores(torch.tensor([1.0, 0.0, 1.0])), torch.tensor([0.5, 0.0, 1.0]))


def test_lamp_prunes_globally_where_magnitude_does_not():
    # A = [0.1, 0.2]: scores .2, 1.  B = [0.3, 0.4, 0.5, 5]: scores .0035, .0063, .0099, 1.
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.2]]))
        model[1].weight.copy_(torch.tensor([[0.3, 0.4, 0.5, 5.0]]))
    masks = MaskSet.from_model(model)
    lamp = build_pruner("lamp", rate=0.5).prune(masks, PruneContext(model=model))
    assert lamp[0].tolist() == [[True, True]] and lamp[1].tolist() == [[False, False, False, True]]
    mag = build_pruner("global_magnitude", rate=0.5).prune(masks, PruneContext(model=model))
    # magnitude would take 0.1, 0.2, 0.3, but the default floor keeps one weight of A, so 0.4 goes instead
    assert mag[0].tolist() == [[False, True]] and mag[1].tolist() == [[False, False, True, True]]


def test_snip_uses_gradients_and_leaves_training_state_alone():
    # input feature 0 is always 0, so dL/dw[:, 0] = 0: the large weights of column 0 have saliency 0
    model = nn.Sequential(nn.Linear(2, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5.0, 0.1], [5.0, 0.2], [5.0, 0.3], [5.0, 0.4]]))
        model[2].weight.copy_(torch.tensor([[1.0, -1.0, 2.0, 0.5], [-1.0, 1.0, 0.5, 2.0]]))
    model.eval()
    calls = []

    def batches():
        g = torch.Generator().manual_seed(0)
        for _ in range(10):
            calls.append(1)
            x = torch.randn(8, 2, generator=g)
            x[:, 0] = 0
            yield x, torch.randint(0, 2, (8,), generator=g)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = MaskSet.from_model(model, exclude=["2"])
    snip = build_pruner("snip", rate=0.5, batches=3).prune(masks, PruneContext(model=model, batches=batches))
    assert snip[0][:, 0].sum() == 0 and snip[0][:, 1].all()  # saliency prunes the big, gradient-free column
    mag = build_pruner("global_magnitude", rate=0.5).prune(masks, PruneContext(model=model))
    assert mag[0][:, 0].all() and mag[0][:, 1].sum() == 0  # magnitude prunes the small column
    assert len(calls) == 3  # exactly pruner.batches batches drawn
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm running statistics untouched


def test_snip_needs_batches():
    model = lenet5()
    with pytest.raises(ValueError, match="batches"):
        build_pruner("snip").prune(MaskSet.from_model(model), PruneContext(model=model))


def test_pruner_by_dotted_path():
    pruner = build_pruner("test_pruners.ReverseMagnitude", rate=0.5)
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 4.0, 2.0, 3.0]]))
    masks = MaskSet.from_model(model)
    masks.set_(pruner.prune(masks, PruneContext(model=model)))
    assert model[0].weight.tolist() == [[1.0, 0.0, 2.0, 0.0]]


def test_global_magnitude_prunes_only_the_smallest():
    model, masks, _ = prune_rounds("global_magnitude", rounds=1, rate=0.5)
    kept = torch.cat([p[m.bool()].abs() for p, m in zip(masks.params, masks.masks)])
    gone = torch.cat([(lenet5().state_dict()[n][~m.bool()]).abs() for n, m in zip(masks.names, masks.masks)])
    assert kept.min() >= gone.max()


@pytest.mark.parametrize("case", ["random", "ties_and_inf", "sample_misleads"])
def test_kth_smallest_matches_kthvalue(case):
    from scyc.pruning.base import kth_smallest

    g = torch.Generator().manual_seed(0)
    n = 2**21 + 17
    x = torch.rand(n, generator=g)
    if case == "ties_and_inf":
        x = (x * 50).floor()
        x[torch.rand(n, generator=g) < 0.3] = float("inf")
    if case == "sample_misleads":
        x[::64] = 0.0  # every sampled entry is 0: the band misses most k, the full kthvalue must take over
    for k in (1, 1000, n // 3, n // 2, int(0.69 * n)):
        assert kth_smallest(x, k) == torch.kthvalue(x, k).values, k
