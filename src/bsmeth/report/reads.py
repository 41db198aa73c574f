"""Per-read data of the report, embedded compactly and shown on demand: the read table, each read's CpG calls,
alignment and chromatogram at every CpG.

Pipeline position: used by ``build`` (and by ``downstream.draw`` through ``report.trace_section``,
which makes the chromatogram data beside the figures).  Nothing here is drawn: the page's script
(``data/report.js``) inflates the packed data when a read is opened and draws the traces in a ``<canvas>``, so a
report of 2,000 reads opens as fast as one of 20.

Chromatograms: for each read with a trace, the stretch of the trace from 5 bases before its first covered CpG to
5 bases after its last, the four channels quantised to 64 levels (relative to the stretch's highest point),
sampled at about four points per base (traces hold 10-12), delta-coded and deflated together with the base calls
and their peak positions: about 1.5 kB of the page per read, real or simulated (measured: 5-6 bytes per base).
The data are embedded up to a budget (``TRACE_BUDGET`` bytes of the page): every read when it fits (the
example's 96 reads take a seventh of it); beyond it, failed and flagged reads first, then passing reads taken
in turn from each sample.  The page says how many were embedded.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from .html import Raw, esc, html_table, json_script, packed, packed_script

SNIPPET_BASES = 5  # bases drawn each side of a CpG
POINTS_PER_BASE = 4  # trace points kept per base (traces hold 10-12; 4 still draw each peak's shape)
LEVELS = 64  # signal levels kept (6 bits: a step is under 2 % of the stretch's highest peak)
TRACE_BUDGET = 1_200_000  # bytes of base64 in the page for chromatograms, shared by the run's amplicons
READ_COLUMNS = ("read", "sample", "amplicon", "status", "reason", "detail", "orientation", "conversion_pct",
                "identity_pct", "cpgs_called", "methylation_pct", "duplicate_of", "genotype", "mixed_sites")
COLUMN_TITLES = {
    "read": "click a read to see its alignment and chromatogram",
    "status": "pass: used in the results; fail: excluded (reason)",
    "reason": "why the read is excluded: see the glossary",
    "orientation": "+ the read as given is the amplified strand, - its reverse complement",
    "conversion_pct": "% of non-CpG C read as T (bisulfite conversion)",
    "identity_pct": "% bisulfite-aware identity over the covered amplicon",
    "cpgs_called": "CpGs called M or U",
    "methylation_pct": "% of called CpGs that are methylated",
    "duplicate_of": "for a clonal duplicate: the read kept",
    "mixed_sites": "sites with two strong peaks out of those looked at",
}


# ---------------------------------------------------------------------------------------------
# the read table and the index the page's script works from


def _float(v) -> Optional[float]:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def read_counts(data) -> dict[str, tuple[int, int]]:
    """(methylated, unmethylated) CpG calls of every read with calls (failed reads too)."""
    calls = data.cpg_calls
    mu = calls[calls["call"].isin(("M", "U"))].groupby(["read", "call"], sort=False).size()
    out: dict[str, list[int]] = {}
    for (rid, call), n in mu.items():
        out.setdefault(rid, [0, 0])[call == "U"] += int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


def read_index(data) -> dict:
    """What the page's script needs for curation and live numbers: per read (in reads.tsv order) its sample,
    amplicon, status, reason and M/U counts; the run's curation."""
    reads = data.reads
    samples = list(dict.fromkeys([*data.sample_order(), *reads["sample"]]))
    amplicons = list(dict.fromkeys([*data.amplicons, *reads["amplicon"]]))
    s_at = {s: i for i, s in enumerate(samples)}
    a_at = {a: i for i, a in enumerate(amplicons)}
    counts = read_counts(data)
    rows = []
    for rid, s, a, st, reason in zip(reads["read"], reads["sample"], reads["amplicon"], reads["status"],
                                     reads["reason"]):
        m, u = counts.get(rid, (0, 0))
        rows.append([rid, s_at[s], a_at[a], 1 if st == "pass" else 0, reason, m, u])
    return {"samples": samples, "amplicons": amplicons, "reads": rows, "curation": data.run.get("curation")}


def read_table(data) -> str:
    """Every read: plain HTML (sortable, filterable and searchable with the page's script)."""
    reads = data.reads
    cols = [c for c in READ_COLUMNS if c in reads.columns and (c != "amplicon" or len(data.amplicons) > 1)]
    rows = []
    for rec in reads[cols].itertuples(index=False, name=None):
        row = []
        for c, v in zip(cols, rec):
            v = _float(v) if isinstance(v, float) else v
            if c == "read":
                row.append(Raw(f'<a href="#read" class="rd">{esc(v)}</a>'))
            else:
                row.append(v)
        rows.append(row)
    return html_table(cols, rows, list(reads["status"]), table_id="reads",
                      titles=[COLUMN_TITLES.get(c, "") for c in cols])


# ---------------------------------------------------------------------------------------------
# CpG calls and alignments of each read, packed


CALL_FIELDS = ("cpg", "call", "why", "base", "qual", "c_frac", "trace_flag")  # (pos, read_pos, confidence: in
# cpg_calls.tsv; left out here, they took half of the packed calls of a 2,000-read report)


def calls_payload(data) -> dict:
    """Per read, its CpG calls as columns (cpg_calls.tsv's own values; c_frac to 2 decimals)."""
    calls = data.cpg_calls
    fields = [f for f in CALL_FIELDS if f in calls.columns]
    columns = []
    for f in fields:
        col = calls[f]
        if col.dtype.kind == "f":
            digits = 2 if f == "c_frac" else 0
            col = [None if x != x else (int(x) if digits == 0 else round(x, digits)) for x in col.tolist()]
        else:
            col = col.tolist()
        columns.append(col)
    out: dict[str, dict] = {}
    reads = calls["read"].tolist()
    start = 0
    for end in range(1, len(reads) + 1):  # a read's rows are together (cpg_calls.tsv is written read by read)
        if end < len(reads) and reads[end] == reads[start]:
            continue
        rec = {f: col[start:end] for f, col in zip(fields, columns)}
        if "call" in rec:
            rec["call"] = "".join(rec["call"])
        rid = reads[start]
        if rid in out:  # rows of a read apart (not written by bsmeth): joined
            for f in fields:
                out[rid][f] = out[rid][f] + rec[f]
        else:
            out[rid] = rec
        start = end
    return out


def split_alignments(text: str, reads) -> list[tuple[str, str]]:
    """Cut alignments.txt into (read id, block) using the header lines.

    A header line names a known read (first field, or ``read=<id>``) and carries that read's status
    (``pass``/``fail``), which alignment, mark and call lines never do.  Unknown layouts fall back to one block.
    """
    import re

    token = re.compile(r"[\s,;|]+")
    status = dict(zip(reads["read"], reads["status"]))
    records: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        stripped = line.strip().lstrip(">#").strip()
        tokens = [t for t in token.split(stripped) if t]
        values = [t.split("=", 1)[1] if "=" in t else t for t in tokens]
        rid = None
        keyed = [t.split("=", 1)[1] for t in tokens if t.startswith("read=")]
        for cand in keyed + values[:1]:
            if cand in status and status[cand] in values:
                rid = cand
                break
        if rid is not None:
            records.append((rid, [line]))
        elif records:
            records[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):  # '#' lines before the first read: the file's legend
            records.append(("", [line]))
    return [(rid, "\n".join(lines).rstrip("\n")) for rid, lines in records]


def alignments_payload(data) -> dict[str, str]:
    path = data.alignments_path
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    return {rid: block for rid, block in split_alignments(text, data.reads) if rid}


def per_read_scripts(data) -> str:
    """The read index (plain JSON) and the packed calls and alignments."""
    calls = json.dumps(calls_payload(data), separators=(",", ":")).encode()
    alignments = json.dumps(alignments_payload(data), separators=(",", ":"), ensure_ascii=False).encode()
    return (json_script("bsm-index", read_index(data)) + packed_script("bsm-calls", calls)
            + packed_script("bsm-alignments", alignments))


# ---------------------------------------------------------------------------------------------
# chromatograms


def trace_file(data, name: str) -> Optional[Path]:
    """The trace file named in reads.tsv (relative to the result folder): found from where the folder is now
    (moved or copied together with its reads), else from where it was at run time (moved alone), else as
    bsmeth 0.1 wrote it (relative to the working folder)."""
    from ..tsv import undo_byte_escapes

    if not name:
        return None
    at_run = data.run.get("results_dir")
    for text in (name, undo_byte_escapes(name)):
        if text is None:
            continue
        p = Path(text)
        bases = [data.directory, *([Path(at_run)] if at_run else []), Path("."), data.directory.parent]
        for cand in (p,) if p.is_absolute() else tuple(b / p for b in bases):
            if cand.is_file():
                return cand
    return None


def cpg_columns(data) -> dict[str, list[tuple[int, int, str]]]:
    """Per read: (CpG number, 0-based index in the read as given, call) of each CpG whose base was read, from
    cpg_calls.tsv's ``read_pos`` (the aligner's own map; either strand, either orientation)."""
    from ..coords import from_one_based

    calls = data.cpg_calls
    if "read_pos" not in calls.columns:
        return {}
    rows = calls[calls["read_pos"].notna()]
    out: dict[str, list[tuple[int, int, str]]] = {}
    # (columns as lists: iterating a pandas column costs a Python call per cell, 54,000 rows at 2,000 reads)
    for rid, c, q, call in zip(*(rows[k].tolist() for k in ("read", "cpg", "read_pos", "call"))):
        out.setdefault(rid, []).append((int(c), from_one_based(int(q)), str(call)))
    return out


def encode_trace(read, cols: list[tuple[int, int, str]], orient: str) -> Optional[tuple[dict, bytes]]:
    """(metadata, bytes) of one read's chromatogram around its CpGs; None if the trace cannot be cut there."""
    tr = read.trace
    peaks = np.asarray(tr.peaks, dtype=np.int64)
    n_points = len(tr.channels["A"])
    idx = [i for _, i, _ in cols if 0 <= i < len(peaks)]
    if not idx or n_points < 2:
        return None
    lo_i, hi_i = max(min(idx) - SNIPPET_BASES, 0), min(max(idx) + SNIPPET_BASES, len(peaks) - 1)
    x0 = max(int(peaks[lo_i]) - 6, 0)
    x1 = min(int(peaks[hi_i]) + 7, n_points)
    if x1 - x0 < 2:
        return None
    spacing = float(np.median(np.diff(peaks[lo_i:hi_i + 1]))) if hi_i > lo_i else 12.0
    step = max(1, int(round(spacing / POINTS_PER_BASE)))
    ch = np.stack([np.asarray(tr.channels[b][x0:x1:step], dtype=np.float64) for b in "ACGT"])
    top = max(float(ch.max()), 1.0)
    q = np.clip(np.rint(ch * (LEVELS - 1) / top), 0, LEVELS - 1).astype(np.int16)
    delta = (np.diff(q, axis=1, prepend=0) & 0xFF).astype(np.uint8)
    pk = np.clip(np.rint((peaks[lo_i:hi_i + 1] - x0) / step), 0, 65535).astype(np.int64)
    pk_delta = np.diff(pk, prepend=0).clip(0, 65535).astype("<u2")
    meta = {"o": orient, "i0": lo_i, "n": int(q.shape[1]), "nb": hi_i - lo_i + 1, "step": step,
            "seq": read.seq[lo_i:hi_i + 1], "cpg": [[c, i - lo_i, call] for c, i, call in cols if lo_i <= i <= hi_i]}
    return meta, pk_delta.tobytes() + delta.tobytes()


def _priority(data, columns: dict) -> list[str]:
    """Reads to embed, most useful first: failed or flagged reads, then passing reads in turn from each sample."""
    reads = data.reads
    calls = data.cpg_calls
    flagged = set()
    if "trace_flag" in calls.columns:
        flagged |= set(calls.loc[calls["trace_flag"] != "", "read"])
    flagged |= set(calls.loc[calls["why"] == "mixed", "read"])
    first, by_sample = [], {}
    for rid, st, s in zip(reads["read"], reads["status"], reads["sample"]):
        if rid not in columns:
            continue
        if st != "pass" or rid in flagged:
            first.append(rid)
        else:
            by_sample.setdefault(s, []).append(rid)
    queues = list(by_sample.values())
    rest = []
    k = 0
    while any(k < len(q) for q in queues):
        rest += [q[k] for q in queues if k < len(q)]
        k += 1
    return first + rest


def trace_payload(data, budget: int) -> tuple[dict, bytes, dict]:
    """(index, binary, counts) of the chromatograms embedded for ``data`` within ``budget`` bytes of base64."""
    from ..models import Read
    from ..reads import read_file

    reads = data.reads
    columns = cpg_columns(data)
    files = dict(zip(reads["read"], reads["file"])) if "file" in reads.columns else {}
    orient = dict(zip(reads["read"], reads["orientation"])) if "orientation" in reads.columns else {}
    index: dict[str, dict] = {}
    chunks: list[bytes] = []
    offset = used = 0
    counts = {"aligned": len(columns), "traced": 0, "embedded": 0, "missing": 0, "no_trace": 0, "over_budget": 0}
    missing_example = ""
    plain: set[Path] = set()
    for rid in _priority(data, columns):
        path = trace_file(data, files.get(rid, ""))
        if path is None:
            counts["missing"] += 1
            missing_example = missing_example or files.get(rid, "")
            continue
        if path in plain:
            counts["no_trace"] += 1
            continue
        with open(path, "rb") as fh:
            head = fh.read(4)
        # only trace files are parsed (a FASTA of many reads would be read again for each of them)
        items = [x for x in read_file(path) if isinstance(x, Read) and x.trace is not None] \
            if head in (b"ABIF", b".scf") or head[:2] == b"\x1f\x8b" else []
        if not items:
            plain.add(path)
            counts["no_trace"] += 1
            continue
        counts["traced"] += 1
        enc = encode_trace(items[0], columns[rid], orient.get(rid, "+"))
        if enc is None:
            continue
        meta, chunk = enc
        cost = 4 * (len(zlib.compress(chunk, 1)) + len(json.dumps(meta)) // 3) // 3 + 40
        if used + cost > budget:
            counts["over_budget"] += 1
            continue
        used += cost
        meta["off"] = offset
        offset += len(chunk)
        index[rid] = meta
        chunks.append(chunk)
        counts["embedded"] += 1
    counts["missing_example"] = missing_example
    return index, b"".join(chunks), counts


def pack_traces(index: dict, binary: bytes) -> bytes:
    """One buffer: the index's length (uint32, little-endian), the index as JSON, the channel data."""
    head = json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode()
    return struct.pack("<I", len(head)) + head + binary


def trace_section(data, budget: Optional[int] = None) -> str:
    """HTML for the chromatograms of one amplicon's reads: a note saying what is embedded, and the packed data.

    ``budget``: bytes of the page for them (default: ``TRACE_BUDGET`` shared by the run's amplicons).
    """
    if budget is None:
        budget = TRACE_BUDGET // max(1, len(data.amplicons))
    name = str((data.run.get("amplicon") or {}).get("name", ""))
    if "file" not in data.reads.columns:
        return '<p class="note">reads.tsv has no file column: no chromatograms.</p>'
    if "read_pos" not in data.cpg_calls.columns:
        return ('<p class="note">cpg_calls.tsv has no read_pos column (written by an older bsmeth): rerun call '
                "for chromatograms.</p>")
    index, binary, counts = trace_payload(data, budget)
    blob = packed(pack_traces(index, binary))
    parts = []
    label = f" of {esc(name)}" if len(data.amplicons) > 1 else ""
    if counts["embedded"]:
        parts.append(f"{counts['embedded']} of the {counts['aligned']} aligned reads{label} are embedded "
                     f"({len(blob) / 1e3:.0f} kB)")
    if counts["over_budget"]:
        parts.append(f"{counts['over_budget']} more did not fit the page's budget of {budget / 1e6:.1f} MB "
                     "(failed and flagged reads, then passing reads from every sample, were embedded first; open "
                     "the .ab1 file in a trace viewer for the others)")
    if counts["missing"]:
        parts.append(f"{counts['missing']} trace files named in reads.tsv were not found (e.g. "
                     f"{esc(counts['missing_example'])}; looked next to the result folder and where it was at run "
                     "time)")
    if counts["no_trace"]:
        parts.append(f"{counts['no_trace']} reads came without a chromatogram (FASTA/FASTQ input)")
    note = "; ".join(parts) or f"no read{label} with a chromatogram"
    return (f'<p class="note">Chromatograms: {note}.</p>'
            f'<script type="application/octet-stream" class="bsm-traces" data-amplicon="{esc(name)}" '
            f'data-z="deflate">{blob}</script>')
