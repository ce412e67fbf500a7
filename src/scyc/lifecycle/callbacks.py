"""Hooks into the round loop, so that measurement and bookkeeping live beside it, not inside it.

The round loop calls, in order: ``on_run_start`` once; per round ``on_round_start`` (after pruning and
reset, before training), ``on_epoch_end`` after each recorded epoch, ``on_round_end`` after the round's
result is recorded; ``on_run_end`` once with the summary. A callback sees the run through ``RunView``
(read-only properties; the rewind snapshot is saved through ``save_snapshot``) and writes through
``run.outputs`` (rank 0 writes in a data-parallel run): its own tables (``table``), or its own results.csv
column (``add_round_column`` in ``on_run_start``, ``set_round_value`` in ``on_round_end``). A callback with
state that a resumed run needs has ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from scyc.config import Config
    from scyc.data import DataSplits
    from scyc.lifecycle.state import RoundResult, RunState
    from scyc.lifecycle.tracking import RunOutputs


class RunView:
    """What a callback sees of a run: read-only properties over its parts (the run's state read live), not the
    run itself. A callback writes its own files through ``outputs``; the one change it may make to the training
    state is a weight snapshot for a reset (``save_snapshot``, the rewind point of ``pruner.reset=rewind_epoch``)."""

    __slots__ = ("_cfg", "_run_dir", "_state", "_data", "_outputs")

    def __init__(self, cfg: Config, run_dir: Path, state: RunState, data: DataSplits, outputs: RunOutputs) -> None:
        self._cfg, self._run_dir, self._state, self._data, self._outputs = cfg, run_dir, state, data, outputs

    # Read-only: a property each, no setter (``cfg``: Config, ``run_dir``: Path, ``model``: nn.Module, ``masks``:
    # MaskSet, ``snapshots``: a read-only Mapping[str, state dict], ``data``: DataSplits, ``outputs``: RunOutputs).
    cfg = property(lambda self: self._cfg)
    run_dir = property(lambda self: self._run_dir)
    model = property(lambda self: self._state.model)
    masks = property(lambda self: self._state.masks)
    snapshots = property(lambda self: MappingProxyType(self._state.snapshots))
    data = property(lambda self: self._data)
    outputs = property(lambda self: self._outputs)

    def save_snapshot(self, name: str, state_dict: dict[str, torch.Tensor]) -> None:
        """Keep ``state_dict`` as the run's snapshot ``name`` (checkpointed with the run's state)."""
        self._state.snapshots[name] = state_dict


class Callback:
    def on_run_start(self, run: RunView) -> None: ...

    def on_round_start(self, run: RunView, round_idx: int) -> None: ...

    def on_epoch_end(self, run: RunView, round_idx: int, epoch: int, row: dict[str, Any]) -> None: ...

    def on_round_end(self, run: RunView, result: RoundResult) -> None: ...

    def on_run_end(self, run: RunView, summary: dict[str, Any]) -> None: ...
