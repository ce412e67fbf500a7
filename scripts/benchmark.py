"""Throughput of the training loop, with and without masks, against a loop as pruning repos usually write it.

    python scripts/benchmark.py model=lenet5 device=cpu benchmark.steps=60
    python scripts/benchmark.py +experiment=paper_resnet20_cifar10 device=cuda benchmark.steps=400

Same Hydra config and overrides as ``train.py`` (conf/benchmark.yaml = conf/config.yaml + a ``benchmark``
section). In one process, on the chosen device, it measures

1. ``images_per_s``: our loop (``scyc.training.train_epoch``: device-resident batches with on-device
   augmentation, the configured precision / channels_last / compile, fused or foreach SGD, the schedule
   stepped every step, masks applied with one foreach multiply per step);
2. ``unmasked_images_per_s``: the same loop without the mask multiply;
   both are timed in interleaved short chunks (``benchmark.chunk_steps`` steps each, ABBA order) so
   that load from other processes hits both alike. ``mask_overhead`` = 1 - fastest masked chunk /
   fastest unmasked chunk (timeit's convention: the minimum is the least disturbed measurement);
   ``mask_overhead_median`` is 1 - the median ratio of adjacent pairs, and ``mask_overhead_direct``
   the time of one ``MaskSet.apply_()`` (best of many) over the fastest masked step;
3. ``reference_images_per_s``: a reference loop as common pruning repositories write it: a torchvision
   ``DataLoader`` over the uint8 images with per-image CPU transforms (RandomCrop with padding,
   RandomHorizontalFlip, ToDtype, Normalize), a plain fp32 model, ``loss.item()`` every step, and a
   Python loop multiplying each weight by its mask after every step;
4. ``prune_seconds`` (one pruning step plus its reset) and ``eval_seconds`` (one pass over the test split).

Warm-up steps are excluded; every timed span ends with a device synchronisation. The JSON goes to the
Hydra run directory, ``outputs/benchmarks/<date>/<time>_<model>_<dataset>_<device>/benchmark.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from scyc.config import Config

log = logging.getLogger("scyc.benchmark")


@dataclass
class BenchmarkSettings:
    steps: int = 200  # timed training steps per measurement
    warmup: int = 20  # untimed steps before the first measurement of each loop
    repeats: int = 5  # measurements per loop: steps * repeats timed steps each for the masked and unmasked loop
    chunk_steps: Any = "auto"  # ... timed in interleaved chunks of this many steps; auto: 1 on CPU, 20 on CUDA
    reference_repeats: int = 3
    reference_workers: Any = "auto"  # DataLoader workers of the reference loop; auto: 0 on CPU, min(8, cores) on CUDA
    sparsity_rounds: int = 1  # pruning steps taken before measuring (the first one is timed)


@dataclass
class BenchmarkSchema(Config):
    benchmark: BenchmarkSettings = field(default_factory=BenchmarkSettings)


# The benchmark's schema is train.py's plus the ``benchmark`` section, under the name config.yaml uses.
ConfigStore.instance().store(name="scyc_schema", node=BenchmarkSchema)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cycle_batches(loader) -> Iterator:
    while True:
        yield from loader


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )


class ReferenceDataset(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) images with per-image torchvision transforms on the CPU, as common repos do."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def reference_transform(raw):
    from torchvision.transforms import v2

    ops = []
    if raw.augment.crop_padding > 0:
        ops.append(v2.RandomCrop(raw.image_size, padding=raw.augment.crop_padding))
    if raw.augment.flip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(raw.mean), list(raw.std))]
    return v2.Compose(ops)


def run(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    from scyc.experiment import Experiment
    from scyc.models import create_model
    from scyc.training import evaluate, make_optimizer, train_epoch
    from scyc.utils import resolve_device

    b = cfg.benchmark
    if b.chunk_steps == "auto":
        b.chunk_steps = 1 if resolve_device(cfg.device).type == "cpu" else 20
    for key in ("steps", "warmup", "repeats", "chunk_steps", "reference_repeats", "sparsity_rounds"):
        if int(b[key]) < (0 if key in ("warmup", "sparsity_rounds") else 1):
            from scyc.registry import ConfigError

            raise ConfigError(f"benchmark.{key}={b[key]} is not allowed: it must be a positive integer")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    exp = Experiment(cfg, run_dir)
    dev, tcfg = exp.device, cfg.train
    bs = int(tcfg.batch_size)
    max_lr = exp.schedule.max_lr(0, 0.0)

    # one pruning step (timed) so that the masks are not all ones, then more if asked
    prune_times = []
    for _ in range(max(1, int(b.sparsity_rounds))):
        sync(dev)
        t0 = time.perf_counter()
        exp.prune()
        sync(dev)
        prune_times.append(time.perf_counter() - t0)

    optimizer = make_optimizer(exp.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
    batches = cycle_batches(exp.data.loader("train", bs, train=True, generator=exp.generator))
    amp = exp.speed.autocast_dtype

    def ours(steps: int, masked: bool) -> float:
        scheduler = exp.schedule.build_round(optimizer, max_lr, steps, max(1, len(exp.data.train[0]) // bs))
        sync(dev)
        t0 = time.perf_counter()
        res = train_epoch(
            exp.net, itertools.islice(batches, steps), optimizer, scheduler, exp.masks if masked else None, amp
        )
        sync(dev)
        return res.examples / (time.perf_counter() - t0)

    ours(int(b.warmup) or 1, True)
    ours(int(b.warmup) or 1, False)
    # Interleave short chunks (ABBA order) so that load from other processes hits both loops alike; each
    # adjacent masked/unmasked pair gives a ratio, and the overhead is read from their median.
    chunk = max(1, min(int(b.chunk_steps), int(b.steps)))
    n_pairs = max(1, round(int(b.steps) * int(b.repeats) / chunk))
    masked, unmasked, ratios = [], [], []
    for r in range(n_pairs):
        order = (True, False) if r % 2 == 0 else (False, True)
        got = {m: ours(chunk, m) for m in order}
        masked.append(got[True])
        unmasked.append(got[False])
        ratios.append(got[True] / got[False])
    exp.masks.apply_()
    apply_times = []
    for _ in range(50):
        sync(dev)
        t0 = time.perf_counter()
        exp.masks.apply_()
        sync(dev)
        apply_times.append(time.perf_counter() - t0)

    eval_loader = exp.data.loader("test", int(tcfg.eval_batch_size))
    evaluate(exp.net, eval_loader, amp)  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    evaluate(exp.net, eval_loader, amp)
    sync(dev)
    eval_seconds = time.perf_counter() - t0

    # ---- the reference loop ------------------------------------------------------------------------
    raw = exp.data.raw
    workers = b.reference_workers
    if workers == "auto":
        workers = 0 if dev.type == "cpu" else min(8, os.cpu_count() or 1)
    workers = int(workers)
    ref_x, ref_y = exp.data.train[0].cpu(), exp.data.train[1].cpu()
    loader = torch.utils.data.DataLoader(
        ReferenceDataset(ref_x, ref_y, reference_transform(raw)),
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=workers > 0,
    )
    ref_model = create_model(
        exp.cfg.model.name,
        num_classes=raw.num_classes,
        in_channels=raw.in_channels,
        image_size=raw.image_size,
        **exp.cfg.model.options(),
    ).to(dev)
    ref_model.load_state_dict(exp.model.state_dict())
    params = dict(ref_model.named_parameters())
    ref_masks = {name: m.clone() for name, m in zip(exp.masks.names, exp.masks.masks)}
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=max_lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay)
    ref_batches = cycle_batches(loader)

    def reference(steps: int) -> float:
        ref_model.train()
        sync(dev)
        t0 = time.perf_counter()
        seen, running = 0, 0.0
        for x, y in itertools.islice(ref_batches, steps):
            x, y = x.to(dev), y.to(dev)
            ref_opt.zero_grad()
            loss = F.cross_entropy(ref_model(x), y)
            loss.backward()
            ref_opt.step()
            for name, mask in ref_masks.items():  # as in most pruning code: one multiply per layer
                params[name].data.mul_(mask)
            running += loss.item()
            seen += len(y)
        sync(dev)
        return seen / (time.perf_counter() - t0)

    reference(int(b.warmup) or 1)
    ref = [reference(int(b.steps)) for _ in range(int(b.reference_repeats))]

    # throughput of each loop: all its images over all its time (harmonic mean of the chunk rates)
    ips, un = len(masked) / sum(1 / v for v in masked), len(unmasked) / sum(1 / v for v in unmasked)
    result = {
        "images_per_s": ips,
        "unmasked_images_per_s": un,
        "reference_images_per_s": statistics.median(ref),
        "speedup_vs_reference": ips / statistics.median(ref),
        "mask_overhead": 1.0 - max(masked) / max(unmasked),
        "mask_overhead_median": 1.0 - statistics.median(ratios),
        "mask_overhead_direct": min(apply_times) * max(masked) / bs,
        "mask_apply_seconds": min(apply_times),
        "prune_seconds": prune_times[0],
        "eval_seconds": eval_seconds,
        "eval_images": len(exp.data.test[0]),
        "epoch_seconds_50k": 50_000 / ips,
        "device": device_name(dev),
        "device_type": dev.type,
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "batch_size": bs,
        "steps": int(b.steps),
        "warmup": int(b.warmup),
        "repeats": int(b.repeats),
        "chunk_steps": chunk,
        "pairs": n_pairs,
        "sparsity": exp.masks.sparsity(),
        "precision": "bf16" if amp is not None else "fp32",
        "channels_last": exp.speed.channels_last,
        "compile": exp.speed.compile,
        "reference_workers": workers,
        "raw": {"masked": masked, "unmasked": unmasked, "ratios": ratios, "reference": ref, "prune": prune_times},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "command": " ".join(sys.argv),
    }
    out = run_dir / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("device", result["device"]),
        ("model / dataset", f"{result['model']} / {result['dataset']}, batch {bs}, {result['precision']}"),
        ("ours, masked (images/s)", f"{ips:,.0f}"),
        ("ours, no masks (images/s)", f"{un:,.0f}"),
        ("mask overhead (fastest chunks)", f"{100 * result['mask_overhead']:.1f}%"),
        ("mask overhead (median of pairs)", f"{100 * result['mask_overhead_median']:.1f}%"),
        ("mask overhead (apply_ / step)", f"{100 * result['mask_overhead_direct']:.2f}%"),
        ("reference loop (images/s)", f"{result['reference_images_per_s']:,.0f}"),
        ("speed-up vs reference", f"{result['speedup_vs_reference']:.2f}x"),
        ("50k-image epoch, ours (s)", f"{result['epoch_seconds_50k']:.2f}"),
        ("one pruning step (s)", f"{result['prune_seconds']:.3f}"),
        (f"one evaluation, {result['eval_images']} images (s)", f"{eval_seconds:.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"wrote {out}")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from scyc.registry import ConfigError

    try:
        run(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
