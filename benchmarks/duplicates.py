"""Calibrate clonal-duplicate detection on simulated truth.

For N simulated seed-study designs, score every pair of passing reads within a
sample with ``qc.chance_match`` and print the evidence (-log10 chance match)
of planted duplicates and of pairs of distinct clones.

    python benchmarks/duplicates.py [N_SEEDS]
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from bsmeth import qc
from bsmeth.models import CallConfig, Status
from bsmeth.pipeline import process_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate import seed_study_design, simulate


def scores_of(amp, folder: Path, cfg: CallConfig):
    """(evidence, is a planted duplicate) for every pair of passing reads within each sample."""
    truth = {r["read"]: r["duplicate_of"] for r in csv.DictReader(open(folder / "truth_reads.tsv"), delimiter="\t")}
    out = []
    for sample_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        rs = [r for f in sorted(sample_dir.glob("*.ab1")) for r in process_file(f, sample_dir.name, amp, cfg)]
        rs = [r for r in rs if r.status is Status.PASS]
        for a, b, evidence in qc.pair_scores(amp, rs, cfg):
            out.append((evidence, truth.get(a) == b or truth.get(b) == a))
    return out


def main(n_seeds: int = 20) -> None:
    amp, cfg = load_amplicon(), CallConfig()
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, n_seeds + 1):
            d = Path(tmp) / str(seed)
            simulate(seed_study_design(), amp, d, seed=seed)
            scores += scores_of(amp, d, cfg)
    dup = sorted(s for s, is_dup in scores if is_dup)
    non = sorted((s for s, is_dup in scores if not is_dup), reverse=True)
    print(f"designs: {n_seeds}; pairs of distinct clones: {len(non)}; planted duplicates: {len(dup)}")
    print(f"planted duplicates, evidence (-log10 chance match): min {dup[0]:.2f}, median {np.median(dup):.2f}")
    print("distinct clones, the 10 highest evidences:", ", ".join(f"{s:.2f}" for s in non[:10]))
    for thr in (4.0, 4.5, 5.0, 5.5, 6.0, 7.0):
        fp = sum(s >= thr for s in non)
        tp = sum(s >= thr for s in dup)
        print(f"threshold {thr:.1f}: planted found {tp}/{len(dup)}, distinct pairs flagged {fp}/{len(non)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
