"""The oracle's per-round search: train every ``max_lr`` candidate from one state, keep the best.

For a round with several candidates (``schedule.policy=grid``), ``Oracle.search`` copies the post-prune
``RunState`` (weights and buffers, masks, the data/augmentation generator, Python/NumPy/torch RNG states,
the global step), trains each candidate from exactly that state with the round loop's ``train_round``,
and keeps the one with the best final **validation** accuracy; on a tie the smaller ``max_lr`` wins
(candidates are tried in ascending order and only a strictly better one replaces the incumbent). The
chosen candidate's end state is restored and carried to the next round. The optimiser is fresh in every
round anyway, and nothing of the search outlives its round, so the oracle has no checkpointed state: a
run resumed inside an oracle round redoes the round.

What is written: ``oracle.csv`` has one row per candidate per round (``chosen`` = 1 for exactly one);
``oracle_epochs.csv`` has every candidate's per-epoch rows. ``results.csv``, ``epochs.csv``,
``lr_trace.csv``, W&B and the callbacks' ``on_epoch_end`` see only the path actually taken: the round
loop records the chosen candidate's epochs after the search (so ``on_epoch_end`` fires then, with the
model at the round's end state), and the global step advances once per round, not once per candidate.
``round_seconds`` in results.csv is the chosen candidate's; the search's cost is the sum over oracle.csv.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict

from scyc.foundations.registry import ConfigError
from scyc.lifecycle.state import EpochRecord, RoundResult, RunState
from scyc.lifecycle.tracking import CsvTable, RunOutputs

ORACLE_COLUMNS = [
    "round", "max_lr", "val_acc", "test_acc", "chosen", "sparsity", "val_loss", "test_loss", "train_loss",
    "train_acc", "best_val_acc", "round_seconds",
]  # fmt: skip
ORACLE_EPOCH_COLUMNS = [
    "round", "max_lr", "epoch", "lr_last", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
    "seconds",
]  # fmt: skip

TrainRound = Callable[[float], tuple[RoundResult, list[EpochRecord]]]


class Oracle:
    def __init__(self, outputs: RunOutputs) -> None:
        self.outputs = outputs
        self.tables: tuple[CsvTable, CsvTable] | None = None

    def search(
        self, round_idx: int, candidates: list[float], train: TrainRound, state: RunState, has_val: bool
    ) -> tuple[RoundResult, list[EpochRecord]]:
        """``train(max_lr)`` once per candidate from the same ``state``; returns the chosen result and epochs."""
        if not candidates:
            raise ConfigError(f"the schedule gave no max_lr candidate for round {round_idx}")
        if not has_val:
            raise ConfigError("the oracle picks max_lr by validation accuracy: set dataset.val_size > 0")
        if self.tables is None:
            self.tables = (
                self.outputs.table("oracle.csv", ORACLE_COLUMNS),
                self.outputs.table("oracle_epochs.csv", ORACLE_EPOCH_COLUMNS),
            )
            for t in self.tables:  # on resume: earlier rounds' rows stay, this one's go
                t.keep_rounds_before(round_idx)
        oracle_csv, epochs_csv = self.tables
        start = state.clone()
        tried: list[RoundResult] = []
        best: tuple[RoundResult, list[EpochRecord], dict] | None = None
        for max_lr in sorted(candidates):
            state.load_state_dict(start)
            result, epochs = train(max_lr)
            tried.append(result)
            epochs_csv.stream([{k: e.row()[k] for k in ORACLE_EPOCH_COLUMNS} for e in epochs])
            if best is None or result.val_acc > best[0].val_acc or math.isnan(best[0].val_acc):
                best = (result, epochs, state.clone())
        chosen, epochs, end = best
        state.load_state_dict(end)
        for result in tried:
            row = asdict(result)
            oracle_csv.append({k: row[k] for k in ORACLE_COLUMNS if k in row} | {"chosen": int(result is chosen)})
            self.outputs.wandb.log({"round/index": round_idx, f"oracle/val_acc@{result.max_lr:g}": result.val_acc})
        return chosen, epochs
