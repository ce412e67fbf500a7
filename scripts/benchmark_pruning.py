"""Time one pruning step of each pruner on a large model, and the per-step cost of applying masks.

    python scripts/benchmark_pruning.py --model resnet50 --pruners global_magnitude lamp layerwise_magnitude \
        random snip --repeats 3 --rounds-before 0
    python scripts/benchmark_pruning.py --model resnet50 --rounds-before 10     # at 89 % sparsity
    python scripts/benchmark_pruning.py --mask-overhead --overhead-model lenet5  # buffer masks vs torch.nn.utils.prune

The model comes from timm (``resnet50``: 25.6M parameters, of which 25.5M are Conv/Linear weights) or
from scyc's own registry (``lenet5``, ...). ``--rounds-before N`` first prunes N rounds of global magnitude
at ``--rate`` so the timing is taken at sparsity ``1 - (1 - rate)^N``. Each pruner is timed over
``--repeats`` calls of ``Pruner.prune`` on the same masks (the minimum and the median are reported; the
first call is a warm-up). SNIP includes its forward and backward passes on ``--snip-batch`` random images.

The mask-overhead benchmark times a training step (forward, backward, SGD step) of a small conv net
three ways: no masks; masks as buffers applied with one ``torch._foreach_mul_`` after the step (scyc's
``MaskSet``); and ``torch.nn.utils.prune.custom_from_mask`` (a forward pre-hook computing
``weight_orig * weight_mask`` on every forward, with its backward).

Prints a table and writes everything as JSON under ``outputs/benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from scyc.cli import CONF, compose
from scyc.models import MODELS, create_model
from scyc.pruning import PRUNERS, MaskSet, PruneContext

ALL_PRUNERS = ["global_magnitude", "lamp", "layerwise_magnitude", "random", "snip"]


def options(group: str, name: str) -> list[str]:
    """The overrides that pick ``name`` in ``group``: its YAML in conf/ (its keys) when it has one, else the name."""
    return [f"{group}={name}"] if (CONF / group / f"{name}.yaml").is_file() else [f"{group}.name={name}"]


def build_pruner(name: str, rate: float):
    """The pruner as conf/ composes it (conf/ holds every default), at ``rate``."""
    return PRUNERS.build(name, {**compose(options("pruner", name)).pruner.pruner_options(), "rate": rate}, key="pruner")


def build_model(name: str, image_size: int, in_channels: int = 3, num_classes: int = 1000) -> nn.Module:
    if name in MODELS:
        own = compose(options("model", name)).model.options() if (CONF / "model" / f"{name}.yaml").is_file() else {}
        return create_model(
            name, num_classes=num_classes, in_channels=in_channels, image_size=(image_size, image_size), **own
        )
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, repeats: int, device: torch.device, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of each call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def bench_pruners(args, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    in_ch = 1 if args.model in ("lenet300", "lenet5") else 3
    classes = 10 if args.model in MODELS else 1000
    model = build_model(args.model, args.image_size, in_ch, classes).to(device)
    masks = MaskSet.from_model(model)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params / 1e6:.2f}M parameters, {masks.total / 1e6:.2f}M prunable in {len(masks)} layers")
    warm = build_pruner("global_magnitude", args.rate)
    for _ in range(args.rounds_before):
        masks.set_(warm.prune(masks, PruneContext(model=model)))
    print(f"sparsity before the timed step: {masks.sparsity():.4f} ({args.rounds_before} rounds at {args.rate})")

    g = torch.Generator(device=device).manual_seed(0)

    def batches():
        while True:
            x = torch.randn(args.snip_batch, in_ch, args.image_size, args.image_size, device=device, generator=g)
            yield x, torch.randint(0, classes, (args.snip_batch,), device=device, generator=g)

    rows = []
    for name in args.pruners:
        pruner = build_pruner(name, args.rate)
        ctx = PruneContext(model=model, batches=batches, generator=g)
        alive = masks.alive()
        new = pruner.prune(masks, ctx)
        removed = alive - sum(int(m.sum()) for m in new)
        assert removed == round(args.rate * alive), (name, removed)
        times, cpu = time_calls(lambda p=pruner, c=ctx: p.prune(masks, c), args.repeats, device, warmup=0)
        rows.append({
            "pruner": name, "min_s": min(times), "median_s": statistics.median(times), "times_s": times,
            "cpu_min_s": min(cpu), "cpu_s": cpu, "removed": removed, "alive_before": alive,
            "sparsity_before": masks.sparsity(),
        })  # fmt: skip
        print(
            f"  {name:<20} wall min {min(times):7.3f} s  median {statistics.median(times):7.3f} s   "
            f"cpu min {min(cpu):7.3f} s   removed {removed}"
        )
    return rows


def bench_mask_overhead(args, device: torch.device) -> list[dict]:
    import torch.nn.utils.prune as tprune

    def setup(kind: str):
        torch.manual_seed(0)
        model = build_model(args.overhead_model, 28, 1, 10).to(device)
        masks = MaskSet.from_model(model)
        masks.set_(build_pruner("global_magnitude", 0.8).prune(masks, PruneContext(model=model)))
        if kind == "torch.nn.utils.prune":
            for name, mask in zip(masks.names, masks.masks):
                module = model.get_submodule(name.rsplit(".", 1)[0])
                tprune.custom_from_mask(module, "weight", mask.clone())
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)
        return model, (masks if kind == "buffer masks (foreach_mul_)" else None), opt

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.overhead_batch, 1, 28, 28, device=device, generator=g)
    y = torch.randint(0, 10, (args.overhead_batch,), device=device, generator=g)
    rows = []
    for kind in ("no masks", "buffer masks (foreach_mul_)", "torch.nn.utils.prune"):
        model, masks, opt = setup(kind)

        def step(model=model, masks=masks, opt=opt):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if masks is not None:
                masks.apply_()

        per_step = []
        for _ in range(args.repeats):
            times, _ = time_calls(step, args.overhead_steps, device, warmup=5)
            per_step.append(statistics.median(times))
        rows.append({"kind": kind, "median_step_ms": 1e3 * min(per_step), "repeats_ms": [1e3 * t for t in per_step]})
    base = rows[0]["median_step_ms"]
    for r in rows:
        r["overhead_ms"] = r["median_step_ms"] - base
        print(f"  {r['kind']:<30} {r['median_step_ms']:8.3f} ms/step   overhead {r['overhead_ms']:+7.3f} ms")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50", help="timm name or scyc model (default resnet50)")
    ap.add_argument("--pruners", nargs="+", default=ALL_PRUNERS, help="registered names or dotted paths")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds-before", type=int, default=0, help="global-magnitude rounds before timing")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--image-size", type=int, default=64, help="input size for SNIP's batches")
    ap.add_argument("--snip-batch", type=int, default=8)
    ap.add_argument("--mask-overhead", action="store_true", help="also time buffer masks vs torch.nn.utils.prune")
    ap.add_argument("--overhead-only", action="store_true", help="only the mask-overhead benchmark")
    ap.add_argument("--overhead-model", default="lenet5")
    ap.add_argument("--overhead-batch", type=int, default=128)
    ap.add_argument("--overhead-steps", type=int, default=50)
    ap.add_argument("--out", default="outputs/benchmarks")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "args": vars(args),
    }
    if not args.overhead_only:
        record["pruning"] = bench_pruners(args, device)
    if args.mask_overhead or args.overhead_only:
        print(f"mask overhead per training step ({args.overhead_model}, batch {args.overhead_batch}, {device}):")
        record["mask_overhead"] = bench_mask_overhead(args, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = out / f"pruning_{args.model}_r{args.rounds_before}_{device.type}_{stamp}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
