"""Issue 27, 'a user's first hour, and their own code': a smoke preset, a plug-in's keys from the command line,
runs from outside the repository, the Python API's config_dir, honest round timings, help that helps and docs
that match the code. Each test is named test_item<N>_... after the issue's numbering."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from options import dataset_cfg
from trust_helpers import QUICK, ROOT, assert_one_line_error, env_without, run, summary, train_cmd

from scyc.config import load, register_configs
from scyc.foundations import overrides as checked
from scyc.foundations.registry import ConfigError

PLUGIN = '''
from torch.optim.lr_scheduler import ExponentialLR

from scyc.pruning.global_magnitude import GlobalMagnitude
from scyc.schedules.shapes import Shape, set_lr


class EpsMagnitude(GlobalMagnitude):
    """A user's pruner with a key of its own (eps)."""

    def __init__(self, rate: float = 0.2, min_remaining: float = 0.0, eps: float = 1e-12):
        super().__init__(rate, min_remaining)
        self.eps = eps


class Exponential(Shape):
    keys = ("final_fraction",)

    def __init__(self, final_fraction: float = 0.5):
        self.final_fraction = final_fraction

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        return ExponentialLR(optimizer, gamma=self.final_fraction ** (1 / total_steps))
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A user's module (``myplug``: a pruner and a schedule shape with keys the schema does not know)."""
    (tmp_path / "myplug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def composed(*overrides: str):
    """The typed config as train.py composes it (overrides checked and normalised first)."""
    register_configs()
    checked.check(overrides, ROOT / "conf")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return load(compose("config", overrides=checked.normalize(overrides)))


# ------------------------------------------------------------------------------------------------
# 3. A plug-in's keys from the command line, with or without an `extra:` block in its YAML
@pytest.mark.parametrize(
    "overrides",
    [
        ("pruner.extra.eps=1e-9", "schedule.extra.final_fraction=0.01"),
        ("+pruner.extra.eps=1e-9", "+schedule.extra.final_fraction=0.01"),
        ("pruner.extra={eps:1e-9}", "schedule.extra={final_fraction:0.01}"),
    ],
)
def test_item3_plugin_keys_from_the_command_line_reach_the_class(plugin, overrides):
    from scyc.pruning import PRUNERS
    from scyc.schedules import build_schedule

    cfg = composed("pruner.name=myplug.EpsMagnitude", "schedule.shape=myplug.Exponential", "schedule.base_lr=null",
                   "schedule.cycles_per_round=null", *overrides)  # fmt: skip
    assert PRUNERS.build(cfg.pruner.name, cfg.pruner.pruner_options()).eps == 1e-9
    assert build_schedule(cfg.schedule.options()).shape.final_fraction == 0.01


def test_item3_plugin_keys_override_a_yaml_extra_block_and_sweep(plugin):
    """With an option YAML of the user's own that has an `extra:` block, the same overrides replace its values;
    a sweep over a plug-in key composes one job per value, as Hydra's sweeper composes them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    conf = plugin / "myconf" / "pruner"
    conf.mkdir(parents=True)
    base = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "pruner" / "global_magnitude.yaml"))
    (conf / "eps.yaml").write_text(OmegaConf.to_yaml({**base, "name": "myplug.EpsMagnitude", "extra": {"eps": 1.0}}))
    register_configs()
    swept = checked.normalize(["pruner.extra.eps=1e-3,1e-6"])
    parsed = OverridesParser.create().parse_overrides(swept)
    values = [str(v) for v in parsed[0].sweep_iterator()]
    assert values == ["0.001", "1e-06"], values
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for value in values:
            over = [f"hydra.searchpath=[file://{plugin / 'myconf'}]", "pruner=eps", f"{parsed[0].key_or_group}={value}"]
            cfg = load(compose("config", overrides=checked.normalize(over)))
            assert cfg.pruner.extra == {"eps": float(value)}


def test_item3_a_wrong_plugin_key_is_refused_in_one_line(plugin, tmp_path):
    env = env_without(PYTHONPATH=os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]))
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, "pruner.name=myplug.EpsMagnitude", "pruner.extra.epz=1e-9"), env=env)
    assert_one_line_error(proc, "epz")
    assert not run_dir.exists()


# ------------------------------------------------------------------------------------------------
# 5. Running from outside the repository finds the repository's data and fetches nothing into the cwd
def test_item5_train_py_from_another_folder_uses_the_repository_data(tmp_path):
    cwd = tmp_path / "mine"
    cwd.mkdir()
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, "pruner.rounds=1", "dataset.download=false"), cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary(run_dir)["status"] == "complete"
    assert not any(cwd.iterdir()), sorted(str(p) for p in cwd.rglob("*"))


def test_item5_pythonpath_for_a_users_modules_is_documented():
    assert "PYTHONPATH" in (ROOT / "README.md").read_text()


# ------------------------------------------------------------------------------------------------
# 6. scyc.run(config_dir=...) adds a folder to conf/ (as --config-dir does) instead of replacing it
def test_item6_api_config_dir_adds_to_conf(tmp_path):
    import scyc

    conf = tmp_path / "myconf" / "schedule"
    conf.mkdir(parents=True)
    (conf / "my.yaml").write_text("name: my\npolicy: constant\nshape: constant\nlr: 0.02\n")
    run_dir = tmp_path / "run"
    out = scyc.run([*QUICK, "pruner.rounds=1", "schedule=my", "wandb.mode=disabled", "progress=false"],
                   run_dir=run_dir, config_dir=str(tmp_path / "myconf"))  # fmt: skip
    assert out["status"] == "complete"
    assert pd.read_csv(run_dir / "results.csv")["max_lr"].tolist() == [0.02]


def test_item6_api_refuses_a_missing_config_dir(tmp_path):
    import scyc

    with pytest.raises(ConfigError, match="config_dir"):
        scyc.run(["pruner.rounds=1"], run_dir=tmp_path / "run", config_dir=str(tmp_path / "nowhere"))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# 8. Honest timings: the rest of a round's time has its own column
def test_item8_results_have_the_rest_of_each_round(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK[:-2], "analysis.figures=false"))  # with the gradient measurement
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results.columns[-2:]) == ["round_seconds", "other_seconds"]
    assert (results["other_seconds"] > 0).all() and results["other_seconds"].notna().all(), results
    ckpt = torch.load(run_dir / "checkpoints" / "round_01.pt", weights_only=False)
    assert ckpt["state"]["results"][-1]["other_seconds"] > 0  # what a resume puts back
    text = (ROOT / "README.md").read_text()
    assert "other_seconds" in text and "round_seconds" in text


def test_item8_old_checkpoint_rows_and_configs_still_load():
    """A checkpoint written before other_seconds (and before test_subset and `extra: {}`) resumes: its rows load
    with other_seconds NaN, and its config does not count as changed."""
    from scyc.lifecycle import rundir
    from scyc.lifecycle.state import RESULT_COLUMNS, RoundResult

    old_row = {k: 1.0 for k in RESULT_COLUMNS if k != "other_seconds"}
    assert math.isnan(RoundResult(**old_row).other_seconds)
    now = composed().raw
    old = OmegaConf.to_container(OmegaConf.create(now))
    del old["dataset"]["test_subset"]
    for group in ("model", "dataset", "pruner", "schedule"):
        old[group]["extra"] = None
    assert rundir.config_differences(old, now) == []


# ------------------------------------------------------------------------------------------------
# 9. A misspelled key: the project's own line with the close matches
def test_item9_misspelled_key_says_did_you_mean(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, "pruner.rte=0.3"))
    line = assert_one_line_error(proc, "pruner.rte", "did you mean pruner.rate")
    assert "+pruner" not in line
    assert not run_dir.exists()


def test_item9_group_outside_the_defaults_is_named():
    with pytest.raises(ConfigError, match=r"\+experiment=smoke"):
        checked.check(["experiment=smoke"], ROOT / "conf")
    checked.check(["pruner=lamp", "seed=1", "+model.depth=3", "hydra.run.dir=x", "hydra/launcher=parallel"],
                  ROOT / "conf")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# 7. Per-layer figures of a model with dozens of layers: the largest layers and a summary, not a legend that
#    covers the plot (and no constrained_layout warning)
def test_item7_per_layer_figure_of_forty_layers_shows_top_layers_and_a_summary(tmp_path, monkeypatch):
    import warnings

    from scyc.analysis import figures
    from scyc.sweep.rundirs import RunDir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    layers = [f"layer{i}.weight" for i in range(40)]
    rows = [{"round": r, "when": w, "population": p, "layer": layer, "sparsity": 1 - 0.8**r, "std": 1e-3 * (i + 1)}
            for r in range(4) for w in ("start", "end") for p in ("surviving", "all_zeroed")
            for i, layer in enumerate(["global", *layers])]  # fmt: skip
    pd.DataFrame(rows).to_csv(run_dir / "grad_stats.csv", index=False)
    sizes = [
        {"round": 0, "layer": layer, "numel": 100 + (i * 37) % 41, "sparsity": 0.0} for i, layer in enumerate(layers)
    ]
    pd.DataFrame(sizes).to_csv(run_dir / "layer_sparsity.csv", index=False)
    drawn, save = {}, figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: save(drawn.setdefault("fig", fig), path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constrained_layout warning (drawing at savefig) fails the test
        figures.plot_grad_std_vs_sparsity([RunDir(run_dir)], tmp_path / "f.png")
    per_layer = drawn["fig"].axes[1]
    labels = [t.get_text() for t in per_layer.get_legend().get_texts()]
    largest = sorted(layers, key=lambda x: -(100 + (layers.index(x) * 37) % 41))[: figures.TOP_LAYERS]
    assert set(largest) <= set(labels), labels
    assert len(labels) == figures.TOP_LAYERS + 1 and "other 34 layers" in labels[-1], labels


def test_item7_log_lines_of_parallel_sweep_jobs_carry_the_run_name(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = train_cmd(None, "hydra/launcher=parallel", "seed=0,1", f"hydra.sweep.dir={sweep}", *QUICK, "pruner.rounds=1")
    proc = run([*cmd[:2], "-m", *cmd[2:]])  # Hydra's options before the overrides
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for name in ("0_scyc_global_magnitude_seed0", "1_scyc_global_magnitude_seed1"):
        assert re.search(rf"\]\[{name}\]\[scyc\]\[INFO\] - round 0/0 \|", out), (name, out[-3000:])
        log = (sweep / name / "train.log").read_text()  # the run's own log: the plain format
        assert "][scyc][INFO] - round 0/0" in log and name + "][" not in log, log


# ------------------------------------------------------------------------------------------------
# 9. --help: the common keys, one line each, and the groups train.py can pick (not tuning)
def test_item9_help_lists_common_keys_and_the_groups_a_user_picks():
    proc = run([sys.executable, str(ROOT / "train.py"), "pruner.rounds=3", "--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = proc.stdout
    assert len(page.splitlines()) <= 50, "a short page"
    assert re.search(r"^\s+pruner\.rounds\s+3\s+\S", page, flags=re.M), "values as composed with the overrides"
    assert re.search(r"^\s+pruner\.rate\s+0\.2\s+\S", page, flags=re.M)
    known = checked.schema_keys()
    keys = re.findall(r"^  ([a-z_]+\.[a-z_.]+|seed|device|progress|resume)\s", page, flags=re.M)
    assert len(keys) >= 10 and set(keys) <= set(known), keys
    conf = ROOT / "conf"
    for group in ("model", "dataset", "pruner", "schedule", "experiment", "hydra/launcher"):
        for yaml_file in (conf / group).glob("*.yaml"):
            assert yaml_file.stem in page, (group, yaml_file.stem)
    assert "tuning" not in page and "fmnist_lenet300" in page  # the tuned schedules, not the tuning settings
    readme = (ROOT / "README.md").read_text()
    assert "python train.py --help" in readme and "-sc install=bash" in readme  # tab completion


def test_item9_shell_completion_is_left_to_hydra():
    proc = run([sys.executable, str(ROOT / "train.py"), "-sc", "install=bash"], timeout=120)
    assert proc.returncode == 0 and "hydra_bash_completion" in proc.stdout, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# 10. Docs that match the code; no warning that says nothing; what the rounds bar waits on
def test_item10_small_run_has_no_grad_batches_warning(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK[:-2], "analysis.figures=false", "pruner.rounds=1"))  # 500 images: 3 batches
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "grad_batches" not in proc.stdout + proc.stderr + (run_dir / "train.log").read_text()


def test_item10_rounds_bar_says_what_it_waits_on(tmp_path):
    from test_trust_runs import run_in_terminal

    cmd = [c for c in train_cmd(tmp_path / "run", *QUICK[:-2], "analysis.figures=false") if c != "progress=false"]
    rc, out = run_in_terminal([*cmd, "progress=true"])
    assert rc == 0, out[-3000:]
    said = set(re.findall(r"rounds \[round (\d): ([a-z ]+)\]", out))
    assert {("0", "measuring gradients"), ("1", "pruning"), ("1", "training")} <= said, said


def test_item10_pruning_doc_names_where_the_masks_are(tmp_path):
    text = (ROOT / "docs" / "pruning.md").read_text()
    assert "ck['state']['masks']" in text or 'ck["state"]["masks"]' in text
    assert "{layer: bool tensor}" not in text.replace("`", "")


# ------------------------------------------------------------------------------------------------
# 4. Every code block of docs/ that a user would run is run here (composed, or at toy size) or listed as not
#    runnable here with its reason
DOCS_SKIPPED = {  # command prefix -> why it is not run here; reviewable list
    "make ": "a Makefile target: sets up, fetches data or runs a whole sweep (tests/test_tune.py, test_tables.py)",
    "bash scripts/device_check.sh": "the GPU measurement script (tests/test_device_check.py runs its CPU smoke)",
    "torchrun ": "DDP over several processes (tests/test_distributed.py runs 2 CPU processes)",
    "cp ": "copies a sweep's tables into docs/ (the lead's publishing step)",
    "python scripts/fetch_data.py imagenet200": "downloads Tiny-ImageNet-200 (needs the internet)",
}
REFUSAL = re.compile(r"#\s*(error:|Hydra:)")  # a documented refusal: its comment quotes the message
# documented refusals whose test uses another value than the docs' line: the test that covers each
REFUSAL_TESTS = {"python train.py hydra.run.dir=README.md": "test_item7_run_dir_naming_a_file_one_line"}
EXAMPLES = {"pruner=normalized_magnitude", "schedule=scyc_exp"}  # run by test_item4_docs_plugin_examples_...


def docs_commands() -> list[tuple[str, str, bool]]:
    """Every command of docs/*.md's ```bash blocks as (file, command, documented refusal): continuation lines
    joined, comments dropped (a comment quoting an error marks a refusal)."""
    out = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                cmd = re.sub(r"\s+#.*$", "", line).strip()
                if cmd and not cmd.startswith("#"):
                    out.append((path.name, re.sub(r"\s+", " ", cmd), bool(REFUSAL.search(line))))
                elif REFUSAL.match(line.strip()) and out:  # the message on a line of its own, under its command
                    out[-1] = (*out[-1][:2], True)
    return out


def docs_skip_reason(cmd: str) -> str | None:
    if cmd.endswith("...") or " ... " in cmd:
        return "a pattern with '...' for the user to fill in"
    return next((why for prefix, why in DOCS_SKIPPED.items() if cmd.startswith(prefix)), None)


def first_of_sweeps(args: list[str]) -> list[str]:
    """A multirun's overrides as one job's: the first value of every comma-separated list (not inside [])."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and "," in value and not value.startswith("["):
            value = value.split(",")[0]
        out.append(f"{key}{eq}{value}")
    return out


def test_item4_every_docs_command_is_covered_or_listed():
    commands = docs_commands()
    assert len(commands) > 50
    unknown = [c for _, c, _ in commands if not docs_skip_reason(c) and not c.startswith("python ")]
    assert not unknown, f"docs commands neither run by these tests nor in DOCS_SKIPPED: {unknown}"


def test_item4_docs_train_commands_compose_and_build():
    """Every `python train.py` line of docs/ composes as train.py composes it (the key check, Hydra, the schema,
    validation, the schedule and the pruner built); a documented refusal is exercised by a test of its own."""
    import shlex

    from scyc.config import validate
    from scyc.pruning import PRUNERS
    from scyc.schedules import build_schedule

    tests_text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    failures = []
    for name, cmd, refusal in docs_commands():
        if docs_skip_reason(cmd) or not cmd.startswith("python train.py"):
            continue
        args = [a for a in shlex.split(cmd)[2:] if a != "-m"]
        if EXAMPLES & set(args):
            continue
        if refusal:
            if REFUSAL_TESTS.get(cmd, "") in tests_text and cmd in REFUSAL_TESTS:
                continue
            if not all(a in tests_text for a in args):
                failures.append(f"{name}: documented refusal not exercised by a test: {cmd}")
            continue
        args = first_of_sweeps(args)
        try:
            cfg = composed(*(a for a in args if not a.startswith("hydra")))
            validate(cfg)
            build_schedule(cfg.schedule.options())
            PRUNERS.build(cfg.pruner.name, cfg.pruner.pruner_options(), key="pruner")
        except Exception as exc:  # noqa: BLE001  every failure is reported
            failures.append(f"{name}: {cmd}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow  # ~40 s: each script's --help, benchmark.py's --cfg job
def test_item4_docs_script_commands_use_options_the_scripts_have():
    failures, helps = [], {}
    for name, cmd, _ in docs_commands():
        if docs_skip_reason(cmd) or not cmd.startswith("python scripts/"):
            continue
        script = cmd.split()[1]
        if not (ROOT / script).exists():
            failures.append(f"{name}: {script} does not exist")
            continue
        if script == "scripts/benchmark.py":  # a Hydra script over conf/benchmark.yaml: its overrides compose
            import shlex

            args = [a.replace("<mini>", "/tmp") for a in shlex.split(cmd)[2:]]
            proc = run([sys.executable, str(ROOT / script), *args, "--cfg", "job"], timeout=120)
            if proc.returncode != 0:
                failures.append(f"{name}: {cmd}: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        if script not in helps:
            helps[script] = run([sys.executable, str(ROOT / script), "--help"], timeout=120).stdout
        for flag in re.findall(r"(?<=\s)--[a-z][a-z-]*", cmd):
            if flag not in helps[script]:
                failures.append(f"{name}: {script} has no option {flag}: {cmd}")
    assert not failures, "\n".join(failures)


def docs_example(doc: str, lang: str, first_line: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", (ROOT / "docs" / doc).read_text(), flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"docs/{doc}: no {lang} block starting with {first_line!r}"
    return found[0]


@pytest.mark.parametrize(
    "doc, module, yaml_path, dotted",
    [
        ("schedules.md", "mypkg/schedules.py", "schedule/scyc_exp.yaml", "mypkg.schedules.Exponential"),
        ("pruning.md", "mypkg/pruners.py", "pruner/normalized_magnitude.yaml", "mypkg.pruners.NormalizedMagnitude"),
    ],
)
def test_item4_docs_plugin_examples_run_as_written(tmp_path, doc, module, yaml_path, dotted):
    """The docs' own-class examples, outside the repository as their comments say: the Python block as
    ``mypkg/...`` on PYTHONPATH, the YAML block (its registered name replaced by the dotted path, as its comment
    says) in a --config-dir, then the command the docs give, at toy size."""
    code = docs_example(doc, "python", "# src/scyc/")
    yaml_text = docs_example(doc, "yaml", f"# conf/{yaml_path}")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / module).write_text(code)
    conf = tmp_path / "myconf" / yaml_path
    conf.parent.mkdir(parents=True)
    registered = Path(yaml_path).stem if doc == "pruning.md" else "exponential"
    key = "name" if doc == "pruning.md" else "shape"
    yaml_text, n = re.subn(rf"^{key}: {registered}\b", f"{key}: {dotted}", yaml_text, flags=re.M)
    assert n == 1, yaml_text
    conf.write_text(yaml_text)
    option = f"{conf.parent.name}={Path(yaml_path).stem}"
    assert f"python train.py {option}" in (ROOT / "docs" / doc).read_text()
    env = env_without(PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run_dir = tmp_path / "run"
    cmd = train_cmd(run_dir, option, *QUICK, "pruner.rounds=2")
    proc = run([*cmd[:2], "--config-dir", str(tmp_path / "myconf"), *cmd[2:]], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary(run_dir)["status"] == "complete"


# ------------------------------------------------------------------------------------------------
# 2. A smoke preset: the whole pipeline in well under two minutes, printing what the README says
def test_item2_smoke_preset_is_the_whole_pipeline_at_small_size():
    cfg = composed("+experiment=smoke")
    assert cfg.pruner.rounds >= 3 and cfg.train.epochs <= 2 and cfg.dataset.train_subset <= 10_000
    assert cfg.dataset.test_subset and cfg.dataset.val_size <= 2000  # evaluation on subsets
    assert cfg.analysis.grad_every_round and cfg.analysis.figures and cfg.wandb.mode == "offline"


def test_item2_test_subset_evaluates_on_the_first_examples():
    from scyc.data import build_data

    data = build_data(dataset_cfg("fashion_mnist", val_size=500, test_subset=100), torch.device("cpu"),
                      str(ROOT / "data"))  # fmt: skip
    assert len(data.test[1]) == 100 and len(data.val[1]) == 500
    full = build_data(dataset_cfg("fashion_mnist", val_size=500), torch.device("cpu"), str(ROOT / "data"))
    assert torch.equal(full.test[1][:100].cpu(), data.test[1].cpu())


@pytest.mark.parametrize("value", ["0", "20000", "true"])
def test_item2_bad_test_subset_is_refused_in_one_line(tmp_path, value):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, f"dataset.test_subset={value}"))
    if value == "true":  # refused by the typed schema (an int), at composition
        assert proc.returncode != 0 and "dataset.test_subset" in proc.stderr, proc.stderr[-2000:]
    else:
        assert_one_line_error(proc, f"dataset.test_subset={value}", "10000" if value == "20000" else ">= 1")
    assert not run_dir.exists()


@pytest.mark.slow  # about 25 s on the 2-core machine
def test_item2_smoke_run_prints_what_the_readme_says(tmp_path):
    import time

    run_dir = tmp_path / "run"
    start = time.monotonic()
    proc = run(train_cmd(run_dir, "+experiment=smoke", wandb="offline"), timeout=600)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert seconds < 180, seconds
    section = re.search(r"## A first run.*?```text\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert section, "README's smoke section"
    said = re.findall(r"round (\d)/(\d) \| sparsity ([\d.]+) \| max_lr ([\d.]+)", section.group(1))
    printed = re.findall(r"round (\d)/(\d) \| sparsity ([\d.]+) \| max_lr ([\d.]+)", proc.stdout + proc.stderr)
    assert said and set(said) <= set(printed), (said, printed)
    for line in ("results in ", "figures: ", "W&B: wandb sync "):
        assert line in proc.stdout + proc.stderr, line
    assert len(list((run_dir / "figures").glob("*.png"))) == 4
    assert list((run_dir / "wandb").glob("offline-run-*"))
