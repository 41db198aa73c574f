"""Calibrate the clone-pattern analyses of `bsmeth compare` on simulated designs with known truth.

Prints, for designs of 12 clones per sample (the issue's criteria in brackets):

A. allele-specific methylation of 60 points (one allele at m, the other at m +- 0.6): the share of designs
   where ``asm_perm_clones`` gives p < 0.01                                         [>= 90 %]
B. null designs (both alleles alike): the share with p < 0.05, per sample (``asm_perm_clones``) and pooled over
   four samples (``asm_perm_stratified``), and of the heterogeneity and pattern tests between two samples with
   the same random patterns                                                         [<= 5 % + sampling error]
C. random patterns vs fully methylated + unmethylated clones at the same average (0.5 and 0.3): each metric's
   value, the share of designs where its permutation test and ``pattern_mmd_perm`` give p < 0.05, and the
   difference of mean per-clone methylation (its bootstrap interval should contain 0 in about 95 % of designs:
   the averages cannot tell the two apart); and the pattern test with the kernel bandwidth it uses (a quarter
   of the median distance) against the median itself (the usual heuristic)
D. with ``--traces N``: N designs of A simulated as .ab1 traces and called by ``bsmeth call``, against the
   call-table simulation of the same molecules (the faithfulness of simulating at the call-table level)

Designs are simulated at the level of the call tables (``bsmeth.simulate.calls``): the same molecules as
``bsmeth simulate`` (same design, same seed), each CpG undetermined with probability 2 % (the example reads
have 1 in 2,128), no sequencing.  Each design's per-CpG methylation varies around its mean (logit effects,
sd 0.9, as in the seed study).

    python benchmarks/asm.py [--designs N] [--traces N] [--smoke]

``--smoke``: a few designs of each kind and fewer permutations, for CI (seconds); its figures are not a
calibration.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: BLAS threads only spin on a busy machine

import numpy as np  # noqa: E402

from bsmeth.reference import load_amplicon  # noqa: E402
from bsmeth.simulate import Condition, Design  # noqa: E402
from bsmeth.simulate.calls import write_call_folder  # noqa: E402
from bsmeth.simulate.clones import _mean_matched  # noqa: E402
from bsmeth.stats import CompareConfig, compare_results  # noqa: E402
from bsmeth.tables import load_call_dir  # noqa: E402

CLONES = 12
UNDETERMINED = 0.02
ASM_PAIRS = ((0.8, 0.2), (0.2, 0.8), (0.7, 0.1), (0.95, 0.35))  # (allele C, allele A): 60 points apart
METRICS = ("epipolymorphism", "entropy", "pdr", "mhl")


def _probs(mean: float, effect: np.ndarray) -> tuple:
    return tuple(round(float(p), 4) for p in _mean_matched(mean, effect)) if 0 < mean < 1 else mean


def _run(design: Design, amp, seed: int, config: CompareConfig, tmp: Path):
    d = write_call_folder(design, amp, tmp / f"d{seed}", seed=seed, undetermined=UNDETERMINED)
    return compare_results(load_call_dir(d), config)


def _rows(rows, test, scope=None):
    return [r for r in rows if r["test"] == test and (scope is None or r["scope"] == scope)]


def _share(ps, alpha) -> str:
    ps = [p for p in ps if p is not None and not math.isnan(p)]
    if not ps:
        return "n/a"
    k = sum(p < alpha for p in ps)
    return f"{k}/{len(ps)} = {100 * k / len(ps):.1f} %"


def _bound(n: int, alpha: float = 0.05) -> float:
    """alpha plus 1.96 binomial standard errors: the sampling error allowed around a nominal level."""
    return 100 * (alpha + 1.96 * math.sqrt(alpha * (1 - alpha) / max(n, 1)))


def asm_power(amp, n: int, config, tmp) -> list:
    ps = []
    for k in range(n):
        rng = np.random.default_rng(1000 + k)
        ref, alt = ASM_PAIRS[k % len(ASM_PAIRS)]
        effect = rng.normal(0, 0.9, len(amp.cpgs))
        cond = Condition("s", {"cell_line": "x"}, CLONES, _probs(ref, effect), snp_alt_fraction=0.5,
                         methylation_alt=_probs(alt, effect))
        rows, _ = _run(Design((cond,)), amp, 1000 + k, config, tmp)
        (r,) = _rows(rows, "asm_perm_clones")
        ps.append(r["p"] if r["p"] is not None else 1.0)  # a skipped test (one allele) is a miss
    return ps


def null_rates(amp, n: int, config, tmp) -> dict:
    out: dict = {"asm_perm_clones": [], "asm_perm_stratified": [], **{f"{m}_perm": [] for m in METRICS},
                 "pattern_mmd_perm": []}
    for k in range(n):
        rng = np.random.default_rng(2000 + k)
        mean = (0.2, 0.5, 0.8)[k % 3]
        effect = rng.normal(0, 0.9, len(amp.cpgs))
        probs = _probs(mean, effect)
        conds = tuple(Condition(f"s{i}", {"cell_line": "x" if i < 2 else "y"}, CLONES, probs) for i in range(4))
        rows, _ = _run(Design(conds), amp, 2000 + k, config, tmp)
        out["asm_perm_clones"].append(_rows(rows, "asm_perm_clones", "sample=s0")[0]["p"])
        out["asm_perm_stratified"].append(_rows(rows, "asm_perm_stratified", "all")[0]["p"])
        # two samples of one condition: nothing differs but chance
        rows2, _ = _run(Design(conds[:2]), amp, 3000 + k, CompareConfig(by="sample", permutations=config.permutations,
                                                                         resamples=config.resamples), tmp)
        for t in (*(f"{m}_perm" for m in METRICS), "pattern_mmd_perm"):
            r = _rows(rows2, t, "all")
            out[t].append(r[0]["p"] if r else None)
    return out


def random_vs_epialleles(amp, n: int, mean: float, config, tmp) -> dict:
    out: dict = {"values": {("random", m): [] for m in METRICS} | {("epialleles", m): [] for m in METRICS},
                 "p": {t: [] for t in (*(f"{m}_perm" for m in METRICS), "pattern_mmd_perm")},
                 "mean": [], "ci0": [], "median_bandwidth": []}
    for k in range(n):
        conds = (Condition("random", {"kind": "random"}, CLONES, mean),
                 Condition("epialleles", {"kind": "epialleles"}, CLONES, mean, pattern="concordant"))
        cfg = CompareConfig(by="kind", permutations=config.permutations, resamples=config.resamples)
        rows, het = _run(Design(conds), amp, 4000 + k, cfg, tmp)
        for h in het:
            out["values"][(h["sample"], h["metric"])].append(h["value"])
        for t in out["p"]:
            r = _rows(rows, t, "all")
            out["p"][t].append(r[0]["p"] if r else None)
        out["median_bandwidth"].append(_pattern_p_with_median_bandwidth(tmp / f"d{4000 + k}", config))
        (mw,) = _rows(rows, "mannwhitney_clones", "all")  # effect: epialleles - random, mean per-clone %
        out["mean"].append(mw["effect"])
        out["ci0"].append(mw["ci_low"] <= 0 <= mw["ci_high"])
    return out


def _pattern_p_with_median_bandwidth(folder: Path, config) -> float:
    """p of the pattern test between the folder's two samples with bandwidth = the median distance."""
    from bsmeth import patterns as P

    sets = P.clone_sets(load_call_dir(folder))
    x = np.concatenate([s.calls for s in sets])
    labels = np.concatenate([np.full(s.n, k) for k, s in enumerate(sets)])
    used, P.KERNEL_FRACTION = P.KERNEL_FRACTION, 1.0
    try:
        return P.pattern_test(x, labels, rng=np.random.default_rng(4), reps=config.permutations).p
    finally:
        P.KERNEL_FRACTION = used


def traces_check(amp, n: int, config, tmp) -> list:
    """(p from traces + bsmeth call, p from the call-table simulation) for n ASM designs."""
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.simulate import simulate

    pairs = []
    for k in range(n):
        rng = np.random.default_rng(1000 + k)
        ref, alt = ASM_PAIRS[k % len(ASM_PAIRS)]
        effect = rng.normal(0, 0.9, len(amp.cpgs))
        cond = Condition("s", {"cell_line": "x"}, CLONES, _probs(ref, effect), methylation_alt=_probs(alt, effect))
        design = Design((cond,))
        sim = tmp / f"t{k}"
        simulate(design, amp, sim, seed=1000 + k)
        run_call([str(sim)], amp, tmp / f"c{k}", CallConfig(), sheet_path=str(sim / "samples.csv"))
        rows, _ = compare_results(load_call_dir(tmp / f"c{k}"), config)
        (r,) = _rows(rows, "asm_perm_clones")
        table, _ = _run(design, amp, 1000 + k, config, tmp)
        (q,) = _rows(table, "asm_perm_clones")
        pairs.append((r["p"], q["p"], r["effect"], q["effect"]))
    return pairs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", type=int, default=200, help="designs per experiment (default 200)")
    ap.add_argument("--traces", type=int, default=0, help="designs also simulated as traces and called (D)")
    ap.add_argument("--smoke", action="store_true", help="a tiny run for CI (not a calibration)")
    a = ap.parse_args(argv)
    n = 4 if a.smoke else a.designs
    config = CompareConfig(permutations=199 if a.smoke else 999, resamples=100 if a.smoke else 1000)
    amp = load_amplicon()
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        print(f"designs of {CLONES} clones per sample, {100 * UNDETERMINED:.0f} % of CpG calls undetermined, "
              f"{config.permutations} permutations; {n} designs per experiment")
        ps = asm_power(amp, n, config, tmp)
        print(f"\nA. allele-specific methylation, 60 points ({', '.join(f'{r:.2f}/{s:.2f}' for r, s in ASM_PAIRS)}):")
        print(f"   asm_perm_clones p < 0.01 in {_share(ps, 0.01)} of designs  [>= 90 %]"
              f"; p < 0.05 in {_share(ps, 0.05)}")
        null = null_rates(amp, n, config, tmp)
        print(f"\nB. null designs (alleles alike; two samples alike), p < 0.05  [<= 5 %, +- sampling error: "
              f"<= {_bound(n):.1f} % at {n} designs]:")
        for t, v in null.items():
            print(f"   {t:<22} {_share(v, 0.05)}")
        for mean in (0.5, 0.3):
            out = random_vs_epialleles(amp, n, mean, config, tmp)
            print(f"\nC. {mean:.0%} methylated: random patterns vs fully methylated + unmethylated clones (same mean)")
            for m in METRICS:
                r = np.nanmean(out["values"][("random", m)])
                e = np.nanmean(out["values"][("epialleles", m)])
                print(f"   {m:<16} random {r:.3f}, epialleles {e:.3f}; {m}_perm p < 0.05 in "
                      f"{_share(out['p'][f'{m}_perm'], 0.05)}")
            print(f"   pattern_mmd_perm p < 0.05 in {_share(out['p']['pattern_mmd_perm'], 0.05)}, median p "
                  f"{np.median(out['p']['pattern_mmd_perm']):.3g}; with the median distance as bandwidth: p < 0.05 "
                  f"in {_share(out['median_bandwidth'], 0.05)}, median p {np.median(out['median_bandwidth']):.3g}")
            print(f"   mean per-clone methylation, epialleles - random: mean {np.mean(out['mean']):+.2f} points; "
                  f"bootstrap 95 % CI contains 0 in {sum(out['ci0'])}/{len(out['ci0'])}")
        if a.traces:
            pairs = traces_check(amp, a.traces, config, tmp)
            print(f"\nD. {a.traces} designs of A as .ab1 traces through bsmeth call vs the call-table simulation:")
            for pt, pc, et, ec in pairs:
                print(f"   traces: effect {et:7.2f} p {pt:.4g}   call tables: effect {ec:7.2f} p {pc:.4g}")
    print(f"\nCPU time {time.process_time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
