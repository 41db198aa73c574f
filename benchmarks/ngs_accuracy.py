"""Accuracy of the NGS engine against the simulator's truth (docs/ngs.md, "Measured").

    python benchmarks/ngs_accuracy.py [--pairs 10000] [--replicates 2] [--seed 1] [--panel tests/data/ngs/panel.tsv]
    python benchmarks/ngs_accuracy.py --smoke     (CI: checks the script runs)

Simulates paired-end amplicon FASTQ (``bsmeth simulate --ngs``: BT474/rBT474 x dose, planted artefacts), runs
``bsmeth call --per-read`` on it and prints:

* CpG calls right on passing pairs (every M/U call against the molecule's true state);
* per sample, amplicon and CpG, the called percent (summary.tsv) against the percent of the simulated molecules
  (truth_cpgs.tsv): the largest difference in points;
* every planted artefact kind against the reason the pair got.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10_000, help="read pairs per sample")
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--panel", default=str(ROOT / "tests" / "data" / "ngs" / "panel.tsv"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="200 pairs per sample, one replicate: checks the script runs")
    a = ap.parse_args(argv)
    if a.smoke:
        a.pairs, a.replicates = 200, 1

    from bsmeth.models import CallConfig
    from bsmeth.ngs.run import NgsConfig, run_ngs
    from bsmeth.ngs.simulate import default_design, simulate_ngs
    from bsmeth.panel import load_panel
    from bsmeth.tsv import read_table

    panel = load_panel(a.panel)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = simulate_ngs(default_design(panel, a.pairs, a.replicates), panel, tmp / "sim", seed=a.seed)
        t0 = time.monotonic()
        run_ngs([], panel, tmp / "res", CallConfig(threads=a.threads), str(sim.sample_sheet),
                ngs=NgsConfig(per_read=True))
        print(f"{sim.n_pairs} pairs ({a.pairs} per sample, {len(sim.samples)} samples, {len(panel)} amplicons) "
              f"called in {time.monotonic() - t0:.1f} s")
        h, rows = read_table(tmp / "res" / "reads.tsv")
        reason = {r[h.index("read")]: (r[h.index("status")], r[h.index("reason")]) for r in rows}
        truth = {}
        with gzip.open(sim.truth_pairs, "rt") as fh:
            th = fh.readline().rstrip("\n").split("\t")
            for line in fh:
                f = dict(zip(th, line.rstrip("\n").split("\t")))
                truth[f["read"]] = f
        h, rows = read_table(tmp / "res" / "cpg_calls.tsv")
        ri, ci, ki = h.index("read"), h.index("call"), h.index("cpg")
        right = wrong = 0
        for r in rows:
            if r[ci] not in ("M", "U") or reason[r[ri]][0] != "pass":
                continue
            pattern = truth[r[ri]]["pattern"]
            if not pattern:
                continue
            if pattern[int(r[ki]) - 1] == r[ci]:
                right += 1
            else:
                wrong += 1
        print(f"CpG calls on passing pairs: {right + wrong}, right {100 * right / max(1, right + wrong):.4f} % "
              f"({wrong} wrong)")
        kinds = Counter((t["kind"], t["expected_reason"] or "pass", reason[rid][1] or "pass")
                        for rid, t in truth.items())
        print("planted kind / expected reason / reason given: pairs")
        for (kind, exp, got), n in sorted(kinds.items()):
            print(f"  {kind:16s} {exp:16s} {got:20s} {n}{'' if exp == got else '   <- differs'}")
        for kind in ("indel", "poor_conversion", "primer_dimer", "other_product"):
            tot = sum(n for (k, _e, _g), n in kinds.items() if k == kind)
            ok = sum(n for (k, e, g), n in kinds.items() if k == kind and e == g)
            print(f"  {kind}: {ok} of {tot} got the expected reason ({100 * ok / max(1, tot):.2f} %)")
        h, rows = read_table(tmp / "res" / "summary.tsv")
        called = {(r[h.index("sample")], r[h.index("amplicon")], r[h.index("cpg")]): r[h.index("percent")]
                  for r in rows}
        h, rows = read_table(sim.truth_cpgs)
        diffs = []
        for r in rows:
            d = dict(zip(h, r))
            if not d["percent"]:
                continue
            got = called.get((d["sample"], d["amplicon"], d["cpg"]), "")
            if got:
                diffs.append(abs(float(got) - float(d["percent"])))
        diffs.sort()
        print(f"per-sample per-CpG percent vs the simulated molecules: {len(diffs)} CpGs, max difference "
              f"{diffs[-1]:.2f} points, median {diffs[len(diffs) // 2]:.2f}, over 1 point: "
              f"{sum(x > 1 for x in diffs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
