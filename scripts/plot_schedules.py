"""Draw the LR of every optimiser step of a whole pruning run for several schedule options, without training.

    python scripts/plot_schedules.py schedule=scyc,cyclic,lr_rewind,warmup,sgdr
    python scripts/plot_schedules.py schedule=scyc,silo,oracle pruner.rounds=10 train.epochs=3 --out lr.png
    python scripts/plot_schedules.py schedule=scyc,one_cycle --steps-per-epoch 100
    python scripts/plot_schedules.py schedule=scyc +experiment=paper_resnet20_cifar10 schedule.lag_rounds=1 --max-lr

Each option is composed from conf/ with Hydra's compose API (the other overrides apply to every option),
its schedule is built with ``build_schedule`` and stepped exactly as the round loop steps it, round r
being trained at the nominal sparsity 1 - (1 - pruner.rate) ** r. Steps per epoch come from the data
set (its training split after ``dataset.val_size`` / ``dataset.train_subset``, over ``train.batch_size``,
last partial batch dropped, as in training) unless ``--steps-per-epoch`` is given. The oracle's grid
values are drawn as faint lines (the value a run picks is known only after training). The figure's data,
the highest LR drawn in each round of each option, goes to a CSV beside it (``schedules.csv``): a test
recomputes it from conf/, so the committed figure cannot go stale unnoticed (``make docs`` redraws both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="schedule=a,b,c plus Hydra overrides applied to every option")
    parser.add_argument("--out", default="outputs/figures/schedules.png", help="figure path (png, pdf or svg)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="skip reading the data set")
    parser.add_argument("--dpi", type=int, default=110)
    parser.add_argument("--max-lr", action="store_true", help="print each round's max_lr as CSV instead of drawing")
    args = parser.parse_args(argv)
    options = [o.split("=", 1)[1].split(",") for o in args.overrides if o.startswith("schedule=")]
    if not options:
        parser.error("name the options to draw, e.g. schedule=scyc,cyclic,lr_rewind")
    rest = [o for o in args.overrides if not o.startswith("schedule=")]
    return args, [name for group in options for name in group if name], rest


def steps_per_epoch(cfg) -> int:
    import torch

    from scyc.config import load
    from scyc.data import build_data

    dataset = load(cfg).dataset
    data = build_data({"name": dataset.name, **dataset.options()}, torch.device("cpu"), cfg.data_dir)
    n = len(data.train[1])
    return max(1, n // cfg.train.batch_size) if n >= cfg.train.batch_size else 1


def main(argv: list[str] | None = None) -> Path | None:
    args, options, overrides = parse(sys.argv[1:] if argv is None else argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scyc.config import register_configs
    from scyc.foundations.registry import ConfigError
    from scyc.schedules import build_schedule
    from scyc.schedules.simulate import pruning_sparsities, simulate

    register_configs()
    cfgs = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name in options:
            try:
                cfgs[name] = compose("config", overrides=[f"schedule={name}", *overrides])
            except Exception as exc:  # Hydra's errors name the bad override
                sys.exit(f"error: schedule={name} {' '.join(overrides)}: {exc}")
    first = next(iter(cfgs.values()))
    rounds, rate, epochs = int(first.pruner.rounds), float(first.pruner.rate), int(first.train.epochs)
    sparsities = pruning_sparsities(rounds, rate)
    if args.max_lr:
        print("schedule,round,sparsity,max_lr")
        for name, cfg in cfgs.items():
            sched = build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))
            for r, s in enumerate(sparsities):
                print(name, r, repr(s), " ".join(map(repr, sched.candidates(r, sparsities[: r + 1]))), sep=",")
        return None
    spe = args.steps_per_epoch or steps_per_epoch(first)

    # one shared y axis: the options' LR levels compare at a glance (S-Cyc's 0.15 above cyclical LR's 0.1)
    fig, axes = plt.subplots(len(cfgs), 1, figsize=(9, 1.45 * len(cfgs) + 0.6), sharex=True, sharey=True,
                             squeeze=False)  # fmt: skip
    drawn = []  # the figure's data: the highest LR drawn in each round of each option (<out>.csv)
    for ax, (name, cfg) in zip(axes[:, 0], cfgs.items()):
        try:
            sched = build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))
            df = pd.DataFrame(simulate(sched, sparsities, epochs, spe))
        except ConfigError as exc:
            sys.exit(f"error: schedule={name}: {exc}")
        grid = df["candidate"].nunique() > 1
        drawn.append(
            df.groupby("round", as_index=False)["lr"].max().rename(columns={"lr": "max_lr"}).assign(schedule=name)
        )
        for _, g in df.groupby("candidate"):
            ax.plot(g["step"], g["lr"], lw=0.9, color="C0", alpha=0.35 if grid else 1.0)
        for r in range(1, rounds):
            ax.axvline(r * epochs * spe, color="0.85", lw=0.6, zorder=0)
        label = f"{name}  ({cfg.schedule.policy} x {cfg.schedule.shape})" + ("  every grid value" if grid else "")
        ax.set_title(label, fontsize=8.5, loc="left", pad=2)
        ax.set_ylabel("LR", fontsize=8)
        ax.tick_params(labelsize=7)
    top = max(float(d["max_lr"].max()) for d in drawn)
    axes[0, 0].set_ylim(0, 1.05 * top)  # shared by every panel: the highest LR of any option fits
    axes[-1, 0].set_xlabel(
        f"optimiser step ({rounds} rounds x {epochs} epochs x {spe} steps; pruning {rate:g} per round, "
        f"sparsity 0 -> {sparsities[-1]:.3f})",
        fontsize=8,
    )
    fig.tight_layout(h_pad=0.4)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    data = pd.concat(drawn)[["schedule", "round", "max_lr"]].assign(overrides=" ".join(overrides))
    data.to_csv(out.with_suffix(".csv"), index=False)  # overrides: what every option was composed with
    print(out)
    return out


if __name__ == "__main__":
    main()
