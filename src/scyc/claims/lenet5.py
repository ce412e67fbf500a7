"""The LeNet-5 (conv net) paragraphs of docs/claims.md: (i)'s note, (iii) against the benchmarks, (iv) against
the oracle. Table: docs/results/fashion_mnist_lenet5.csv (``best_val``) and its ``_end`` twin."""

from __future__ import annotations

from scyc.claims import fmt
from scyc.claims.data import Data
from scyc.claims.prose import at_levels, best_counts, cites, excluding_zero, name, shallow_tuning
from scyc.claims.table import DEEP, SHALLOW, compare_selects

TABLE = "fashion_mnist_lenet5"
BENCHMARKS = ("lr_rewind", "warmup", "cyclic", "sgdr")
TUNED_ROUNDS = "4"  # K: conf/tuning/fmnist_conv.yaml's rounds when this table was made (docs/tuning/fmnist_conv.md)
NAMED = "cyclic"  # the benchmark the conv net's text compares S-Cyc with by name


PRUNABLE = 61_470  # LeNet-5's prunable weights (scyc.models: conv 6@5x5, conv 16@5x5, 120-84-10)
WALL = {"tune": "34 min", "table": "1 h 40 min (6,005 s), 2026-11-27"}  # as recorded when each ran


def setting(d: Data) -> str:
    """The conv-net setting: what was run, how it was tuned, and how its two tables compare."""
    t, end = d.table(TABLE), d.table(TABLE + "_end")
    losses = [t.loss_from_best(lab) for lab in t.labels()]
    left = round(PRUNABLE * (1 - t.deepest()))
    diff, only_best, only_end = compare_selects(t, end)
    pro, con = t.excluding_zero()
    n_excl = len(pro) + len(con)
    same = "the same" if not only_best and not only_end else "not the same"
    return (
        f"**The conv-net setting.** LeNet-5 (conv 6@5×5, conv 16@5×5, 120-84-10, ReLU; "
        f"{d.recorded('prunable', f'{PRUNABLE:,}')} prunable weights) on Fashion-MNIST, the same pruning and reset, "
        f"**{d.recorded('epochs', '2')} epochs per round** (a LeNet-5 epoch costs ~5× a LeNet-300-100 one on this "
        f"CPU), **{d.count('rounds', len(t.levels()))} rounds**, down to {d.level('deepest', t.deepest())} sparsity "
        f"(about {d.count('weights_left', left)} weights left), where every schedule has lost "
        f"{d.dash('loss', min(losses), max(losses))} points from its best round. Tuned by the rule of the time "
        f"(5 points per schedule, seeds 100 and 101; [tuning/fmnist_conv.md](tuning/fmnist_conv.md)), with the "
        f"{shallow_tuning(d, t, TUNED_ROUNDS)}; S-Cyc, the four benchmarks and the oracle × seeds "
        f"{d.text('seeds', fmt.words(t.seeds()))} ({d.count('runs', t.runs())} runs):\n"
        "\n"
        "```bash\n"
        f"make tune SETTING=fmnist_conv         # {d.recorded('wall.tune', WALL['tune'])} on this machine\n"
        f"make reproduce-table-conv             # {t.runs()} runs, {len(t.levels())} rounds of 2 epochs: "
        f"{d.recorded('wall.table', WALL['table'])}\n"
        "```\n"
        "\n"
        "Tables: [results/fashion_mnist_lenet5.md](results/fashion_mnist_lenet5.md) (`best_val`) and "
        "[results/fashion_mnist_lenet5_end.md](results/fashion_mnist_lenet5_end.md) (`end`); their margins differ by "
        f"at most {d.num('end.max_margin_difference', diff)} points, and {same} "
        f"{d.count('excluding_zero', n_excl)} intervals exclude 0."
    )


def gradients(d: Data) -> str:
    """(i): the LeNet-5 gradient ratios cannot be recomputed from committed data: say so and how to get them."""
    t = d.table(TABLE)
    return (
        f"**LeNet-5** (conv net, deepest round {d.level('deepest', t.deepest())}): the gradient ratios of this "
        "setting were measured from the table's run dirs (`grad_stats.csv` of every run), which were never "
        "committed, so they are not quoted here: no committed file can check them. To measure them, rerun the "
        "table's sweep and read the verdict per population:\n"
        "\n"
        "```bash\n"
        "make reproduce-table-conv     # the 18 runs behind results/fashion_mnist_lenet5.md\n"
        "python scripts/analyze_gradients.py outputs/tables/fashion_mnist_lenet5/*_scyc_* --verdict --no-figures\n"
        "python scripts/analyze_gradients.py outputs/tables/fashion_mnist_lenet5/*_{lr_rewind,warmup,cyclic,sgdr}_* "
        "--verdict --no-figures\n"
        "```"
    )


def iii(d: Data) -> str:
    """(iii) on LeNet-5: S-Cyc against the best benchmark per level, and against cyclical LR by name."""
    t = d.table(TABLE)
    levels = t.levels()
    sh, dp = t.margin(SHALLOW), t.margin(DEEP)
    vs = t.benchmark_counts()
    vs_text = fmt.words([f"{name(b)} at {d.count(f'vs.{b}', c)}" for b, c in sorted(vs.items(), key=lambda x: -x[1])])
    behind = int((sh["mean"] < 0).sum())
    named = t.difference("scyc", NAMED, SHALLOW)
    named_behind = int((named < 0).sum())
    pro, con = t.excluding_zero(SHALLOW)
    excl = []
    if not con.empty:
        excl.append(f"in the benchmark's favour at {cites(d, 'shallow', con)}")
    if not pro.empty:
        excl.append(f"in S-Cyc's at {cites(d, 'shallow', pro)}")
    excl_text = "the interval excludes 0 " + " and ".join(excl) if excl else "no interval excludes 0"
    finals = [t.means(lab).iloc[-1] for lab in ("scyc", *BENCHMARKS)]
    deep_first = dp["sparsity"].iloc[0]
    return (
        f"**LeNet-5** (conv net, {d.count('levels', len(levels))} sparsities to {d.level('deepest', t.deepest())}; "
        f"{shallow_tuning(d, t, TUNED_ROUNDS)}): S-Cyc is **behind** the best benchmark "
        f"(picked per level after the fact: {vs_text} of the {len(levels)} levels) "
        f"{at_levels(d, 'shallow.behind', behind, len(sh))} up to {d.level('shallow.last', sh['sparsity'].iloc[-1])}, "
        f"by {d.span('shallow.margin', sh['mean'].max(), sh['mean'].min())} points "
        f"(mean {d.signed('shallow.margin.mean', sh['mean'].mean())}); {excl_text}. "
        f"Against {name(NAMED)} by name it is behind {at_levels(d, 'shallow.named.behind', named_behind, len(named))} "
        f"there, by {d.span('shallow.named', named.max(), named.min())} points "
        f"(mean {d.signed('shallow.named.mean', named.mean())}; means only, no interval). "
        f"From {d.level('deep.first', deep_first)} to {d.level('deep.last', t.deepest())}, where accuracy falls from "
        f"about {d.num('deep.scyc.first', t.mean('scyc', deep_first), 1)} to "
        f"{d.dash('deep.final', min(finals), max(finals))} %, it is level: "
        f"{d.span('deep.margin', dp['mean'].min(), dp['mean'].max())} points against the best benchmark, "
        f"{excluding_zero(d, 'deep', t, DEEP)}. "
        f"{best_counts(d, 'best', t, lead=NAMED)}."
    )


def iv(d: Data) -> str:
    """(iv) on LeNet-5: S-Cyc minus the oracle, and the oracle against the best fixed schedule."""
    t = d.table(TABLE)
    levels = t.levels()
    sh, dp = (t.welch("scyc", "oracle", w) for w in (SHALLOW, DEEP))
    every = t.welch("scyc", "oracle")
    excl = every[(every["ci_low"] > 0) | (every["ci_high"] < 0)]
    fixed = [lab for lab in t.labels() if lab != "oracle"]
    best_fixed = t.cells[t.cells["label"].isin(fixed)].groupby("sparsity")["mean"].max()
    below = int((t.means("oracle") < best_fixed).sum())
    excl_text = (
        f"no interval excludes 0 at any of the {d.count('levels', len(levels))} levels"
        if excl.empty
        else f"the interval excludes 0 at {cites(d, 'welch', excl)}"
    )
    return (
        f"**LeNet-5** (oracle grid 0.033–0.225, {shallow_tuning(d, t, TUNED_ROUNDS)}): S-Cyc − oracle is "
        f"{d.span('shallow', sh['mean'].min(), sh['mean'].max())} points up to "
        f"{d.level('shallow.last', sh['sparsity'].iloc[-1])} (mean {d.signed('shallow.mean', sh['mean'].mean())}) and "
        f"{d.span('deep', dp['mean'].min(), dp['mean'].max())} from {d.level('deep.first', dp['sparsity'].iloc[0])} on "
        f"(mean {d.signed('deep.mean', dp['mean'].mean())}). The paired intervals need the per-seed values, which "
        f"were not committed; Welch intervals from the committed means and standard deviations (unpaired) give: "
        f"{excl_text}. The oracle's mean is below the best fixed schedule's at "
        f"{d.count('oracle_below_best_fixed', below)} of the {len(levels)} levels, so it is no upper bound here."
    )
