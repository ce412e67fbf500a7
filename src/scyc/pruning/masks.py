"""Pruning masks, kept beside the parameters and applied with one foreach multiply per step.

Why not ``torch.nn.utils.prune``: it reparametrises each pruned weight as ``weight_orig * weight_mask``
in a forward pre-hook, so every forward (and its backward) pays an extra multiply and allocation per
layer, the optimiser then updates ``weight_orig`` (a different parameter object than the model was built
with, which breaks optimiser state reuse, checkpoints keyed by ``weight`` and torch.compile graphs), and
masks cannot be applied in one fused op. Here the masks are plain tensors; after each optimiser step
``apply_`` multiplies all masked weights in place with a single ``torch._foreach_mul_`` call, which keeps
pruned weights exactly zero through SGD momentum and weight decay at the cost of one elementwise pass.
``scripts/benchmark_pruning.py --mask-overhead`` compares the two per training step; the figures are in
docs/benchmarks.md.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

import torch
from torch import nn

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)


def prunable_weights(model: nn.Module, exclude: Iterable[str] = ()) -> list[tuple[str, nn.Parameter]]:
    """Weights of Conv and Linear layers (no biases, no norm layers), minus modules matching ``exclude``.

    ``exclude`` holds module names or shell patterns (``features.0``, ``*fc*``); a pattern that matches
    nothing is an error so a typo cannot silently prune a layer that was meant to stay dense.
    """
    exclude = list(exclude)
    used = {p: False for p in exclude}
    out = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES) and getattr(module, "weight", None) is not None:
            hit = [p for p in exclude if fnmatch.fnmatchcase(name, p)]
            for p in hit:
                used[p] = True
            if not hit:
                out.append((f"{name}.weight" if name else "weight", module.weight))
    unused = [p for p, u in used.items() if not u]
    if unused:
        names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
        raise ValueError(f"pruner.exclude: {unused} match no prunable layer; layers are: {names}")
    if not out:
        raise ValueError("the model has no prunable (Conv/Linear) weights left after pruner.exclude")
    return out


class MaskSet:
    """One mask per prunable weight: 1 keeps, 0 prunes. Masks have the weight's dtype and device."""

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]]) -> None:
        self.names = [n for n, _ in named_params]
        self.params = [p for _, p in named_params]
        self.masks = [torch.ones_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.total = sum(self.numels)

    @classmethod
    def from_model(cls, model: nn.Module, exclude: Iterable[str] = ()) -> MaskSet:
        return cls(prunable_weights(model, exclude))

    def __len__(self) -> int:
        return len(self.params)

    @torch.no_grad()
    def apply_(self) -> None:
        """Zero every pruned weight: one foreach multiply over all masked parameters."""
        torch._foreach_mul_(self.params, self.masks)

    @torch.no_grad()
    def set_(self, new_masks: Sequence[torch.Tensor]) -> None:
        """Install new masks (bool or 0/1); never revives a weight that is already pruned."""
        if len(new_masks) != len(self.masks):
            raise ValueError(f"expected {len(self.masks)} masks, got {len(new_masks)}")
        for old, new in zip(self.masks, new_masks):
            if new.shape != old.shape:
                raise ValueError(f"mask shape {tuple(new.shape)} does not match weight {tuple(old.shape)}")
            old.mul_(new.to(old.dtype))
        self.apply_()

    def alive_counts(self) -> list[int]:
        # float32 sums of 0/1 are exact below 2**24 entries; larger layers accumulate in float64
        sums = [m.sum(dtype=torch.float64 if m.numel() >= 2**24 else None) for m in self.masks]
        return [int(c) for c in torch.stack([s.double() for s in sums]).tolist()]

    def layer_sparsity(self) -> dict[str, float]:
        return {n: (t - a) / t for n, a, t in zip(self.names, self.alive_counts(), self.numels)}

    def alive(self) -> int:
        return sum(self.alive_counts())

    def sparsity(self) -> float:
        """Fraction of prunable weights that are pruned (mask 0)."""
        return (self.total - self.alive()) / self.total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: m.detach().bool().cpu() for n, m in zip(self.names, self.masks)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise KeyError(f"masks missing for {sorted(missing)}")
        for name, m in zip(self.names, self.masks):
            m.copy_(state[name].to(m.device, m.dtype))
        self.apply_()
