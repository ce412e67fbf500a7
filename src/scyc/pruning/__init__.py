"""Pruning: masks, the pruner registry, reset strategies."""

from scyc.foundations.registry import import_submodules
from scyc.pruning.base import PRUNERS, PruneContext, Pruner, select_lowest
from scyc.pruning.masks import MaskSet, prunable_weights
from scyc.pruning.resets import RESETS

import_submodules("scyc.pruning")

__all__ = ["PRUNERS", "RESETS", "MaskSet", "PruneContext", "Pruner", "prunable_weights", "select_lowest"]
