"""The result tables of ``call`` (reads, cpg_calls, summary, samples) and alignments.txt.

Pipeline position: last stage of ``call``.  Column names are an interface
(docs/outputs.md); every table is formatted by ``tsv`` (quoting, formula-safe
text) and written atomically.  Positions are written 1-based through
``coords.one_based``; genome columns are empty for an amplicon without a
genome anchor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .atomic import write_text as atomic_write  # the writer of every file here
from .coords import one_based
from .models import Amplicon, Call, Panel, ReadResult, Status
from .tsv import cell, line, table_text

READ_COLUMNS = (
    "read", "file", "sample", "amplicon", "status", "reason", "orientation", "conversion_pct", "identity_pct",
    "cpgs_called", "methylation_pct", "duplicate_of", "detail", "length", "aligned_start", "aligned_end", "mismatches",
    "converted", "unconverted", "mean_qual", "genotype", "mixed_sites",
)
N_LEADING = 3  # sheet columns go after read, file, sample
GENOME_COLUMNS = ("chrom", "genome_pos", "strand")
CALL_COLUMNS = ("read", "sample", "amplicon", "cpg", "pos", *GENOME_COLUMNS, "call", "why", "status", "base", "qual",
                "read_pos", "c_signal", "t_signal", "c_frac", "confidence", "trace_flag")
SUMMARY_COLUMNS = ("sample", "amplicon", "cpg", "pos", *GENOME_COLUMNS, "methylated", "unmethylated",
                   "not_determined", "percent", "note")
SAMPLES_OWN_COLUMNS = ("amplicon", "reads", "pass", "cpgs_called", "methylation_pct")


def pct_cell(x) -> str:
    """A share as written in the tables: percent, 2 decimals (the unit is in the column name: ``_pct``)."""
    return "" if x is None else f"{100 * x:.2f}"


def read_columns(sheet_columns: Sequence[str]) -> tuple[str, ...]:
    return READ_COLUMNS[:N_LEADING] + tuple(sheet_columns) + READ_COLUMNS[N_LEADING:]


def samples_columns(sheet_columns: Sequence[str]) -> tuple[str, ...]:
    return ("sample", *sheet_columns, *SAMPLES_OWN_COLUMNS)


def reads_table(results: Sequence[ReadResult], conditions: dict, sheet_columns: Sequence[str]) -> str:
    rows = []
    for r in results:
        aln, qc = r.aligned, r.qc
        cond = conditions.get(r.sample, {})
        rows.append(
            [r.read_id, r.file, r.sample, *[cond.get(c, "") for c in sheet_columns], r.amplicon,
             r.status.value, r.reason.value if r.reason else "",
             aln.orientation if aln else "", pct_cell(qc.conversion if qc else None), pct_cell(qc.identity if qc else None),
             r.n_called if r.calls else (0 if aln else None), pct_cell(r.methylation),
             r.duplicate_of, r.detail, r.length,
             one_based(aln.target_start) if aln else None, aln.target_end if aln else None,
             qc.mismatches if qc else None, qc.converted if qc else None, qc.unconverted if qc else None,
             r.mean_qual, r.genotype,
             f"{qc.mixed_cpgs}/{qc.traced_cpgs} CpG, {qc.mixed_cph}/{qc.traced_cph} CpH"
             if qc and qc.traced_cpgs + qc.traced_cph else ""]
        )
    return table_text(read_columns(sheet_columns), rows)


def genome_cells(amp: Amplicon) -> dict[int, str]:
    """Per CpG number, the formatted chrom/genome_pos/strand cells (empty without an anchor)."""
    strand = amp.frame.genome_strand or ""
    chrom = amp.anchor.chrom if amp.anchor else ""
    return {c.number: line([chrom, one_based(c.genome_pos), strand]) for c in amp.cpgs}


def calls_table(panel: Panel, results: Sequence[ReadResult]) -> str:
    """One row per read and CpG of its amplicon.  Read-level cells are formatted once per read."""
    genome = {a.name: genome_cells(a) for a in panel}
    out = []
    for r in results:
        if not r.calls:
            continue
        head = line([r.read_id, r.sample, r.amplicon])
        status = r.status.value
        read_pos = r.aligned.read_pos if r.aligned is not None else None
        g = genome[r.amplicon]
        for c in r.calls:
            q = int(read_pos[c.cpg.target_pos]) if read_pos is not None else -1
            out.append("\t".join((
                head, str(c.cpg.number), str(one_based(c.cpg.ref_pos)), g[c.cpg.number], c.call.value,
                c.why.value if c.why else "", status, cell(c.base), cell(c.qual),
                str(one_based(q)) if q >= 0 and c.base not in ("", "-") else "",
                cell(c.c_signal), cell(c.t_signal), cell(c.c_frac), cell(c.confidence),
                "contradicted" if c.contradicted else "")))
    return table_text(CALL_COLUMNS, out)


def summary_table(panel: Panel, results: Sequence[ReadResult], samples: Sequence[str]) -> str:
    """Per sample, amplicon and CpG: counts of M, U and not determined over the passing reads."""
    passing: dict[tuple[str, str], list[ReadResult]] = {}
    for r in results:
        if r.status is Status.PASS:
            passing.setdefault((r.sample, r.amplicon), []).append(r)
    rows = []
    for s in samples:
        for amp in panel:
            genome = genome_cells(amp)
            reads = passing.get((s, amp.name), [])
            for k, cpg in enumerate(amp.cpgs):
                m = u = nd = 0
                for r in reads:
                    c = r.calls[k].call
                    if c is Call.METHYLATED:
                        m += 1
                    elif c is Call.UNMETHYLATED:
                        u += 1
                    else:
                        nd += 1
                pct = f"{100 * m / (m + u):.2f}" if m + u else ""
                note = "under_primer" if cpg.under_primer else (f"snp:{cpg.snp.name}" if cpg.snp else "")
                rows.append("\t".join((line([s, amp.name, cpg.number, one_based(cpg.ref_pos)]), genome[cpg.number],
                                       line([m, u, nd, pct, note]))))
    return table_text(SUMMARY_COLUMNS, rows)


def samples_table(panel: Panel, results: Sequence[ReadResult], samples: Sequence[str], conditions: dict,
                  sheet_columns: Sequence[str]) -> str:
    """Per sample and amplicon: reads assigned, passing, CpGs called and pooled percent methylated.

    Reads that could not be assigned to an amplicon of a panel (unreadable, no_amplicon,
    ambiguous_amplicon...) make a row with an empty amplicon, so every read of reads.tsv is counted once.
    """
    by_key: dict[tuple[str, str], list[ReadResult]] = {}
    for r in results:
        by_key.setdefault((r.sample, r.amplicon), []).append(r)
    rows = []
    for s in samples:
        cond = conditions.get(s, {})
        for amp in [*panel.names, ""]:
            rs = by_key.get((s, amp))
            if amp == "" and not rs:
                continue
            rs = rs or []
            passing = [r for r in rs if r.status is Status.PASS]
            m = sum(c.call is Call.METHYLATED for r in passing for c in r.calls)
            n = sum(r.n_called for r in passing)
            rows.append([s, *[cond.get(c, "") for c in sheet_columns], amp, len(rs), len(passing), n,
                         f"{100 * m / n:.2f}" if n else ""])
    return table_text(samples_columns(sheet_columns), rows)


def alignments_text(panel: Panel, results: Sequence[ReadResult], width: int = 60) -> str:
    by_name = {a.name: a for a in panel}
    head = ", ".join(f"{a.name} ({a.strand.value} strand)" for a in panel)
    out = [f"# bsmeth alignments against {head}: amplified strand shown 5'->3', genomic letters; positions are "
           "1-based along the amplicon",
           "# marks: | match, . converted C, ! unconverted non-CpG C, * CpG, x mismatch; call line: M/U/- at CpGs", ""]
    for r in results:
        aln = r.aligned
        if aln is None:
            continue
        amp = by_name[r.amplicon]
        qc = r.qc
        ident = f"{100 * qc.identity:.1f}%" if qc else ""
        conv = f"{100 * qc.conversion:.1f}%" if qc and qc.conversion is not None else "n/a"
        out.append(f">{r.read_id} sample={r.sample} amplicon={amp.name} status={r.status.value}"
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
            label = f"{one_based(first):>5} " if first is not None else "      "
            out += [label + tline[i:i + width], "      " + mline[i:i + width], "      " + rline[i:i + width],
                    "      " + cline[i:i + width], ""]
    return "\n".join(out) + "\n"


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
