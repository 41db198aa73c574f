"""The ``report`` stage: one self-contained ``report.html`` for a call directory.

Pipeline position: after ``call`` (and optionally ``compare``); reads only the call directory.  Self-contained
means it opens from a mail attachment or an archive years later, offline: figures are embedded PNGs, the style
and the small script (``data/report.css``, ``data/report.js``) are inline, nothing refers to the network.

Order of the page: the results in words and numbers (per amplicon), quality control, then per amplicon the
samples (with the numbers of the page's curation), figures, per-CpG table and statistics; then every read (click
one for its alignment and chromatogram at every CpG; untick clones to exclude them and download
``curation.tsv``), the glossary and the run's parameters.  Every table is plain HTML, readable without
JavaScript; the script makes them sortable, filterable and searchable.  Per-read data are packed
(``reads``) and drawn only when a read is opened, so the page stays small and fast (docs/report.md).
"""

from __future__ import annotations

import math
import os
import shlex
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence, Union

from ..figures.plots import PlotConfig
from ..stats import CompareConfig
from .html import NOSCRIPT_STYLE, Raw, definition_list, esc, html_table, img, preview_png
from .reads import TRACE_BUDGET, per_read_scripts, read_table, split_alignments  # noqa: F401
from .reads import trace_section as _trace_section
from .summary import MARKS, REASONS, TERMS, TESTS, WHYS, p_html, summary_items, test_kind, test_name

DPI = 130  # figures drawn for the report itself (run embeds its own PNGs instead)
FIGURE_MAX_PX = (2600, 12000)  # an embedded figure's largest width and height in pixels
FIGURE_MAX_BYTES = 450_000  # larger figures are embedded reduced (html.preview_png)

__all__ = ["build_report", "save_report", "write_report", "trace_section", "html_table", "split_alignments"]


def trace_section(data, budget: Optional[int] = None) -> str:
    """The chromatogram data of one amplicon's reads (HTML): made beside the figures by ``run``.  Deep data
    (NGS: molecules as pattern counts) has none."""
    return "" if getattr(data, "weighted", False) else _trace_section(data, budget)


def _asset(name: str) -> str:
    return resources.files("bsmeth").joinpath(f"data/{name}").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# the run


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
        (f"reference{label}",
         f"{amp.get('name', '')} ({amp.get('reference_length', '?')} bp; {amp.get('source', '')})"),
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
    cur = run.get("curation")
    if isinstance(cur, dict):
        items.append(("curation", f"{cur.get('file', '')}: {len(cur.get('excluded') or [])} reads to exclude"))
    items += [("warning", w) for w in run.get("warnings") or []]
    if (data.directory / "reads.bam").is_file():
        items.append(("genome browser", "IGV: File > Open Session... > igv_session.xml in this folder (written by "
                      "bsmeth run or bsmeth export) opens reads.bam (bisulfite CpG colours), reads.mod.bam (5mC "
                      "base modifications) and the bedMethyl track at each amplicon; docs/interop.md"))
    out = [definition_list((k, str(v)) for k, v in items)]
    params = run.get("parameters") or {}
    if isinstance(params, dict) and params:
        out.append("<details><summary>parameters of the run</summary>")
        out.append(html_table(("parameter", "value"), [(k, str(v)) for k, v in params.items()], data=False))
        out.append("</details>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# results in words


def _stats_rows(data, config: CompareConfig, computed: Optional[dict] = None) -> tuple[list[dict], str]:
    """The statistics of one amplicon as dicts of stats.tsv's cells, and where they come from.  When they are
    computed here, ``computed["results"]`` keeps compare's (stats, heterogeneity) rows for the allele and
    heterogeneity sections (computing them once)."""
    from ..stats import STATS_COLUMNS, amplicon_results, format_value
    from ..tsv import TableError, read_table

    name = (data.run.get("amplicon") or {}).get("name")
    path = data.directory / "stats.tsv"
    if path.is_file():
        try:
            header, rows = read_table(path)
        except TableError:
            header, rows = [], []
        if "test" in header:
            amp_i = header.index("amplicon") if "amplicon" in header else None
            picked = [dict(zip(header, r)) for r in rows if amp_i is None or r[amp_i] == name]
            return picked, "stats.tsv (bsmeth compare)"
    cols = [c for c in STATS_COLUMNS if c != "amplicon"]
    results = amplicon_results(data, config)
    if computed is not None:
        computed["results"] = results
    return ([{c: format_value(r[c]) for c in cols} for r in results[0]],
            "computed for this report with default options (bsmeth compare writes stats.tsv)")


def _qc_sentence(reads, curation) -> str:
    n = len(reads)
    passed = int((reads["status"] == "pass").sum())
    fails = reads.loc[reads["status"] != "pass", "reason"].value_counts()
    from ..models import Reason

    order = [r.value for r in Reason]
    parts = [f"{int(fails[r])} {r.replace('_', ' ')}" for r in sorted(fails.index, key=lambda x: (
        order.index(x) if x in order else len(order), x))]
    share = f" ({100 * passed / n:.0f} %)" if n else ""
    text = (f"{n} reads in {reads['sample'].nunique()} samples: <b>{passed} pass</b>{share}"
            + (f", {n - passed} excluded: {esc(', '.join(parts))}" if n - passed else "") + ".")
    if isinstance(curation, dict):
        text += (f" Curation applied from {esc(curation.get('file', ''))}: {len(curation.get('applied') or [])} "
                 "clones excluded by the user.")
    return text


def _summary_section(data, stats: dict, clones_by_amp: dict) -> str:
    out = [f"<p>{_qc_sentence(data.reads, data.run.get('curation'))}</p>"]
    for w in data.run.get("warnings") or []:
        out.append(f'<p class="warn">Warning: {esc(w)}</p>')
    panel = len(data.amplicons) > 1
    for name in data.amplicons:
        rows, source = stats[name]
        items = summary_items(rows, clones_by_amp[name])
        if panel:
            out.append(f"<h3>{esc(name)}</h3>")
        if not items:
            out.append('<p class="note">No comparison could be made (one group, or no clone with called CpGs): '
                       "see the statistics below.</p>")
        for heading, sentences in items:
            out.append(f'<h4>{esc(heading)}</h4><ul class="results">'
                       + "".join(f"<li>{s}</li>" for s in sentences) + "</ul>")
    out.append('<p class="note">Percentages are means of per-clone methylation (the clone is the unit of the '
               "tests). &ldquo;Rises&rdquo;, &ldquo;more methylated&rdquo;: p &lt; 0.05. The tests, the terms and "
               'every QC reason are explained in the <a href="#glossary">glossary</a>; definitions and measured '
               "behaviour of the tests in docs/statistics.md of bsmeth.</p>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# quality control


def _funnel_section(data) -> str:
    """Deep data (NGS): the read-loss funnel per sample and the reasons, from funnel.tsv."""
    out = ['<p class="note">Read pairs per sample (funnel.tsv): in, assigned to an amplicon, passing the identity '
           "check, passing the conversion check, used (at least one CpG called); then the pairs lost, by reason. "
           "One pair is one molecule.</p>"]
    f = data.funnel
    if f is not None and len(f):
        cols = [c for c in f.columns if c not in data.sample_columns]
        rows = [[(None if isinstance(v, float) and math.isnan(v) else v) for v in rec]
                for rec in f[cols].itertuples(index=False, name=None)]
        out.append(f'<div class="scroll">{html_table(cols, rows, table_id="funnel")}</div>')
    return "".join(out)


def _qc_section(data) -> str:
    import pandas as pd

    if data.weighted:
        return _funnel_section(data)
    from ..models import Reason

    reads = data.reads
    counts = reads.assign(reason=reads["reason"].where(reads["status"] != "pass", "pass"))
    order = ["pass", *[r.value for r in Reason]]
    seen = [r for r in order if r in set(counts["reason"])] + sorted(set(counts["reason"]) - set(order))
    table = pd.crosstab(counts["sample"], counts["reason"]).reindex(index=data.sample_order(), columns=seen,
                                                                    fill_value=0)
    rows = [[s, *[int(v) for v in table.loc[s]], int(table.loc[s].sum())] for s in table.index]
    rows.append(["all", *[int(v) for v in table.sum(axis=0)], int(table.values.sum())])
    titles = ["", *[REASONS.get(Reason(r), "") if r in order[1:] else "used in the results" for r in seen], ""]
    return ('<p class="note">Reads per sample and outcome; hover a reason for its meaning, or see the '
            '<a href="#glossary-reasons">glossary</a>. Every read, its reason and detail: '
            '<a href="#reads-h">Reads</a>.</p>'
            + f'<div class="scroll">{html_table(["sample", *seen, "reads"], rows, table_id="qc-counts", titles=titles)}'
            "</div>")


# ---------------------------------------------------------------------------------------------
# one amplicon


def _samples_table(data, anchor: str) -> str:
    """samples.tsv of one amplicon; the script adds the clones and percentages of the page's curation."""
    cols = ["sample", *data.sample_columns, "reads", "pass", "cpgs_called", "methylation_pct"]
    s = data.samples
    rows = []
    for rec in s[[c for c in cols if c in s.columns]].itertuples(index=False, name=None):
        rows.append([(None if isinstance(v, float) and math.isnan(v) else v) for v in rec])
    headers = [c if c != "methylation_pct" else "pooled %" for c in cols]
    titles = ["", *["" for _ in data.sample_columns], "reads assigned to the amplicon", "reads used (pass)",
              "CpG calls (M or U) over passing reads", "methylated / called CpGs over passing reads (samples.tsv)"]
    name = str((data.run.get("amplicon") or {}).get("name", ""))
    table = html_table(headers, rows, table_id=f"{anchor}samples", titles=titles)
    return table.replace(f'<table id="{anchor}samples" class="data', f'<table id="{anchor}samples" '
                         f'data-amplicon="{esc(name)}" class="samples data', 1)


def _figure(pngs: dict, stem: str, alt: str, fallback) -> str:
    """An embedded figure (reduced when large) with the names of its files in the folder."""
    got = pngs.get(stem)
    if got is None:
        got = fallback()
    if got is None:
        return ""
    pages: Sequence[bytes] = [got] if isinstance(got, (bytes, bytearray)) else list(got)
    out = []
    for k, png in enumerate(pages):
        shown, size, how = preview_png(bytes(png), *FIGURE_MAX_PX, FIGURE_MAX_BYTES)
        label = f"{alt}, page {k + 1}" if len(pages) > 1 else alt
        if shown is None:
            out.append(f'<p class="note">{esc(label)}: {esc(how)}; open {esc(stem)}.png, .svg or .pdf in the result '
                       "folder.</p>")
            continue
        out.append(img(shown, label))
        if how != "as drawn":
            out.append(f'<p class="note">Shown {esc(how)}; full resolution: {esc(stem)}.png, .svg, .pdf in the '
                       "result folder.</p>")
    return "".join(out)


def _cpg_section(data, anchor: str = "") -> str:
    """Per sample (rows) and CpG (columns): % methylated (methylated/called clones) over pass reads."""
    from ..tables import cpg_table

    cpgs = cpg_table(data)
    s = data.summary
    cell: dict = {}
    for r in s.itertuples(index=False):
        called = int(r.methylated + r.unmethylated)
        cell[(r.sample, int(r.cpg))] = (f"{r.percent:.0f} ({int(r.methylated)}/{called})" if called and not
                                        math.isnan(r.percent) else "–")
    numbers = [int(c) for c in cpgs["cpg"]]
    headers = ["sample", *[str(c) for c in numbers]]
    titles = ["", *[f"CpG {c}, position {'' if math.isnan(p) else int(p)}{'; ' + n if n else ''}"
                    for c, p, n in zip(numbers, cpgs["pos"], cpgs["note"])]]
    rows = [[smp, *[cell.get((smp, c), "") for c in numbers]] for smp in data.sample_order()]
    notes = [f"CpG {c}: {n}" for c, n in zip(numbers, cpgs["note"]) if n]
    note = ('<p class="note">Per sample and CpG: % methylated (methylated / called clones), over passing reads '
            "(summary.tsv); hover a CpG for its position." + (f" {esc('; '.join(notes))}." if notes else "") + "</p>")
    return note + f'<div class="scroll wide">{html_table(headers, rows, table_id=anchor + "cpgs", titles=titles)}</div>'


STATS_HEADERS = ("test", "scope", "groups", "effect", "95 % CI", "p", "p_adj", "n", "statistic", "note", "id")


def _effect(r: dict) -> tuple[str, str]:
    from .summary import num

    e, lo, hi = num(r.get("effect")), num(r.get("ci_low")), num(r.get("ci_high"))
    return (f"{e:+.2f}" if e is not None else "",
            f"{lo:+.2f} to {hi:+.2f}" if lo is not None and hi is not None else "")


def _stats_table(rows: list[dict], table_id: str, cpg: bool = False) -> str:
    out = []
    for r in rows:
        effect, ci = _effect(r)
        name = test_name(str(r.get("test", "")))
        first = f"{name}, CpG {r.get('cpg', '')}" if cpg else name
        out.append([first, r.get("scope", ""), r.get("groups", ""), effect, ci,
                    Raw(p_html(_num(r.get("p"))) if r.get("p", "") != "" else "", "class=n"),
                    Raw(p_html(_num(r.get("p_adj"))) if r.get("p_adj", "") != "" else "", "class=n"),
                    r.get("n", ""), r.get("statistic", ""), r.get("note", ""), r.get("test", "")])
    titles = ["the test, in words (see the glossary)", "which samples", "second group - first group",
              "percentage points (or points per dose unit)", "95 % interval of the effect", "p-value",
              "Benjamini-Hochberg within the test and scope", "clones (or CpG calls for pooled tests)",
              "the test's own statistic", "", "the test's id in stats.tsv"]
    return html_table(STATS_HEADERS, out, table_id=table_id, numeric_text=True, titles=titles)


def _num(x) -> Optional[float]:
    from .summary import num

    return num(x)


def _stats_section(rows: list[dict], source: str, anchor: str) -> str:
    primary = [r for r in rows if test_kind(str(r.get("test", ""))) in ("primary", "other")]
    reference = [r for r in rows if test_kind(str(r.get("test", ""))) == "reference"]
    cpg = [r for r in rows if test_kind(str(r.get("test", ""))) == "cpg"]
    out = [f'<p class="note">From {esc(source)}. The clone is the unit of the primary tests; tests on pooled CpG '
           "calls are for comparison with QUMA and BiQ Analyzer only. Effects in percentage points, second group "
           'minus first. Tests explained in the <a href="#glossary-tests">glossary</a>.</p>']
    if primary:
        out += ["<h4>Primary tests (clone = unit)</h4>",
                f'<div class="{"scroll" if len(primary) > 12 else "wide"}">{_stats_table(primary, anchor + "stats")}'
                "</div>"]
    if reference:
        out += ["<h4>Reference tests (pooled CpG calls)</h4>",
                f'<div class="{"scroll" if len(reference) > 12 else "wide"}">'
                f'{_stats_table(reference, anchor + "stats-ref")}</div>']
    if cpg:
        out += [f"<details><summary>Per-CpG tests ({len(cpg)} rows: Fisher's exact test at each CpG, "
                "Benjamini-Hochberg within each comparison)</summary>",
                f'<div class="scroll">{_stats_table(cpg, anchor + "stats-cpg", cpg=True)}</div></details>']
    return "".join(out)


def _clonal_sections(data, compare_config: CompareConfig, anchor: str, results=None) -> list[str]:
    """The allele split and the heterogeneity tables of one amplicon (``clonal``: plain data)."""
    from .clonal import sections

    parts = []
    for sec in sections(data, compare_config, results):
        parts += [f'<h3 id="{anchor}{sec.anchor}">{esc(sec.title)}</h3>',
                  *(f'<p class="note">{esc(n)}</p>' for n in sec.notes)]
        for t in sec.tables:
            table = html_table(t.headers, t.rows, table_id=anchor + t.table_id, numeric_text=True)
            parts += [f"<h4>{esc(t.caption)}</h4>", f'<div class="scroll">{table}</div>']
    return parts


def _amplicon_sections(data, plot_config: PlotConfig, compare_config: CompareConfig, dpi: int, pngs: dict,
                       stats: tuple[list[dict], str], heading: str, anchor: str, results=None) -> list[str]:
    """Samples, figures, per-CpG table, statistics, allele split and heterogeneity of one amplicon (``data``:
    its tables)."""
    from ..figures.plots import dose_response_figure, figure_name, figure_png_bytes, lollipop_figure

    def lollipop():
        return figure_png_bytes(lollipop_figure(data, plot_config), dpi)

    def dose():
        fig = dose_response_figure(data, plot_config)
        return figure_png_bytes(fig, dpi) if fig is not None else None

    parts = [f'<section class="amplicon"><h2 id="{anchor}results">{esc(heading)}</h2>',
             f'<h3 id="{anchor}samples-h">Samples</h3>',
             '<p class="note">samples.tsv; with the page&rsquo;s script, the last columns follow the clones you '
             'tick in <a href="#reads-h">Reads</a>.</p>',
             f'<div class="scroll">{_samples_table(data, anchor)}</div>',
             f'<h3 id="{anchor}lollipop">Lollipop diagrams</h3>',
             _figure(pngs, figure_name(data, "lollipop"), "lollipop diagrams, one panel per sample", lollipop)]
    dose_html = _figure(pngs, figure_name(data, "dose_response"), "percent methylation vs dose", dose)
    if dose_html:
        parts += [f'<h3 id="{anchor}dose">Dose response</h3>', dose_html]
    parts += [f'<h3 id="{anchor}cpg">Per-CpG methylation</h3>', _cpg_section(data, anchor),
              f'<h3 id="{anchor}stats-h">Statistics</h3>', _stats_section(stats[0], stats[1], anchor)]
    if data.weighted:
        parts.append('<p class="note">Deep data: the samples are the replicates of the primary tests (*_samples) '
                     "when groups have several samples; *_molecules tests take the molecule as the unit "
                     "(docs/statistics.md, docs/ngs.md).</p>")
    else:  # the clone-pattern analyses work on clones (deep data: the pattern counts in patterns.tsv)
        parts += _clonal_sections(data, compare_config, anchor, results)
    parts.append("</section>")
    return parts


# ---------------------------------------------------------------------------------------------
# glossary


def _glossary() -> str:
    from ..models import Reason, Why

    tests = "".join(f"<dt>{esc(name)} <code>{esc(tid)}</code></dt><dd>{esc(what)}</dd>"
                    for tid, (name, _, what) in TESTS.items())
    reasons = "".join(f"<dt><code>{esc(r.value)}</code></dt><dd>{esc(REASONS[r])}</dd>" for r in Reason)
    whys = "".join(f"<dt><code>{esc(w.value)}</code></dt><dd>{esc(WHYS[w])}</dd>" for w in Why)
    return (f'<h3 id="glossary-tests">Tests</h3><dl class="stack">{tests}</dl>'
            '<p class="note">Why these tests, their definitions, and how they behave on simulated data: '
            "docs/statistics.md in bsmeth&rsquo;s documentation.</p>"
            f"<h3>Terms</h3>{definition_list(TERMS)}"
            '<h3 id="glossary-reasons">Why a read is excluded (reads.tsv <code>reason</code>, first that applies, '
            f'in this order)</h3><dl class="stack">{reasons}</dl>'
            "<h3>Why a CpG is not determined (cpg_calls.tsv <code>why</code>, shown as - )</h3>"
            f'<dl class="stack">{whys}</dl><h3>Alignment marks</h3>'
            f"<p>{esc(MARKS)}</p>")


# ---------------------------------------------------------------------------------------------


def _reads_section(data, traces: str) -> str:
    return ('<p class="note">Click a read for its CpG calls, alignment and chromatogram at every CpG. '
            "Untick a clone to exclude it: the samples&rsquo; numbers above follow, and "
            "<b>Download curation.tsv</b> saves your choice; <code>bsmeth run &hellip; --curation curation.tsv</code> "
            "applies it (excluded reads fail as <code>excluded_by_user</code>).</p>"
            f'<div id="curation" class="toolbar" hidden></div>{traces}'
            f'<div class="scroll tall">{read_table(data)}</div>')


def build_report(data, plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig(),
                 dpi: int = DPI, pngs: Optional[dict] = None, traces: Optional[Union[dict, str]] = None) -> str:
    """The report as one HTML string.

    ``pngs`` (figure file stem -> PNG bytes, or a list of pages): figures already rendered with the same options
    (``bsmeth run``); missing ones are drawn here.  ``traces`` (amplicon name -> HTML of ``trace_section``):
    the chromatogram data, already made; missing ones are made here.
    """
    from ..tables import clone_table

    pngs = pngs or {}
    traces = {"": traces} if isinstance(traces, str) else (traces or {})
    title = f"bsmeth report: {data.directory.name}"
    subsets = list(data.by_amplicon())
    panel = len(subsets) > 1
    computed: dict = {name: {} for name, _ in subsets}  # compare's rows when computed here (no stats.tsv)
    stats = {name: _stats_rows(sub, compare_config, computed[name]) for name, sub in subsets}
    clones = {name: clone_table(sub) for name, sub in subsets}
    nav = ['<a href="#summary">Results</a>', '<a href="#qc">Quality control</a>']
    nav += [f'<a href="#a{k + 1}-results">{esc(name)}</a>' if panel else '<a href="#results">Figures and tests</a>'
            for k, (name, _) in enumerate(subsets)]
    nav += [*(['<a href="#reads-h">Reads</a>'] if not data.weighted else []), '<a href="#glossary">Glossary</a>',
            '<a href="#run">Run</a>']
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_asset('report.css')}</style>{NOSCRIPT_STYLE}</head><body>",
        f"<header><h1>{esc(title)}</h1><nav>{' · '.join(nav)}</nav></header>",
        '<section id="summary-s"><h2 id="summary">Results summary</h2>', _summary_section(data, stats, clones),
        "</section>",
        '<section><h2 id="qc">Quality control</h2>', _qc_section(data), "</section>",
    ]
    for k, (name, sub) in enumerate(subsets):
        heading = f"Amplicon {name}" if panel else "Figures and tests"
        parts += _amplicon_sections(sub, plot_config, compare_config, dpi, pngs, stats[name], heading,
                                    f"a{k + 1}-" if panel else "", computed[name].get("results"))
    if not data.weighted:  # deep data (NGS): molecules are pattern counts, there is no per-read section
        trace_html = "".join(traces[name] if name in traces else (traces[""] if "" in traces and not panel else
                                                                   trace_section(sub)) for name, sub in subsets)
        parts += ['<section><h2 id="reads-h">Reads</h2>', _reads_section(data, trace_html), "</section>"]
    parts += ['<section><h2 id="glossary">Glossary</h2>', _glossary(), "</section>",
              '<section><h2 id="run">Run</h2>', _run_section(data),
              '<p class="note">Built from the call folder only (reads.tsv, cpg_calls.tsv, summary.tsv, samples.tsv, '
              "stats.tsv, run.json, alignments.txt). Self-contained: no network resources; works offline.</p>"
              "</section>",
              '<dialog id="viewer"><form method="dialog"><button class="close" value="close" '
              'aria-label="close">×</button></form><div id="viewer-body"></div></dialog>',
              per_read_scripts(data) if not data.weighted else "", f"<script>{_asset('report.js')}</script>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def save_report(data, out: Optional[str | os.PathLike] = None, plot_config: PlotConfig = PlotConfig(),
                compare_config: CompareConfig = CompareConfig(), pngs: Optional[dict] = None,
                traces: Optional[Union[dict, str]] = None) -> Path:
    """Write the report of the loaded call directory ``data`` to ``<directory>/report.html`` (or ``out``)."""
    from ..atomic import write_text as write_text_atomic

    path = Path(out) if out is not None else data.directory / "report.html"
    return write_text_atomic(path, build_report(data, plot_config, compare_config, pngs=pngs, traces=traces))


def write_report(call_dir: str | os.PathLike, out: Optional[str | os.PathLike] = None,
                 plot_config: PlotConfig = PlotConfig(), compare_config: CompareConfig = CompareConfig()) -> Path:
    """Entry point of ``bsmeth report``: write ``<call_dir>/report.html`` (or ``out``) and return its path."""
    from ..tables import load_call_dir

    return save_report(load_call_dir(call_dir), out, plot_config, compare_config)
