"""Pruning: masks, the pruner registry, reset strategies."""

from scyc.pruning.base import PRUNERS, PruneContext, Pruner, select_lowest
from scyc.pruning.masks import MaskSet, prunable_weights
from scyc.pruning.resets import RESETS
from scyc.registry import import_submodules

import_submodules("scyc.pruning")

# Keys of the pruner config that the round loop uses; every other key goes to the pruner's constructor.
LOOP_KEYS = ("name", "rounds", "reset", "exclude", "rewind_epoch")

__all__ = ["PRUNERS", "RESETS", "LOOP_KEYS", "MaskSet", "PruneContext", "Pruner", "prunable_weights", "select_lowest"]
