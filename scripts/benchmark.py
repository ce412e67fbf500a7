"""Throughput of the training loop, with and without masks, against a loop as pruning repos usually write it.

    python scripts/benchmark.py model=lenet5 device=cpu benchmark.steps=60
    python scripts/benchmark.py +experiment=paper_resnet20_cifar10 device=cuda benchmark.steps=400

Same Hydra config and overrides as ``train.py`` (conf/benchmark.yaml = conf/config.yaml + a ``benchmark``
section). In one process, on the chosen device, it measures

1. ``images_per_s``: our loop (``scyc.lifecycle.training.train_epoch``: device-resident batches with on-device
   augmentation, the configured precision / channels_last / compile, fused or foreach SGD, the schedule
   stepped every step, masks applied with one foreach multiply per step);
2. ``unmasked_images_per_s``: the same loop without the mask multiply;
   both are timed in interleaved short chunks (``benchmark.chunk_steps`` steps each, ABBA order) so
   that load from other processes hits both alike. ``mask_overhead`` = 1 - fastest masked chunk /
   fastest unmasked chunk (timeit's convention: the minimum is the least disturbed measurement);
   ``mask_overhead_median`` is 1 - the median ratio of adjacent pairs, and ``mask_overhead_direct``
   the time of one ``MaskSet.apply_()`` (best of many) over the fastest masked step;
3. ``reference_images_per_s``: a reference loop in the public S-Cyc code's pattern: a torchvision ``DataLoader``
   (``num_workers=0``) over the uint8 images with per-image CPU transforms (RandomCrop with padding,
   RandomHorizontalFlip, ToDtype, Normalize), a plain fp32 model, ``loss.item()`` every step, and after each
   backward every masked weight's gradient copied to NumPy, ``np.where`` on the mask and copied back; that
   code also evaluates the whole training set and the test set every epoch (``reference_eval_images_per_s``,
   per-image ``ToDtype`` + ``Normalize``). ``epoch_seconds`` / ``reference_epoch_seconds`` are one epoch with
   its evaluations for ``benchmark.epoch_images`` (train, val, test; the paper's CIFAR-10 split) from the
   measured rates: ours trains and evaluates val + test, the reference trains and evaluates train + test;
   ``per_epoch_speedup`` is their ratio;
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
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from scyc.config import config_schema, register_configs

log = logging.getLogger("scyc.benchmark")


@dataclass(kw_only=True)
class BenchmarkSettings:  # the types; the defaults and what each key means: conf/benchmark.yaml
    steps: int
    warmup: int
    repeats: int
    chunk_steps: Any  # auto | an integer
    reference: bool
    reference_repeats: int
    epoch_images: list[int]
    sparsity_rounds: int
    profile_steps: int


# The benchmark's schema is train.py's (with the options' own schemas) plus the ``benchmark`` section, under the
# name config.yaml uses.
register_configs()
BenchmarkSchema = make_dataclass("BenchmarkSchema", [("benchmark", BenchmarkSettings)], bases=(config_schema(),),
                                 kw_only=True)  # fmt: skip
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


def reference_transform(raw, train: bool = True):
    from torchvision.transforms import v2

    ops = []
    if train and raw.augment.crop_padding > 0:
        ops.append(v2.RandomCrop(raw.image_size, padding=raw.augment.crop_padding))
    if train and raw.augment.flip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(raw.mean), list(raw.std))]
    return v2.Compose(ops)


def reference(cfg, exp, bs: int, lr: float, warmup: int, steps: int, repeats: int) -> dict[str, Any]:
    """The public code's loop (module docstring, item 3): its training and evaluation rates, in images/s."""
    from scyc.models import create_model

    dev, raw = exp.device, exp.data.raw
    model = create_model(
        exp.cfg.model.name, num_classes=raw.num_classes, in_channels=raw.in_channels, image_size=raw.image_size,
        **exp.cfg.model.options(),
    ).to(dev)  # fmt: skip
    model.load_state_dict(exp.state.model.state_dict())
    params = dict(model.named_parameters())
    masks = {name: m.bool().cpu().numpy() for name, m in zip(exp.state.masks.names, exp.state.masks.masks)}
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)
    x, y = exp.data.train[0].cpu(), exp.data.train[1].cpu()

    def loader(train: bool):
        data = ReferenceDataset(x, y, reference_transform(raw, train))
        return cycle_batches(torch.utils.data.DataLoader(data, batch_size=bs, shuffle=train, drop_last=True))

    train_batches, eval_batches = loader(True), loader(False)

    def train(n: int) -> float:
        model.train()
        sync(dev)
        t0, running = time.perf_counter(), 0.0
        for xb, yb in itertools.islice(train_batches, n):
            xb, yb = xb.to(dev), yb.to(dev)
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            for name, mask in masks.items():  # every masked gradient through NumPy, as the public code does
                grad = params[name].grad
                grad.copy_(torch.from_numpy(np.where(mask, grad.cpu().numpy(), 0.0)))
            opt.step()
            running += loss.item()
        sync(dev)
        return n * bs / (time.perf_counter() - t0)

    @torch.no_grad()
    def evaluate(n: int) -> float:
        model.eval()
        t0, correct, total = time.perf_counter(), 0, 0.0
        for xb, yb in itertools.islice(eval_batches, n):
            xb, yb = xb.to(dev), yb.to(dev)
            out = model(xb)
            total += F.cross_entropy(out, yb).item()
            correct += (out.argmax(1) == yb).sum().item()
        return n * bs / (time.perf_counter() - t0)

    train(warmup or 1)
    rates = [train(steps) for _ in range(repeats)]
    evaluate(1)
    return {
        "reference_images_per_s": statistics.median(rates),
        "reference_eval_images_per_s": evaluate(steps),
        "raw_reference": rates,
    }


def profile(train_steps, steps: int, device: torch.device, path: Path, top: int = 10) -> list[dict[str, Any]]:
    """Where the masked training step's time goes: ``torch.profiler`` over ``train_steps(steps)``; the whole table
    (by self time: the device's on CUDA, the CPU's elsewhere) in ``path``; the ``top`` operators, with their share
    of the total self time and milliseconds per step, returned for benchmark.json."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = device.type == "cuda"
    with torch_profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        train_steps(steps)
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"  # microseconds
    averages = prof.key_averages()  # one aggregation for the file and the JSON
    path.write_text(averages.table(sort_by=attr, row_limit=40) + "\n")
    events = sorted(averages, key=lambda e: getattr(e, attr), reverse=True)
    total = sum(getattr(e, attr) for e in events) or 1.0
    return [
        {"op": e.key, "calls_per_step": e.count / steps, "ms_per_step": getattr(e, attr) / 1e3 / steps,
         "share": getattr(e, attr) / total}
        for e in events[:top]
    ]  # fmt: skip


def run(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    from scyc.cli import build_run
    from scyc.foundations.utils import atomic_write, resolve_device
    from scyc.lifecycle import rundir
    from scyc.lifecycle.loop import prune
    from scyc.lifecycle.training import evaluate, make_optimizer, train_epoch

    b = cfg.benchmark
    if b.chunk_steps == "auto":
        b.chunk_steps = 1 if resolve_device(cfg.device).type == "cpu" else 20
    for key in ("steps", "warmup", "repeats", "chunk_steps", "reference_repeats", "sparsity_rounds", "profile_steps"):
        least = 0 if key in ("warmup", "sparsity_rounds", "profile_steps") else 1
        if int(b[key]) < least:
            from scyc.foundations.registry import ConfigError

            raise ConfigError(f"benchmark.{key}={b[key]} is not allowed: it must be an integer >= {least}")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    exp = build_run(cfg, run_dir)
    rundir.accept(run_dir, cfg)  # accepted (the build checked the rest): .hydra/ records the call
    dev, tcfg = exp.device, cfg.train
    bs = int(tcfg.batch_size)
    max_lr = exp.schedule.max_lr(0, 0.0)

    # one pruning step (timed) so that the masks are not all ones, then more if asked
    prune_times = []
    for _ in range(max(1, int(b.sparsity_rounds))):
        sync(dev)
        t0 = time.perf_counter()
        prune(exp)
        sync(dev)
        prune_times.append(time.perf_counter() - t0)

    # one optimiser per loop: with train.cuda_graphs each holds its captured step (masked or not)
    optimizers = {
        m: make_optimizer(exp.state.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov) for m in (1, 0)
    }
    batches = cycle_batches(exp.data.loader("train", bs, train=True, generator=exp.state.generator))
    amp, graphs = exp.speed.autocast_dtype, exp.speed.cuda_graphs

    def ours(steps: int, masked: bool) -> float:
        opt = optimizers[masked]
        scheduler = exp.schedule.build_round(opt, max_lr, steps, max(1, len(exp.data.train[0]) // bs))
        sync(dev)
        t0 = time.perf_counter()
        mask = exp.state.masks if masked else None
        res = train_epoch(exp.trainer.net, itertools.islice(batches, steps), opt, scheduler, mask, False, amp, graphs)
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
    exp.state.masks.apply_()
    apply_times = []
    for _ in range(50):
        sync(dev)
        t0 = time.perf_counter()
        exp.state.masks.apply_()
        sync(dev)
        apply_times.append(time.perf_counter() - t0)

    def timed(fn, *args) -> float:
        sync(dev)
        t0 = time.perf_counter()
        fn(*args)
        sync(dev)
        return time.perf_counter() - t0

    ebs, eval_images = exp.speed.eval_batch_size, int(b.steps) * bs  # our evaluation rate: as many images as a run
    evaluate(exp.trainer.net, exp.data.loader("test", ebs), amp)  # warm-up
    eval_seconds = timed(evaluate, exp.trainer.net, exp.data.loader("test", ebs), amp)
    eval_batches = exp.data.loader("train", ebs)
    eval_ips = eval_images / timed(
        evaluate, exp.trainer.net, itertools.islice(cycle_batches(eval_batches), -(-eval_images // ebs)), amp
    )
    ips, un = len(masked) / sum(1 / v for v in masked), len(unmasked) / sum(1 / v for v in unmasked)
    # whether the "graphs" rows timed replayed CUDA graphs (a failed capture falls back to eager steps)
    captured = {("masked" if m else "unmasked"): getattr(o, "_scyc_graph", None) for m, o in optimizers.items()}
    replays = {k: (s.replays if s is not None else 0) for k, s in captured.items()} if graphs else None
    graph_error = next((s.error for s in captured.values() if s is not None and s.error), None) if graphs else None
    n_train, n_val, n_test = (int(n) for n in b.epoch_images)
    result = {
        "images_per_s": ips,
        "unmasked_images_per_s": un,
        "eval_images_per_s": eval_ips,
        "epoch_seconds": n_train / ips + (n_val + n_test) / eval_ips,
        "epoch_images": [n_train, n_val, n_test],
        "mask_overhead": 1.0 - max(masked) / max(unmasked),
        "mask_overhead_median": 1.0 - statistics.median(ratios),
        "mask_overhead_direct": min(apply_times) * max(masked) / bs,
        "mask_apply_seconds": min(apply_times),
        "prune_seconds": prune_times[0],
        "eval_seconds": eval_seconds,
        "eval_images": len(exp.data.test[0]),
        "eval_batch_size": ebs,
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
        "sparsity": exp.state.masks.sparsity(),
        "precision": "bf16" if amp is not None else "fp32",
        "channels_last": exp.speed.channels_last,
        "compile": exp.speed.compile,
        "cuda_graphs": graphs,
        "graph_replays": replays,
        "graph_error": graph_error,
        "raw": {"masked": masked, "unmasked": unmasked, "ratios": ratios, "prune": prune_times},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "command": " ".join(sys.argv),
    }
    if b.reference:
        result.update(reference(cfg, exp, bs, max_lr, int(b.warmup), int(b.steps), int(b.reference_repeats)))
        ref_epoch = (
            n_train / result["reference_images_per_s"] + (n_train + n_test) / result["reference_eval_images_per_s"]
        )
        result.update(
            speedup_vs_reference=ips / result["reference_images_per_s"],
            reference_epoch_seconds=ref_epoch,
            per_epoch_speedup=ref_epoch / result["epoch_seconds"],
        )
    out = run_dir / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2) + "\n")
    if int(b.profile_steps):  # after the timings are on disk: a profiler that fails cannot cost them
        try:
            result["profile"] = profile(lambda n: ours(n, True), int(b.profile_steps), dev, run_dir / "profile.txt")
        except Exception as exc:  # e.g. a machine whose profiling library cannot load
            result["profile_error"] = f"{type(exc).__name__}: {exc}"
        atomic_write(out, json.dumps(result, indent=2) + "\n")
    rows = [
        ("device", result["device"]),
        ("model / dataset", f"{result['model']} / {result['dataset']}, batch {bs}, {result['precision']}"),
        ("switches", f"channels_last={result['channels_last']} compile={result['compile']} cuda_graphs={graphs}"),
        ("ours, masked (images/s)", f"{ips:,.0f}"),
        ("ours, no masks (images/s)", f"{un:,.0f}"),
        ("mask overhead (fastest chunks)", f"{100 * result['mask_overhead']:.1f}%"),
        ("mask overhead (median of pairs)", f"{100 * result['mask_overhead_median']:.1f}%"),
        ("mask overhead (apply_ / step)", f"{100 * result['mask_overhead_direct']:.2f}%"),
        (f"ours, evaluation at batch {ebs} (images/s)", f"{eval_ips:,.0f}"),
        (f"epoch of {n_train:,} + evaluations, ours (s)", f"{result['epoch_seconds']:.2f}"),
        ("one pruning step (s)", f"{result['prune_seconds']:.3f}"),
        (f"one evaluation, {result['eval_images']} images (s)", f"{eval_seconds:.3f}"),
    ]
    if b.reference:
        rows += [
            ("reference loop (images/s)", f"{result['reference_images_per_s']:,.0f}"),
            ("reference evaluation (images/s)", f"{result['reference_eval_images_per_s']:,.0f}"),
            ("training speed-up vs reference", f"{result['speedup_vs_reference']:.2f}x"),
            ("epoch + evaluations, reference (s)", f"{result['reference_epoch_seconds']:.2f}"),
            ("per-epoch speed-up vs reference", f"{result['per_epoch_speedup']:.2f}x"),
        ]
    for op in result.get("profile", [])[:5]:
        rows.append((f"profile: {op['op'][:40]}", f"{100 * op['share']:.1f}% ({op['ms_per_step']:.2f} ms/step)"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"wrote {out}")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from scyc.foundations.registry import ConfigError
    from scyc.lifecycle import rundir

    try:
        run(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:  # a sweep records it and goes on with the other runs
            rundir.abandon(Path(HydraConfig.get().runtime.output_dir))  # the folder Hydra made for this call goes
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
