"""Claim (ii), method-agnostic: one paragraph per pruner and the verdict's numbers. Tables:
docs/results/fashion_mnist_pruner_<pruner>.csv (``best_val``) and their ``_end`` twins; the schedules are the
ones tuned under global magnitude pruning (K = 5 first rounds)."""

from __future__ import annotations

from scyc.claims import fmt
from scyc.claims.data import Data
from scyc.claims.prose import (
    at_levels,
    best_counts,
    excluding_zero,
    margin_values,
    name,
    select_sentence,
    shallow_tuning,
)
from scyc.claims.table import DEEP, SHALLOW, Table, Window

TUNED_ROUNDS = "5"  # K: conf/tuning/fmnist_lenet300.yaml's rounds when these tables were made
# wall time of each sweep, as recorded when it ran (not in the committed data)
WALL = {"lamp": "6,200 s", "random": "6,702 s", "layerwise_magnitude": "1,562 s", "snip": "3,391 s"}
RANDOM_LEAD = Window(0.964, 0.98)  # 96.5–97.8 %: where random pruning's margin is largest before the collapse
LAYERWISE_LEVEL = Window(hi=0.987)  # layerwise magnitude: level up to 98.56 % ...
LAYERWISE_COLLAPSE = Window(0.987, 0.996)  # ... collapses at 98.85–99.53 % ...
LAYERWISE_TAIL = Window(0.996)  # ... and every schedule sits at the same low accuracy from 99.62 % on


def _table(d: Data, pruner: str) -> tuple[Table, Table]:
    return d.table(f"fashion_mnist_pruner_{pruner}"), d.table(f"fashion_mnist_pruner_{pruner}_end")


def _link(pruner: str) -> str:
    return f"[results/fashion_mnist_pruner_{pruner}.md](results/fashion_mnist_pruner_{pruner}.md)"


def _sweep(d: Data, t: Table, what: str) -> str:
    seeds = fmt.words(t.seeds())
    return (
        f"{what} × seeds {d.text('seeds', seeds)} ({d.count('runs', t.runs())} runs), "
        f"{d.count('rounds', len(t.levels()))} rounds"
    )


def _finals(d: Data, key: str, t: Table) -> str:
    finals = [t.means(lab).iloc[-1] for lab in t.labels()]
    return d.dash(key, min(finals), max(finals))


def _losses(d: Data, key: str, t: Table, decimals: int = 1) -> str:
    losses = [t.loss_from_best(lab) for lab in t.labels()]
    return d.dash(key, min(losses), max(losses), decimals)


def lamp(d: Data) -> str:
    t, end = _table(d, "lamp")
    deep = t.margin(DEEP)
    ahead = int((deep["mean"] > 0).sum())
    return (
        f"**LAMP** ({_link('lamp')}, {_sweep(d, t, 'S-Cyc, LR rewinding, cyclical LR and SGDR')}, "
        f"{d.recorded('wall', WALL['lamp'])} on the shared machine; {shallow_tuning(d, t, TUNED_ROUNDS)}): the same "
        f"picture as under global magnitude pruning. {best_counts(d, 'best', t)}. Its margin over the best of the "
        f"three benchmarks is {margin_values(d, 'shallow', t, SHALLOW, mean=False)} up to "
        f"{d.level('shallow.last', t.levels(SHALLOW)[-1])} ({excluding_zero(d, 'shallow', t, SHALLOW)}) and "
        f"{margin_values(d, 'deep', t, DEEP)} from {d.level('deep.first', t.levels(DEEP)[0])} on, ahead "
        f"{at_levels(d, 'deep.ahead', ahead, len(deep))}; {excluding_zero(d, 'deep', t, DEEP)}. Every schedule "
        f"loses {_losses(d, 'loss', t)} points from its best round (S-Cyc "
        f"{d.num('scyc.final', t.means('scyc').iloc[-1])} % at {d.level('deepest', t.deepest())}). "
        f"{select_sentence(d, 'end', t, end)}"
    )


def random(d: Data) -> str:
    t, end = _table(d, "random")
    shallow_last = t.levels(SHALLOW)[-1]
    at_last = [t.mean(lab, shallow_last) for lab in t.labels()]
    lead = t.margin(RANDOM_LEAD)
    deep = t.margin(DEEP)
    behind = int((deep["mean"] < 0).sum())
    return (
        f"**Random pruning** ({_link('random')}, `make reproduce-pruners PRUNERS=random`: "
        f"{_sweep(d, t, 'S-Cyc and all four benchmarks')}, {d.recorded('wall', WALL['random'])} for the sweep, most "
        f"of it at `nice 19` beside the conv table; {shallow_tuning(d, t, TUNED_ROUNDS)}). Random pruning destroys "
        f"the network much earlier: accuracy is {d.dash('acc.shallow_last', min(at_last), max(at_last), 0)} % at "
        f"{d.level('shallow.last', shallow_last)} and every schedule is at {_finals(d, 'acc.deepest', t)} % "
        f"(chance, 10 classes) at {d.level('deepest', t.deepest())}. Up to {fmt.level(shallow_last)} S-Cyc's margin "
        f"over the best benchmark is {margin_values(d, 'shallow', t, SHALLOW, mean=False)} "
        f"({d.span('lead', lead['mean'].min(), lead['mean'].max())} at "
        f"{d.text('lead.levels', fmt.level_range(lead['sparsity'].iloc[0], lead['sparsity'].iloc[-1]))}); "
        f"{excluding_zero(d, 'shallow', t, SHALLOW)}. From {d.level('deep.first', t.levels(DEEP)[0])} on, while the "
        f"networks collapse, S-Cyc is behind {at_levels(d, 'deep.behind', behind, len(deep))}, by up to "
        f"{d.signed('deep.min', deep['mean'].min())} points (mean {d.signed('deep.mean', deep['mean'].mean())}); "
        f"{excluding_zero(d, 'deep', t, DEEP)} {best_counts(d, 'best', t)}. {select_sentence(d, 'end', t, end)}"
    )


def layerwise(d: Data) -> str:
    t, end = _table(d, "layerwise_magnitude")
    level_last = t.levels(LAYERWISE_LEVEL)[-1]
    collapse = t.margin(LAYERWISE_COLLAPSE)
    tail = t.margin(LAYERWISE_TAIL)
    tail_means = t.cells[t.cells["sparsity"].map(lambda s: s in LAYERWISE_TAIL).astype(bool)]["mean"]
    behind = int((collapse["mean"] < 0).sum())
    winners = " or ".join(name(b) for b in dict.fromkeys(collapse.sort_values("mean")["vs"]))
    return (
        f"**Layerwise magnitude pruning** ([results/fashion_mnist_pruner_layerwise_magnitude.md]"
        f"(results/fashion_mnist_pruner_layerwise_magnitude.md), `make reproduce-pruners PRUNERS=layerwise_magnitude`: "
        f"{_sweep(d, t, 'S-Cyc and all four benchmarks')}, {d.recorded('wall', WALL['layerwise_magnitude'])} for the "
        f"sweep, {d.recorded('date', '2026-11-28')}, almost alone on the machine; "
        f"{shallow_tuning(d, t, TUNED_ROUNDS)}). Pruning 20 % of every layer, the 10-way output layer included, "
        f"destroys the network past {d.level('level.last', level_last)}: every schedule falls "
        f"{_losses(d, 'loss', t)} points from its best round, to {_finals(d, 'acc.deepest', t)} % at "
        f"{d.level('deepest', t.deepest())}. Up to {fmt.level(level_last)} S-Cyc is level with the best benchmark: "
        f"{margin_values(d, 'level', t, LAYERWISE_LEVEL)}; {excluding_zero(d, 'level', t, LAYERWISE_LEVEL)}. During "
        f"the collapse ({d.text('collapse.levels', fmt.level_range(collapse['sparsity'].iloc[0], collapse['sparsity'].iloc[-1]))}) "
        f"S-Cyc is behind {winners} {at_levels(d, 'collapse.behind', behind, len(collapse))}, by "
        f"{d.span('collapse', collapse['mean'].max(), collapse['mean'].min(), 1)} points, with seed standard "
        f"deviations up to {d.num('collapse.max_std', t.max_std(LAYERWISE_COLLAPSE), 1)} points; "
        f"{excluding_zero(d, 'collapse', t, LAYERWISE_COLLAPSE)} there. From "
        f"{d.level('tail.first', tail['sparsity'].iloc[0])} on every schedule is at the same "
        f"{d.dash('tail.acc', tail_means.min(), tail_means.max(), 0)} % (margins "
        f"{d.span('tail.margin', tail['mean'].min(), tail['mean'].max())}). {best_counts(d, 'best', t)}. "
        f"{select_sentence(d, 'end', t, end)}"
    )


def snip(d: Data) -> str:
    t, end = _table(d, "snip")
    deep = t.margin(DEEP)
    ahead = int((deep["mean"] > 0).sum())
    finals = {lab: t.means(lab).iloc[-1] for lab in t.labels()}
    best_bench = max((lab for lab in finals if lab != "scyc"), key=finals.get)
    return (
        f"**SNIP** ({_link('snip')}, `make reproduce-pruners PRUNERS=snip`: "
        f"{_sweep(d, t, 'S-Cyc and all four benchmarks')}, saliency |w · ∂L/∂w| from one training batch per round; "
        f"{d.recorded('wall', WALL['snip'])} for the sweep, {d.recorded('date', '2026-11-28')}, at `nice 19` beside "
        f"test runs; {shallow_tuning(d, t, TUNED_ROUNDS)}). Every schedule loses {_losses(d, 'loss', t)} points from "
        f"its best round (S-Cyc {d.num('scyc.final', finals['scyc'])} % at {d.level('deepest', t.deepest())}; the "
        f"best benchmark there, {name(best_bench)}, {d.num('bench.final', finals[best_bench])} %). Up to "
        f"{d.level('shallow.last', t.levels(SHALLOW)[-1])} S-Cyc is level with the best benchmark: "
        f"{margin_values(d, 'shallow', t, SHALLOW)}; {excluding_zero(d, 'shallow', t, SHALLOW, vs=True)}. From "
        f"{d.level('deep.first', t.levels(DEEP)[0])} on S-Cyc is ahead {at_levels(d, 'deep.ahead', ahead, len(deep))}, "
        f"by {margin_values(d, 'deep', t, DEEP)}, with seed standard deviations up to "
        f"{d.num('deep.max_std', t.max_std(DEEP), 1)} points; {excluding_zero(d, 'deep', t, DEEP, vs=True)} "
        f"{best_counts(d, 'best', t)}. {select_sentence(d, 'end', t, end)}"
    )


def verdict(d: Data) -> str:
    """(ii)'s verdict, its numbers from the four tables."""
    lamp_t, rnd, lw, sn = (_table(d, p)[0] for p in ("lamp", "random", "layerwise_magnitude", "snip"))

    def significant(t: Table, window: Window, key: str) -> str:
        pro, con = t.excluding_zero(window)
        n = len(pro) + len(con)
        return "none significant" if n == 0 else f"{d.count(key, n)} {'level' if n == 1 else 'levels'} significant"

    lamp_deep, snip_deep = lamp_t.margin(DEEP), sn.margin(DEEP)
    rnd_sh, rnd_deep = rnd.margin(SHALLOW), rnd.margin(DEEP)
    return (
        f"*Verdict:* **partly reproduced** (with the benchmarks' LR knobs tuned under global magnitude pruning on the "
        f"first rounds only): under LAMP S-Cyc behaves as under global magnitude pruning (level up to "
        f"{d.level('shallow.last', lamp_t.levels(SHALLOW)[-1])}, "
        f"{d.span('lamp.deep', lamp_deep['mean'].min(), lamp_deep['mean'].max())} points ahead beyond, "
        f"{significant(lamp_t, DEEP, 'lamp.deep.significant')}); under random pruning it is level or a little ahead "
        f"(up to {d.signed('random.shallow.max', rnd_sh['mean'].max())}) until the network collapses and behind "
        f"(by up to {d.signed('random.deep.min', rnd_deep['mean'].min())}, "
        f"{significant(rnd, DEEP, 'random.deep.significant')}) during the collapse, where no LR schedule rescues "
        f"accuracy; layerwise magnitude pruning gives the same pattern: level until "
        f"{d.level('layerwise.level.last', lw.levels(LAYERWISE_LEVEL)[-1])}, behind "
        f"({significant(lw, LAYERWISE_COLLAPSE, 'layerwise.collapse.significant')}) in the collapse; under SNIP, as "
        f"under LAMP: level up to {fmt.level(sn.levels(SHALLOW)[-1])}, ahead beyond "
        f"({d.span('snip.deep', snip_deep['mean'].min(), snip_deep['mean'].max())} points, "
        f"{significant(sn, DEEP, 'snip.deep.significant')})."
    )
