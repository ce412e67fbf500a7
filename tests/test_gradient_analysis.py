"""The gradient-distribution analysis: its statistics against direct autograd, what it must leave alone,
fixed bins, and what a run writes (CSV, NPZ, figures, the W&B offline run)."""

from __future__ import annotations

import copy
import json
import math
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_train
from torch import nn

from scyc.analysis.gradients import (
    POPULATIONS,
    QUANTILES,
    GradientProbe,
    check_analysis_config,
    sorted_quantiles,
)
from scyc.foundations.registry import ConfigError
from scyc.pruning.masks import MaskSet


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)
    )


def tiny_batches(n: int = 3, size: int = 20) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 6, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def pruned_masks(model: nn.Module) -> MaskSet:
    masks = MaskSet.from_model(model)
    g = torch.Generator().manual_seed(2)
    masks.set_([torch.rand(m.shape, generator=g) > 0.4 for m in masks.masks])
    return masks


def direct_values(model: nn.Module, masks: MaskSet, batches, normalize: bool = False) -> list[torch.Tensor]:
    """Pooled surviving per-batch gradients of each layer, straight from loss.backward() on a copy."""
    m = copy.deepcopy(model).train()
    params = dict(m.named_parameters())
    per_layer: list[list[torch.Tensor]] = [[] for _ in masks.names]
    for x, y in batches:
        m.zero_grad()
        F.cross_entropy(m(x), y).backward()
        for i, (name, mask) in enumerate(zip(masks.names, masks.masks)):
            keep = mask.bool()
            v = params[name].grad[keep]
            if normalize:
                v = v / params[name].detach()[keep].std(correction=0)
            per_layer[i].append(v)
    layers = [torch.cat(v) for v in per_layer]
    return [*layers, torch.cat(layers)]


def no_dropout(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    return model


@pytest.mark.parametrize("normalize", [False, True])
def test_statistics_equal_direct_autograd(normalize):
    model = no_dropout(tiny_model())
    masks = pruned_masks(model)
    batches = tiny_batches()
    probe = GradientProbe(masks, batches, bins=16, normalize=normalize)
    m = probe.measure(model)
    expected = direct_values(model, masks, batches, normalize)
    assert m.layers == [*masks.names, "global"]
    for i, v in enumerate(expected):
        v = v.double()
        mean, std = v.mean(), v.std(correction=0)
        assert m.stats["mean"][i] == pytest.approx(mean.item(), rel=1e-5, abs=1e-9)
        assert m.stats["std"][i] == pytest.approx(std.item(), rel=1e-5)
        assert m.stats["abs_mean"][i] == pytest.approx(v.abs().mean().item(), rel=1e-5)
        kurt = (((v - mean) / std) ** 4).mean().item() - 3
        assert m.stats["kurtosis"][i] == pytest.approx(kurt, rel=1e-4, abs=1e-6)
        q = torch.quantile(v, torch.tensor(QUANTILES, dtype=torch.float64))
        for name, want in zip(("p1", "p5", "p25", "p50", "p75", "p95", "p99"), q.tolist()):
            assert m.stats[name][i] == pytest.approx(want, rel=1e-5, abs=1e-9)
        # histogram: underflow, the fixed bins [lo, hi), overflow; every surviving value counted exactly once
        e, x = m.edges[i, 1:-1], v.numpy()
        want = [(x < e[0]).sum(), *[((x >= lo) & (x < hi)).sum() for lo, hi in zip(e[:-1], e[1:])], (x >= e[-1]).sum()]
        np.testing.assert_array_equal(m.counts[i], want)
        assert m.counts[i].sum() == v.numel()


def test_three_populations_from_one_pass_equal_direct_autograd():
    model = no_dropout(tiny_model())
    masks = pruned_masks(model)
    batches = tiny_batches()
    m = GradientProbe(masks, batches, bins=16, populations=POPULATIONS).measure(model)
    surviving = direct_values(model, masks, batches)
    raw = direct_values(model, MaskSet.from_model(model), batches)  # every position's raw gradient
    # all_zeroed: every position, the pruned ones at 0
    flat = [(r, mk.flatten().repeat(len(batches))) for r, mk in zip(raw[:-1], masks.masks)]
    zeroed = [r * mk for r, mk in flat]
    zeroed.append(torch.cat(zeroed))
    n = len(masks.names) + 1
    assert m.population == [p for p in POPULATIONS for _ in range(n)] and m.layers == [*masks.names, "global"] * 3
    for p, expected in enumerate((surviving, zeroed, raw)):
        for i, v in enumerate(expected):
            v = v.double()
            assert m.stats["std"][p * n + i] == pytest.approx(v.std(correction=0).item(), rel=1e-5)
            assert m.stats["mean"][p * n + i] == pytest.approx(v.mean().item(), rel=1e-5, abs=1e-9)
            assert m.counts[p * n + i].sum() == v.numel()
    only = GradientProbe(masks, batches, bins=16).measure(model)  # surviving alone: the same numbers
    assert only.stats == {k: v[:n] for k, v in m.stats.items()}
    np.testing.assert_array_equal(only.counts, m.counts[:n])
    z = m.counts[n + n - 1]  # all_zeroed, global: the central bin holds at least the pruned share of values
    assert z[len(z) // 2] >= masks.sparsity() * z.sum()


def test_pruned_weights_gradients_are_excluded():
    model = no_dropout(tiny_model())
    masks = pruned_masks(model)
    batches = tiny_batches()
    m = GradientProbe(masks, batches, bins=8).measure(model)
    alive = [int(k.sum()) for k in masks.masks]
    assert [int(c) for c in m.counts[:-1].sum(1)] == [a * len(batches) for a in alive]
    assert m.counts[-1].sum() == sum(alive) * len(batches)
    assert m.sparsity[-1] == pytest.approx(masks.sparsity())
    # the dense network's gradients differ: the pruned positions' gradients (non-zero) were left out
    dense = direct_values(model, MaskSet.from_model(model), batches)[-1].double()
    assert m.stats["std"][-1] != pytest.approx(dense.std(correction=0).item(), rel=1e-3)
    # a fully pruned layer has no values: NaN statistics, empty histogram, the rest still measured
    masks.set_([torch.zeros_like(masks.masks[0]), *masks.masks[1:]])
    m2 = GradientProbe(masks, batches, bins=8).measure(model)
    assert np.isnan(m2.stats["std"][0]) and m2.counts[0].sum() == 0 and np.isfinite(m2.stats["std"][-1])


def test_measuring_leaves_model_grads_buffers_mode_and_rng_untouched():
    model = tiny_model()
    model.train()
    model[1].train(False)  # a mixed mode must come back exactly as it was
    masks = pruned_masks(model)
    with torch.no_grad():  # non-trivial running stats
        model[1].running_mean.normal_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [mod.training for mod in model.modules()]
    rng = torch.get_rng_state()
    GradientProbe(masks, tiny_batches(), bins=8).measure(model)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert [mod.training for mod in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)


def test_bins_are_fixed_at_the_first_measurement():
    model = no_dropout(tiny_model())
    masks = MaskSet.from_model(model)
    probe = GradientProbe(masks, tiny_batches(), bins=10)
    first = probe.measure(model)
    std0 = np.array(first.stats["std"])
    np.testing.assert_allclose(first.edges[:, -2], 8 * std0, rtol=1e-6)  # +-8 std of the first measurement
    assert np.all(np.isneginf(first.edges[:, 0])) and np.all(np.isposinf(first.edges[:, -1]))
    with torch.no_grad():  # a very different network: sparser, weights scaled up (wider gradients)
        for p in model.parameters():
            p.mul_(3.0)
    masks.set_([torch.rand(m.shape, generator=torch.Generator().manual_seed(5)) > 0.5 for m in masks.masks])
    second = probe.measure(model)
    np.testing.assert_array_equal(first.edges, second.edges)
    assert second.counts[:, [0, -1]].sum() > first.counts[:, [0, -1]].sum()  # wider values land in overflow bins
    fixed = GradientProbe(masks, tiny_batches(), bins=4, hist_range=0.5).measure(model)
    np.testing.assert_allclose(fixed.edges[:, 1:-1], np.tile(np.linspace(-0.5, 0.5, 5), (len(fixed.layers), 1)))


def test_quantiles_beyond_torch_quantile_limit_match_numpy(monkeypatch):
    import scyc.analysis.gradients as grads

    g = torch.Generator().manual_seed(0)
    q = [0.0, *QUANTILES, 1.0]
    for n in (1, 2, 7, 1000):
        v = torch.randn(n, generator=g, dtype=torch.float64) ** 3
        monkeypatch.setattr(grads, "TORCH_QUANTILE_LIMIT", 0)  # the sorting path
        sorted_path = sorted_quantiles(v, q)
        monkeypatch.setattr(grads, "TORCH_QUANTILE_LIMIT", 2**24)
        np.testing.assert_allclose(sorted_path.numpy(), np.quantile(v.numpy(), q), rtol=1e-12)
        np.testing.assert_allclose(sorted_quantiles(v, q).numpy(), np.quantile(v.numpy(), q), rtol=1e-12)
    assert torch.isnan(sorted_quantiles(torch.empty(0), QUANTILES)).all()


def test_large_layers_use_a_quantile_sample_but_exact_moments_and_histograms():
    model = no_dropout(tiny_model())
    masks = pruned_masks(model)
    batches = tiny_batches(n=4, size=30)
    exact = GradientProbe(masks, batches, bins=11).measure(model)
    sampled = GradientProbe(masks, batches, bins=11, quantile_values=40).measure(model)  # second pass for bins
    np.testing.assert_array_equal(exact.edges, sampled.edges)
    np.testing.assert_array_equal(exact.counts, sampled.counts)
    for k in ("mean", "std", "abs_mean", "kurtosis"):
        np.testing.assert_allclose(sampled.stats[k], exact.stats[k], rtol=1e-9)
    quantiles = ("p1", "p5", "p25", "p75", "p95", "p99")
    assert any(sampled.stats[q] != exact.stats[q] for q in quantiles)  # from 40-odd values, not all of them
    again = GradientProbe(masks, batches, bins=11, quantile_values=40).measure(model)
    assert again.stats == sampled.stats  # the sample is seeded: deterministic


@pytest.mark.parametrize(
    "key, value",
    [("grad_batches", 0), ("hist_bins", 0), ("hist_bins", 513), ("hist_range", -1.0), ("grad_batches", 2.5)],
)
def test_bad_analysis_config_names_the_key(key, value):
    from scyc.config import AnalysisConfig

    cfg = {"grad_every_round": True, "grad_batches": 10, "normalize": False, "hist_bins": 100, "hist_range": None}
    with pytest.raises(ConfigError, match=f"analysis.{key}={value}"):
        check_analysis_config(AnalysisConfig(**{**cfg, key: value}, figures=False))


# --------------------------------------------------------------------------------------------------
# Real tiny runs
TINY = ("pruner.rounds=2", "train.epochs=1", "dataset.train_subset=640", "dataset.val_size=500")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("grad_runs")
    dirs = {"on": base / "seed0_on", "off": base / "seed0_off"}
    run_train(dirs["on"], *TINY, "wandb.mode=offline")
    run_train(dirs["off"], *TINY, "analysis.grad_every_round=false")
    return dirs


def wandb_history(path) -> list[dict]:
    """The history rows of an offline W&B run, read from its .wandb file (a LevelDB-style record log of
    protobuf ``Record``s: 7-byte file header, 32 KiB blocks, 7-byte record headers, records split across
    blocks as FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    block, header = 32768, 7
    pos, pending, raws = 7, b"", []
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        if kind == 0:  # zero padding up to the end of the block
            pos += block - pos % block if pos % block else 0
        elif kind == 1:
            raws.append(chunk)
        elif kind in (2, 3):
            pending = (pending if kind == 3 else b"") + chunk
        elif kind == 4:
            raws.append(pending + chunk)
    rows = []
    for raw in raws:
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") != "history":
            continue
        row: dict = {}
        for item in rec.history.item:
            keys = list(item.nested_key) or [item.key]
            node = row
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = json.loads(item.value_json)
        rows.append(row)
    return rows


def test_run_writes_stats_hist_figures_and_wandb_histograms(runs):
    run = runs["on"]
    stats = pd.read_csv(run / "grad_stats.csv")
    assert list(stats.columns[:5]) == ["round", "when", "population", "layer", "sparsity"]
    assert set(stats["population"]) == set(POPULATIONS)  # all three populations, from one run
    for pop in POPULATIONS:
        g = stats[(stats["layer"] == "global") & (stats["population"] == pop)]
        assert len(g) == 4 and np.isfinite(g["std"]).all() and (g["std"] > 0).all()
    glob = stats[(stats["layer"] == "global") & (stats["population"] == "surviving")]
    assert list(zip(glob["round"], glob["when"])) == [(0, "start"), (0, "end"), (1, "start"), (1, "end")]
    assert np.isfinite(glob["std"]).all() and (glob["std"] > 0).all()
    assert glob["sparsity"].tolist() == pytest.approx([0.0, 0.0, 0.2, 0.2])
    assert set(stats["layer"]) == {"net.1.weight", "net.3.weight", "net.5.weight", "global"}

    with np.load(run / "grad_hist.npz") as z:
        counts, edges, layers = z["counts"], z["edges"], list(zip(z["layers"], z["population"]))
        assert counts.shape == (4, 12, 103) and edges.shape == (12, 104)
        assert z["round"].tolist() == [0, 0, 1, 1] and z["when"].tolist() == ["start", "end", "start", "end"]
    gi = layers.index(("global", "surviving"))
    alive = json.loads((run / "summary.json").read_text())["prunable_weights"]
    batches = 640 // 128
    assert counts[0, gi].sum() == alive * batches  # round 0: dense, every weight, every batch
    assert counts[2, gi].sum() == round(0.8 * alive) * batches
    assert counts[2, layers.index(("global", "all_raw"))].sum() == alive * batches  # pruned weights counted

    for name in ("grad_distribution", "grad_std_vs_sparsity", "accuracy_vs_sparsity", "lr_schedule"):
        assert_nontrivial_png(run / "figures" / f"{name}.png")

    (wandb_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    history = wandb_history(wandb_file)
    logged = [r for r in history if "grad_hist/start/global" in r]
    assert len(logged) == 2
    hist = logged[0]["grad_hist/start/global"]
    assert hist["_type"] == "histogram" and len(hist["bins"]) == 102
    assert hist["values"] == counts[0, gi, 1:-1].tolist()
    assert logged[0]["grad/start/global/std"] == pytest.approx(glob["std"].iloc[0])
    images = [r for r in history if "figures/grad_distribution" in r]
    assert images and images[0]["figures/grad_distribution"]["_type"] == "image-file"


def assert_nontrivial_png(path):
    import matplotlib.image as mpimg

    assert path.exists(), path
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not blank: lines, text and colours


def test_measurement_does_not_change_training_and_off_switch(runs):
    on, off = (pd.read_csv(runs[k] / "results.csv") for k in ("on", "off"))
    timing = ["epoch_seconds", "round_seconds", "other_seconds"]
    pd.testing.assert_frame_equal(on.drop(columns=timing), off.drop(columns=timing))
    assert not (runs["off"] / "grad_stats.csv").exists() and not (runs["off"] / "grad_hist.npz").exists()
    for name in ("accuracy_vs_sparsity", "lr_schedule"):
        assert_nontrivial_png(runs["off"] / "figures" / f"{name}.png")
    assert not (runs["off"] / "figures" / "grad_distribution.png").exists()


def analyze(*args) -> subprocess.CompletedProcess:
    script = str(ROOT / "scripts" / "analyze_gradients.py")
    return subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def global_std(run_dirs, rnd: int, when: str) -> float:
    df = pd.concat(pd.read_csv(d / "grad_stats.csv") for d in run_dirs)
    df = df[df["population"] == "surviving"]
    return df[(df["layer"] == "global") & (df["round"] == rnd) & (df["when"] == when)]["std"].mean()


def test_script_redraws_a_run(runs, tmp_path):
    proc = analyze(runs["on"], "--out", tmp_path / "redrawn")
    assert proc.returncode == 0, proc.stderr
    for name in ("grad_distribution", "grad_std_vs_sparsity", "accuracy_vs_sparsity", "lr_schedule"):
        assert_nontrivial_png(tmp_path / "redrawn" / f"{name}.png")
    assert f"{global_std([runs['on']], 1, 'end'):.4g}" in proc.stdout
    bad = analyze(tmp_path)
    assert bad.returncode == 2 and "no results.csv" in bad.stderr


@pytest.mark.slow
def test_script_pools_seeds(runs, tmp_path):
    seed1 = tmp_path / "seed1"
    run_train(seed1, *TINY, "seed=1", "analysis.figures=false")
    assert not (seed1 / "figures").exists()  # analysis.figures=false
    out = tmp_path / "pooled"
    proc = analyze(runs["on"], seed1, "--out", out)
    assert proc.returncode == 0, proc.stderr
    for name in ("grad_distribution", "grad_std_vs_sparsity", "accuracy_vs_sparsity", "lr_schedule"):
        assert_nontrivial_png(out / f"{name}.png")
    assert "over 2 runs" in proc.stdout
    assert f"{global_std([runs['on'], seed1], 1, 'end'):.4g}" in proc.stdout


def test_weight_norm_and_scale_free_width_per_layer_and_global():
    model, batches = no_dropout(tiny_model()), tiny_batches()
    masks = pruned_masks(model)
    masks.apply_()
    m = GradientProbe(masks, batches, bins=8, populations=POPULATIONS).measure(model)
    norms = [float(p.detach().double().norm()) for p in masks.params]
    for pop in POPULATIONS:
        rows = [i for i, p in enumerate(m.population) if p == pop]
        assert [m.stats["weight_norm"][i] for i in rows] == pytest.approx([*norms, math.hypot(*norms)], rel=1e-6)
        for i in rows:
            assert m.stats["std_x_wnorm"][i] == pytest.approx(m.stats["std"][i] * m.stats["weight_norm"][i], rel=1e-9)
    # Linear(6, 16) feeds BatchNorm1d; the other two do not; the global row says whether every layer does
    assert m.bn_followed == [True, False, False, False] * len(POPULATIONS)


def test_bn_followed_conv_gradients_scale_as_one_over_the_weight_norm():
    """The reason for std_x_wnorm: a conv followed by BatchNorm is scale-invariant, so scaling its weights by c
    divides its gradients by c and leaves gradient std x weight norm where it was (ResNet-20, every conv)."""
    from scyc.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1, image_size=(28, 28), width=16, shortcut="A")
    masks = MaskSet.from_model(model)
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))]
    before = GradientProbe(masks, batches, bins=8).measure(model)
    conv = masks.names.index("blocks.4.conv1.weight")
    with torch.no_grad():
        masks.params[conv].mul_(3.0)
    after = GradientProbe(masks, batches, bins=8).measure(model)
    assert after.stats["std"][conv] == pytest.approx(before.stats["std"][conv] / 3, rel=1e-3)
    assert after.stats["weight_norm"][conv] == pytest.approx(3 * before.stats["weight_norm"][conv], rel=1e-6)
    assert after.stats["std_x_wnorm"][conv] == pytest.approx(before.stats["std_x_wnorm"][conv], rel=1e-3)
    assert before.bn_followed[: len(masks.names)] == [n != "fc.weight" for n in masks.names]


def test_run_records_weight_norms_and_batchnorm_flags(runs):
    from scyc.sweep.tables import _grad_std

    stats = pd.read_csv(runs["on"] / "grad_stats.csv")
    assert {"weight_norm", "std_x_wnorm", "bn_followed"} <= set(stats.columns)
    assert (stats["bn_followed"] == 0).all()  # LeNet-300-100: no BatchNorm
    assert np.allclose(stats["std_x_wnorm"], stats["std"] * stats["weight_norm"])
    glob = stats[(stats["layer"] == "global") & (stats["population"] == "surviving")].set_index(["round", "when"])
    layers = stats[(stats["layer"] != "global") & (stats["population"] == "surviving")]
    summed = np.sqrt(layers.groupby(["round", "when"])["weight_norm"].apply(lambda w: (w**2).sum()))
    assert np.allclose(glob["weight_norm"].sort_index(), summed.sort_index())
    wide = _grad_std(runs["on"])
    assert {"wnorm_start", "wnorm_end"} <= set(wide.columns) and not any(c.endswith("_bn") for c in wide.columns)
    assert wide["wnorm_start"].iloc[1] < wide["wnorm_end"].iloc[0]  # pruning 20 % removes weight norm


def test_batchnorm_widths_are_geometric_means_over_the_bn_followed_layers():
    from scyc.sweep.tables import _bn_widths

    rows = []
    for layer, bn, std, norm in [("a", 1, 0.1, 4.0), ("b", 1, 0.4, 1.0), ("c", 0, 9.0, 9.0), ("global", 0, 1.0, 1.0)]:
        for when in ("start", "end"):
            rows.append({"round": 0, "when": when, "population": "surviving", "layer": layer, "std": std,
                         "weight_norm": norm, "std_x_wnorm": std * norm, "bn_followed": bn})  # fmt: skip
    got = _bn_widths(pd.DataFrame(rows)).iloc[0]
    assert got["grad_std_start_surviving_bn"] == pytest.approx(0.2)  # sqrt(0.1 * 0.4); layer c is not BN-followed
    assert got["wnorm_start_bn"] == pytest.approx(2.0)
    assert got["grad_std_x_wnorm_end_bn"] == pytest.approx(0.4)
    assert _bn_widths(pd.DataFrame(rows).assign(bn_followed=0)) is None
    emptied = pd.DataFrame(rows + [{**rows[0], "round": 1, "layer": "b", "std": 0.0, "std_x_wnorm": 0.0}])
    again = _bn_widths(emptied)  # b has no gradient in round 1: left out of every round, a alone remains
    assert again.loc[0, "grad_std_start_surviving_bn"] == pytest.approx(0.1)


@pytest.mark.slow  # ~25 s on a quiet 2-core CPU; the BatchNorm logic itself is tested fast above
def test_a_resnet20_run_records_its_scale_free_gradient_width(tmp_path):
    from scyc.sweep.tables import _grad_std

    run_train(tmp_path / "r20", "pruner.rounds=2", "train.epochs=1", "dataset.train_subset=256",
              "dataset.val_size=256", "dataset.test_subset=256", "model=resnet20", "model.shortcut=B",
              "analysis.grad_batches=2", "analysis.figures=false")  # fmt: skip
    stats = pd.read_csv(tmp_path / "r20" / "grad_stats.csv")
    layers = stats[(stats["layer"] != "global") & (stats["population"] == "surviving")].drop_duplicates("layer")
    assert dict(zip(layers["layer"], layers["bn_followed"])) == {  # every conv feeds a BatchNorm, fc does not
        n: int(n != "fc.weight") for n in layers["layer"]
    }
    wide = _grad_std(tmp_path / "r20")
    assert np.allclose(wide["grad_std_x_wnorm_start_bn"], wide["grad_std_start_surviving_bn"] * wide["wnorm_start_bn"])
    assert len(wide) == 2 and wide.notna().all().all()
