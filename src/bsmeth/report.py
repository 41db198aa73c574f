"""The ``report`` stage: one self-contained ``report.html`` for a call directory.

Pipeline position: after ``call`` (and optionally ``compare``); reads only the
call directory.  Self-contained means it opens from a mail attachment or an
archive years later: figures are embedded as base64 PNG, CSS is inline, there
is no script and no reference to any network resource.  Per-read alignments
sit in ``<details>`` elements, so they cost nothing until opened.  Every piece
of text from the inputs goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import shlex
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .plots import PlotConfig
from .stats import CompareConfig

DPI = 130  # figures drawn for the report itself (run embeds its 200 dpi PNGs instead)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1300px;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h3{font-size:1em;margin-bottom:.3em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{color:#8a1c1c}.scroll{overflow:auto;max-height:36em;border:1px solid #eee}
.wide{overflow-x:auto}img{max-width:100%;height:auto;border:1px solid #eee}
pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8em;background:#fafafa;padding:.5em;
overflow-x:auto}details{margin:.2em 0}summary{cursor:pointer}.note{color:#555;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:600}dd{margin:0}
"""

QC_COLUMNS = ("read", "sample", "amplicon", "status", "reason", "detail", "orientation", "conversion", "identity",
              "cpgs_called", "methylation", "duplicate_of", "genotype")


def _e(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return html.escape(str(x), quote=True)


def _cell(x) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "<td></td>"
        text = f"{x:.4g}" if abs(x) < 1e-3 and x != 0 else (f"{x:.4f}".rstrip("0").rstrip(".") if x % 1 else f"{x:.0f}")
        return f'<td class="num">{_e(text)}</td>'
    if isinstance(x, int):
        return f'<td class="num">{x}</td>'
    return f"<td>{_e(x)}</td>"


_NUMBER = re.compile(r"^-?(\d+\.?\d*(e[-+]?\d+)?|inf)$")


def html_table(headers: Sequence[str], rows: Iterable[Sequence], row_classes: Optional[Sequence[str]] = None,
               table_id: str = "", numeric_text: bool = False) -> str:
    """An HTML table; ``numeric_text``: right-align strings that are numbers (tables read as text)."""
    out = [f'<table{f" id={chr(34)}{_e(table_id)}{chr(34)}" if table_id else ""}><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(rows):
        cls = row_classes[i] if row_classes else ""
        out.append(f'<tr class="{_e(cls)}">' if cls else "<tr>")
        out += [f'<td class="num">{_e(v)}</td>' if numeric_text and isinstance(v, str) and _NUMBER.match(v)
                else _cell(v) for v in r]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _df_rows(df, columns: Sequence[str]) -> list[list]:
    cols = [c for c in columns if c in df.columns]
    return [[(None if (isinstance(v, float) and math.isnan(v)) else v) for v in row]
            for row in df[cols].itertuples(index=False, name=None)]


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


# ---------------------------------------------------------------------------------------------
# sections


def _primers(primers) -> str:
    if isinstance(primers, dict):
        return "; ".join(f"{k}: {v}" for k, v in primers.items() if v) or "none (whole record)"
    if isinstance(primers, (list, tuple)):
        return "; ".join(str(p) for p in primers)
    return str(primers or "none (whole record)")


def _snps(snps) -> str:
    if not snps:
        return "none"
    out = []
    for x in snps:
        if isinstance(x, dict):
            out.append(f"{x.get('name', '')} {x.get('pos', '')}:{x.get('ref', '')}>{x.get('alt', '')}".strip())
        else:
            out.append(str(x))
    return "; ".join(out)


def _amplicon_items(amp: dict, one: bool) -> list[tuple[str, object]]:
    """The description lines of one amplicon of run.json."""
    label = "" if one else f" {amp.get('name', '')}"
    genome = amp.get("genome") or {}
    where = (f"{genome.get('assembly', '')} {genome.get('chrom', '')}:{genome.get('amplicon_start', '?')}-"
             f"{genome.get('amplicon_end', '?')} ({genome.get('amplified_strand', '?')} strand)") if genome else \
        "no genome anchor"
    items = [
        (f"reference{label}", f"{amp.get('name', '')} ({amp.get('reference_length', '?')} bp; {amp.get('source', '')})"),
        (f"amplicon{label}", f"{amp.get('strand', '')} strand, {amp.get('start', '?')}-{amp.get('end', '?')} "
                             f"({amp.get('length', '?')} bp); genome: {where}"),
        (f"primers{label}", _primers(amp.get("primers") or {k: amp.get(k) for k in ("forward", "reverse")})),
        (f"CpGs{label}", len(amp.get("cpgs", []) or [])),
        (f"SNPs{label}", _snps(amp.get("snps"))),
    ]
    return items + [(f"warning{label}", w) for w in amp.get("warnings") or []]


def _run_section(data) -> str:
    run = data.run
    amplicons = [a for a in run.get("amplicons", []) if isinstance(a, dict)]
    cmd = run.get("command")
    cmd_text = shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")
    items: list[tuple[str, object]] = [("bsmeth version", run.get("version", "")), ("command", cmd_text)]
    if run.get("panel"):
        items.append(("panel", f"{run['panel']} ({len(amplicons)} amplicons)"))
    for amp in amplicons:
        items += _amplicon_items(amp, len(amplicons) == 1)
    items += [("sample sheet", run.get("sample_sheet") or "(none)"),
              ("sample columns", ", ".join(data.sample_columns) or "(none)")]
    items += [("warning", w) for w in run.get("warnings") or []]
    if (data.directory / "reads.bam").is_file():
        items.append(("genome browser", "IGV: File > Open Session... > igv_session.xml in this folder (written by "
                      "bsmeth run or bsmeth export) opens reads.bam (bisulfite CpG colours), reads.mod.bam (5mC "
                      "base modifications) and the bedMethyl track at each amplicon; docs/interop.md"))
    out = ["<dl>"] + [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items] + ["</dl>"]
    params = run.get("parameters") or {}
    if isinstance(params, dict) and params:
        out.append("<details><summary>parameters of the run</summary>")
        out.append(html_table(("parameter", "value"), [(k, str(v)) for k, v in params.items()]))
        out.append("</details>")
    return "".join(out)


def _funnel_section(data) -> str:
    """Deep data (NGS): the read-loss funnel per sample and the reasons, from funnel.tsv."""
    out = ['<p class="note">Read pairs per sample (funnel.tsv): in, assigned to an amplicon, passing the identity '
           "check, passing the conversion check, used (at least one CpG called); then the pairs lost, by reason. "
           "One pair is one molecule.</p>"]
    f = data.funnel
    if f is not None and len(f):
        cols = [c for c in f.columns if c not in data.sample_columns]
        out.append(html_table(cols, _df_rows(f, cols), table_id="funnel"))
    out.append("<h3>Samples</h3>")
    cols = ["sample", *data.sample_columns, "amplicon", "reads", "pass", "cpgs_called", "methylation"]
    out.append(html_table([c if c != "methylation" else "methylation %" for c in cols], _df_rows(data.samples, cols),
                          table_id="samples"))
    return "".join(out)


def _qc_section(data) -> str:
    import pandas as pd

    if data.weighted:
        return _funnel_section(data)
    reads = data.reads
    out = []
    counts = reads.assign(reason=reads["reason"].where(reads["status"] != "pass", "pass"))
    order = ["pass", "unreadable", "low_quality", "no_amplicon", "low_identity", "too_many_mismatches", "mixed_trace",
             "no_cph", "low_conversion", "duplicate"]
    seen = [r for r in order if r in set(counts["reason"])] + sorted(set(counts["reason"]) - set(order))
    table = pd.crosstab(counts["sample"], counts["reason"]).reindex(index=data.sample_order(), columns=seen,
                                                                    fill_value=0)
    rows = [[s, *[int(v) for v in table.loc[s]], int(table.loc[s].sum())] for s in table.index if s in table.index]
    rows.append(["all", *[int(v) for v in table.sum(axis=0)], int(table.values.sum())])
    out.append("<h3>Reads per sample and reason</h3>")
    out.append(html_table(["sample", *seen, "reads"], rows, table_id="qc-counts"))
    out.append("<h3>Samples</h3>")
    cols = ["sample", *data.sample_columns, "amplicon", "reads", "pass", "cpgs_called", "methylation"]
    out.append(html_table([c if c != "methylation" else "methylation %" for c in cols], _df_rows(data.samples, cols),
                          table_id="samples"))
    out.append("<h3>Every read</h3>")
    cols = [c for c in QC_COLUMNS if c in reads.columns]
    out.append(f'<div class="scroll">{html_table(cols, _df_rows(reads, cols), list(reads["status"]), "reads")}</div>')
    return "".join(out)


def _cpg_section(data) -> str:
    from .tables import cpg_table

    cpgs = cpg_table(data)
    s = data.summary
    samples = data.sample_order()
    cell = {}
    for r in s.itertuples(index=False):
        called = int(r.methylated + r.unmethylated)
        pct = "" if math.isnan(r.percent) else f"{r.percent:.1f}"
        cell[(r.sample, int(r.cpg))] = f"{pct} ({int(r.methylated)}/{called})" if called else "–"
    rows = [[int(c), int(p) if not math.isnan(p) else None, n, *[cell.get((smp, int(c)), "") for smp in samples]]
            for c, p, n in zip(cpgs["cpg"], cpgs["pos"], cpgs["note"])]
    note = ('<p class="note">Per sample: % methylated (methylated / called clones), over pass reads only '
            "(summary.tsv).</p>")
    return note + f'<div class="wide">{html_table(["CpG", "position", "note", *samples], rows, table_id="cpgs")}</div>'


def _stats_rows(data, config: CompareConfig) -> tuple[list[str], list[list], str]:
    from .stats import STATS_COLUMNS, amplicon_rows, format_value

    from .tsv import TableError, read_table

    name = (data.run.get("amplicon") or {}).get("name")
    cols = [c for c in STATS_COLUMNS if c != "amplicon"]
    path = data.directory / "stats.tsv"
    if path.is_file():
        try:
            header, rows = read_table(path)
        except TableError:
            header, rows = [], []
        if "test" in header:
            at = {c: header.index(c) for c in cols if c in header}
            amp_i = header.index("amplicon") if "amplicon" in header else None
            picked = [[r[at[c]] for c in at] for r in rows if amp_i is None or r[amp_i] == name]
            return list(at), picked, "from stats.tsv (bsmeth compare)"
    rows = amplicon_rows(data, config)
    return cols, [[format_value(r[c]) for c in cols] for r in rows], \
        "computed for this report with default options (run bsmeth compare to write stats.tsv)"


_TOKEN = re.compile(r"[\s,;|]+")


def split_alignments(text: str, reads) -> list[tuple[str, str]]:
    """Cut alignments.txt into (read id, block) using the header lines.

    A header line names a known read (first field, or ``read=<id>``) and carries that read's status
    (``pass``/``fail``), which alignment, mark and call lines never do.  Unknown layouts fall back to one block.
    """
    status = dict(zip(reads["read"], reads["status"]))
    records: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        stripped = line.strip().lstrip(">#").strip()
        tokens = [t for t in _TOKEN.split(stripped) if t]
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


def _alignment_section(data) -> str:
    path = data.alignments_path
    if path is None:
        return '<p class="note">alignments.txt not found in the call directory.</p>'
    text = path.read_text(encoding="utf-8", errors="replace")
    records = split_alignments(text, data.reads)
    info = {r: (s, st, re_) for r, s, st, re_ in zip(data.reads["read"], data.reads["sample"], data.reads["status"],
                                                    data.reads["reason"])}
    by_sample: dict = {}
    for rid, block in records:
        sample = info.get(rid, ("",))[0]
        by_sample.setdefault(sample, []).append((rid, block))
    out = ['<p class="note">Marks: | match, . converted C, ! unconverted C (non-CpG), * CpG C, x mismatch, '
           "blank gap; the call line shows M/U/- at each CpG.</p>"]
    for sample in [*data.sample_order(), *[s for s in by_sample if s not in data.sample_order()]]:
        recs = by_sample.get(sample)
        if not recs:
            continue
        out.append(f"<details><summary>{_e(sample or 'alignments')} ({len(recs)} reads)</summary>")
        for rid, block in recs:
            _, st, reason = info.get(rid, ("", "", ""))
            label = f"{rid} ({st}{', ' + reason if reason else ''})" if rid else "unparsed"
            out.append(f"<details><summary>{_e(label)}</summary><pre>{_e(block)}</pre></details>")
        out.append("</details>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# trace snippets: the chromatogram around each CpG of one read

TRACE_COLOURS = {"A": "#009E73", "C": "#0072B2", "G": "#000000", "T": "#D55E00"}  # Sanger convention
SNIPPET_BASES = 5  # bases shown each side of the CpG
MAX_TRIED = 200  # pass reads whose trace file is looked for


def _trace_file(data, name: str) -> Optional[Path]:
    """The trace file named in reads.tsv (relative to the result folder): found from where the folder is now
    (moved or copied together with its reads), else from where it was at run time (moved alone), else as
    bsmeth 0.1 wrote it (relative to the working folder)."""
    from .tsv import undo_byte_escapes

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


def read_cpg_columns(data, rid: str) -> list[tuple[int, int, str]]:
    """(CpG number, 0-based index in the read as given, call) of each CpG of a read whose base was read,
    from cpg_calls.tsv's ``read_pos`` (the aligner's own map; on either strand, in either orientation)."""
    from .coords import from_one_based

    calls = data.cpg_calls
    if "read_pos" not in calls.columns:
        return []
    rows = calls[(calls["read"] == rid) & calls["read_pos"].notna()]
    return [(int(c), from_one_based(int(q)), str(call)) for c, q, call in zip(rows["cpg"], rows["read_pos"], rows["call"])]


def _snippet_read(data):
    """(read id, path, Read, [(cpg, read index as given, call)], orientation) of the first passing read with a
    trace, or a message saying why there is none."""
    from .models import Read
    from .reads import read_file

    reads = data.reads
    if "file" not in reads.columns:
        return "reads.tsv has no file column: no trace to show."
    passing = reads[reads["status"] == "pass"]
    if passing.empty:
        return "No read passed: no trace to show."
    if "read_pos" not in data.cpg_calls.columns:
        return "cpg_calls.tsv has no read_pos column (written by an older bsmeth): rerun call for trace snippets."
    missing = []
    for rid, name, orient in list(zip(passing["read"], passing["file"], passing["orientation"]))[:MAX_TRIED]:
        path = _trace_file(data, name)
        if path is None:
            missing.append(name)
            continue
        items = [x for x in read_file(path) if isinstance(x, Read) and x.trace is not None]
        if not items:
            continue
        cols = read_cpg_columns(data, rid)
        if not cols:
            continue
        return rid, path, items[0], cols, orient
    if missing:
        return (f"The trace files named in reads.tsv were not found (e.g. {missing[0]}; looked in the working "
                "folder and next to the call folder): no trace snippet.")
    return "No passing read came with a chromatogram (FASTA/FASTQ input): no trace snippet."


def trace_snippet_figure(read, cols, orient: str, title: str):
    """The four channels around each CpG's peak, one cell per CpG (six a row), the CpG's peak shaded.

    A ``scene.Scene`` (drawn by ``raster`` like the other figures; matplotlib took a second to import and draw
    it).  Each cell is scaled to its own highest peak.
    """
    from . import layout as L
    from .scene import Line, Rect, Scene, Text

    tr = read.trace
    ncol = 6
    nrow = max(1, math.ceil(len(cols) / ncol))
    cell_w, gap, trace_h = 130.0, 6.0, 62.0
    title_h = 7.0 * L.LINE_SPACING + 2.0
    letters_h = L.MIN_FONT * L.LINE_SPACING + 3.0
    cell_h = title_h + trace_h + letters_h + 6.0
    top0 = L.MARGIN + 8.0 * L.LINE_SPACING + 4.0
    scene = Scene(2 * L.MARGIN + ncol * cell_w + (ncol - 1) * gap, top0 + nrow * cell_h + L.MARGIN)
    scene.add(Text(scene.width / 2, L.MARGIN + 8.0, title, 8.0, "center"))
    c_base, t_base = ("C", "T") if orient == "+" else ("G", "A")
    n_points = len(tr.channels["A"])
    lines: dict = {b: [] for b in "ACGT"}
    for k, (cpg, i, call) in enumerate(cols):
        x_off = L.MARGIN + (k % ncol) * (cell_w + gap)
        y_top = top0 + (k // ncol) * cell_h
        base_y = y_top + title_h + trace_h  # the trace's zero line
        lo_i, hi_i = max(i - SNIPPET_BASES, 0), min(i + SNIPPET_BASES, len(tr.peaks) - 1)
        x0 = max(int(tr.peaks[lo_i]) - 4, 0)
        x1 = min(int(tr.peaks[hi_i]) + 5, n_points)
        if x1 - x0 < 2:
            continue
        top = max(1.0, *(float(np.max(tr.channels[b][x0:x1])) for b in "ACGT"))

        def sx(x, x0=x0, x1=x1, x_off=x_off):
            return x_off + (np.asarray(x, dtype=float) - x0) / (x1 - 1 - x0) * cell_w

        p = int(tr.peaks[i])
        half = max(2.0, (int(tr.peaks[min(i + 1, len(tr.peaks) - 1)]) - int(tr.peaks[max(i - 1, 0)])) / 4)
        left, right = float(sx(p - half)), float(sx(p + half))
        scene.add(Rect(left, y_top + title_h - 2.0, right - left, trace_h + letters_h, "#F8F3A8"))
        xs = sx(np.arange(x0, x1))
        for b in "ACGT":
            ys = base_y - tr.channels[b][x0:x1] / top * trace_h
            lines[b].append(tuple(zip(xs.round(2).tolist(), ys.round(2).tolist())))
        scene.add(Line(((x_off, base_y + 0.3), (x_off + cell_w, base_y + 0.3)), "#999999", 0.5))
        for j in range(lo_i, hi_i + 1):
            scene.add(Text(float(sx(int(tr.peaks[j]))), base_y + 2.0, read.seq[j], L.MIN_FONT, "center", "top",
                           bold=j == i, colour=TRACE_COLOURS.get(read.seq[j], "#777777")))
        scene.add(Text(x_off + cell_w / 2, y_top + 7.0, f"CpG {cpg}: {call}", 7.0, "center"))
    for b in "ACGT":
        strong = b in (c_base, t_base)
        colour = TRACE_COLOURS[b] if strong else _mix_white(TRACE_COLOURS[b], 0.55)
        for pts in lines[b]:
            scene.add(Line(pts, colour, 0.9 if strong else 0.6))
    return scene


def _mix_white(colour: str, strength: float) -> str:
    c = colour.lstrip("#")
    return "#" + "".join(f"{round(255 - strength * (255 - int(c[i:i + 2], 16))):02X}" for i in (0, 2, 4))


def trace_section(data, dpi: int = DPI) -> str:
    """The report's chromatogram section (HTML): the slow part of the report, so ``run`` makes it beside the figures."""
    from .plots import figure_png_bytes

    if data.weighted:
        return '<p class="note">Sequencing reads (FASTQ): no chromatogram.</p>'
    picked = _snippet_read(data)
    if isinstance(picked, str):
        return f'<p class="note">{_e(picked)}</p>'
    rid, path, read, cols, orient = picked
    where = ("the read shows the amplified strand: C and T are the blue and red channels" if orient == "+" else
             "the read shows the reverse complement of the amplified strand: the CpG's C/T are read as G/A "
             "(black and green), in read order")
    legend = " ".join(f'<span style="color:{c};font-weight:600">{b}</span>' for b, c in TRACE_COLOURS.items())
    title = f"{rid} ({path.name}), orientation {orient}"
    png = figure_png_bytes(trace_snippet_figure(read, cols, orient, title), dpi, tight=False)
    return (f'<p class="note">Chromatogram of {_e(rid)} (the first passing read with a trace; file {_e(str(path))}) '
            f"around each CpG it covers, {SNIPPET_BASES} bases each side; the CpG's peak is shaded, its call above. "
            f"Channels {legend}; {_e(where)}.</p>" + _img(png, f"trace snippets of {rid} around each CpG"))


# ---------------------------------------------------------------------------------------------


def _amplicon_sections(data, plot_config: PlotConfig, compare_config: CompareConfig, dpi: int, pngs: dict,
                       traces: Optional[str], heading: str, anchor: str) -> list[str]:
    """Figures, per-CpG table, statistics and trace snippets of one amplicon (``data``: its tables)."""
    from .plots import dose_response_figure, figure_name, figure_png_bytes, lollipop_figure

    h = "h3" if heading else "h2"
    parts = [f'<h2 id="{anchor}">{_e(heading)}</h2>'] if heading else []
    lollipop = pngs.get(figure_name(data, "lollipop")) or figure_png_bytes(lollipop_figure(data, plot_config), dpi)
    parts += [f'<{h} id="{anchor}lollipop">Lollipop diagrams</{h}>',
              _img(lollipop, "lollipop diagrams, one panel per sample"),
              f'<{h} id="{anchor}cpg">Per-CpG methylation</{h}>', _cpg_section(data)]
    cols, rows, source = _stats_rows(data, compare_config)
    parts += [f'<{h} id="{anchor}stats">Statistics</{h}>',
              f'<p class="note">Statistics {_e(source)}. '
              + ("The clone is the unit of the primary tests (*_clones); pooled-CpG tests are for reference. "
                 if not data.weighted else "Deep data: the samples are the replicates of the primary tests "
                 "(*_samples) when groups have several samples; *_molecules tests take the molecule as the unit "
                 "(docs/statistics.md). ")
              + "Effects are percentage points (group after the minus sign first); p_adj: Benjamini-Hochberg within "
              "each test and scope.</p>",
              f'<div class="scroll">{html_table(cols, rows, table_id=anchor + "stats", numeric_text=True)}</div>']
    from .report_clonal import sections  # allele split and heterogeneity (plain data, rendered here)

    for sec in (sections(data, compare_config) if not data.weighted else []):
        parts += [f'<{h} id="{anchor}{sec.anchor}">{_e(sec.title)}</{h}>',
                  *(f'<p class="note">{_e(n)}</p>' for n in sec.notes)]
        for t in sec.tables:
            table = html_table(t.headers, t.rows, table_id=anchor + t.table_id, numeric_text=True)
            parts += [f"<h4>{_e(t.caption)}</h4>" if heading else f"<h3>{_e(t.caption)}</h3>",
                      f'<div class="wide">{table}</div>']
    dose_png = pngs.get(figure_name(data, "dose_response"))
    if dose_png is None:
        fig = dose_response_figure(data, plot_config)
        dose_png = figure_png_bytes(fig, dpi) if fig is not None else None
    if dose_png is not None:
        parts += [f'<{h} id="{anchor}dose">Dose response</{h}>', _img(dose_png, "percent methylation vs dose")]
    if not data.weighted:
        parts += [f'<{h} id="{anchor}traces">Trace at the CpGs</{h}>',
                  traces if traces is not None else trace_section(data, dpi)]
    return parts


def build_report(data, plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig(),
                 dpi: int = DPI, pngs: Optional[dict] = None, traces: Optional[dict] = None) -> str:
    """The report as one HTML string.  ``pngs`` (figure file stem -> PNG bytes) are figures already rendered
    with the same options (``bsmeth run``); missing ones are drawn here.  ``traces`` (amplicon name -> HTML):
    the chromatogram sections, already made by ``trace_section``.  A panel gets a section per amplicon."""
    pngs = pngs or {}
    traces = traces or {}
    title = f"bsmeth report: {data.directory.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="note">Built from the call directory only (reads.tsv, cpg_calls.tsv, summary.tsv, samples.tsv, '
        "run.json, alignments.txt). Self-contained: no network resources.</p>",
        '<h2 id="run">Run</h2>', _run_section(data),
        '<h2 id="qc">Quality control</h2>', _qc_section(data),
    ]
    panel = len(data.amplicons) > 1
    for k, (name, sub) in enumerate(data.by_amplicon()):
        parts += _amplicon_sections(sub, plot_config, compare_config, dpi, pngs, traces.get(name),
                                    f"Amplicon {name}" if panel else "", f"a{k + 1}-" if panel else "")
    if not data.weighted:
        parts += ['<h2 id="alignments">Per-read alignments</h2>', _alignment_section(data)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def save_report(data, out: Optional[str | os.PathLike] = None, plot_config: PlotConfig = PlotConfig(),
                compare_config: CompareConfig = CompareConfig(), pngs: Optional[dict] = None,
                traces: Optional[dict] = None) -> Path:
    """Write the report of the loaded call directory ``data`` to ``<directory>/report.html`` (or ``out``)."""
    from .atomic import write_text as write_text_atomic

    path = Path(out) if out is not None else data.directory / "report.html"
    return write_text_atomic(path, build_report(data, plot_config, compare_config, pngs=pngs, traces=traces))


def write_report(call_dir: str | os.PathLike, out: Optional[str | os.PathLike] = None,
                 plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig()) -> Path:
    """Entry point of ``bsmeth report``: write ``<call_dir>/report.html`` (or ``out``) and return its path."""
    from .tables import load_call_dir

    return save_report(load_call_dir(call_dir), out, plot_config, compare_config)
