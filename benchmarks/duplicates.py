"""Calibrate clonal-duplicate detection on simulated truth, at several sample sizes.

For each size (clones per sample) N simulated seed-study designs (8 samples, planted duplicates among
them) go through the per-read path and ``qc.mark_duplicates``; printed per size: the planted duplicates
found, the false duplicates (a read flagged that was not planted as one) per 1,000 distinct clones, the
evidence (-log10 chance match) of planted duplicates and the highest evidences of distinct clones next to
the threshold the rule applied (``qc.evidence_needed``: the per-pair threshold corrected for the number of
pairs compared in samples larger than the seed study's), and the time of duplicate grouping.

Which planted duplicates can be told at all: the simulator draws a clone's CpG states and unconverted non-CpG C
independently with known probabilities, so the chance P that another clone of the sample repeats a source's
pattern exactly (CpGs outside primers, non-CpG C outside primers; the SNP's CpG left out) is known. The line
"identifiable" counts the planted duplicates whose sample of n clones would hold a chance twin ((n - 1) x P) in
fewer than 1 of 1,000 samples, and how many of them were found: a strict per-source view, not a bound on a rule
(the budget of 1 false duplicate per 1,000 distinct clones is spent over the study, not per source). The line
"oracle" is the best any rule can do under the false-duplicate budget: for two reads with one pattern x the
likelihood ratio of one molecule against two clones is 1 / P(x), so the most powerful rule flags a pair exactly
when P(x) is below a cut; with every distinct clone's P from the simulator the cut is set as loose as the budget
(fewer than 1 expected false duplicate per 1,000 distinct clones: sum over clones of (n - 1) x P / 2 below the
cut) allows, and the planted duplicates whose source falls below it are counted, as if every read covered every
site without error. It is told the simulator's rule for sources (at least ``DUPLICATE_MIN_MARKS`` marks: it never
flags a pattern with fewer, so those spend none of the budget), and it pools the budget over the whole study (a
sample whose clones are all unique or all common leaves its share to the others): an upper bound on any rule.

    python benchmarks/duplicates.py                       # 12, 50 and 250 clones per sample
    python benchmarks/duplicates.py --sizes 12 --designs 30
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bsmeth import qc
from bsmeth.models import CallConfig, Reason, Status
from bsmeth.pipeline import process_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate import seed_study_design, simulate
from bsmeth.simulate.clones import DUPLICATE_MIN_MARKS

DESIGNS = {12: 30, 50: 8, 250: 2}  # designs per size: about 3,000-4,000 reads each
PLANTED = {12: 2, 50: 8, 250: 16}  # planted duplicates per design


def run_design(amp, folder: Path, cfg: CallConfig):
    """(results after mark_duplicates, truth read -> duplicate_of, pair evidences, seconds grouping took)."""
    truth = {r["read"]: r["duplicate_of"] for r in csv.DictReader(open(folder / "truth_reads.tsv"), delimiter="\t")}
    results = [r for d in sorted(p for p in folder.iterdir() if p.is_dir())
               for f in sorted(d.glob("*.ab1")) for r in process_file(f, d.name, amp, cfg)]
    t = time.process_time()
    marked = qc.mark_duplicates(amp, results, cfg)
    took = time.process_time() - t
    scores = []
    by_sample: dict[str, list] = {}
    for r in results:
        if r.status is Status.PASS:
            by_sample.setdefault(r.sample, []).append(r)
    for rows in by_sample.values():
        need = qc.evidence_needed(len(rows), cfg)
        for a, b, ev in qc.pair_scores(amp, rows, cfg):
            scores.append((ev, truth.get(a) == b or truth.get(b) == a, need))
    return marked, truth, scores, took


IDENTIFIABLE = 1e-3  # (n - 1) x P below this: a chance twin in fewer than 1 of 1,000 samples of n clones


def chance_twin_log10(amp, design, truth_rows: dict, source: str) -> tuple[float, int]:
    """log10 of the chance that an independent clone of the source's condition repeats the source molecule's
    pattern, by the simulator's own probabilities (see the module docstring), and the molecule's marks
    (methylated CpGs + unconverted non-CpG C outside primers: what the simulator asks of a duplicate's source)."""
    from bsmeth.calling import sites

    row = truth_rows[source]
    cond = next(c for c in design.conditions if c.sample == row["sample"])
    probs = cond.probabilities(len(amp.cpgs))
    mol = row["molecule"]
    log_p, marks = 0.0, 0
    for j, c in enumerate(amp.cpgs):
        if c.under_primer or mol[c.target_pos] not in "CT":
            continue
        p = probs[j] if mol[c.target_pos] == "C" else 1.0 - probs[j]
        log_p += np.log10(max(p, 1e-300))
        marks += mol[c.target_pos] == "C"
    for t in np.flatnonzero(sites(amp).cph).tolist():
        log_p += np.log10(1.0 - cond.conversion if mol[t] == "C" else cond.conversion)
        marks += mol[t] == "C"
    return float(log_p), marks


def oracle_bound(clones: list[tuple[int, float]], sources: list[float], n_distinct: int,
                 per_1000: float = 1.0) -> tuple[int, float, float]:
    """(planted duplicates the most powerful rule finds, its expected false duplicates per 1,000 distinct clones,
    the cut: log10 P) at the loosest cut on log10 P that keeps the expected false duplicates under ``per_1000``.

    ``clones``: (clones in its sample, log10 P of a chance twin) per distinct clone that could be a source;
    ``sources``: log10 P of each planted duplicate's source (see the module docstring); ``n_distinct``: the
    distinct clones the budget is per 1,000 of (all the simulator made, passing or not: a generous budget)."""
    if not clones:
        return 0, 0.0, float("-inf")
    n = np.array([k for k, _ in clones], dtype=float)
    log_p = np.array([lp for _, lp in clones])
    order = np.argsort(log_p, kind="stable")
    false = np.cumsum((n[order] - 1) * 10.0 ** log_p[order] / 2) * 1000 / n_distinct
    ok = np.flatnonzero(false < per_1000)
    if len(ok) == 0:
        return 0, 0.0, float("-inf")
    k = int(ok[-1])
    cut = log_p[order][k]  # flag patterns at or below this; the next one would overspend the budget
    return sum(lp <= cut for lp in sources), float(false[k]), float(cut)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 50, 250], help="clones per sample")
    ap.add_argument("--designs", type=int, default=0, help="designs per size (default: about 3,000 reads)")
    ap.add_argument("--first-seed", type=int, default=1,
                    help="seed of the first design (default 1; the rule was tuned on seeds 1-40, so a check "
                         "on fresh designs starts beyond, e.g. 1001)")
    args = ap.parse_args()
    amp, cfg = load_amplicon(), CallConfig()
    base = seed_study_design()
    print(f"per-pair threshold {cfg.duplicate_min_evidence} (-log10) up to {qc.REFERENCE_READS} reads per sample, "
          f"raised by log10 of the comparisons per clone beyond that; designs from seed {args.first_seed}")
    for size in args.sizes:
        n_designs = args.designs or DESIGNS.get(size, max(1, 3000 // (8 * size)))
        design = replace(base, conditions=tuple(replace(c, n_clones=size) for c in base.conditions),
                         faults={**base.faults, "duplicate": PLANTED.get(size, 2)})
        planted = found = false = distinct = 0
        dup_ev, non_ev, took, reads = [], [], 0.0, 0
        by_marks: dict[int, list[int]] = {}  # source's marks (methylated CpGs + unconverted CpH) -> [planted, found]
        identifiable = [0, 0]  # planted duplicates an oracle could tell (see IDENTIFIABLE), found of those
        clone_p: list[tuple[int, float]] = []  # (clones in its sample, log10 P) of every possible source
        simulated = 0  # distinct clones simulated
        source_p: list[float] = []  # log10 P of every planted duplicate's source
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.first_seed, args.first_seed + n_designs):
                folder = Path(tmp) / str(seed)
                simulate(design, amp, folder, seed=seed)
                marked, truth, scores, secs = run_design(amp, folder, cfg)
                took += secs
                reads += len(marked)
                flagged = {r.read_id: r.duplicate_of for r in marked if r.duplicate_of}
                by_id = {r.read_id: r for r in marked}
                rows = {r["read"]: r for r in csv.DictReader(open(folder / "truth_reads.tsv"), delimiter="\t")}
                # every distinct clone's (log10 P, marks); a duplicate's source is one of them
                chance = {k: chance_twin_log10(amp, design, rows, k) for k, row in rows.items() if not row["fault"]}
                simulated += len(chance)
                clone_p += [(size, log_p) for log_p, marks in chance.values()
                            if marks >= DUPLICATE_MIN_MARKS]  # the only clones the simulator duplicates
                for r in marked:
                    src = truth.get(r.read_id, "")
                    if src:
                        source_p.append(chance[src][0])
                        planted += 1
                        hit = flagged.get(r.read_id) == src or flagged.get(src) == r.read_id
                        found += hit
                        s = by_id.get(src)
                        marks = (sum(c.call.value == "M" for c in s.calls) + (s.qc.unconverted if s.qc else 0)
                                 if s is not None and s.calls is not None else -1)
                        by_marks.setdefault(min(marks, 6), [0, 0])[0] += 1
                        by_marks[min(marks, 6)][1] += hit
                        if np.log10(size - 1) + source_p[-1] < np.log10(IDENTIFIABLE):
                            identifiable[0] += 1
                            identifiable[1] += hit
                    elif r.read_id in flagged and truth.get(flagged[r.read_id]) != r.read_id:
                        false += 1
                distinct += sum((r.status is Status.PASS or r.reason is Reason.DUPLICATE) and not truth.get(r.read_id)
                                for r in marked)
                dup_ev += [(s, need) for s, is_dup, need in scores if is_dup]
                non_ev += [(s, need) for s, is_dup, need in scores if not is_dup]
        dup_ev.sort()
        non_ev.sort(reverse=True)
        need = sorted({round(n, 2) for _, n in dup_ev + non_ev})
        print(f"\n{size} clones per sample: {n_designs} designs, {reads} reads, {planted} planted duplicates, "
              f"{distinct} distinct clones passing")
        print(f"  planted duplicates found: {found}/{planted} ({100 * found / max(planted, 1):.1f} %)")
        print("  found by the marks of the source (methylated CpGs + unconverted non-CpG C; 6 = 6 or more): "
              + ", ".join(f"{k}: {v[1]}/{v[0]}" for k, v in sorted(by_marks.items())))
        print(f"  identifiable (a chance twin in fewer than 1 of {1 / IDENTIFIABLE:,.0f} samples of {size} clones, by "
              f"the simulator's probabilities): {identifiable[0]}/{planted}; found {identifiable[1]}/{identifiable[0]} "
              f"({100 * identifiable[1] / max(identifiable[0], 1):.1f} %)")
        best, best_false, cut = oracle_bound(clone_p, source_p, simulated)
        print(f"  oracle (the most powerful rule under the budget of 1 false per 1,000 clones, full coverage, no read "
              f"errors): at most {best}/{planted} ({100 * best / max(planted, 1):.1f} %), at {best_false:.2f} "
              f"expected false per 1,000 (flags a pattern of chance P <= 10^{cut:.2f})")
        print(f"  false duplicates: {false} ({1000 * false / max(distinct, 1):.2f} per 1,000 distinct clones)")
        if dup_ev:
            print(f"  planted, evidence: min {dup_ev[0][0]:.2f}, median {np.median([s for s, _ in dup_ev]):.2f}; "
                  f"thresholds applied {', '.join(f'{n:.2f}' for n in need)}")
        print("  distinct clones, the 5 highest evidences:", ", ".join(f"{s:.2f}" for s, _ in non_ev[:5]))
        # the trade-off: pairs over a fixed per-pair threshold (planted found / pairs of distinct clones)
        print("  at a fixed per-pair threshold (planted pairs over it / distinct pairs over it): " + ", ".join(
            f"{thr:g}: {sum(s >= thr for s, _ in dup_ev)}/{sum(s >= thr for s, _ in non_ev)}"
            for thr in (3, 4, 5, 6, 7)))
        print(f"  duplicate grouping: {1000 * took / n_designs:.0f} ms CPU per design of {reads // n_designs} reads")


if __name__ == "__main__":
    main()
