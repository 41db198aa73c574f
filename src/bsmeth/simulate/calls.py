"""Call folders simulated at the level of the call tables (no traces, no alignment), with the truth.

Pipeline position: outside the analysis path, a test-data generator (as ``simulate`` is for ``call``):
``benchmarks/asm.py`` and the tests of the clone-pattern analyses.  The clean clones are the molecules
``simulate`` draws for the same design and seed (``simulate.clean_molecules``); each becomes a pass read whose
calls are its true states, except that a CpG is ``-``/``low_quality`` with probability ``undetermined``.  What
this leaves out, sequencing and calling, changes almost nothing downstream: on the example reads (simulated
traces through ``bsmeth call``) 2,127 of the 2,128 non-SNP CpGs of pass clones outside the primers are called,
every call equal to the truth, and 1 is undetermined (docs/statistics.md); failed reads never enter the
analyses.  A SNP allele that destroys a CpG gives ``-``/``snp`` and the ``genotype`` column, as ``call`` does.

Writes what ``tables.load_call_dir`` needs (reads.tsv, cpg_calls.tsv, summary.tsv, samples.tsv, run.json) and
``truth_cpgs.tsv``; no alignments.txt (so no site scan: the SNPs are the amplicon's known ones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import numpy as np

from ..models import Amplicon
from .clones import Design, clean_molecules


def _table(header, rows) -> str:
    return "\n".join(["\t".join(header), *("\t".join(str(v) for v in r) for r in rows)]) + "\n"


def write_call_folder(design: Design, amplicon: Amplicon, out_dir: Union[str, Path], seed: int = 1,
                      undetermined: float = 0.0) -> Path:
    """Simulate ``design`` into the call folder ``out_dir`` (created); return it."""
    from ..pipeline import amplicon_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])  # the missing calls: a stream apart from the molecules'
    columns: list[str] = []
    for cond in design.conditions:
        columns += [c for c in cond.columns if c not in columns]
    reads, calls, truth = [], [], []
    tally: dict = {}
    counter: dict = {}
    for ci, mol in clean_molecules(design, amplicon, seed):
        cond = design.conditions[ci]
        counter[ci] = counter.get(ci, 0) + 1
        rid = f"{cond.sample}_{counter[ci]:02d}"
        m = u = 0
        for cpg, state in zip(amplicon.cpgs, mol.states):
            truth.append([rid, cond.sample, cpg.number, cpg.ref_pos + 1, state])
            if cpg.under_primer:
                call, why = "-", "under_primer"
            elif state == "A":
                call, why = "-", "snp"
            elif rng.random() < undetermined:
                call, why = "-", "low_quality"
            else:
                call, why = state, ""
            m += call == "M"
            u += call == "U"
            t = tally.setdefault((cond.sample, cpg.number), [0, 0, 0])
            t[0 if call == "M" else 1 if call == "U" else 2] += 1
            calls.append([rid, cond.sample, cpg.number, cpg.ref_pos + 1, call, why, "pass"])
        genotype = ",".join(mol.snp_allele.split(";")) if mol.snp_allele else ""
        reads.append([rid, f"{cond.sample}/{rid}", cond.sample, *[cond.columns.get(c, "") for c in columns],
                      "pass", "", m + u, f"{m / (m + u):.4f}" if m + u else "", genotype])
    summary = []
    samples = []
    for cond in design.conditions:
        mm = nn = 0
        for cpg in amplicon.cpgs:
            mt, ut, nd = tally.get((cond.sample, cpg.number), [0, 0, 0])
            note = "under_primer" if cpg.under_primer else (f"snp:{cpg.snp.name}" if cpg.snp else "")
            summary.append([cond.sample, cpg.number, cpg.ref_pos + 1, mt, ut, nd,
                            f"{100 * mt / (mt + ut):.2f}" if mt + ut else "", note])
            mm, nn = mm + mt, nn + mt + ut
        samples.append([cond.sample, *[cond.columns.get(c, "") for c in columns], cond.n_clones, cond.n_clones, nn,
                        f"{100 * mm / nn:.2f}" if nn else ""])
    files = {
        "reads.tsv": _table(["read", "file", "sample", *columns, "status", "reason", "cpgs_called", "methylation",
                             "genotype"], reads),
        "cpg_calls.tsv": _table(["read", "sample", "cpg", "pos", "call", "why", "status"], calls),
        "summary.tsv": _table(["sample", "cpg", "pos", "methylated", "unmethylated", "not_determined", "percent",
                               "note"], summary),
        "samples.tsv": _table(["sample", *columns, "reads", "pass", "cpgs_called", "methylation"], samples),
        "truth_cpgs.tsv": _table(["read", "sample", "cpg", "pos", "truth"], truth),
        "run.json": json.dumps({"amplicon": amplicon_dict(amplicon), "sample_columns": columns,
                                "samples": [c.sample for c in design.conditions],
                                "simulated": {"seed": seed, "undetermined": undetermined,
                                              "design": design.to_dict()}}, indent=1) + "\n",
    }
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    return out
