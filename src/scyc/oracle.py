"""The oracle's per-round search: train every ``max_lr`` candidate from one state, keep the best.

For a round with several candidates (``schedule.policy=grid``), ``search_round`` captures the post-prune
state (weights and buffers, masks, the data/augmentation generator, Python/NumPy/torch RNG states, the
global step), trains each candidate from exactly that state with ``Experiment.train_round``, and keeps the
one with the best final **validation** accuracy; on a tie the smaller ``max_lr`` wins (candidates are
tried in ascending order and only a strictly better one replaces the incumbent). The chosen candidate's
end state is restored and carried to the next round. The optimiser is fresh in every round anyway.

What is written: ``oracle.csv`` has one row per candidate per round (``chosen`` = 1 for exactly one);
``oracle_epochs.csv`` has every candidate's per-epoch rows. ``results.csv``, ``epochs.csv``,
``lr_trace.csv``, W&B and the callbacks' ``on_epoch_end`` see only the path actually taken: the
chosen candidate's epochs are recorded after the search (so ``on_epoch_end`` fires then, with the model
at the round's end state), and the global step advances once per round, not once per candidate.
``round_seconds`` in results.csv is the chosen candidate's; the search's cost is the sum over oracle.csv.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scyc.distributed import NullTable
from scyc.registry import ConfigError
from scyc.tracking import CsvTable

if TYPE_CHECKING:
    from scyc.experiment import Experiment, RoundResult

ORACLE_COLUMNS = [
    "round", "max_lr", "val_acc", "test_acc", "chosen", "sparsity", "val_loss", "test_loss", "train_loss",
    "train_acc", "best_val_acc", "round_seconds",
]  # fmt: skip
ORACLE_EPOCH_COLUMNS = [
    "round", "max_lr", "epoch", "lr_last", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
    "seconds",
]  # fmt: skip


@dataclass
class TrainingState:
    """Everything a round's training reads and changes, except the optimiser (fresh per round)."""

    model: dict[str, torch.Tensor]
    masks: list[torch.Tensor]
    generator: torch.Tensor
    python_rng: Any
    numpy_rng: Any
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor]
    global_step: int


def capture(exp: Experiment) -> TrainingState:
    return TrainingState(
        model={k: v.detach().clone() for k, v in exp.model.state_dict().items()},
        masks=[m.detach().clone() for m in exp.masks.masks],
        generator=exp.generator.get_state(),
        python_rng=random.getstate(),
        numpy_rng=np.random.get_state(),
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        global_step=exp.global_step,
    )


@torch.no_grad()
def restore(exp: Experiment, state: TrainingState) -> None:
    exp.model.load_state_dict(state.model)
    for mask, saved in zip(exp.masks.masks, state.masks):
        mask.copy_(saved)
    exp.masks.apply_()
    exp.generator.set_state(state.generator)
    random.setstate(state.python_rng)
    np.random.set_state(state.numpy_rng)
    torch.set_rng_state(state.torch_rng)
    if state.cuda_rng:
        torch.cuda.set_rng_state_all(state.cuda_rng)
    exp.global_step = state.global_step


@contextlib.contextmanager
def buffered_epochs(exp: Experiment):
    """Hold back ``exp._record_epoch`` calls (lr_trace, epochs.csv, W&B, callbacks) made inside the block;
    yields the list of held-back (args, kwargs) so that the chosen candidate's can be replayed."""
    held: list[tuple[tuple, dict]] = []
    exp._record_epoch = lambda *args, **kwargs: held.append((args, kwargs))  # shadows the method
    try:
        yield held
    finally:
        del exp._record_epoch


def _epoch_row(exp: Experiment, args: tuple, kwargs: dict) -> dict[str, Any]:
    a = inspect.signature(type(exp)._record_epoch).bind(exp, *args, **kwargs).arguments
    res = a["res"]
    return {
        "round": a["r"], "max_lr": a["max_lr"], "epoch": a["epoch"], "lr_last": res.lrs[-1] if res.lrs else math.nan,
        "train_loss": res.loss, "train_acc": res.accuracy, "val_loss": a["val_loss"], "val_acc": a["val_acc"],
        "test_loss": a["test_loss"], "test_acc": a["test_acc"], "seconds": a["secs"],
    }  # fmt: skip


def search_round(exp: Experiment, round_idx: int, candidates: list[float]) -> RoundResult:
    if not candidates:
        raise ConfigError(f"schedule '{exp.schedule.name}' gave no max_lr candidate for round {round_idx}")
    if len(exp.data.val[1]) == 0:
        raise ConfigError("the oracle picks max_lr by validation accuracy: set dataset.val_size > 0")
    if not hasattr(exp, "oracle_csv"):
        table = CsvTable if exp.dist.is_main else NullTable  # data-parallel runs: rank 0 writes
        exp.oracle_csv = table(exp.run_dir / "oracle.csv", ORACLE_COLUMNS)
        exp.oracle_epochs_csv = table(exp.run_dir / "oracle_epochs.csv", ORACLE_EPOCH_COLUMNS)
        for t in (exp.oracle_csv, exp.oracle_epochs_csv):  # on resume: earlier rounds' rows stay, this one's go
            t.keep_rounds_before(round_idx)
    start = capture(exp)
    tried: list[RoundResult] = []
    best: tuple[RoundResult, TrainingState, list] | None = None
    for max_lr in sorted(candidates):
        restore(exp, start)
        with buffered_epochs(exp) as epochs:  # no epoch checkpoints inside the search: a resume redoes the round
            result = exp.train_round(round_idx, max_lr, epoch_checkpoints=False)
        tried.append(result)
        exp.oracle_epochs_csv.stream([_epoch_row(exp, a, k) for a, k in epochs])
        if best is None or result.val_acc > best[0].val_acc or math.isnan(best[0].val_acc):
            best = (result, capture(exp), epochs)
    chosen, end, epochs = best
    restore(exp, end)
    for args, kwargs in epochs:  # the path actually taken: lr_trace.csv, epochs.csv, W&B, callbacks
        exp._record_epoch(*args, **kwargs)
    for result in tried:
        row = asdict(result)
        exp.oracle_csv.append({k: row[k] for k in ORACLE_COLUMNS if k in row} | {"chosen": int(result is chosen)})
        exp.wandb.log({"round/index": round_idx, f"oracle/val_acc@{result.max_lr:g}": result.val_acc})
    return chosen
