"""The ResNet-20 (BatchNorm) paragraphs of docs/claims.md: the setting and its tuning, claim (i) where BatchNorm
matters, claim (iii)'s primary endpoints. Data: docs/results/fashion_mnist_resnet20{.csv,_runs.csv} and
docs/tuning/fmnist_resnet20_runs.csv; the protocol was fixed before the runs (docs/claims.md)."""

from __future__ import annotations

import math

from scyc.claims.data import Data
from scyc.claims.main_table import (
    NAMES,
    _sign,
    _top,
    block_endpoints,
    block_gradients,
    endpoint_table,
    gradient_ratios,
)
from scyc.sweep.stats import mean_interval
from scyc.sweep.tables import LEVEL

TABLE = "fashion_mnist_resnet20"
TUNING = "fmnist_resnet20_runs"
ENDPOINT = 0.98  # the primary endpoint's levels (Makefile: reproduce-table-resnet20)
TUNING_WINDOW = 0.95  # conf/tuning/fmnist_resnet20.yaml's score
VAL_IMAGES = 1000  # conf/experiment/fmnist_resnet20.yaml's dataset.val_size
BENCHMARKS = ("cyclic", "lr_rewind")
BN_LEVELS = (0.9, 0.98)  # the depths the BatchNorm table reports, besides the deepest round
BN_COLUMNS = {  # quantity -> the long CSV's column (end of each round)
    "gradient std, surviving": "grad_std_end_surviving_bn",
    "weight norm": "wnorm_end_bn",
    "gradient std × weight norm": "grad_std_x_wnorm_end_bn",
}


def setting(d: Data) -> str:
    """What was run, and whether it is deep enough: each row's loss from its best round."""
    t = d.table(TABLE)
    losses = {lab: t.loss_from_best(lab) for lab in t.labels()}
    finals = {lab: t.means(lab).iloc[-1] for lab in t.labels()}
    enough = min(losses.values()) >= 3
    return (
        f"{d.count('runs', t.runs())} runs ({', '.join(NAMES.get(x, x) for x in t.labels())} × seeds "
        f"{', '.join(map(str, t.seeds()))}), {d.count('rounds', len(t.levels()))} rounds to "
        f"{d.level('deepest', t.deepest())}. From its best round to the deepest, each row loses "
        + "; ".join(f"{NAMES.get(lab, lab)} {d.num('loss.' + lab, losses[lab], 1)}" for lab in t.labels())
        + " points (at the deepest level: "
        + ", ".join(f"{NAMES.get(lab, lab)} {d.num('final.' + lab, finals[lab], 1)} %" for lab in t.labels())
        + "): "
        + (
            "every row loses at least 3 points, the depth the setting was sized for."
            if enough
            else "**not every row loses 3 points**: the setting is shallower than asked, and the deep-regime verdict "
            "below covers less of the collapse than the main table's."
        )  # fmt: skip
    )


def tuning(d: Data) -> str:
    """The tuning's objective at every grid point, and the choice (ties: the smaller LR)."""
    runs = d.tuning(TUNING)
    deep = runs[runs["sparsity"] >= TUNING_WINDOW - 1e-9]
    lines = ["| schedule | " + " | ".join(f"peak {p:g}" for p in sorted({_top(x) for x in runs["point"]})) + " |"]
    lines.append("|---|" + ":---:|" * (lines[0].count("|") - 2))
    for s, g in deep.groupby("schedule", sort=False):
        score = g.groupby("point", sort=False)["best_val_acc"].mean()
        order = sorted(score.index, key=_top)
        best = max(order, key=lambda p: (round(score[p], 12), -order.index(p)))
        cells = [f"**{100 * score[p]:.2f}**" if p == best else f"{100 * score[p]:.2f}" for p in order]
        lines.append(f"| {NAMES.get(s, s)} | " + " | ".join(cells) + " |")
    n = deep["round"].nunique()
    acc = float(deep["best_val_acc"].mean())
    se = 100 * math.sqrt(acc * (1 - acc) / VAL_IMAGES)
    lines += ["", f"Mean `best_val_acc` (%) over the {n} rounds at ≥ {100 * TUNING_WINDOW:g} % sparsity of one "
              f"{runs['round'].max() + 1}-round run per point (seed {', '.join(map(str, sorted(runs['seed'].unique())))}"
              f"); **bold**: chosen (ties: the smaller LR; S-Cyc: its top, the bottom a third of it). One tuning seed "
              f"and {VAL_IMAGES:,} validation images (one round's accuracy there has a binomial standard error of "
              f"about {se:.1f} points): neighbouring points are not resolved from each other."]  # fmt: skip
    return "\n".join(lines)


def gradients(d: Data) -> str:
    """Claim (i) on ResNet-20: the three populations (as the main table), then the BatchNorm-followed layers'
    gradient std, weight norm and their product at three depths, and how much of the widening the weight norm
    accounts for."""
    long = d.long(TABLE)
    pops = block_gradients(long, BENCHMARKS, "cyclical LR and LR rewinding")
    cols = {c: c for c in (*BN_COLUMNS.values(), "wnorm_end")}
    at = {lvl: gradient_ratios(long, columns=cols, at=lvl) for lvl in (*BN_LEVELS, None)}
    if any(r.empty for r in at.values()):
        return pops + "\n\nNo run of this table measured the BatchNorm-followed layers' weights."
    heads = [f"{100 * r['sparsity'].iloc[0]:.1f} %" for r in at.values()]
    lines = [f"| BN-followed convolutions (geometric mean over them), {len(at[None])} runs | "
             + " | ".join(heads) + " |", "|---|" + ":---:|" * len(heads)]  # fmt: skip
    for label, c in [*BN_COLUMNS.items(), ("weight norm, every prunable weight", "wnorm_end")]:
        cells = []
        for r in at.values():
            ci = mean_interval(list(r[c]), LEVEL)
            cells.append(f"× {ci.estimate:.3g} [{ci.low:.3g}, {ci.high:.3g}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    words = []
    for r in at.values():
        std, norm = r[BN_COLUMNS["gradient std, surviving"]], r[BN_COLUMNS["weight norm"]]
        p = mean_interval(list(r[BN_COLUMNS["gradient std × weight norm"]]), LEVEL)
        grow = ("widen in every run" if (std > 1).all() else "narrow in every run" if (std < 1).all() else
                f"widen in {(std > 1).sum()} of {len(std)} runs")  # fmt: skip
        fall = "falls in every run" if (norm < 1).all() else f"falls in {(norm < 1).sum()} of {len(norm)} runs"
        if p.low > 1:
            scale = "the scale-free width grows: more than the fall of the norm explains"
        elif p.high < 1:
            scale = "the scale-free width shrinks: the fall of the norm more than explains the change"
        else:
            scale = "the scale-free width is unchanged within its interval: the fall of the norm accounts for it"
        words.append(f"at {100 * r['sparsity'].iloc[0]:.1f} % the gradients {grow}, the weight norm {fall}, and "
                     f"{scale}")  # fmt: skip
    return "\n".join([pops, "", *lines, "", f"Ratios to the dense round's, end of round, {LEVEL:.0%} t-interval over the "
                      f"runs. For the BatchNorm-followed convolutions, " + "; ".join(words) + "."])  # fmt: skip


def endpoints(d: Data) -> str:
    return block_endpoints(d.long(TABLE), ENDPOINT)


def verdict(d: Data) -> str:
    """(iii) on ResNet-20, in words that follow the primary endpoints: per comparison ahead / behind / not resolved
    (Holm), and whether the intervals allow the paper's 2.1-3.4-point lead."""
    _, e = endpoint_table(d.long(TABLE), endpoint=ENDPOINT)
    parts, paper = [], []
    for c in e.comparisons:
        x, who = c.difference, NAMES.get(c.versus, c.versus)
        if c.p_holm < 0.05:
            parts.append(f"{'ahead of' if x.estimate > 0 else 'behind'} {who} ({_sign(x.estimate)} points, Holm p "
                         f"{c.p_holm:.3f})")  # fmt: skip
        else:
            parts.append(f"not resolved from {who} ({_sign(x.estimate)} [{_sign(x.low)}, {_sign(x.high)}])")
        if c.versus != "cyclic_flat_top":
            paper.append(x.high >= 2.1)
    if all(paper):
        tail = "is within every benchmark's interval (each reaches 2.1): with 3 seeds this table cannot exclude it."
    elif not any(paper):
        tail = "lies above every benchmark's interval: **not reproduced** on this setting."
    else:
        tail = "is within some benchmarks' intervals and above the others'."
    return (f"*Verdict (ResNet-20):* on the primary endpoint S-Cyc is {'; '.join(parts)}. The paper's 2.1–3.4-point "
            f"lead over the benchmarks {tail}")  # fmt: skip


def readme(d: Data) -> str:
    """The README's sentence on the ResNet-20 table: the primary endpoints."""
    t = d.table(TABLE)
    _, e = endpoint_table(d.long(TABLE), endpoint=ENDPOINT)
    parts = [f"{NAMES.get(c.versus, c.versus)} {_sign(c.difference.estimate)} [{_sign(c.difference.low)}, "
             f"{_sign(c.difference.high)}]" for c in e.comparisons]  # fmt: skip
    return (
        f"On the paper's own architecture, ResNet-20 with BatchNorm (Fashion-MNIST, {len(t.levels())} rounds to "
        f"{100 * t.deepest():.2f} %, seeds {', '.join(map(str, t.seeds()))}; docs/claims.md), S-Cyc minus: "
        + "; ".join(parts)
        + f" points on the mean over the {len(e.levels)} levels at ≥ {100 * ENDPOINT:g} %."
    )
