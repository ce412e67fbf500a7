"""The paper presets compose with Hydra's compose API and build their schedules; the speed switches resolve."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scyc.config import load, register_configs
from scyc.foundations.registry import ConfigError
from scyc.platforms.speed import Speed
from scyc.schedules import build_schedule

# preset -> (model, dataset, offset, alpha, epochs per round)
PRESETS = {
    "paper_resnet20_cifar10": ("resnet20", "cifar10", 0.03, 0.04, 50),
    "paper_vgg19_cifar10": ("vgg19", "cifar10", 0.04, 0.06, 160),
    "paper_resnet50_imagenet200": ("resnet50", "imagenet200", 0.04, 0.06, 30),
}


def composed(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_composes_with_the_papers_hyperparameters(preset):
    model, dataset, offset, alpha, epochs = PRESETS[preset]
    cfg = composed(f"+experiment={preset}")
    assert cfg.model.name == model and cfg.dataset.name == dataset and cfg.schedule.name == "scyc"
    assert cfg.pruner.rate == 0.2 and cfg.pruner.rounds == 25 and cfg.train.epochs == epochs
    assert cfg.train.batch_size == 64 and cfg.train.momentum == 0.9 and cfg.train.weight_decay == 5e-4
    schedule = build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))
    # SILO's max_lr(s) = offset + alpha / (1 + (s / (1 - s)) ** -beta), beta 5
    for s in (0.0, 0.2, 0.5, 0.8, 0.99):
        silo = offset + (alpha / (1 + (s / (1 - s)) ** -5.0) if s > 0 else 0.0)
        assert schedule.max_lr(3, s) == pytest.approx(silo, rel=1e-9, abs=1e-12)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = schedule.build_round(opt, schedule.max_lr(0, 0.0), total_steps=100, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(offset, rel=0.02) and min(lrs) >= cfg.schedule.base_lr - 1e-12
    # command-line overrides still apply on top of a preset, other schedules included (a schedule sweep)
    assert composed(f"+experiment={preset}", "pruner.rounds=3").pruner.rounds == 3
    for other in ("lr_rewind", "warmup", "cyclic", "sgdr", "oracle", "constant"):
        cfg = composed(f"+experiment={preset}", f"schedule={other}")
        assert cfg.schedule.name == other and cfg.train.epochs == epochs
        build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))


def test_speed_switches_resolve_and_refuse_bad_values():
    cfg = composed()
    assert cfg.train.precision == "auto" and cfg.train.channels_last == "auto" and cfg.train.compile is False
    conv = torch.nn.Conv2d(1, 1, 3)
    speed = Speed.from_config(load(cfg).train, torch.device("cpu"), conv)
    assert speed.autocast_dtype is None and speed.channels_last and not speed.compile  # auto: conv nets, any device
    assert speed.eval_batch_size == 256 and not speed.cuda_graphs
    bf16 = Speed.from_config(
        load(composed("train.precision=bf16", "train.channels_last=true")).train, torch.device("cpu"), conv
    )
    assert bf16.autocast_dtype is torch.bfloat16 and bf16.channels_last
    with bf16.autocast(torch.device("cpu")):
        assert conv(torch.randn(1, 1, 5, 5)).dtype is torch.bfloat16
    with pytest.raises(ConfigError, match="train.precision=fp16 is not allowed"):
        Speed.from_config(load(composed("train.precision=fp16")).train, torch.device("cpu"), conv)
    with pytest.raises(ConfigError, match="train.channels_last=sometimes"):
        Speed.from_config(load(composed("train.channels_last=sometimes")).train, torch.device("cpu"), conv)
