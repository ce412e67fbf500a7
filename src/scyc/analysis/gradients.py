"""The gradient-distribution measurement: how wide are the weight gradients of a network as it is pruned?

S-Cyc's starting observation is that the weight-gradient distribution of a ReLU network narrows as the
network gets sparser, so sparser networks want a larger learning rate. ``GradientProbe`` measures that
distribution on any model; ``GradientAnalysis`` (a callback) measures it at the start of every round
(after pruning and reset, before training: ``when=start``) and again at its end (``when=end``).

What is measured, exactly
- Populations (``population`` column; all three from the same backward passes): ``surviving``, the
  gradients of the surviving prunable weights only (mask 1; pruned weights never move, so they are left
  out); ``all_zeroed``, every prunable weight with the pruned ones' gradients set to 0 (what a histogram of
  ``.grad`` shows in lottery-ticket code that zeroes them, the S-Cyc authors' among it: a share of exact
  zeros about equal to the sparsity); ``all_raw``, every prunable weight with the raw gradients backward
  computes at the pruned (zero) positions. The rest of this note describes ``surviving``; the others differ
  only in which values are pooled.
- Values: the gradient of the mean cross-entropy of one training batch (no weight-decay term) with
  respect to every *surviving* prunable weight (mask 1; pruned weights are left out). One gradient is
  taken per batch on ``analysis.grad_batches`` batches of ``train.batch_size`` examples, and the
  per-batch gradients are **pooled**: a layer with ``a`` surviving weights contributes ``a * batches``
  values. These are the per-step gradients SGD multiplies by the learning rate (the mean over the
  batches would be a less noisy, narrower object than what the optimiser sees).
- Batches: drawn once per run from the training split with their own generator, seeded by ``seed``
  (plus a fixed offset), augmented once like training batches, and reused in every round, so rounds
  differ only by the network. The training generator is never touched: a run's results are the same
  with the measurement on or off.
- Mode: train mode (BatchNorm uses batch statistics, as in training). Nothing in the model changes:
  buffers (BatchNorm running statistics) are saved and restored, ``.grad`` fields are not written
  (``torch.autograd.grad``), the global RNG state is forked (dropout), and the train/eval mode is restored.
- ``analysis.normalize=true`` divides each layer's gradients by the standard deviation of that layer's
  surviving weights at the time of measurement (a gradient relative to the weight scale, i.e. the
  relative update size per unit LR). The ``global`` row then pools the normalised values. A layer whose
  surviving weights are all equal (std 0, e.g. zero-initialised) or that has one or none left is not scaled.

Statistics (per layer and ``global`` over all prunable layers)
- mean, std (population, ddof=0), abs_mean (mean |g|), excess kurtosis (Fisher: 0 for a Gaussian),
  from power sums with float64 accumulation taken about a per-layer reference point and unit (the first
  batch's mean and std), so no cancellation or underflow creeps in (the global sums are the layers' sums
  moved to one reference point); all on the device.
- p1 p5 p25 p50 p75 p95 p99 by sorting (linear interpolation, as ``torch.quantile`` and NumPy's default).
  Exact while a layer pools at most ``QUANTILE_MAX_VALUES`` (2**16 = 65,536) values; above that they come
  from a seeded random sample of that many surviving positions (the same positions in every batch; for
  ``global`` one common fraction of every layer, so the sample stays proportional): a p1 from 2**16 values
  sits within +-0.0004 of the 1% level (one binomial std), and the sort stays cheap next to the backward
  passes. Moments and histograms always use every value.
- Histogram: ``analysis.hist_bins`` equal bins between fixed edges plus one underflow and one overflow
  bin (to -inf and +inf), so every value is counted. The edges of each layer (and of ``global``) are fixed
  at the run's first measurement: +-``AUTO_RANGE_STDS`` standard deviations of that measurement, or
  +-``analysis.hist_range`` when set (the same edges for every layer and every run). Bins are [lo, hi).
  The default 101 bins is odd so that exact zeros (frequent: units whose ReLU is off for the whole batch
  give exactly-zero gradients) sit in the middle of the central bin rather than on an edge.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scyc.data.loader import TensorLoader, augment_batch
from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import atomic_write
from scyc.lifecycle.callbacks import Callback, RunView
from scyc.pruning.masks import MaskSet

if TYPE_CHECKING:
    from scyc.config import AnalysisConfig
    from scyc.data import DataSplits
    from scyc.lifecycle.state import RoundResult

log = logging.getLogger(__name__)

QUANTILES = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
QUANTILE_NAMES = tuple(f"p{round(q * 100)}" for q in QUANTILES)
STAT_NAMES = ("mean", "std", "abs_mean", *QUANTILE_NAMES, "kurtosis")
# Beside the gradients, the weights they act on (the same for every population): the L2 norm of the layer's
# surviving weights (``global``: of every prunable weight), and the gradient std times it, the scale-free width
# of a layer followed by BatchNorm (whose gradient scales as 1 / norm: BN makes the layer scale-invariant).
WEIGHT_NAMES = ("weight_norm", "std_x_wnorm")
STAT_COLUMNS = ["round", "when", "population", "layer", "sparsity", *STAT_NAMES, *WEIGHT_NAMES, "bn_followed"]
GLOBAL = "global"
POPULATIONS = ("surviving", "all_zeroed", "all_raw")
AUTO_RANGE_STDS = 8.0
QUANTILE_MAX_VALUES = 2**16
QUANTILE_SEED = 1234
TORCH_QUANTILE_LIMIT = 2**24
SEED_OFFSET = 60_606  # the measurement batches' generator is seeded with seed + this, apart from training's
MAX_HIST_BINS = 512  # wandb.Histogram's limit


# --------------------------------------------------------------------------------------------------
# Building blocks
def sorted_quantiles(values: torch.Tensor, qs: Sequence[float]) -> torch.Tensor:
    """Quantiles of a tensor with linear interpolation (``torch.quantile``'s default), as float64.

    ``torch.quantile`` up to its input limit (2**24 values), sorting beyond it. Empty input gives NaNs.
    """
    values = values.flatten()
    q = torch.as_tensor(qs, dtype=torch.float64, device=values.device)
    if values.numel() == 0:
        return torch.full_like(q, math.nan)
    if values.numel() <= TORCH_QUANTILE_LIMIT:
        return torch.quantile(values, q.to(values.dtype)).double()
    s = values.sort().values
    pos = q * (s.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    a, b = s[lo].double(), s[hi].double()
    return a + (b - a) * (pos - lo)


def histogram(values: torch.Tensor, inner_edges: torch.Tensor) -> torch.Tensor:
    """Counts in [-inf, e0), [e0, e1), ..., [e_B, inf) for *equally spaced* edges e0..e_B: B + 2 bins, int64.

    The bin index is computed arithmetically (a few elementwise ops, several times faster than
    ``torch.bucketize``'s binary search); NaNs land in the underflow bin.
    """
    bins = inner_edges.numel() - 1
    lo, hi = inner_edges[0].to(values.dtype), inner_edges[-1].to(values.dtype)
    idx = ((values - lo) * (bins / (hi - lo))).floor_().clamp_(-1, bins).long().add_(1)
    return torch.bincount(idx, minlength=bins + 2)


def power_sums(values: torch.Tensor, ref: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[n, sum d, sum d^2, sum d^3, sum d^4, sum |v|] with d = v - ref, as float64.

    The powers are taken in the values' dtype on d / scale (``scale`` ~ the values' spread, so nothing
    under- or overflows) and summed with float64 accumulation, then scaled back: about 5x faster than
    float64 elementwise work and as accurate for these sums.
    """
    f64 = torch.float64
    d = (values - ref.to(values.dtype)) / scale.to(values.dtype)
    d2 = d * d
    n = torch.tensor(float(values.numel()), dtype=f64, device=values.device)
    sums = torch.stack([n, d.sum(dtype=f64), d2.sum(dtype=f64), (d2 * d).sum(dtype=f64), (d2 * d2).sum(dtype=f64)])
    powers = scale.to(f64) ** torch.arange(5, device=values.device, dtype=f64)
    return torch.cat([sums * powers, values.abs().sum(dtype=f64)[None]])


def shift_sums(sums: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``power_sums`` taken about ``ref`` re-expressed about ``ref - delta`` (d -> d + delta), row-wise."""
    n, s1, s2, s3, s4, sabs = sums.unbind(-1)
    e = delta
    return torch.stack(
        [
            n,
            s1 + n * e,
            s2 + 2 * e * s1 + n * e**2,
            s3 + 3 * e * s2 + 3 * e**2 * s1 + n * e**3,
            s4 + 4 * e * s3 + 6 * e**2 * s2 + 4 * e**3 * s1 + n * e**4,
            sabs,
        ],
        -1,
    )


def moments_from_sums(sums: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
    """mean, std (ddof 0), abs_mean and excess kurtosis from ``power_sums`` accumulated about ``ref``."""
    n, s1, s2, s3, s4, sabs = sums.unbind(-1)
    nan = torch.full_like(n, math.nan)
    safe = n.clamp_min(1)
    m1, r2, r3, r4 = s1 / safe, s2 / safe, s3 / safe, s4 / safe
    var = (r2 - m1 * m1).clamp_min(0)
    m4 = r4 - 4 * m1 * r3 + 6 * m1 * m1 * r2 - 3 * m1**4
    kurt = torch.where(var > 0, m4 / (var * var).clamp_min(torch.finfo(torch.float64).tiny) - 3, nan)
    empty = n == 0
    return {
        "mean": torch.where(empty, nan, ref + m1),
        "std": torch.where(empty, nan, var.sqrt()),
        "abs_mean": torch.where(empty, nan, sabs / safe),
        "kurtosis": torch.where(empty, nan, kurt),
    }


def zero64(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


@contextlib.contextmanager
def model_untouched(model: nn.Module) -> Iterator[None]:
    """Run forward/backward passes that leave no trace: buffers, mode and the global RNG are restored."""
    buffers = [b for b in model.buffers()]
    saved = [b.detach().clone() for b in buffers]
    modes = [m.training for m in model.modules()]
    cuda = {t.device for t in [*model.parameters(), *buffers] if t.device.type == "cuda"}
    devices = sorted({d.index if d.index is not None else torch.cuda.current_device() for d in cuda})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)
        for m, mode in zip(model.modules(), modes):
            m.training = mode


@dataclass
class Measurement:
    """One measurement: per row (population x layer: ``layers``, ``global`` last in each population) the
    statistics and the histogram counts."""

    layers: list[str]
    sparsity: list[float]
    stats: dict[str, list[float]]  # stat name -> one value per row
    counts: np.ndarray  # (rows, bins + 2) int64: underflow, bins, overflow
    edges: np.ndarray  # (rows, bins + 3) float64, with -inf and +inf at the ends
    population: list[str] | None = None  # per row; None: every row is ``surviving``
    bn_followed: list[bool] | None = None  # per row: the layer's output goes straight into a BatchNorm (global:
    # every layer's does); None: not known (a run begun before it was recorded)

    def __post_init__(self) -> None:
        self.population = self.population or [POPULATIONS[0]] * len(self.layers)

    def global_stats(self, population: str) -> dict[str, float]:
        """The ``global`` row of ``population``: statistic name -> value."""
        i = next(i for i, (n, p) in enumerate(zip(self.layers, self.population)) if n == GLOBAL and p == population)
        return {k: float(v[i]) for k, v in self.stats.items()}

    def rows(self, round_idx: int, when: str) -> list[dict[str, Any]]:
        return [
            {"round": round_idx, "when": when, "population": self.population[i], "layer": name,
             "sparsity": self.sparsity[i]}
            | {k: self.stats[k][i] if k in self.stats else math.nan for k in (*STAT_NAMES, *WEIGHT_NAMES)}
            | {"bn_followed": "" if self.bn_followed is None else int(self.bn_followed[i])}
            for i, name in enumerate(self.layers)
        ]  # fmt: skip


@dataclass
class GradientProbe:
    """Measures the gradients of the prunable weights (``populations``, see the module's note) on a fixed
    list of batches.

    ``batches`` is re-iterable (a ``TensorLoader`` without shuffling, or a list). Histogram edges are fixed
    by the first ``measure`` call and reused by every later one.
    """

    masks: MaskSet
    batches: Any
    bins: int = 101
    hist_range: float | None = None
    normalize: bool = False
    quantile_values: int = QUANTILE_MAX_VALUES
    populations: Sequence[str] = POPULATIONS[:1]
    edges: torch.Tensor | None = field(default=None, init=False)  # (rows, bins + 1) finite edges
    bn: list[bool] | None = field(default=None, init=False)  # per prunable layer: followed by BatchNorm
    _picks: dict = field(default_factory=dict, init=False, repr=False)  # quantile samples' positions, by sizes

    def _values(self, model: nn.Module, selections: list[tuple[Any, Any]], scales: list[torch.Tensor | None]):
        """Per batch: each population's gradients of each layer, flat (divided by the weight std if normalising);
        ``selections`` per population x layer: (surviving positions or None for all, mask to zero by or None)."""
        params = self.masks.params
        for x, y in self.batches:
            with torch.enable_grad():
                loss = F.cross_entropy(model(x), y)
                grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
            grads = [g.detach().flatten() for g in grads] * len(self.populations)
            vals = []
            for g, (k, zero), s in zip(grads, selections, scales * len(self.populations)):
                v = (g if k is None else g.index_select(0, k)) if zero is None else g * zero
                v = v.float()
                vals.append(v if s is None else v / s)
            yield vals

    def measure(self, model: nn.Module) -> Measurement:
        masks, n_pops = self.masks, len(self.populations)
        keep = [m.detach().flatten().nonzero().squeeze(1) for m in masks.masks]
        alive = [int(k.numel()) for k in keep]
        ways = {
            "surviving": ([(k, None) for k in keep], alive),
            "all_zeroed": ([(None, m.detach().flatten()) for m in masks.masks], masks.numels),
            "all_raw": ([(None, None)] * len(keep), masks.numels),
        }
        unknown = sorted(set(self.populations) - set(ways))
        if unknown:
            raise ValueError(f"unknown gradient population(s) {unknown}: use {', '.join(POPULATIONS)}")
        selections = [x for p in self.populations for x in ways[p][0]]
        scales: list[torch.Tensor | None] = [None] * len(keep)
        if self.normalize:
            stds = [
                p.detach().flatten().index_select(0, k).float().std(correction=0) for p, k in zip(masks.params, keep)
            ]
            scales = [torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s)) for s in stds]
        n_batches = len(self.batches)
        n_lay = len(alive)  # prunable layers; rows: per population its layers then its global
        n_layers = n_pops * (n_lay + 1)
        device = masks.params[0].device
        # quantile samples: the same random positions in every batch, at most quantile_values values per
        # layer; for global one common fraction of every layer, so the sample stays proportional
        cap = self.quantile_values
        picks: list[torch.Tensor | None] = []
        global_picks: list[torch.Tensor | None] = []

        def pick(n: int, frac: float, gen: torch.Generator) -> torch.Tensor | None:
            m = math.ceil(frac * n)
            return None if m >= n else torch.randperm(n, generator=gen, device=device)[:m]

        for p in self.populations:  # each population draws its sample as the surviving one always has
            key = (tuple(ways[p][1]), n_batches, cap, str(device))  # the same sizes, the same draw: kept for
            if key not in self._picks:  # the other populations of that size and the round's end measurement
                gen, sizes = torch.Generator(device=device).manual_seed(QUANTILE_SEED), key[0]
                layer = [pick(a, cap / (n_batches * max(a, 1)), gen) for a in sizes]
                global_frac = cap / (n_batches * max(sum(sizes), 1))
                self._picks = {**dict(list(self._picks.items())[-2:]), key: (layer, [pick(a, global_frac, gen) for a in sizes])}  # fmt: skip
            picks += self._picks[key][0]
            global_picks += self._picks[key][1]
        exact = all(p is None for p in [*picks, *global_picks])
        row_of = [p * (n_lay + 1) + i for p in range(n_pops) for i in range(n_lay)]  # population x layer -> row

        def with_globals(vals: list[torch.Tensor]) -> list[torch.Tensor]:
            parts = [vals[p * n_lay : (p + 1) * n_lay] for p in range(n_pops)]
            return [v for part in parts for v in (*part, torch.cat(part))]

        sums = torch.zeros(n_pops * n_lay, 6, dtype=torch.float64, device=device)
        refs: torch.Tensor | None = None
        samples: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
        counts = torch.zeros(n_layers, self.bins + 2, dtype=torch.long, device=device)
        first = self.edges is None
        with model_untouched(model):
            model.train()
            for vals in self._values(model, selections, scales):
                if refs is None:  # reference point and unit of the power sums: each layer's first-batch mean, std
                    refs = torch.stack([v.double().mean() if v.numel() else zero64(device) for v in vals])
                    units = torch.stack([v.double().std(correction=0) if v.numel() else zero64(device) for v in vals])
                    units = torch.where(torch.isfinite(units) & (units > 0), units, torch.ones_like(units))
                sums += torch.stack([power_sums(v, r, u) for v, r, u in zip(vals, refs, units)])
                for i, (v, p) in enumerate(zip(vals, picks)):
                    samples[row_of[i]].append(v if p is None else v.index_select(0, p))
                picked = [v if p is None else v.index_select(0, p) for v, p in zip(vals, global_picks)]
                for p in range(n_pops):
                    samples[p * (n_lay + 1) + n_lay].append(torch.cat(picked[p * n_lay : (p + 1) * n_lay]))
                if not first:
                    for i, v in enumerate(with_globals(vals)):
                        counts[i] += histogram(v, self.edges[i])
            if refs is None:
                raise ValueError("the gradient probe has no batches")
            # global: every layer's sums moved to one reference point (the count-weighted mean ref) and added
            sums, refs = sums.view(n_pops, n_lay, 6), refs.view(n_pops, n_lay)
            ref_all = (sums[..., 0] * refs).sum(1) / sums[..., 0].sum(1).clamp_min(1)
            sums_all = shift_sums(sums, refs - ref_all[:, None]).sum(1, keepdim=True)
            moments = moments_from_sums(
                torch.cat([sums, sums_all], 1).view(-1, 6), torch.cat([refs, ref_all[:, None]], 1).view(-1)
            )
            if first:
                self.edges = self._make_edges(moments["std"])
                if exact:  # every value was kept: histogram them without a second pass
                    for i in range(n_layers):
                        counts[i] = histogram(torch.cat(samples[i]), self.edges[i])
                else:
                    for vals in self._values(model, selections, scales):
                        for i, v in enumerate(with_globals(vals)):
                            counts[i] += histogram(v, self.edges[i])
        quantiles = torch.stack([sorted_quantiles(torch.cat(s), QUANTILES) for s in samples])
        table = torch.cat(
            [
                torch.stack([moments[k] for k in ("mean", "std", "abs_mean")], 1),
                quantiles,
                moments["kurtosis"][:, None],
            ],
            1,
        )
        sq = torch.stack([p.detach().float().square().sum() for p in masks.params])  # pruned weights are 0
        norms = torch.cat([sq, sq.sum()[None]]).sqrt().double().repeat(n_pops)
        table = torch.cat([table, norms[:, None], (table[:, 1] * norms)[:, None]], 1)
        values = table.cpu().tolist()  # statistics to the host in one copy
        stats = {name: [row[j] for row in values] for j, name in enumerate((*STAT_NAMES, *WEIGHT_NAMES))}
        inf = torch.full((n_layers, 1), math.inf, dtype=torch.float64)
        edges = torch.cat([-inf, self.edges.double().cpu(), inf], 1).numpy()
        sparsity = [*[1 - a / n for a, n in zip(alive, masks.numels)], 1 - sum(alive) / masks.total] * n_pops
        layers = [*masks.names, GLOBAL] * n_pops
        population = [p for p in self.populations for _ in range(n_lay + 1)]
        if self.bn is None:
            self.bn = followed_by_batchnorm(model, masks.params, next(iter(self.batches))[0])
        bn = [*self.bn, all(self.bn)] * n_pops
        return Measurement(layers, sparsity, stats, counts.cpu().numpy(), edges, population, bn)

    def _make_edges(self, std: torch.Tensor) -> torch.Tensor:
        if self.hist_range is not None:
            half = torch.full_like(std, float(self.hist_range))
        else:
            ok = torch.isfinite(std) & (std > 0)
            fallback = std[-1] if bool(ok[-1]) else std.new_tensor(1.0)
            half = AUTO_RANGE_STDS * torch.where(ok, std, fallback)
        unit = torch.linspace(-1.0, 1.0, self.bins + 1, dtype=torch.float64, device=std.device)
        return (half[:, None] * unit[None, :]).float()


def followed_by_batchnorm(model: nn.Module, params: Sequence[torch.Tensor], x: torch.Tensor) -> list[bool]:
    """Per weight in ``params``: is its module's output the very input of a BatchNorm (conv -> BN, as in every
    ResNet and VGG block)? Found by one forward pass of ``x`` with hooks (nothing in the model changes)."""
    index = {id(p): i for i, p in enumerate(params)}
    outputs: dict[int, tuple[int, torch.Tensor]] = {}  # id of a prunable module's output -> (its weight's index,
    # the output itself, kept alive so that no later tensor can take its id)
    found = [False] * len(params)
    hooks = []
    for m in model.modules():
        w = getattr(m, "weight", None)
        if w is not None and id(w) in index:
            hooks.append(
                m.register_forward_hook(lambda mod, inp, out, i=index[id(w)]: outputs.__setitem__(id(out), (i, out)))
            )
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp: found.__setitem__(outputs[id(inp[0])][0], True) if id(inp[0]) in outputs else None))  # fmt: skip
    try:
        with model_untouched(model), torch.no_grad():
            model.train()
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return found


def fixed_batches(data: DataSplits, batch_size: int, n_batches: int, seed: int) -> TensorLoader:
    """``n_batches`` training batches drawn once with their own generator (seed + ``SEED_OFFSET``).

    Full batches of ``batch_size`` as long as the training split holds them (fewer when it is smaller;
    one partial batch when it is smaller than one batch). Augmented once, like training batches. The batches
    are computed on the run's device even when the data set is staged in pinned CPU memory.
    """
    x, y = data.train
    n = len(x)
    available = max(1, n // batch_size)
    if n_batches > available:  # a small run: the whole training split is measured, nothing is left out
        log.debug(
            "analysis.grad_batches=%d but the training split (%d examples) holds %d batch(es) of %d: using %d",
            n_batches, n, available, batch_size, available,
        )  # fmt: skip
    n_batches = min(n_batches, available)
    gen = torch.Generator().manual_seed(int(seed) + SEED_OFFSET)
    idx = torch.randperm(n, generator=gen)[: n_batches * batch_size]
    xb, yb = x.cpu()[idx], y.cpu()[idx]
    aug = data.raw.augment
    if aug.active:
        xb = augment_batch(xb, aug, gen)
    # on the data's device (pinned CPU memory when staged), batches computed on the run's (data.device)
    return TensorLoader(
        xb.to(x.device), yb.to(y.device), batch_size, mean=data.raw.mean, std=data.raw.std, shuffle=False,
        device=data.device or x.device,
    )  # fmt: skip


def write_hist_npz(path: Path, measurements: Sequence[tuple[int, str, Measurement]], normalize: bool) -> None:
    """All histograms of a run in one file (rewritten atomically after every measurement).

    Arrays: ``layers`` (L,) and ``population`` (L,) naming each histogram (L = populations x (layers + global)),
    ``round`` (M,), ``when`` (M,), ``sparsity`` (M, L), ``counts`` (M, L, bins + 2) with underflow and overflow
    bins first and last, ``edges`` (L, bins + 3) with -inf and +inf at the ends (fixed for the run),
    ``normalize`` (bool).
    """
    last = measurements[-1][2]
    arrays = {
        "layers": np.array(last.layers),
        "population": np.array(last.population),
        "round": np.array([r for r, _, _ in measurements], dtype=np.int64),
        "when": np.array([w for _, w, _ in measurements]),
        "sparsity": np.array([m.sparsity for _, _, m in measurements], dtype=np.float64),
        "counts": np.stack([m.counts for _, _, m in measurements]),
        "edges": last.edges,
        "normalize": np.array(bool(normalize)),
    }
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


# --------------------------------------------------------------------------------------------------
def check_analysis_config(cfg: AnalysisConfig) -> None:
    """Refuse bad ``analysis.*`` values with a message naming the key, the value and what is allowed."""
    checks = [
        ("grad_batches", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
        (
            "hist_bins",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_HIST_BINS,
            f"an integer in [1, {MAX_HIST_BINS}] (wandb.Histogram's limit)",
        ),
        (
            "hist_range",
            lambda v: v is None or (isinstance(v, (int, float)) and math.isfinite(v) and v > 0),
            "null (automatic) or a finite number > 0",
        ),
    ]
    for key, ok, allowed in checks:
        value = getattr(cfg, key)
        if not ok(value):
            raise ConfigError(f"analysis.{key}={value} is not allowed: it must be {allowed}")


class GradientAnalysis(Callback):
    """Measures the gradient distribution at the start of every round (``measure``, a step of the round loop, whose
    result a policy read from gradients gets) and at its end (``on_round_end``); writes ``grad_stats.csv``,
    ``grad_hist.npz`` and logs the statistics and histograms to W&B (``grad/<when>/<layer>/<stat>``)."""

    def __init__(self, cfg: AnalysisConfig) -> None:  # its values checked once, by config.validate
        self.cfg = cfg
        self.measurements: list[tuple[int, str, Measurement]] = []

    def on_run_start(self, run: RunView) -> None:
        batches = fixed_batches(run.data, int(run.cfg.train.batch_size), self.cfg.grad_batches, run.cfg.seed)
        self.probe = GradientProbe(
            run.masks,
            batches,
            bins=self.cfg.hist_bins,
            hist_range=self.cfg.hist_range,
            normalize=self.cfg.normalize,
            populations=POPULATIONS,
        )
        self.table = run.outputs.table("grad_stats.csv", STAT_COLUMNS)
        self.hist_path = run.outputs.file("grad_hist.npz")
        self.outputs = run.outputs
        run.outputs.wandb.define_metric("grad/*", step_metric="round/index")
        run.outputs.wandb.define_metric("grad_hist/*", step_metric="round/index")

    # A resumed run continues with the same fixed bins and the earlier measurements (checkpointed).
    def state_dict(self) -> dict[str, Any]:
        return {
            "edges": None if self.probe.edges is None else self.probe.edges.detach().cpu(),
            "measurements": [
                {"round": r, "when": w, "layers": m.layers, "sparsity": m.sparsity, "stats": m.stats,
                 "counts": torch.from_numpy(m.counts), "edges": torch.from_numpy(m.edges), "population": m.population,
                 "bn_followed": m.bn_followed}
                for r, w, m in self.measurements
            ],
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        edges = state["edges"]
        if edges is not None and len(edges) == len(self.probe.masks.names) + 1:  # a run begun before the populations
            self.probe.populations = POPULATIONS[:1]
        self.probe.edges = None if edges is None else edges.to(self.probe.masks.params[0].device)
        self.measurements = [
            (d["round"], d["when"], Measurement(d["layers"], d["sparsity"], d["stats"], d["counts"].numpy(),
                                                d["edges"].numpy(), d.get("population"), d.get("bn_followed")))
            for d in state["measurements"]
        ]  # fmt: skip
        self.table.reset([row for r, w, m in self.measurements for row in m.rows(r, w)])
        if self.outputs.is_main:  # the checkpoint's measurements, no more
            if self.measurements:
                write_hist_npz(self.hist_path, self.measurements, self.probe.normalize)
            else:
                self.hist_path.unlink(missing_ok=True)

    def on_round_end(self, run: RunView, result: RoundResult) -> None:
        self.measure(run, result.round, "end")

    def measure(self, run: RunView, round_idx: int, when: str) -> Measurement:
        m = self.probe.measure(run.model)  # every rank measures (identical models, the same fixed batches)
        self.measurements.append((round_idx, when, m))
        if not run.outputs.is_main:  # data-parallel runs: rank 0 writes and logs
            return m
        self.table.stream(m.rows(round_idx, when))
        write_hist_npz(self.hist_path, self.measurements, self.probe.normalize)
        scalars = {"round/index": round_idx}
        hists = {}
        for i, (layer, pop) in enumerate(zip(m.layers, m.population)):
            name = layer if pop == POPULATIONS[0] else f"{pop}/{layer}"  # surviving keeps the keys it always had
            for k in (*STAT_NAMES, *WEIGHT_NAMES):
                scalars[f"grad/{when}/{name}/{k}"] = m.stats[k][i]
            hists[f"grad_hist/{when}/{name}"] = (m.counts[i, 1:-1], m.edges[i, 1:-1])
        run.outputs.wandb.log_histograms(scalars, hists)
        g = m.layers.index(GLOBAL)
        others = " | ".join(f"{p} std {m.stats['std'][i]:.3e}" for i, p in enumerate(m.population) if
                            m.layers[i] == GLOBAL and p != POPULATIONS[0])  # fmt: skip
        log.debug(  # the round's one INFO line is the loop's; hydra.verbose=scyc.analysis.gradients shows these
            "gradients round %d %s | sparsity %.4f | std %.3e | |g| %.3e | kurtosis %.2f | %s",
            round_idx, when, m.sparsity[g], m.stats["std"][g], m.stats["abs_mean"][g], m.stats["kurtosis"][g], others,
        )  # fmt: skip
        return m
