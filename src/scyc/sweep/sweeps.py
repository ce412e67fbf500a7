"""Multirun glue: W&B group/tags for the runs of one sweep, and the Hydra callback that tabulates a sweep.

Kept free of heavy imports: Hydra instantiates the callback in every job as well as in the launching process.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scyc.foundations.keys import changes_no_result

log = logging.getLogger("scyc.sweep.sweeps")


# The failed runs of the multirun that just ended in this process (SweepStatus), for train.py's exit status.
FAILED_RUNS: list[Path] = []


class SweepStatus(Callback):
    """Hydra callback (``hydra.callbacks.sweep_status``): at the end of a multirun, note the run dirs under the
    sweep dir whose summary.json says ``failed`` (a failed job returns instead of exiting, so that the launcher
    runs the others, whichever launcher runs them and in whichever process); ``scyc.cli.main`` then ends the
    sweep with one line naming them and exit 1."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import json

        from scyc.sweep.rundirs import find_run_dirs

        FAILED_RUNS.clear()
        for run in find_run_dirs(Path(str(config.hydra.sweep.dir))):
            try:
                status = json.loads((run / "summary.json").read_text()).get("status")
            except (OSError, ValueError, AttributeError):
                continue
            if status == "failed":
                FAILED_RUNS.append(run)


def _hydra_config() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: the sweep dir's name, then the sweep's own overrides, as
    ``<sweep_dir>/multirun.yaml`` (written by Hydra before the first job) records them, the swept ones first
    (``2026-01-01_00-00-00 schedule=scyc,constant seed=0,1,2 pruner.rounds=5``), without those that change
    nothing computed (``scyc.foundations.keys``). The name makes two sweeps with the same overrides two groups, and a sweep
    resumed in its folder keeps its group. W&B caps a group at 128 characters: a longer one ends in a hash of
    the whole."""
    try:
        overrides = [str(o) for o in OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra.overrides.task]
    except Exception:  # no multirun.yaml (another sweeper), or unreadable
        overrides = []
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    kept = [o for o in overrides if not changes_no_result(key(o))]
    kept = list({key(o): o for o in kept}.values())  # a key given twice: the last one counts, as in Hydra
    swept = [o for o in kept if re.search(r"[,(]", o.split("=", 1)[-1])]
    name = Path(sweep_dir).name or str(sweep_dir)
    group = " ".join([name, *swept, *(o for o in kept if o not in swept)])
    group = re.sub(r"[^A-Za-z0-9._=,+:()\[\] -]+", "_", group)
    return group if len(group) <= 128 else f"{group[:119]}~{hashlib.sha1(group.encode()).hexdigest()[:8]}"


def run_tags(cfg: Any) -> list[str]:
    """``schedule:<name>``, ``pruner:<name>``, ``model:<name>``, ``dataset:<name>``, ``seed:<n>`` (W&B caps tags
    at 64 characters)."""
    tags = [
        f"schedule:{cfg.schedule.name}",
        f"pruner:{cfg.pruner.name}",
        f"model:{cfg.model.name}",
        f"dataset:{cfg.dataset.name}",
        f"seed:{cfg.seed}",
    ]
    return [t[:64] for t in tags]


def wandb_settings(cfg: Any) -> dict[str, Any]:
    """``cfg.wandb`` as a dict, with the run's tags appended, ``job_type`` (``oracle`` for a run that searches
    each round's max_lr, else ``train``) and, in a multirun whose ``wandb.group`` is null, ``group`` = the
    sweep's overrides (``sweep_group``), so all runs of one sweep land in one W&B group."""
    wandb = cfg.wandb  # a typed config (scyc.config.load) or a DictConfig
    settings = dataclasses.asdict(wandb) if dataclasses.is_dataclass(wandb) else OmegaConf.to_container(wandb)
    tags = list(settings.get("tags") or [])
    settings["tags"] = tags + [t for t in run_tags(cfg) if t not in tags]
    settings["job_type"] = "oracle" if getattr(cfg.schedule, "policy", None) == "grid" else "train"
    hc = _hydra_config()
    if settings.get("group") is None and hc is not None:
        from hydra.types import RunMode

        if hc.mode == RunMode.MULTIRUN:
            settings["group"] = sweep_group(hc.sweep.dir)
    return settings


class ResultsTableCallback(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): at the end of a multirun, write the sweep's
    table (``scyc.sweep.tables.make_table``) into the sweep dir.

    Never fails the sweep: errors while tabulating are logged. When a job fails, Hydra's sweeper raises
    before ``on_multirun_end``; the table is then written at interpreter exit instead, listing the failed
    run, so a sweep with a failed run still leaves its table behind.
    """

    def __init__(self, enabled: bool = True, select: str = "end", benchmarks: list[str] | None = None) -> None:
        if select not in ("end", "best_val"):  # scyc.sweep.tables.SELECT, not imported here to keep this module light
            from scyc.foundations.registry import ConfigError

            raise ConfigError(f"hydra.callbacks.results_table.select={select} is not allowed; use end or best_val")
        self.enabled = enabled
        self.select = select
        self.benchmarks = list(benchmarks) if benchmarks else None
        self._sweep_dir: Path | None = None
        self._wandb: dict[str, Any] | None = None  # the sweep's wandb settings (mode, project, ...)
        self._done = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        self._wandb = OmegaConf.to_container(config.wandb) if "wandb" in config else None
        try:  # import now what tabulating needs: at interpreter exit, new imports can fail
            from scyc.sweep.tables import preload

            preload()
        except Exception as exc:
            log.warning("the results table will not be written: %s: %s", type(exc).__name__, exc)
            return
        atexit.register(self._at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self._write(Path(str(config.hydra.sweep.dir)))

    def _at_exit(self) -> None:
        if self._done or self._sweep_dir is None or not self._sweep_dir.is_dir():
            return
        from scyc.sweep.rundirs import find_run_dirs

        if not find_run_dirs(self._sweep_dir):
            return  # nothing ran (e.g. the sweep failed to compose): nothing to tabulate
        log.warning("the sweep did not finish cleanly; tabulating what it left in %s", self._sweep_dir)
        self._write(self._sweep_dir)

    def _write(self, sweep_dir: Path) -> None:
        self._done = True
        try:
            from scyc.sweep.tables import make_table

            table = make_table(sweep_dir, select=self.select, benchmarks=self.benchmarks)
        except Exception as exc:  # the sweep's runs are done and saved: a table error must not fail it
            log.error("could not write the results table for %s: %s: %s", sweep_dir, type(exc).__name__, exc)
            return
        log.info(
            "results table: %s (%d run(s) tabulated, %d excluded)",
            sweep_dir / "table.md",
            len(table.included),
            len(table.excluded),
        )
        for r in table.excluded:
            log.warning("excluded from the table: %s (%s) %s", r.path, r.status, r.reason)
        self._log_table(sweep_dir)

    def _log_table(self, sweep_dir: Path) -> None:
        """The sweep's table files as an artifact of a W&B run of its own (``job_type`` ``sweep-table``, in the
        sweep's group), written to ``<sweep_dir>/wandb``; nothing with ``wandb.mode=disabled``."""
        settings = self._wandb or {"mode": "disabled"}
        files = [p for p in sorted(sweep_dir.glob("table.*")) + sorted(sweep_dir.glob("*.png")) if p.is_file()]
        if settings.get("mode") == "disabled" or not files:
            return
        try:
            import wandb

            run = wandb.init(project=settings.get("project"), entity=settings.get("entity"), dir=str(sweep_dir),
                             group=settings.get("group") or sweep_group(sweep_dir), job_type="sweep-table",
                             name=f"{sweep_dir.name}-table", mode=settings["mode"], reinit="finish_previous")  # fmt: skip
            artifact = wandb.Artifact(f"sweep-{run.id}-table", type="sweep-table")
            for p in files:
                artifact.add_file(str(p), name=p.name)
            run.log_artifact(artifact)
            run.finish()
        except Exception as exc:  # the table is on disk: W&B failing must not fail the sweep
            log.warning("the sweep's table was not logged to W&B: %s: %s", type(exc).__name__, exc)


def register_optuna_sweeper(path: str | Path) -> None:
    """``hydra/sweeper=optuna`` = the Optuna plugin's config with ``path`` (conf/search/optuna.yaml: the S-Cyc
    knobs, maximise validation accuracy) merged over it, stored under the plugin's name. A YAML of that name
    in conf/hydra/sweeper/ would not do: Hydra refuses a YAML shadowing a schema that has a defaults list."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # scans (re-imports) the plugins once, storing their configs, so the store below wins
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    except ImportError:  # the plugin is optional for everything but this sweeper
        return

    plugin = OmegaConf.to_container(OmegaConf.structured(OptunaSweeperConf))  # untyped: `sampler` is filled later
    node = OmegaConf.merge(plugin, OmegaConf.load(path))
    ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=node, provider="scyc")
