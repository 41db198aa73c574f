"""The result tables of ``call`` (reads, cpg_calls, summary, samples) and alignments.txt.

Pipeline position: last stage of ``call``.  Column names are an interface
(docs/outputs.md); every table is formatted by ``tsv`` (quoting, formula-safe
text) and written atomically.  Positions are written 1-based through
``coords.one_based``; genome columns are empty for an amplicon without a
genome anchor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import write_text as atomic_write  # the writer of every file here
from .coords import one_based
from .memo import by_identity
from .models import WHY_CODES, Amplicon, CpGCalls, Panel, ReadResult, Status
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
             aln.orientation if aln else "", pct_cell(qc.conversion if qc else None),
             pct_cell(qc.identity if qc else None),
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
    """One row per read and CpG of its amplicon.  Read-level cells are formatted once per read, CpG-level ones
    once per amplicon; a read's calls are read from its ``CpGCalls`` strings and arrays (no ``CpGCall``
    objects are made)."""
    by_name = {a.name: a for a in panel}
    genome = {a.name: genome_cells(a) for a in panel}
    fixed = {a.name: [f"{c.number}\t{one_based(c.ref_pos)}\t{genome[a.name][c.number]}" for c in a.cpgs]
             for a in panel}
    targets = {a.name: [c.target_pos for c in a.cpgs] for a in panel}
    out: list[str] = []
    for r in results:
        calls = r.calls
        if not calls:
            continue
        amp = by_name.get(r.amplicon)
        head = line([r.read_id, r.sample, r.amplicon])
        status = r.status.value
        read_pos = r.aligned.read_pos if r.aligned is not None else None
        if amp is None or not isinstance(calls, CpGCalls) or calls.cpgs is not amp.cpgs:
            out += _call_rows(calls, head, status, read_pos, genome[r.amplicon])
            continue
        bases = calls.bases
        q = read_pos[targets[amp.name]].tolist() if read_pos is not None else [-1] * len(bases)
        pos = ["" if p < 0 or b in " -" else str(p + 1) for p, b in zip(q, bases)]
        if calls.c_signal is None:
            signals = [_NO_SIGNAL] * len(bases)
        else:
            signals = _signal_cells(calls.c_signal, calls.t_signal, calls.contradicted or bytes(len(bases)))
        lead = f"{head}\t"
        mid = f"\t{status}\t"
        out += [f"{lead}{f}\t{code}\t{_WHY_CELL[w]}{mid}{_base_cell(b)}\t{'' if qq == 255 else qq}\t{p}\t{sig}"
                for f, code, w, b, qq, p, sig in zip(fixed[amp.name], calls.codes, calls.whys, bases, calls.quals, pos,
                                                     signals)]
    return table_text(CALL_COLUMNS, out)


_WHY_CELL = {code: (w.value if w is not None else "") for w, code in WHY_CODES.items()}
_NO_SIGNAL = "\t\t\t\t"  # and an empty trace_flag
_BASE_CELLS: dict[str, str] = {}


def _base_cell(b: str) -> str:
    """The cell of a ``CpGCalls.bases`` letter (' ': none), as ``cell`` writes ``CpGCall.base``."""
    c = _BASE_CELLS.get(b)
    if c is None:
        c = _BASE_CELLS[b] = cell(b.strip())
    return c


def _signal_cells(cs: np.ndarray, ts: np.ndarray, contradicted: bytes) -> list[str]:
    """Per CpG: c_signal, t_signal, c_frac, confidence and trace_flag as ``CpGCall`` rounds the signals (to 0.1)
    and derives the rest (NaN: none)."""
    integral = bool(np.all((np.trunc(cs) == cs) | np.isnan(cs)) and np.all((np.trunc(ts) == ts) | np.isnan(ts)))
    c_list, t_list = cs.tolist(), ts.tolist()
    if not integral:  # peak heights of integer channels are whole numbers: round(x, 1) is x
        c_list, t_list = [round(c, 1) for c in c_list], [round(t, 1) for t in t_list]
    flags = ["contradicted" if x else "" for x in contradicted]
    return [("\t\t\t\t" if c != c else
             f"{c:.4f}\t{t:.4f}\t{(f := c / (c + t)):.4f}\t{abs(2 * f - 1):.4f}\t" if c + t > 0 else
             _no_fraction(c, t)) + x for c, t, x in zip(c_list, t_list, flags)]


def _no_fraction(c: float, t: float) -> str:
    """The signal cells when c + t is not positive (both 0) or not a number: no c_frac, no confidence."""
    return f"{c:.4f}\t" + (f"{t:.4f}" if t == t else "") + "\t\t\t"


def _call_rows(calls, head: str, status: str, read_pos, genome: dict[int, str]) -> list[str]:
    """The rows of calls given as ``CpGCall`` objects."""
    out = []
    for c in calls:
        q = int(read_pos[c.cpg.target_pos]) if read_pos is not None else -1
        out.append("\t".join((
            head, str(c.cpg.number), str(one_based(c.cpg.ref_pos)), genome[c.cpg.number], c.call.value,
            c.why.value if c.why else "", status, cell(c.base), cell(c.qual),
            str(one_based(q)) if q >= 0 and c.base not in ("", "-") else "",
            cell(c.c_signal), cell(c.t_signal), cell(c.c_frac), cell(c.confidence),
            "contradicted" if c.contradicted else "")))
    return out


def _codes(r: ReadResult) -> str:
    """A read's calls as one letter per CpG (M, U, -)."""
    return r.calls.codes if isinstance(r.calls, CpGCalls) else "".join(c.call.value for c in r.calls)


def summary_table(panel: Panel, results: Sequence[ReadResult], samples: Sequence[str]) -> str:
    """Per sample, amplicon and CpG: counts of M, U and not determined over the passing reads."""
    passing: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.status is Status.PASS:
            passing.setdefault((r.sample, r.amplicon), []).append(_codes(r))
    per_amp = []
    for amp in panel:
        genome = genome_cells(amp)
        lead = [f"{line([amp.name, c.number, one_based(c.ref_pos)])}\t{genome[c.number]}" for c in amp.cpgs]
        notes = ["under_primer" if c.under_primer else (f"snp:{c.snp.name}" if c.snp else "") for c in amp.cpgs]
        per_amp.append((amp, lead, notes))
    rows = []
    for s in samples:
        head = cell(s)
        for amp, lead, notes in per_amp:
            n = len(amp.cpgs)
            codes = [c[:n] for c in passing.get((s, amp.name), [])]
            if any(len(c) < n for c in codes):
                raise IndexError(f"a passing read of {s} has fewer calls than {amp.name} has CpGs")
            mat = np.frombuffer("".join(codes).encode("ascii"), dtype=np.uint8).reshape(len(codes), n)
            ms = np.count_nonzero(mat == ord("M"), axis=0).tolist()
            us = np.count_nonzero(mat == ord("U"), axis=0).tolist()
            for k in range(n):
                m, u = ms[k], us[k]
                pct = f"{100 * m / (m + u):.2f}" if m + u else ""
                rows.append(f"{head}\t{lead[k]}\t{m}\t{u}\t{len(codes) - m - u}\t{pct}\t{cell(notes[k])}")
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
            m = sum(_codes(r).count("M") for r in passing)
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
        cline = _call_line(r, amp, tline, aln.target_start)
        t = aln.target_start  # the target position of the next non-gap column
        for i in range(0, len(tline), width):
            chunk = tline[i:i + width]
            gaps = chunk.count("-")
            label = "      " if gaps == len(chunk) else f"{one_based(t):>5} "  # the chunk's first target position
            t += len(chunk) - gaps
            out += [label + chunk, "      " + mline[i:i + width], "      " + rline[i:i + width],
                    "      " + cline[i:i + width], ""]
    return "\n".join(out) + "\n"


def _call_line(r: ReadResult, amp: Amplicon, tline: str, t_start: int) -> str:
    """M/U/- under every CpG's C of the target line (blank elsewhere and under insertions)."""
    n = amp.length
    if isinstance(r.calls, CpGCalls) and r.calls.cpgs is amp.cpgs:
        row = bytearray(b" " * n)
        for t, code in zip(_targets(amp), r.calls.codes):
            row[t] = ord(code)
        full = row.decode("ascii")
    else:
        call_at = {c.cpg.target_pos: c.call.value for c in r.calls}
        full = "".join(call_at.get(t, " ") for t in range(n))
    if "-" not in tline:
        return full[t_start:t_start + len(tline)]
    out, t = [], t_start
    for piece in re.split(r"(-+)", tline):
        if piece.startswith("-"):
            out.append(" " * len(piece))
        else:
            out.append(full[t:t + len(piece)])
            t += len(piece)
    return "".join(out)


_TARGETS: dict = {}


def _targets(amp: Amplicon) -> list[int]:
    return by_identity(_TARGETS, amp, lambda: [c.target_pos for c in amp.cpgs])


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
