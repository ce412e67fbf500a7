"""The run's state: what a checkpoint holds and the oracle rewinds to, in one object.

``RunState`` owns the model, the masks, the snapshots the resets need (``init``, ``rewind``), the
data/augmentation generator (and with it every global RNG), the global step and the rows recorded so
far. The round in progress (optimiser, LR scheduler, best-validation tracking) and the callbacks own
their own ``state_dict``s; ``scyc.lifecycle.checkpoint`` only writes and reads the files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import rng_state, set_rng_state
from scyc.pruning.masks import MaskSet

log = logging.getLogger("scyc")


def columns(record: type) -> list[str]:
    """The CSV columns of a record dataclass: its fields in their order, less those marked ``csv=False``. The
    dataclass is the one place a column is declared; the tables' headers and rows follow it."""
    return [f.name for f in fields(record) if f.metadata.get("csv", True)]


# A record's columns are its fields in order, and a dataclass lays out its bases' fields first, the last base
# first: ``class RoundResult(Metrics, RoundKey)`` has RoundKey's fields, then the metrics, then its own. That
# is the order the files have always had (tests/test_columns.py holds it). A new column is a new field at the
# end of its class, with a default, so that rows of older checkpoints still load.


@dataclass
class Metrics:
    """The six numbers measured at the end of an epoch (train on the epoch's batches, val and test after it)."""

    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    test_loss: float
    test_acc: float


@dataclass
class RoundKey:
    """Which round a row of ``results.csv`` is: the round, its network's sparsity and size, its ``max_lr``."""

    round: int
    sparsity: float
    alive: int
    max_lr: float


@dataclass
class RoundResult(Metrics, RoundKey):
    """One row of ``results.csv``: the round's network, its ``max_lr``, the last epoch's metrics and the
    epoch of the best validation accuracy; then the columns callbacks add (``RunOutputs.add_round_column``)."""

    best_val_acc: float
    best_val_epoch: int
    test_acc_at_best_val: float
    epoch_seconds: float  # the mean training time of an epoch (the training steps only)
    round_seconds: float  # the round's training: its epochs, the evaluation after each, its epoch checkpoints
    # The rest of the round's wall time: pruning and reset, the gradient measurement at its start and end, the
    # callbacks, the round checkpoint (and for the oracle the other candidates' training). NaN in rows of runs
    # written before this column existed.
    other_seconds: float = math.nan
    # the values of the columns callbacks added (name -> value), after the fields' columns; set through the
    # run's outputs, checkpointed with the row
    added: dict[str, Any] = field(default_factory=dict, metadata={"csv": False})

    def row(self) -> dict[str, Any]:
        """The row of ``results.csv``: the fields' columns, then the added ones."""
        return {k: getattr(self, k) for k in RESULT_COLUMNS} | self.added


@dataclass
class EpochKey:
    """Which epoch a row of ``epochs.csv`` is, and the LR it trained at."""

    round: int
    epoch: int
    sparsity: float
    max_lr: float
    lr_last: float


@dataclass
class EpochRecord(Metrics, EpochKey):
    """One row of ``epochs.csv`` plus the epoch's per-step LRs (``lr_trace.csv``)."""

    seconds: float
    lrs: list[float] = field(default_factory=list, repr=False, metadata={"csv": False})

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in EPOCH_COLUMNS}


METRICS = columns(Metrics)
RESULT_COLUMNS = columns(RoundResult)  # the CSV headers (callbacks' columns follow RESULT_COLUMNS)
EPOCH_COLUMNS = columns(EpochRecord)


@dataclass
class RunState:
    model: nn.Module
    masks: MaskSet
    generator: torch.Generator
    snapshots: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    global_step: int = 0
    results: list[RoundResult] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)  # the rows of epochs.csv so far

    def state_dict(self) -> dict[str, Any]:
        """References to the live tensors (``torch.save`` them, or ``clone`` for an in-memory copy)."""
        return {
            "model": self.model.state_dict(),
            "masks": self.masks.state_dict(),
            "snapshots": self.snapshots,
            "rng": rng_state(self.generator),
            "global_step": int(self.global_step),
            # a result without added columns is stored as before they existed
            "results": [{k: v for k, v in asdict(r).items() if k != "added" or v} for r in self.results],
            "epochs": [dict(r) for r in self.epochs],
        }

    def clone(self) -> dict[str, Any]:
        """An in-memory copy of ``state_dict`` that later training does not change (the oracle's start)."""
        state = self.state_dict()
        state["model"] = {k: v.detach().clone() for k, v in state["model"].items()}
        state["masks"] = {k: v.clone() for k, v in state["masks"].items()}
        state["snapshots"] = dict(state["snapshots"])  # snapshots are replaced, never changed in place
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            check_fits(self.model, self.masks, state)
        except ValueError as exc:
            raise ConfigError(f"the checkpoint {exc}") from exc
        try:
            self.model.load_state_dict(state["model"])
            self.masks.load_state_dict(state["masks"])
        except (RuntimeError, KeyError) as exc:
            raise ConfigError(f"the checkpoint does not fit this model: {' '.join(str(exc).split())}") from exc
        device = self.masks.masks[0].device
        self.snapshots.clear()  # in place: callbacks hold this dict
        self.snapshots.update({k: {n: t.to(device) for n, t in sd.items()} for k, sd in state["snapshots"].items()})
        self.global_step = int(state["global_step"])
        self.results = [RoundResult(**row) for row in state["results"]]
        self.epochs = [dict(r) for r in state["epochs"]]
        set_rng_state(state["rng"], self.generator)


def check_fits(model: nn.Module, masks: MaskSet, state: dict[str, Any]) -> None:
    """Raise ``ValueError`` saying, in one line, why a checkpoint's ``state`` cannot be loaded into ``model`` and
    ``masks`` (tensors missing, unexpected or of another shape: e.g. another model's checkpoint under this name)."""
    problems: list[str] = []
    for part, own in (("model", model.state_dict()), ("masks", masks.state_dict())):
        theirs = state.get(part) if isinstance(state, dict) else None
        if not isinstance(theirs, dict):
            raise ValueError(f"has no {part} state")
        missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
        problems += [f"{part} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} {what}"
                     for names, what in ((missing, "missing"), (unexpected, "not in this model")) if names]  # fmt: skip
        problems += [
            f"{part} {k} is {'x'.join(map(str, theirs[k].shape))} in it, {'x'.join(map(str, v.shape))} in this model"
            for k, v in own.items()
            if k in theirs and getattr(theirs[k], "shape", None) != v.shape
        ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"does not fit this model: {'; '.join(problems[:3])}{more}")
