"""Issue 24 on the CPU: the GPU path's defects that a CPU can show (the start-up preflight, deterministic mode
that ends with its job, resume on another device type, momentum under CUDA graphs, the masks' memory format,
the global pools); tests/test_cuda.py has the cases that need a GPU."""

from __future__ import annotations

import os
import types

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_train
from options import train_cfg
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.lifecycle.training import CudaGraphStep, make_optimizer, train_epoch
from scyc.models import create_model
from scyc.models.pooling import GlobalAvgPool
from scyc.platforms.speed import Speed
from scyc.pruning.base import PRUNERS, Pruner
from scyc.pruning.masks import MaskSet

TINY = ["dataset.train_subset=500", "dataset.val_size=100", "pruner.rounds=2", "train.epochs=1"]
TESTS_ON_PATH = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}


@PRUNERS.register("test_unpool_pruner")
class UnpoolPruner(Pruner):
    """Magnitude scores routed through ``max_unpool2d``: an op with no deterministic kernel (it raises under
    ``torch.use_deterministic_algorithms(True)`` on the CPU too), the injected failing op."""

    def scores(self, masks, ctx):
        out = []
        for p in masks.params:
            x = p.detach().abs().reshape(1, 1, 1, -1)
            pooled, idx = F.max_pool2d(x, (1, 1), return_indices=True)
            out.append(F.max_unpool2d(pooled, idx, (1, 1)).reshape(p.shape))
        return out


# ---------------------------------------------------------------------------------------- 1. pools
@pytest.mark.parametrize(
    "name, kw", [("resnet20", {"width": 16, "shortcut": "A"}), ("vgg11", {}), ("resnet18", {"small_input": True})]
)
def test_models_pool_with_a_mean_not_adaptive_avg_pool2d(name, kw):
    model = create_model(name, num_classes=10, in_channels=3, image_size=(32, 32), **kw)
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())  # CUDA: no deterministic backward
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_mean_is_bit_identical_to_adaptive_avg_pool2d_on_the_cpu(dtype, channels_last):
    x = torch.randn(64, 32, 8, 8).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = F.adaptive_avg_pool2d(a, 1), GlobalAvgPool()(b)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    assert torch.equal(ya, yb) and torch.equal(a.grad, b.grad)


# ---------------------------------------------------------------------------------------- 2. preflight
def test_preflight_refuses_an_injected_failing_op_in_one_line_with_no_run_dir(tmp_path):
    run_dir = tmp_path / "runs" / "one"
    proc = run_train(
        run_dir, *TINY, "deterministic=true", "pruner.name=test_gpu_path.UnpoolPruner", check=False, env=TESTS_ON_PATH
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith("error: preflight on cpu (LeNet300, batch of 16): the pruning selection failed with "
                                "RuntimeError: max_unpooling2d_forward_out does not have a deterministic")  # fmt: skip
    assert lines[-1].endswith("; set deterministic=false, or another pruner.name than test_gpu_path.UnpoolPruner")
    assert not (tmp_path / "runs").exists()  # no run dir, no lock, no log
    ok = run_train(run_dir, *TINY, "pruner.name=test_gpu_path.UnpoolPruner", env=TESTS_ON_PATH)  # no refusal
    assert ok.returncode == 0 and (run_dir / "results.csv").exists()


def test_the_preflight_leaves_the_run_as_it_found_it(tmp_path, monkeypatch):
    """A run with the preflight gives bit for bit the results of one without (conv net: channels_last, masks)."""
    from scyc import run
    from scyc.lifecycle import build

    args = ["model=lenet5", "deterministic=true", *TINY, "wandb.mode=disabled", "progress=false"]
    run(args, run_dir=tmp_path / "with")
    monkeypatch.setattr(build, "run_preflight", lambda built: 0.0)
    run(args, run_dir=tmp_path / "without")
    for name in ("results.csv", "epochs.csv", "lr_trace.csv", "grad_stats.csv"):
        a, b = (pd.read_csv(tmp_path / d / name) for d in ("with", "without"))
        cols = [c for c in a.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


# ---------------------------------------------------------------------------------------- 1. deterministic mode
def test_deterministic_mode_is_off_after_a_job_that_turned_it_on(tmp_path):
    from scyc import run

    assert not torch.are_deterministic_algorithms_enabled()
    run(["deterministic=true", *TINY, "wandb.mode=disabled", "progress=false"], run_dir=tmp_path / "a")
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with pytest.raises(ConfigError, match="preflight on cpu"):  # refused after deterministic mode was switched on
        run(["deterministic=true", *TINY, "pruner.name=test_gpu_path.UnpoolPruner"], run_dir=tmp_path / "b")
    assert not torch.are_deterministic_algorithms_enabled()
    assert not [p for p in (tmp_path / "b").rglob("*")]  # nothing written (scyc.run leaves the empty folder)


# ---------------------------------------------------------------------------------------- 6. resume, device type
def test_resume_on_another_device_type_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_train(run_dir, *TINY[:2], "pruner.rounds=1", "train.epochs=1")
    path = run_dir / "checkpoints" / "last.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["state"]["rng"]["generator"].numel() == 5056  # the CPU generator's state
    ckpt["state"]["rng"]["generator"] = torch.zeros(16, dtype=torch.uint8)  # as a CUDA run saves it
    torch.save(ckpt, path)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = run_train(run_dir, *TINY[:2], "pruner.rounds=2", "train.epochs=1", "resume=true", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: resume=true with device=auto: the checkpoint was made on cuda, and its data generator cannot "
        "continue on cpu; resume with the device type it was made on (device=cuda)"
    )
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing touched


# ---------------------------------------------------------------------------------------- 3. momentum, graphs
def speed(device: str, cycles_momentum: bool, **train) -> Speed:
    net = create_model("lenet5", num_classes=10, in_channels=1, image_size=(28, 28))
    return Speed.from_config(train_cfg(precision="fp32", **train), torch.device(device), net, cycles_momentum)


def test_cycle_momentum_turns_graphs_off_or_is_refused_with_them():
    assert speed("cuda", False).cuda_graphs and not speed("cuda", True).cuda_graphs  # auto: eager steps
    with pytest.raises(ConfigError) as err:
        speed("cuda", True, cuda_graphs=True)
    assert str(err.value) == (
        "train.cuda_graphs=true cannot be used with schedule.cycle_momentum=true (a captured step keeps the momentum "
        "it was captured with); set train.cuda_graphs=auto or false"
    )
    from scyc.schedules import build_schedule

    base = {"name": "x", "policy": "constant", "max_lr": 0.1, "shape": "one_cycle", "pct_start": 0.3, "div_factor": 25.0,
            "final_div_factor": 1e4, "anneal_strategy": "cos", "three_phase": False, "cycle_momentum": False}  # fmt: skip
    assert build_schedule({**base, "cycle_momentum": True}).cycles_momentum
    assert not build_schedule(base).cycles_momentum


class FakeGraph:
    """What ``torch.cuda.CUDAGraph`` does for the loop: replay the captured step (here: an eager one)."""

    def __init__(self, step):
        self.step, self.freed = step, False

    def reset(self):  # frees the graph and its memory pool
        self.freed = True

    def replay(self):
        s = self.step
        s.optimizer.zero_grad()
        loss = F.cross_entropy(s.model(s.x), s.y)
        loss.backward()
        s.optimizer.step()
        s.loss = loss.detach()
        s.loss_sum += s.loss * len(s.y)


def mocked_graph_step(model, optimizer, masks, amp_dtype):
    """A ``CudaGraphStep`` captured at once, its graph mocked (CUDA is absent): the real ``ready``/``__call__``."""
    step = object.__new__(CudaGraphStep)
    step.model, step.optimizer, step.masks, step.amp_dtype, step.warmup = model, optimizer, masks, amp_dtype, 0
    step.loss_sum, step.correct, step.lr = torch.zeros(()), torch.zeros((), dtype=torch.long), torch.zeros(())
    step.failed, step.error, step.replays = False, None, 0
    step.x, step.y = torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)
    step.momentum = optimizer.param_groups[0]["momentum"]  # baked in at capture
    step.graph = FakeGraph(step)
    optimizer._scyc_graph = step
    return step


@pytest.mark.parametrize("cycle_momentum", [False, True])
def test_momentum_under_a_mocked_graph_step(monkeypatch, cycle_momentum):
    monkeypatch.setattr(CudaGraphStep, "of", classmethod(lambda cls, *a: mocked_graph_step(*a)))
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=cycle_momentum)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(5)]
    if cycle_momentum:  # the second step's momentum is not the captured one: refused, not trained at a frozen one
        with pytest.raises(RuntimeError, match="changed SGD's momentum .* set train.cuda_graphs=false"):
            train_epoch(model, batches, opt, sched, None, cuda_graphs=True)
    else:
        res = train_epoch(model, batches, opt, sched, None, cuda_graphs=True)
        graph = opt._scyc_graph.graph
        assert opt._scyc_graph.replays == 5 and res.examples == 40 and len(set(res.lrs)) == 5
        CudaGraphStep.release(opt)  # the end of a round: the graph freed, the cycle optimiser <-> step broken
        assert graph.freed and not hasattr(opt, "_scyc_graph") and all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------- 8. masks' layout
def test_masks_share_the_weights_memory_format_after_the_conversion(tmp_path):
    from hydra import compose, initialize_config_dir

    from scyc.cli import build_run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=resnet20", "model.width=4", "dataset=fashion_mnist", *TINY])
    cfg.data_dir = str(ROOT / "data")
    exp = build_run(cfg, tmp_path / "run")
    assert exp.speed.channels_last
    convs = [(p, m) for p, m in zip(exp.state.masks.params, exp.state.masks.masks) if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p, _ in convs)
    assert all(m.stride() == p.stride() for p, m in zip(exp.state.masks.params, exp.state.masks.masks))


def test_masks_of_a_converted_model_follow_its_layout():
    model = create_model("resnet20", num_classes=10, in_channels=3, image_size=(32, 32), width=4, shortcut="A")
    model.to(memory_format=torch.channels_last)
    masks = MaskSet.from_model(model)
    assert all(m.stride() == p.stride() for p, m in zip(masks.params, masks.masks))
    opt = make_optimizer(model, 0.1, 0.9, 0.0, False)
    assert opt.defaults["foreach"]


# ---------------------------------------------------------------------------------------- 7. staged probe
def test_the_gradient_probe_computes_its_batches_on_the_runs_device():
    from scyc.analysis.gradients import fixed_batches
    from scyc.data.base import Augment

    x, y = torch.zeros(40, 1, 8, 8, dtype=torch.uint8), torch.zeros(40, dtype=torch.long)
    raw = types.SimpleNamespace(mean=(0.5,), std=(0.5,), augment=Augment(crop_padding=0, flip=False))
    staged = types.SimpleNamespace(train=(x, y), raw=raw, device=torch.device("meta"))  # data on the CPU, run not
    assert fixed_batches(staged, 8, 2, seed=0).device == torch.device("meta")
    assert fixed_batches(types.SimpleNamespace(train=(x, y), raw=raw, device=None), 8, 2, seed=0).device == x.device
