"""The pruner interface: score the surviving weights, remove the lowest-scoring ones, exactly.

A pruner subclass implements ``scores`` (higher = more important). The base class removes exactly
``k = round(rate * surviving)`` weights per pruning step (Python's ``round``), with ties broken
deterministically by position (layer order, then flat index), never touching already-pruned weights.

- ``scope = "global"`` ranks all layers together: the ``k`` lowest scores anywhere go.
- ``scope = "layer"`` removes the same fraction in every layer: layer ``l`` with ``a_l`` survivors
  loses its share ``k * a_l / A`` (``A`` = all survivors), rounded by the largest-remainder method so that
  the shares add up to ``k`` exactly; every layer's count is within one weight of ``rate * a_l``.

``min_remaining`` (all pruners): every layer keeps at least ``max(1, ceil(min_remaining * numel))`` of
its weights (or what it has left, if fewer), so no layer is ever cut off entirely. The default 0.0 thus
only guarantees one surviving weight per layer, which leaves the published methods unchanged in practice;
set e.g. ``pruner.min_remaining=0.01`` to keep 1 % of every layer. When the floor binds, the weights a layer
may not lose are taken from the other layers instead (global: the next-lowest scores elsewhere; layer:
the shares are re-apportioned over layers with room left), so the total removed stays exactly ``k``.

Scores are handled in one flat buffer on the model's device (float32, or float64 if a pruner returns
float64): pruned entries are set to ``+inf`` and one ``torch.kthvalue`` finds the threshold, so a step is
a few passes over the weights, with no NumPy and no per-element Python. Under ``deterministic=true`` on CUDA
the ``kthvalue`` calls run on the CPU copy of the (small) sample and band they get (``_kthvalue``); every
other op of the selection (comparisons, counts, ``nonzero``, boolean indexing) is deterministic on CUDA.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from scyc.foundations.registry import ConfigError, Registry
from scyc.pruning.masks import MaskSet

PRUNERS: Registry[Pruner] = Registry("pruner")
SCOPES = ("global", "layer")


@dataclass
class PruneContext:
    """What a pruner may look at besides the weights: the model, training batches, a seeded generator."""

    model: nn.Module
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None
    generator: torch.Generator | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(default=nn.functional.cross_entropy)


def _kthvalue(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.kthvalue`` where it is exact and allowed: on the CPU copy of ``scores`` on MPS (no kernel) and
    on CUDA under ``torch.use_deterministic_algorithms`` (its CUDA kernel has no deterministic version and
    raises there); ``kth_smallest`` only hands it a sample or a narrow band of a large input, so the copy is
    small. The k-th smallest value is the same number either way, so the masks do not depend on where."""
    host = scores.device.type == "mps" or (scores.is_cuda and torch.are_deterministic_algorithms_enabled())
    return torch.kthvalue(scores.cpu() if host else scores, k).values.to(scores.device)


def kth_smallest(scores: torch.Tensor, k: int, stride: int = 64) -> torch.Tensor:
    """The ``k``-th smallest entry (1-based) of a flat tensor, as ``torch.kthvalue`` but faster on large inputs.

    Sample-select: the quantile ``k / n`` of every ``stride``-th entry brackets the answer in a band
    ``[lo, hi]``; one pass counts the entries below ``lo``, and the answer is found by ``kthvalue`` inside
    the (small) band. The result is exact: if the band misses the answer, the full ``kthvalue`` is used.
    """
    n = scores.numel()
    if n < 2**20:
        return _kthvalue(scores, k)
    sample = scores[::stride]
    m = sample.numel()
    q = k / n
    margin = max(64, int(4 * (m * q * (1 - q)) ** 0.5))
    centre = round(q * m)
    lo = _kthvalue(sample, min(m, max(1, centre - margin)))
    hi = _kthvalue(sample, min(m, max(1, centre + margin)))
    below = int(torch.count_nonzero(scores < lo))
    if below < k:
        band = scores[(scores >= lo) & (scores <= hi)]
        if below + band.numel() >= k:
            return _kthvalue(band, k - below)
    return _kthvalue(scores, k)


def select_lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` entries with the smallest scores; ties go to the lower index."""
    n = scores.numel()
    if not 0 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} entries")
    if k == 0:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    threshold = kth_smallest(scores, k)
    out = scores < threshold
    n_below = int(torch.count_nonzero(out))
    if n_below < k:
        ties = (scores == threshold).nonzero().squeeze(1)[: k - n_below]
        out[ties] = True
    return out


def count_per_layer(flags: torch.Tensor, numels: Sequence[int]) -> list[int]:
    """Number of True entries of a flat bool tensor in each consecutive segment of the given sizes."""
    sums = [seg.view(torch.uint8).sum(dtype=torch.int64) for seg in flags.split(list(numels))]
    return [int(c) for c in torch.stack(sums).tolist()]


def apportion(k: int, sizes: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Split ``k`` over layers proportionally to ``sizes``, never above ``caps``; exact sum, deterministic.

    Largest-remainder rounding (ties to the earlier layer); what a capped layer cannot take is
    re-apportioned over the layers that still have room.
    """
    if k > sum(caps):
        raise ValueError(f"cannot remove {k} weights: the layers allow only {sum(caps)}")
    alloc = [0] * len(sizes)
    while (left := k - sum(alloc)) > 0:
        active = [i for i in range(len(sizes)) if alloc[i] < caps[i]]
        weight = sum(sizes[i] for i in active)
        if weight == 0:  # only layers of size 0 have room: cannot happen with caps <= sizes, kept for safety
            active, weight = active[:1], 1
        quota = {i: left * sizes[i] / weight for i in active}
        add = {i: math.floor(q) for i, q in quota.items()}
        extra = left - sum(add.values())
        for i in sorted(active, key=lambda i: (-(quota[i] - add[i]), i))[:extra]:
            add[i] += 1
        for i in active:
            alloc[i] = min(caps[i], alloc[i] + add[i])
    return alloc


def removed_count(rate: float, alive: int) -> int:
    """How many weights a pruning step removes: ``round(rate * alive)`` (Python's ``round``)."""
    return round(rate * alive)


def predicted_alive(total: int, rate: float, rounds: int) -> list[int]:
    """The surviving weights of the network each round trains (round 0 dense), as the pruners reach them
    exactly (a ``min_remaining`` floor that binds moves the removed weights, not their number)."""
    out = [total]
    for _ in range(rounds - 1):
        out.append(out[-1] - removed_count(rate, out[-1]))
    return out


def predicted_sparsities(total: int, rate: float, rounds: int) -> list[float]:
    """The sparsity of the network each round trains (round 0 dense), see ``predicted_alive``."""
    return [(total - alive) / total for alive in predicted_alive(total, rate, rounds)]


class Pruner(ABC):
    """Base of all pruners. Subclasses set ``scope`` and implement ``scores``; the selection is here."""

    scope: str = "global"

    def __init__(self, rate: float, min_remaining: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 1.0:
            raise ConfigError(f"pruner.rate={rate} is not allowed: it must lie in (0, 1)")
        if isinstance(min_remaining, bool) or not isinstance(min_remaining, (int, float)) or not 0 <= min_remaining < 1:
            raise ConfigError(
                f"pruner.min_remaining={min_remaining} is not allowed: it must be a fraction of each layer in [0, 1)"
            )
        if self.scope not in SCOPES:
            raise ConfigError(f"{type(self).__name__}.scope={self.scope!r} is not allowed; use one of {SCOPES}")
        self.rate = float(rate)
        self.min_remaining = float(min_remaining)

    @abstractmethod
    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        """One score tensor per masked weight, same shapes; higher means keep. Pruned entries are ignored."""

    def floors(self, masks: MaskSet, alive_counts: Sequence[int] | None = None) -> list[int]:
        """Weights each layer must keep: ``max(1, ceil(min_remaining * numel))``, or all it has if fewer."""
        alive_counts = masks.alive_counts() if alive_counts is None else alive_counts
        return [min(a, max(1, math.ceil(self.min_remaining * n))) for a, n in zip(alive_counts, masks.numels)]

    def check_rounds(self, masks: MaskSet, rounds: int) -> None:
        """Refuse, before round 0 trains, a rate that some round would have to take below the weights the layers
        keep (``floors``): every round's surviving count is known in advance (``predicted_alive``)."""
        keep, alive = sum(self.floors(masks)), predicted_alive(masks.total, self.rate, rounds)
        if alive[-1] >= keep:
            return
        lo, hi = 0.0, self.rate  # the largest rate that keeps them: the survivors fall as the rate rises
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if predicted_alive(masks.total, mid, rounds)[-1] >= keep else (lo, mid)
        r = next(i for i, a in enumerate(alive) if a < keep)
        raise ConfigError(
            f"pruner.rate={self.rate} is not allowed with pruner.rounds={rounds}: round {r} would keep {alive[r]} of "
            f"{masks.total} weights, but the layers keep at least {keep} (max(1, ceil(pruner.min_remaining * "
            f"size)) each, pruner.min_remaining={self.min_remaining}); allowed: pruner.rate <= "
            f"{math.floor(lo * 1e6) / 1e6}, or fewer pruner.rounds, or a lower pruner.min_remaining"
        )

    @torch.no_grad()
    def prune(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        """New boolean masks with exactly ``round(rate * surviving)`` more weights removed."""
        scores = self.scores(masks, ctx)
        if len(scores) != len(masks):
            raise ValueError(f"{type(self).__name__}.scores gave {len(scores)} tensors for {len(masks)} layers")
        alive_counts = masks.alive_counts()
        alive = sum(alive_counts)
        k = removed_count(self.rate, alive)
        floors = self.floors(masks, alive_counts)
        caps = [a - f for a, f in zip(alive_counts, floors)]
        if k > sum(caps):
            raise ConfigError(
                f"pruner.min_remaining={self.min_remaining}: the layers must keep at least {sum(floors)} weights, "
                f"but this round must leave only {alive - k} of {masks.total}; lower pruner.min_remaining or "
                f"pruner.rounds"
            )
        buf, flat_alive = self._flat_scores(scores, masks)
        if self.scope == "layer":
            chosen = torch.empty_like(flat_alive)
            for seg, out, k_l in zip(
                buf.split(masks.numels), chosen.split(masks.numels), apportion(k, alive_counts, caps)
            ):
                out.copy_(select_lowest(seg, k_l))
        else:
            chosen = self._select_global(buf, masks.numels, k, caps)
        new = flat_alive.logical_and_(chosen.logical_not_())
        return [t.view_as(m) for t, m in zip(new.split(masks.numels), masks.masks)]

    @staticmethod
    def _flat_scores(scores: Sequence[torch.Tensor], masks: MaskSet) -> tuple[torch.Tensor, torch.Tensor]:
        """All scores in one flat buffer (surviving ones clamped finite, pruned ones ``+inf``), and the
        flat boolean alive mask."""
        dtype = functools.reduce(torch.promote_types, (s.dtype for s in scores), torch.float32)
        if not dtype.is_floating_point:
            dtype = torch.float32
        device = masks.masks[0].device
        big = torch.finfo(dtype).max
        buf = torch.empty(masks.total, dtype=dtype, device=device)
        flat_alive = torch.empty(masks.total, dtype=torch.bool, device=device)
        for s, m, seg, alive, name in zip(
            scores, masks.masks, buf.split(masks.numels), flat_alive.split(masks.numels), masks.names
        ):
            if s.shape != m.shape:
                raise ValueError(f"score shape {tuple(s.shape)} does not match weight {name} {tuple(m.shape)}")
            torch.ne(m.reshape(-1), 0, out=alive)
            torch.nan_to_num(s.detach().reshape(-1).to(device, dtype), nan=math.nan, posinf=big, neginf=-big, out=seg)
            seg.masked_fill_(~alive, math.inf)
        if torch.isnan(buf).any():
            raise ValueError("pruning scores contain NaN")
        return buf, flat_alive

    @staticmethod
    def _select_global(buf: torch.Tensor, numels: Sequence[int], k: int, caps: Sequence[int]) -> torch.Tensor:
        """The ``k`` lowest entries of ``buf``, at most ``caps[l]`` in layer ``l``.

        Unconstrained selection first (the usual case); where a layer would lose more than its cap, its
        top surviving scores are protected (set to ``+inf``) and the selection is redone. A layer is
        protected at most once, so this loops at most once per layer.
        """
        protected: set[int] = set()
        segments = buf.split(list(numels))
        while True:
            chosen = select_lowest(buf, k)
            counts = count_per_layer(chosen, numels)
            over = [i for i, (c, cap) in enumerate(zip(counts, caps)) if c > cap and i not in protected]
            if not over:
                return chosen
            for i in over:
                seg = segments[i]
                keep = ~select_lowest(seg, caps[i]) & torch.isfinite(seg)
                seg.masked_fill_(keep, math.inf)
                protected.add(i)
