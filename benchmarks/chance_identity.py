"""Calibrate the chance-identity curve of ``no_amplicon`` (CallConfig.chance_identity_base/_scale).

Random sequence (uniform, T-rich like converted DNA, A-rich like its complement, 40-400 nt) is aligned to
three real amplicons (IGFBP3 226 bp, QUMA's Gm9 453 bp, the 454 set's EPM2AIP1 630 bp) in either
orientation; the identity its best local alignment reaches is printed by aligned length next to the
curve max(0.65, base + scale / sqrt(L)) that bsmeth treats as chance, and the share of random reads the
curve lets through as amplicon.

    python benchmarks/chance_identity.py [N_PER_SETTING]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from bsmeth.alignment import align
from bsmeth.models import CallConfig, Read
from bsmeth.qc import chance_identity, measure
from bsmeth.reference import load_amplicon

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def main(n: int = 60) -> None:
    cfg = CallConfig()
    amps = {"IGFBP3": load_amplicon(), "Gm9": load_amplicon(DATA / "quma_gm9/sample_genome_fasta.txt"),
            "EPM2AIP1": load_amplicon(DATA / "mapit454/reference.fa")}
    rng = random.Random(1)
    rows = []
    for amp in amps.values():
        for alphabet in ("ACGT", "AGTTT", "ACGTT", "AAGT"):
            for length in (40, 60, 75, 100, 150, 250, 400):
                for _ in range(n):
                    seq = "".join(rng.choice(alphabet) for _ in range(length))
                    aln = align(amp, seq, None)
                    if aln is None:
                        continue
                    span = aln.target_end - aln.target_start
                    if span < cfg.min_aligned:
                        continue  # no_amplicon before any identity is looked at
                    ident = measure(amp, aln, Read("r", "r", seq), cfg).identity
                    rows.append((span, ident, chance_identity(span, amp.length, cfg)))
    rows = np.array(rows)
    print(f"{len(rows)} random reads with an alignment of {cfg.min_aligned}+ bases "
          f"(curve: max(0.65, {cfg.chance_identity_base} + {cfg.chance_identity_scale} / sqrt(L)))")
    print("aligned bases   n    identity median  99th pct  max    curve at the bin's start  passing the curve")
    for lo, hi in ((30, 40), (40, 60), (60, 80), (80, 100), (100, 140), (140, 200), (200, 300), (300, 1000)):
        sel = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
        if sel.any():
            r = rows[sel]
            print(f"{lo:4d}-{hi:<5d} {sel.sum():6d}    {np.median(r[:, 1]):.3f}           "
                  f"{np.percentile(r[:, 1], 99):.3f}"
                  f"     {r[:, 1].max():.3f}  {chance_identity(lo, 630, cfg):.3f}                     "
                  f"{int(np.count_nonzero(r[:, 1] >= r[:, 2]))}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
