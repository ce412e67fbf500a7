"""What the per-round gradient measurement costs next to training, in one process, interleaved.

    python scripts/bench_gradient_probe.py [--repeats 3] [hydra overrides ...]

Builds the experiment of ``conf/config.yaml`` (with the overrides), then alternates one training epoch and
one gradient measurement (``analysis.grad_batches`` batches) ``--repeats`` times, and prints the median
seconds of each and the overhead per round: 2 measurements (start and end) against ``train.epochs`` epochs.
Interleaving in one process keeps both under the same machine load, which end-to-end timings of two
separate runs on a shared machine do not.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scyc.analysis.gradients import GradientProbe, fixed_batches
from scyc.config import register_configs
from scyc.experiment import Experiment
from scyc.training import make_optimizer, train_epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["wandb.mode=disabled", *args.overrides])
    exp = Experiment(cfg, tempfile.mkdtemp(prefix="bench_probe_"))
    tcfg, acfg = cfg.train, cfg.analysis
    batches = fixed_batches(exp.data, int(tcfg.batch_size), int(acfg.grad_batches), int(cfg.seed))
    probe = GradientProbe(exp.masks, batches, bins=int(acfg.hist_bins), normalize=bool(acfg.normalize))
    optimizer = make_optimizer(exp.model, 0.05, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
    loader = exp.data.loader("train", tcfg.batch_size, train=True, generator=exp.generator)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    probe.measure(exp.model)  # fixes the bins (the first measurement of a run), warms up
    epochs, probes = [], []
    for _ in range(args.repeats):
        sync(exp.device)
        t0 = time.perf_counter()
        train_epoch(exp.model, loader, optimizer, scheduler, exp.masks)
        sync(exp.device)
        t1 = time.perf_counter()
        probe.measure(exp.model)
        sync(exp.device)
        t2 = time.perf_counter()
        epochs.append(t1 - t0)
        probes.append(t2 - t1)
    epoch, measure = statistics.median(epochs), statistics.median(probes)
    per_round = 2 * measure / (int(tcfg.epochs) * epoch)
    print(f"device {exp.device}, model {cfg.model.name}, {len(loader)} steps/epoch, {len(batches)} probe batches")
    print(f"epoch  {epoch:.3f} s (median of {args.repeats}: {', '.join(f'{e:.3f}' for e in epochs)})")
    print(f"probe  {measure:.3f} s (median of {args.repeats}: {', '.join(f'{p:.3f}' for p in probes)})")
    print(f"overhead per round: 2 probes / {tcfg.epochs} epochs = {100 * per_round:.1f}% of training time")
    print(OmegaConf.to_yaml(cfg.analysis).strip().replace("\n", ", "))


if __name__ == "__main__":
    main()
