"""Validate the mixed-trace rule: detection of mixed clones, false alarms on clean clones (figures printed).

    python benchmarks/bench_mixed.py [--seeds 5] [--real DIR ...]
    python benchmarks/bench_mixed.py --smoke    # one seed, 2 clones a sample, 4 mixed a design (CI: checks it runs)

1. Simulated designs with ``mixed_clone`` faults (two molecules of one sample in one trace, the minor one
   30-50 % of the signal): every clean clone and mixed clone goes through ``bsmeth call``'s per-read path
   (default thresholds).  Detection = mixed clones excluded as ``mixed_trace``; false alarm = clean clones
   excluded as ``mixed_trace``.  Targets: >= 95 % and < 2 %.
2. The simulator's clean peaks are cleaner than an instrument's, so the false-alarm rate is also measured
   on real (non-bisulfite) traces: at every good-quality C/T and A/G call the peak of the other letter of
   the pair is measured as at a CpG (per-site rate), and pseudo-reads of 25 CpG-like and 54 CpH-like sites
   drawn from 200-base windows of each trace get the read-level rule (the IGFBP3 amplicon has 25
   assessable CpGs and 54 non-CpG C).  Real traces: tests/data/traces and any --real folder.
3. The rule before this validation (3 mixed CpGs and 20 %) on the same reads, for comparison.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bsmeth.evidence import PeakSignal, geometry, peak_heights, reference_heights, usable
from bsmeth.models import CallConfig, Read
from bsmeth.pipeline import process_file
from bsmeth.reads import read_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate import Condition, Design, mixed_differences, seed_study_design, simulate

ROOT = Path(__file__).resolve().parents[1]
PAIR = {"C": "T", "T": "C", "G": "A", "A": "G"}


def designs(smoke: bool = False):
    """The designs (name, Design); ``smoke``: the same designs with 2 clean clones a sample and 4 mixed clones."""
    n_mixed, n = (4, 2) if smoke else (16, 40)
    d = seed_study_design()
    if smoke:
        d = replace(d, conditions=tuple(replace(c, n_clones=n) for c in d.conditions), faults={})
    yield "seed study", replace(d, faults={**d.faults, "mixed_clone": n_mixed})
    yield "50 % / 20 %", Design((Condition("h50", {}, n, 0.5), Condition("h20", {}, n, 0.2)),
                                {"mixed_clone": n_mixed})
    yield "5 % / 10 % (98.5 % conv.)", Design((Condition("l05", {}, n, 0.05),
                                               Condition("l10", {}, n, 0.10, conversion=0.985)),
                                              {"mixed_clone": n_mixed})
    yield "90 %", Design((Condition("h90", {}, n, 0.9),), {"mixed_clone": n_mixed})


def rule(cfg: CallConfig, m_cpg, n_cpg, m_cph, n_cph) -> bool:
    if cfg is OLD:
        return bool((m_cpg >= 3 and m_cpg >= 0.2 * n_cpg) or (m_cph >= 5 and m_cph >= 0.1 * n_cph))
    return bool((m_cpg >= cfg.mixed_min_sites and m_cpg >= cfg.mixed_fraction * n_cpg)
                or (m_cpg + m_cph >= cfg.mixed_any_min_sites
                    and m_cpg + m_cph >= cfg.mixed_any_fraction * (n_cpg + n_cph)))


# the rule before: >= 3 mixed CpGs and >= 20 %, or >= 5 mixed CpH and >= 10 %; local median PHRED >= 20
OLD = replace(CallConfig(), mixed_min_sites=3, mixed_fraction=0.2, mixed_any_min_sites=10**6, mixed_min_local_qual=20)


def simulated(n_seeds: int, cfg: CallConfig = CallConfig(), smoke: bool = False) -> list[dict]:
    amp = load_amplicon()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, n_seeds + 1):
            for name, design in designs(smoke):
                out = Path(tmp) / f"{seed}_{len(rows)}"
                simulate(design, amp, out, seed=seed)
                truth = list(csv.DictReader(open(out / "truth_reads.tsv"), delimiter="\t"))
                mixed = {r["read"]: r for r in csv.DictReader(open(out / "truth_mixed.tsv"), delimiter="\t")}
                for t in truth:
                    if t["fault"] not in ("", "mixed_clone"):
                        continue
                    (res,) = process_file(out / t["file"], t["sample"], amp, cfg)
                    qc = res.qc
                    counts = (qc.mixed_cpgs, qc.traced_cpgs, qc.mixed_cph, qc.traced_cph) if qc else (0, 0, 0, 0)
                    m = mixed.get(t["read"])
                    n_diff = 0
                    if m:
                        cpgs, cph = mixed_differences(amp, m["major_molecule"], m["minor_molecule"])
                        n_diff = len(cpgs) + cph
                    rows.append({"design": name, "seed": seed, "fault": t["fault"], "expected": t["expected_reason"],
                                 "reason": res.reason.value if res.reason else "", "counts": counts,
                                 "fraction": float(m["minor_fraction"]) if m else 0.0, "differ": n_diff})
    return rows


def real_sites(folders: list[Path], min_local: int) -> dict[str, np.ndarray]:
    """Per real trace: (read index, mixed flag) at C/T/G/A calls whose 11-base median PHRED reaches
    ``min_local``, measured as at a CpG."""
    seen, out = set(), {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in (".ab1", ".abi", ".scf") or not path.is_file():
                continue
            r = read_file(path)[0]
            if not isinstance(r, Read) or not usable(r) or r.qual is None or r.seq in seen:
                continue  # the same trace twice (version2/version3.scf, copies) counts once
            seen.add(r.seq)
            tr = r.trace
            half, window = geometry(tr.peaks)
            xs = tr.peaks.astype(np.int64)
            h = {b: peak_heights(tr.channels[b], xs, half, window) for b in "ACGT"}
            ref = reference_heights(r)
            q = r.qual.astype(float)
            local = np.median(sliding_window_view(np.pad(q, 5, mode="edge"), 11), axis=1)
            flags = [(i, PeakSignal(h[b][i], h[PAIR[b]][i], ref[i]).mixed)
                     for i, b in enumerate(r.seq) if b in PAIR and local[i] >= min_local]
            if len(flags) >= 100:
                out[str(path.relative_to(folder))] = np.array(flags, dtype=int)
    return out


def pseudo_reads(sites: dict[str, np.ndarray], cfg: CallConfig, draws: int = 20, seed: int = 1):
    rng = np.random.default_rng(seed)
    per_trace = {}
    for name, a in sites.items():
        hits = []
        for start in range(0, int(a[:, 0].max()), 20):
            w = a[(a[:, 0] >= start) & (a[:, 0] < start + 200), 1]
            if len(w) < 100:
                continue
            for _ in range(draws):
                pick = w[rng.permutation(len(w))[:79]]
                hits.append(rule(cfg, pick[:25].sum(), 25, pick[25:].sum(), 54))
        if hits:
            per_trace[name] = np.array(hits)
    return per_trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--real", nargs="*", default=[], help="more folders of real traces")
    ap.add_argument("--smoke", action="store_true", help="one seed, small designs: checks the script runs (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.seeds = 1
    cfg = CallConfig()
    print(f"rule: >= {cfg.mixed_min_sites} mixed CpGs and >= {100 * cfg.mixed_fraction:g} % of those looked at, or "
          f">= {cfg.mixed_any_min_sites} mixed C (CpG or not) and >= {100 * cfg.mixed_any_fraction:g} %; sites with a "
          f"local median PHRED >= {cfg.mixed_min_local_qual}")

    rows = simulated(args.seeds, smoke=args.smoke)
    mixed = [r for r in rows if r["fault"] == "mixed_clone"]
    clean = [r for r in rows if r["fault"] == ""]
    det = np.array([r["reason"] == "mixed_trace" for r in mixed])
    fa = np.array([r["reason"] == "mixed_trace" for r in clean])
    print(f"\n1. simulated ({args.seeds} seeds x {len(list(designs()))} designs)")
    print(f"   mixed clones detected: {det.sum()}/{len(det)} = {100 * det.mean():.1f} % (target >= 95 %)")
    print(f"   false alarms on clean clones: {fa.sum()}/{len(fa)} = {100 * fa.mean():.2f} % (target < 2 %)")
    other = [r for r in clean if r["reason"] != r["expected"] and r["reason"] != "mixed_trace"]
    print(f"   clean clones with another reason than expected: {len(other)}"
          + "".join(f"; {r['design']} seed {r['seed']}: {r['reason'] or 'pass'} (expected {r['expected'] or 'pass'})"
                    for r in other[:3]))
    print("   detection by design:")
    for name, _ in designs():
        d = [r["reason"] == "mixed_trace" for r in mixed if r["design"] == name]
        print(f"     {name:28s} {sum(d)}/{len(d)} = {100 * np.mean(d):.1f} %")
    print("   detection by minor share / by C where the two molecules differ (C/T):")
    for lo, hi in ((0.3, 0.35), (0.35, 0.4), (0.4, 0.45), (0.45, 0.5)):
        d = [r["reason"] == "mixed_trace" for r in mixed if lo <= r["fraction"] < hi + 1e-9]
        if d:
            print(f"     share {lo:.2f}-{hi:.2f}: {sum(d)}/{len(d)} = {100 * np.mean(d):.1f} %")
    for lo, hi in ((3, 3), (4, 5), (6, 9), (10, 99)):
        d = [r["reason"] == "mixed_trace" for r in mixed if lo <= r["differ"] <= hi]
        if d:
            print(f"     {lo}-{hi} differing C: {sum(d)}/{len(d)} = {100 * np.mean(d):.1f} %")
    missed = [r for r in mixed if r["reason"] != "mixed_trace"]
    for r in missed[:8]:
        print(f"     missed: {r['design']} seed {r['seed']} share {r['fraction']:.2f}, {r['differ']} differing C, "
              f"counts {r['counts']}, reason {r['reason'] or 'pass'}")

    folders = [f for f in [ROOT / "tests" / "data" / "traces", *map(Path, args.real)] if f.is_dir()]
    for q in (20, 25):
        s = np.concatenate(list(real_sites(folders, q).values()))
        print(f"\n   (local median PHRED >= {q}: {len(s)} calls, {100 * s[:, 1].mean():.2f} % with two strong peaks)",
              end="")
    sites = real_sites(folders, cfg.mixed_min_local_qual)
    allsites = np.concatenate(list(sites.values()))
    print(f"\n2. real traces ({len(sites)} distinct traces with qualities, {len(allsites)} C/T/G/A calls with a local "
          f"median PHRED >= {cfg.mixed_min_local_qual})")
    print(f"   sites with two strong peaks: {100 * allsites[:, 1].mean():.2f} %")
    for name, a in sorted(sites.items(), key=lambda kv: -kv[1][:, 1].mean())[:5]:
        print(f"     {name:45s} {100 * a[:, 1].mean():.2f} % of {len(a)}")
    pr = pseudo_reads(sites, cfg)
    rates = np.concatenate(list(pr.values()))
    worst = max(pr, key=lambda k: pr[k].mean())
    print(f"   pseudo-reads flagged mixed_trace: {100 * rates.mean():.2f} % of {len(rates)} "
          f"(per trace: median {100 * np.median([v.mean() for v in pr.values()]):.2f} %, "
          f"worst {100 * pr[worst].mean():.1f} % {worst})")

    print("\n3. the rule before (>= 3 mixed CpGs and >= 20 %, sites with a local median PHRED >= 20; the new peak "
          "measure):")
    sites_old = real_sites(folders, OLD.mixed_min_local_qual)
    pr_old = np.concatenate(list(pseudo_reads(sites_old, OLD).values()))
    old_rows = simulated(args.seeds, OLD, smoke=args.smoke)
    d_old = np.array([rule(OLD, *r["counts"]) for r in old_rows if r["fault"] == "mixed_clone"])
    f_old = np.array([rule(OLD, *r["counts"]) for r in old_rows if r["fault"] == ""])
    print(f"   detected {100 * d_old.mean():.1f} %, false alarms simulated {100 * f_old.mean():.2f} %, "
          f"real pseudo-reads {100 * pr_old.mean():.2f} %")


if __name__ == "__main__":
    main()
