"""What the per-round gradient measurement costs next to training, in one process, interleaved.

    python scripts/bench_gradient_probe.py [--repeats 3] [--threads N] [--steps-per-epoch N] [hydra overrides ...]

Builds the experiment of ``conf/config.yaml`` (with the overrides; W&B disabled), then alternates one training
epoch and one measurement by the run's own ``GradientAnalysis`` callback (``analysis.grad_batches`` batches, the
three populations, grad_stats.csv and grad_hist.npz written) ``--repeats`` times, and prints the median
seconds of each and the overhead per round: 2 measurements (start and end) against ``train.epochs`` epochs.
Interleaving in one process keeps both under the same machine load, which end-to-end timings of two
separate runs on a shared machine do not. ``--steps-per-epoch`` projects the epoch to that many steps (the
measured time per step times N), for a miniature data set standing in for a full one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from scyc.cli import build_run
from scyc.config import register_configs
from scyc.lifecycle.training import make_optimizer, train_epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["wandb.mode=disabled", "analysis.grad_every_round=true", *args.overrides])
    exp = build_run(cfg, tempfile.mkdtemp(prefix="bench_probe_"))
    tcfg, gradients = cfg.train, exp.gradients
    gradients.on_run_start(exp.view)
    optimizer = make_optimizer(exp.state.model, 0.05, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
    loader = exp.data.loader("train", tcfg.batch_size, train=True, generator=exp.state.generator)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    gradients.measure(exp.view, 0, "start")  # fixes the bins (the first measurement of a run), warms up
    epochs, probes = [], []
    for r in range(args.repeats):
        sync(exp.device)
        t0 = time.perf_counter()
        train_epoch(exp.state.model, loader, optimizer, scheduler, exp.state.masks)
        sync(exp.device)
        t1 = time.perf_counter()
        gradients.measure(exp.view, r, "end")
        sync(exp.device)
        t2 = time.perf_counter()
        epochs.append(t1 - t0)
        probes.append(t2 - t1)
    epoch, measure = statistics.median(epochs), statistics.median(probes)
    steps = len(loader)
    print(f"device {exp.device}, {torch.get_num_threads()} thread(s), model {cfg.model.name}, {steps} steps/epoch, "
          f"{len(gradients.probe.batches)} measurement batches of {tcfg.batch_size}, {len(gradients.probe.populations)} populations")  # fmt: skip
    print(f"epoch    {epoch:.3f} s (median of {args.repeats}: {', '.join(f'{e:.3f}' for e in epochs)})")
    print(f"measure  {measure:.3f} s (median of {args.repeats}: {', '.join(f'{p:.3f}' for p in probes)})")
    if args.steps_per_epoch:
        epoch = epoch / steps * args.steps_per_epoch
        print(f"epoch projected to {args.steps_per_epoch} steps: {epoch:.3f} s ({1000 * epoch / args.steps_per_epoch:.1f} ms/step)")  # fmt: skip
    print(f"overhead per round: 2 measurements / {tcfg.epochs} epochs = {100 * 2 * measure / (tcfg.epochs * epoch):.1f}% of training time")  # fmt: skip


if __name__ == "__main__":
    main()
