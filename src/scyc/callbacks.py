"""Hooks into the round loop, so that measurement and bookkeeping live beside it, not inside it.

The round loop calls, in order: ``on_run_start`` once; per round ``on_round_start`` (after pruning and
reset, before training), ``on_epoch_end`` after each recorded epoch, ``on_round_end`` after the round's
result is recorded; ``on_run_end`` once with the summary. A callback sees the run through ``RunView``
(read-only attributes; it must not change the training state unless that is its purpose, like the
rewind snapshot) and writes through ``run.outputs`` (rank 0 writes in a data-parallel run). A callback
with state that a resumed run needs has ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from scyc.config import Config
    from scyc.data import DataSplits
    from scyc.pruning.masks import MaskSet
    from scyc.state import RoundResult
    from scyc.tracking import RunOutputs


class RunView(Protocol):
    """What a callback may read of a run."""

    @property
    def cfg(self) -> Config: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def model(self) -> nn.Module: ...

    @property
    def masks(self) -> MaskSet: ...

    @property
    def snapshots(self) -> dict[str, dict[str, torch.Tensor]]: ...

    @property
    def data(self) -> DataSplits: ...

    @property
    def outputs(self) -> RunOutputs: ...


class Callback:
    def on_run_start(self, run: RunView) -> None: ...

    def on_round_start(self, run: RunView, round_idx: int) -> None: ...

    def on_epoch_end(self, run: RunView, round_idx: int, epoch: int, row: dict[str, Any]) -> None: ...

    def on_round_end(self, run: RunView, result: RoundResult) -> None: ...

    def on_run_end(self, run: RunView, summary: dict[str, Any]) -> None: ...
