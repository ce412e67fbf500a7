"""``python train.py --help``: one page with the keys a user sets most, one line each, at the values the given
overrides compose to, and the options of every group ``train.py`` can pick (Hydra's own page, which lists every
config group, ``tuning`` included, and the whole config, stays at ``--hydra-help`` and ``--cfg job``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

# The keys of the page, in its order, and what each does (the values come from the composed config).
COMMON = {
    "seed": "seeds Python, NumPy, torch and the data order",
    "device": "auto (CUDA when present) | cpu | cuda | cuda:N",
    "pruner.rate": "fraction of the surviving prunable weights removed per round",
    "pruner.rounds": "rounds in total; round 0 trains the dense network",
    "pruner.reset": "finetune | rewind_init | rewind_epoch | reinit: what the survivors restart from",
    "train.epochs": "epochs per round",
    "train.batch_size": "training batch size",
    "dataset.train_subset": "train on the first N training examples (null: all)",
    "dataset.val_size": "validation examples held out of the training set",
    "dataset.test_subset": "evaluate on the first N test examples (null: all)",
    "analysis.grad_every_round": "measure the weight gradients at the start and end of every round",
    "analysis.figures": "draw the run's figures at its end",
    "wandb.mode": "offline (no account needed) | online | disabled",
    "progress": "progress bars",
    "resume": "continue the run in hydra.run.dir from its last checkpoint",
}
GROUPS = ("model", "dataset", "pruner", "schedule")  # picked as group=option
ADDED = ("experiment",)  # picked as +group=option (not in the defaults list)
LAUNCHERS = "hydra/launcher"  # a multirun's launcher (-m hydra/launcher=option)


def options(conf: Path, group: str) -> list[str]:
    """The options of a config group: its YAMLs, sub-folders included (``tuned/fmnist_lenet300/scyc``)."""
    folder = conf / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def page(conf: Path, overrides: Sequence[str] = ()) -> str:
    """The help page, the values composed from ``conf`` and ``overrides`` (as the run would get them); the schemas
    are registered by the caller (``scyc.cli.main``: untyped, the page shows values only)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    width = max(len(k) for k in COMMON) + 1
    lines = [
        "python train.py [group=option ...] [key=value ...]     (-m: a sweep over comma-separated values)",
        "",
        "Common keys (their values with the overrides given):",
        *(f"  {k:<{width}} {_show(cfg, k):<9} {text}" for k, text in COMMON.items()),
        "",
        "Groups (group=option):",
        *(f"  {g:<9} {', '.join(o for o in options(conf, g) if not o.startswith('tuned/'))}" for g in GROUPS),
        f"  {'':<9} schedule=tuned/<setting>/<name>: the tuned options ({', '.join(_settings(conf))})",
        "Added groups (+group=option):",
        *(f"  {g:<9} {', '.join(options(conf, g))}" for g in ADDED),
        f"Launchers of a sweep (-m {LAUNCHERS}=option): {', '.join(options(conf, LAUNCHERS))}",
        "",
        "A plug-in class's own keys: <group>.extra.<key>=value (e.g. pruner.extra.eps=1e-9).",
        "The run's folder: hydra.run.dir=<dir> (a sweep's: hydra.sweep.dir=<dir>).",
        "More: python train.py --cfg job (the whole composed config), --hydra-help (Hydra's options),",
        "README.md and docs/ (every key, every output file).",
    ]
    return "\n".join(lines)


def _show(cfg, key: str) -> str:
    value = OmegaConf.select(cfg, key)
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _settings(conf: Path) -> list[str]:
    return sorted(p.name for p in (conf / "schedule" / "tuned").iterdir() if p.is_dir())
