"""Hooks into the round loop, so that measurement and bookkeeping live beside it, not inside it.

The experiment calls, in order: ``on_run_start`` once; per round ``on_round_start`` (after pruning and
reset, before training), ``on_epoch_end`` after each epoch, ``on_round_end`` after the round's result is
recorded; ``on_run_end`` once with the summary. A callback sees the experiment (model, masks, data,
run_dir, wandb) and must not change the training state unless that is its purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scyc.experiment import Experiment, RoundResult


class Callback:
    def on_run_start(self, exp: Experiment) -> None: ...

    def on_round_start(self, exp: Experiment, round_idx: int) -> None: ...

    def on_epoch_end(self, exp: Experiment, round_idx: int, epoch: int, row: dict[str, Any]) -> None: ...

    def on_round_end(self, exp: Experiment, result: RoundResult) -> None: ...

    def on_run_end(self, exp: Experiment, summary: dict[str, Any]) -> None: ...
