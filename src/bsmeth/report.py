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

from .plots import PlotConfig
from .stats import CompareConfig

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

QC_COLUMNS = ("read", "sample", "status", "reason", "detail", "orientation", "conversion", "identity",
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


def _run_section(data) -> str:
    run = data.run
    amp = run.get("amplicon") or {}
    ref = run.get("reference") or {}
    cmd = run.get("command")
    cmd_text = shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")
    items = [
        ("bsmeth version", run.get("version", "")),
        ("command", cmd_text),
        ("reference", f"{ref.get('name', '')} ({ref.get('length', '?')} bp; {ref.get('source', '')})"),
        ("amplicon", f"{amp.get('strand', '')} strand, {amp.get('start', '?')}-{amp.get('end', '?')} "
                     f"({amp.get('length', '?')} bp)"),
        ("primers", _primers(amp.get("primers") or {k: amp.get(k) for k in ("forward", "reverse")})),
        ("CpGs", len(amp.get("cpgs", []) or [])),
        ("SNPs", _snps(amp.get("snps"))),
        ("sample sheet", run.get("sample_sheet") or "(none)"),
        ("sample columns", ", ".join(data.sample_columns) or "(none)"),
    ]
    warnings = amp.get("warnings") or []
    items += [("warning", w) for w in warnings]
    out = ["<dl>"] + [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items] + ["</dl>"]
    params = run.get("parameters") or {}
    if isinstance(params, dict) and params:
        out.append("<details><summary>parameters of the run</summary>")
        out.append(html_table(("parameter", "value"), [(k, str(v)) for k, v in params.items()]))
        out.append("</details>")
    return "".join(out)


def _qc_section(data) -> str:
    import pandas as pd

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
    cols = ["sample", *data.sample_columns, "reads", "pass", "cpgs_called", "methylation"]
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
    from .stats import STATS_COLUMNS, compare_rows, format_value

    path = data.directory / "stats.tsv"
    if path.is_file():
        import pandas as pd

        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        cols = [c for c in STATS_COLUMNS if c in df.columns]
        return cols, df[cols].values.tolist(), "from stats.tsv (bsmeth compare)"
    rows = compare_rows(data, config)
    return list(STATS_COLUMNS), [[format_value(r[c]) for c in STATS_COLUMNS] for r in rows], \
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


def build_report(data, plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig(),
                 dpi: int = 130, pngs: Optional[dict] = None) -> str:
    """The report as one HTML string.  ``pngs`` ({"lollipop": bytes, "dose_response": bytes}) are figures
    already rendered with the same options (``bsmeth run``); missing ones are drawn here."""
    from .plots import dose_response_figure, figure_png_bytes, lollipop_figure

    pngs = pngs or {}

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
        '<h2 id="lollipop">Lollipop diagrams</h2>',
        _img(pngs.get("lollipop") or figure_png_bytes(lollipop_figure(data, plot_config), dpi),
             "lollipop diagrams, one panel per sample"),
        '<h2 id="cpg">Per-CpG methylation</h2>', _cpg_section(data),
    ]
    cols, rows, source = _stats_rows(data, compare_config)
    parts += ['<h2 id="stats">Statistics</h2>',
              f'<p class="note">Statistics {_e(source)}. The clone is the unit of the primary tests '
              "(*_clones); pooled-CpG tests are for reference. Effects are percentage points (group after the "
              "minus sign first); p_adj: Benjamini-Hochberg within each test and scope.</p>",
              f'<div class="scroll">{html_table(cols, rows, table_id="stats", numeric_text=True)}</div>']
    dose_png = pngs.get("dose_response")
    if dose_png is None:
        fig = dose_response_figure(data, plot_config)
        dose_png = figure_png_bytes(fig, dpi) if fig is not None else None
    if dose_png is not None:
        parts += ['<h2 id="dose">Dose response</h2>', _img(dose_png, "percent methylation vs dose")]
    parts += ['<h2 id="alignments">Per-read alignments</h2>', _alignment_section(data), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_report(call_dir: str | os.PathLike, out: Optional[str | os.PathLike] = None,
                 plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig(),
                 pngs: Optional[dict] = None) -> Path:
    """Entry point of ``bsmeth report``: write ``<call_dir>/report.html`` (or ``out``) and return its path."""
    from .tables import load_call_dir, write_text_atomic

    data = load_call_dir(call_dir)
    path = Path(out) if out is not None else Path(call_dir) / "report.html"
    return write_text_atomic(path, build_report(data, plot_config, compare_config, pngs=pngs))
