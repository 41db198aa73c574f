"""Writing the result files of ``call`` atomically.

Pipeline position: last stage of ``call``.  Every file is first written to a
hidden temporary name in the output folder, then renamed over the final name,
so an interrupted run never leaves a half-written table.  Column names are an
interface (docs/outputs.md); positions are converted to 1-based here and only
here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import write_text as atomic_write  # the writer of every table here
from .models import Amplicon, Call, ReadResult, Status

READ_COLUMNS = (
    "read", "file", "sample", "status", "reason", "orientation", "conversion", "identity", "cpgs_called",
    "methylation", "duplicate_of", "detail", "length", "aligned_start", "aligned_end", "mismatches",
    "converted", "unconverted", "mean_qual", "genotype", "mixed_sites",
)
CALL_COLUMNS = ("read", "sample", "cpg", "pos", "call", "why", "status", "base", "qual",
                "c_signal", "t_signal", "c_frac", "confidence", "trace_flag")
SUMMARY_COLUMNS = ("sample", "cpg", "pos", "methylated", "unmethylated", "not_determined", "percent", "note")


def _fmt(x) -> str:
    t = type(x)
    if t is str:
        return x.replace("\t", " ").replace("\n", " ") if ("\t" in x or "\n" in x) else x
    if t is int:
        return str(x)
    if x is None:
        return ""
    if isinstance(x, float):  # numpy floats too
        return f"{x:.4f}"
    return str(x).replace("\t", " ").replace("\n", " ")


def _table(columns: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["\t".join(columns)]
    lines += ["\t".join(_fmt(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def reads_table(results: Sequence[ReadResult], conditions: dict, sheet_columns: Sequence[str]) -> str:
    cols = READ_COLUMNS[:3] + tuple(sheet_columns) + READ_COLUMNS[3:]
    rows = []
    for r in results:
        aln, qc = r.aligned, r.qc
        cond = conditions.get(r.sample, {})
        rows.append(
            [r.read_id, r.file, r.sample, *[cond.get(c, "") for c in sheet_columns],
             r.status.value, r.reason.value if r.reason else "",
             aln.orientation if aln else "", qc.conversion if qc else None, qc.identity if qc else None,
             r.n_called if r.calls else (0 if aln else None), r.methylation,
             r.duplicate_of, r.detail, r.length,
             aln.target_start + 1 if aln else None, aln.target_end if aln else None,
             qc.mismatches if qc else None, qc.converted if qc else None, qc.unconverted if qc else None,
             r.mean_qual, r.genotype,
             f"{qc.mixed_cpgs}/{qc.traced_cpgs} CpG, {qc.mixed_cph}/{qc.traced_cph} CpH" if qc and qc.traced_cpgs + qc.traced_cph else ""]
        )
    return _table(cols, rows)


def calls_table(results: Sequence[ReadResult]) -> str:
    rows = []
    for r in results:
        for c in r.calls:
            rows.append([r.read_id, r.sample, c.cpg.number, c.cpg.ref_pos + 1, c.call.value,
                         c.why.value if c.why else "", r.status.value, c.base, c.qual,
                         c.c_signal, c.t_signal, c.c_frac, c.confidence,
                         "contradicted" if c.contradicted else ""])
    return _table(CALL_COLUMNS, rows)


def summary_table(amp: Amplicon, results: Sequence[ReadResult], samples: Sequence[str]) -> str:
    rows = []
    for s in samples:
        passing = [r for r in results if r.sample == s and r.status is Status.PASS]
        for k, cpg in enumerate(amp.cpgs):
            m = u = nd = 0
            for r in passing:
                c = r.calls[k].call
                if c is Call.METHYLATED:
                    m += 1
                elif c is Call.UNMETHYLATED:
                    u += 1
                else:
                    nd += 1
            pct = f"{100 * m / (m + u):.2f}" if m + u else ""
            note = "under_primer" if cpg.under_primer else (f"snp:{cpg.snp.name}" if cpg.snp else "")
            rows.append([s, cpg.number, cpg.ref_pos + 1, m, u, nd, pct, note])
    return _table(SUMMARY_COLUMNS, rows)


def samples_table(results: Sequence[ReadResult], samples: Sequence[str], conditions: dict, sheet_columns) -> str:
    rows = []
    for s in samples:
        rs = [r for r in results if r.sample == s]
        passing = [r for r in rs if r.status is Status.PASS]
        m = sum(c.call is Call.METHYLATED for r in passing for c in r.calls)
        n = sum(r.n_called for r in passing)
        rows.append([s, *[conditions.get(s, {}).get(c, "") for c in sheet_columns], len(rs), len(passing), n,
                     f"{100 * m / n:.2f}" if n else ""])
    return _table(("sample", *sheet_columns, "reads", "pass", "cpgs_called", "methylation"), rows)


def alignments_text(amp: Amplicon, results: Sequence[ReadResult], width: int = 60) -> str:
    out = [f"# bsmeth alignments against {amp.name} ({amp.strand.value} strand, amplified strand shown 5'->3',"
           f" genomic letters; positions are 1-based along the amplicon)",
           "# marks: | match, . converted C, ! unconverted non-CpG C, * CpG, x mismatch; call line: M/U/- at CpGs", ""]
    for r in results:
        aln = r.aligned
        if aln is None:
            continue
        qc = r.qc
        ident = f"{100 * qc.identity:.1f}%" if qc else ""
        conv = f"{100 * qc.conversion:.1f}%" if qc and qc.conversion is not None else "n/a"
        out.append(f">{r.read_id} sample={r.sample} status={r.status.value}"
                   f"{' reason=' + r.reason.value if r.reason else ''} orientation={aln.orientation}"
                   f" identity={ident} conversion={conv} file={r.file}")
        tline, mline, rline = aln.lines
        call_at = {c.cpg.target_pos: c.call.value for c in r.calls}
        cline, pos_at = [], []
        t = aln.target_start
        for ch in tline:
            if ch == "-":
                cline.append(" ")
                pos_at.append(None)
            else:
                cline.append(call_at.get(t, " "))
                pos_at.append(t)
                t += 1
        cline = "".join(cline)
        for i in range(0, len(tline), width):
            first = next((p for p in pos_at[i:i + width] if p is not None), None)
            label = f"{first + 1:>5} " if first is not None else "      "
            out += [label + tline[i:i + width], "      " + mline[i:i + width], "      " + rline[i:i + width],
                    "      " + cline[i:i + width], ""]
    return "\n".join(out) + "\n"


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
