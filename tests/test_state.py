"""RunState: the one object a checkpoint holds and the oracle rewinds to; the CSV rows it records."""

from dataclasses import fields

import pytest
import torch
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.lifecycle.state import EPOCH_COLUMNS, RESULT_COLUMNS, EpochRecord, RoundResult, RunState
from scyc.pruning.masks import MaskSet


def test_csv_columns_are_the_fields_but_those_no_row_holds():
    """RESULT_COLUMNS / EPOCH_COLUMNS are the dataclasses' fields in order (tests/test_columns.py holds the order),
    less the callbacks' added values and the per-step LRs, which are not columns of their own."""
    assert RESULT_COLUMNS == [f.name for f in fields(RoundResult) if f.name != "added"]
    assert EPOCH_COLUMNS == [f.name for f in fields(EpochRecord) if f.name != "lrs"]


def _state(seed: int = 0) -> RunState:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    generator = torch.Generator().manual_seed(seed)
    return RunState(model=model, masks=MaskSet.from_model(model), generator=generator)


def _result(round_idx: int) -> RoundResult:
    metrics = dict(train_loss=0.5, train_acc=0.8, val_loss=0.6, val_acc=0.7, test_loss=0.6, test_acc=0.75)
    return RoundResult(round=round_idx, sparsity=0.2, alive=30, max_lr=0.1, best_val_acc=0.7, best_val_epoch=2,
                       test_acc_at_best_val=0.74, epoch_seconds=1.0, round_seconds=3.0, **metrics)  # fmt: skip


def test_clone_is_untouched_by_later_training_and_load_restores_everything():
    state = _state()
    state.snapshots["init"] = {k: v.clone() for k, v in state.model.state_dict().items()}
    state.results.append(_result(0))
    state.epochs.append({"round": 0, "epoch": 0})
    state.global_step = 7
    saved = state.clone()
    weights = {k: v.clone() for k, v in state.model.state_dict().items()}
    draws = torch.rand(4, generator=state.generator), torch.rand(4)

    with torch.no_grad():  # "training" and pruning after the copy
        for p in state.model.parameters():
            p.add_(1.0)
    state.masks.set_([torch.zeros_like(m) for m in state.masks.masks])
    state.global_step, state.results, state.epochs = 99, [], []
    torch.rand(10, generator=state.generator)

    assert all(torch.equal(saved["model"][k], weights[k]) for k in weights)  # the copy did not move
    state.load_state_dict(saved)
    assert all(torch.equal(state.model.state_dict()[k], weights[k]) for k in weights)
    assert all(bool(m.all()) for m in state.masks.masks)
    assert state.global_step == 7 and state.results == [_result(0)] and state.epochs == [{"round": 0, "epoch": 0}]
    assert set(state.snapshots) == {"init"}
    # the generator and the global torch RNG continue exactly where they were when the copy was taken
    assert torch.equal(torch.rand(4, generator=state.generator), draws[0]) and torch.equal(torch.rand(4), draws[1])


def test_a_state_of_another_model_is_refused_naming_the_cause():
    state, other = _state(), _state()
    other.model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(ConfigError, match="does not fit this model"):
        state.load_state_dict(other.state_dict())
