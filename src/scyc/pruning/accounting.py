"""Pruning bookkeeping as round-loop callbacks: per-layer sparsity, and the weight-rewinding snapshot.

``LayerSparsity`` writes ``layer_sparsity.csv`` (``round, layer, numel, sparsity``; one row per prunable
layer per round, written at the start of the round, i.e. the sparsity the round trains at; layers kept
dense by ``pruner.exclude`` are not prunable and not listed).

``RewindSnapshot`` (only when ``pruner.reset=rewind_epoch``) saves the model's state dict as the snapshot
``"rewind"`` (``run.save_snapshot``) after ``pruner.rewind_epoch`` epochs of round 0: ``0`` is the initialisation,
``e`` in ``1..train.epochs`` the weights at the end of epoch ``e`` (counting from 1) of the dense round.
"""

from __future__ import annotations

import copy
from typing import Any

from scyc.lifecycle.callbacks import Callback, RunView

LAYER_COLUMNS = ["round", "layer", "numel", "sparsity"]


class LayerSparsity(Callback):
    """Rows of rounds at or after the current one are replaced, so a resumed run never lists a round twice."""

    def on_run_start(self, run: RunView) -> None:
        self.table = run.outputs.table("layer_sparsity.csv", LAYER_COLUMNS)

    def on_round_start(self, run: RunView, round_idx: int) -> None:
        masks = run.masks
        rows = [
            {"round": round_idx, "layer": name, "numel": n, "sparsity": (n - a) / n}
            for name, n, a in zip(masks.names, masks.numels, masks.alive_counts())
        ]
        self.table.keep_rounds_before(round_idx)
        self.table.stream(rows)


class RewindSnapshot(Callback):
    def __init__(self, rewind_epoch: int) -> None:  # in [0, train.epochs]: scyc.config.check_combinations
        self.rewind_epoch = rewind_epoch

    def on_run_start(self, run: RunView) -> None:
        if self.rewind_epoch == 0:
            run.save_snapshot("rewind", run.snapshots["init"])

    def on_epoch_end(self, run: RunView, round_idx: int, epoch: int, row: dict[str, Any]) -> None:
        if round_idx == 0 and epoch + 1 == self.rewind_epoch:
            run.save_snapshot("rewind", copy.deepcopy(run.model.state_dict()))


def pruning_callbacks(reset: str, rewind_epoch: int) -> list[Callback]:
    """The pruning callbacks a run needs: always ``LayerSparsity``; ``RewindSnapshot`` for rewind_epoch."""
    callbacks: list[Callback] = [LayerSparsity()]
    if reset == "rewind_epoch":
        callbacks.append(RewindSnapshot(rewind_epoch))
    return callbacks
