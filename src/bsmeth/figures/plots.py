"""The ``plot`` stage: lollipop grid and dose-response figure from a call directory.

Pipeline position: after ``call``; reads only the call directory (through
``tables``) and writes each figure as SVG, PNG, PDF and/or TIFF, with the data
it shows in a TSV beside it.  A figure is built as ``scene`` pages (plain
shapes and texts in points) from the pure geometry of ``layout``, then written
by ``scene`` (SVG), ``raster`` (PNG, TIFF) and ``pdfwrite`` (PDF): no plotting
library is imported to draw them, so ``bsmeth run`` spends milliseconds, not
seconds, on its figures.  ``report`` reuses the builders.

The matplotlib helpers at the end (``_new_figure``, ``save_figure``) serve the
figures other stages still draw with matplotlib's object API (the report's
trace snippets, ``quantify``'s plot); ``pyplot`` is never used.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import layout as L
from .scene import Circle, Group, Line, Poly, Rect, Scene, Text

AUTO = "auto"
DPI = 300  # PNG and TIFF, unless --dpi
MIN_DPI, MAX_DPI = 50, 2400
PNG_DPI = 200  # PNG and TIFF of the figures other stages draw with matplotlib (quantify), as before
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
LINE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
SNP_COLOUR = "#B35806"
ND_COLOUR = "#8C8C8C"
BAR_COLOUR = "#7F7F7F"
NOTE_COLOUR = "#333333"
DENDROGRAM_COLOUR = "#333333"
FORMATS = ("svg", "png", "pdf", "tiff")
DEFAULT_FORMATS = ("svg", "png", "pdf")
LOLLIPOP_WIDTH = "double"  # default widths when --width-mm is not given
DOSE_WIDTH = "single"

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class PlotConfig:
    """Options of ``bsmeth plot``.

    ``rows``/``cols``: sample columns whose levels make the grid rows / columns (``"auto"``: cell_line /
    dose when the sheet has them; ``None``: not used; with neither, samples fill rows of 6).
    ``layout``: ``equal``, ``proportional`` or ``position`` CpG spacing (see ``layout.cpg_x_positions``).
    ``order``: the rows of a clone panel, within each allele group: ``input`` (reads.tsv order), ``methylation``
    (most methylated on top) or ``cluster`` (hierarchical clustering of the patterns, dendrogram beside the
    rows); ``sort_clones`` (the old option) means ``methylation``.  ``allele_groups``: where the amplicon has a
    splittable SNP site (known or found from the clones), rows grouped by the allele each clone carries,
    marked beside the rows.  Deep-data panels (epialleles) ignore both.  ``out_prefix``: output path prefix;
    files are ``<prefix>lollipop.<fmt>`` and ``<prefix>dose_response.<fmt>`` (default: inside the call
    directory).  ``width_mm``: the width of every figure (None: the lollipop grid a double column, the
    dose-response plot a single one).  ``dpi``: PNG and TIFF resolution.  ``max_height_mm``: taller figures
    continue on further pages.
    """

    rows: Optional[str] = AUTO
    cols: Optional[str] = AUTO
    layout: str = "equal"
    sort_clones: bool = False
    order: str = "input"
    allele_groups: bool = True
    formats: tuple[str, ...] = DEFAULT_FORMATS
    out_prefix: Optional[str] = None
    dose: Optional[str] = AUTO
    cell_line: Optional[str] = AUTO
    width_mm: Optional[float] = None
    dpi: int = DPI
    max_height_mm: float = L.MAX_HEIGHT_MM

    @property
    def row_order(self) -> str:
        """``order``, with the old ``sort_clones`` read as ``methylation``."""
        return "methylation" if self.sort_clones and self.order == "input" else self.order


@dataclass(frozen=True)
class Figure:
    """A figure ready to write: its pages, and the data it shows as TSV text."""

    name: str  # file stem: lollipop, dose_response
    pages: tuple[Scene, ...]
    table: str
    title: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text)) or "_"


def _resolve(value: Optional[str], default: str, columns: Sequence[str], option: str) -> Optional[str]:
    from ..errors import InputError

    if value == AUTO:
        return default if default in columns else None
    if value is not None and value not in columns:
        raise InputError(f"{option} {value!r}: no such sample column; available: {', '.join(columns)}")
    return value


def _width_pt(config: PlotConfig, default: str) -> float:
    mm = config.width_mm if config.width_mm is not None else L.parse_width(default)
    return mm * L.MM


def _units(data, columns: Sequence[Optional[str]]) -> dict:
    """(column, level) -> unit, from a ``<column>_unit`` sheet column (e.g. dose_unit)."""
    out: dict = {}
    sheet = data.samples
    for col in columns:
        if not col or f"{col}_unit" not in sheet.columns or col not in sheet.columns:
            continue
        for level, unit in zip(sheet[col], sheet[f"{col}_unit"]):
            if str(unit).strip():
                out.setdefault((col, level), str(unit).strip())
    return out


def _tsv(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.4f}".rstrip("0").rstrip(".") if v % 1 else f"{v:.0f}"
        return str(v).replace("\t", " ").replace("\n", " ")

    return "".join("\t".join(cell(v) for v in r) + "\n" for r in [header, *rows])


# =============================================================================================
# lollipop grid


@dataclass(frozen=True)
class Clone:
    read: str
    fraction: Optional[float]
    calls: dict  # cpg number -> (call, why)
    share: Optional[float] = None  # deep data: the row's share of the sample's molecules (an epiallele)
    pooled: Optional[dict] = None  # deep data, the pooled row: cpg number -> fraction methylated

    def symbol(self, cpg: int) -> str:
        """What the figure shows at ``cpg``: M, U, - (not determined), S (SNP allele), '' (not covered)."""
        call, why = self.calls.get(cpg, ("-", "not_covered"))
        if why in ("not_covered", "under_primer"):
            return ""
        if call in ("M", "U"):
            return call
        return "S" if why == "snp" else "-"


@dataclass(frozen=True)
class LollipopInput:
    """Everything the grid of one amplicon shows, extracted from the call tables (no pandas past here)."""

    samples: tuple[str, ...]
    grid: L.Grid
    numbers: tuple[int, ...]  # CpGs shown (not under a primer), in order
    positions: tuple[float, ...]  # their 1-based reference positions
    snp_cpgs: frozenset
    notes: tuple[str, ...]
    clones: dict  # sample -> [Clone] in reads.tsv order
    strips: dict  # sample -> {cpg: percent}
    titles: Optional[dict] = None  # deep data: sample -> second title line's wordings, longest first
    rows: Optional[dict] = None  # sample -> PanelRows (None: input order, or by methylation with sort_clones)


@dataclass(frozen=True)
class PanelRows:
    """How one panel stacks its clones: ``order`` (indices into the panel's clones, top row first), the allele
    groups (label drawn, first row, end row; empty: not grouped), per row the allele written to lollipop.tsv,
    and the dendrogram (``patterns.dendrogram_segments`` lines in rows of ``order``, its highest merge)."""

    order: tuple[int, ...]
    groups: tuple[tuple[str, int, int], ...] = ()
    alleles: tuple[str, ...] = ()
    segments: tuple[tuple[float, float, float, float], ...] = ()
    max_height: float = 0.0


NOT_READ = "?"  # the label of the clones whose allele at the grouping site could not be read


def arrange_rows(clones: Sequence[Clone], mode: str, allele: Optional[dict] = None, names: Sequence[str] = (),
                 site: str = "", patterns=None) -> PanelRows:
    """The rows of one panel.  ``allele``: read -> group key (the allele letter) of the clones whose allele was
    read; ``names``: the keys in drawing order (the clones of no key, ``''``, come last, labelled ``NOT_READ``);
    no ``allele``: one group, not marked.  Within a group: ``input`` order, ``methylation`` (most methylated on
    top) or ``cluster`` (``patterns.clone_layout`` on ``patterns``, the sample's ``CloneSet``: clones without a
    pattern go last in their group, in input order, outside the dendrogram)."""
    grouped = allele is not None
    allele = allele or {}
    index = {c.read: i for i, c in enumerate(clones)}
    rank = {g: k for k, g in enumerate([*names, ""])}
    keys = [allele.get(c.read, "") for c in clones]
    blocks: dict = {}
    segs: dict = {}
    if mode == "cluster" and patterns is not None and patterns.n:
        from ..patterns import CloneSet, clone_layout

        mine = [i for i, r in enumerate(patterns.reads) if r in index]
        # the group that comes first in the drawing is seen first by clone_layout, which keeps first-seen order
        perm = sorted(mine, key=lambda i: rank.get(allele.get(patterns.reads[i], ""), len(rank)))
        cs = CloneSet(patterns.amplicon, patterns.sample, tuple(patterns.reads[i] for i in perm), patterns.cpgs,
                      patterns.calls[perm], patterns.excluded)
        lay = clone_layout(cs, {r: allele.get(r, "") for r in cs.reads}, cluster=True)
        for g, a, b in lay.groups:
            blocks[g] = [index[r] for r in lay.reads[a:b]]
            segs[g] = [(r0 - a, h0, r1 - a, h1) for r0, h0, r1, h1 in lay.segments if a <= r0 < b]
    placed = {i for rows in blocks.values() for i in rows}
    for i, k in enumerate(keys):
        if i not in placed:
            blocks.setdefault(k, []).append(i)
    order: list[int] = []
    groups, alleles, segments = [], [], []
    for g in sorted(blocks, key=lambda k: rank.get(k, len(rank))):
        rows = blocks[g]
        if mode == "methylation":
            rows = [rows[k] for k in L.order_clones([clones[i].fraction for i in rows], True)]
        start = len(order)
        order += rows
        groups.append((g or NOT_READ, start, len(order)))
        alleles += [f"{site}:{g}" if g else ""] * len(rows)
        segments += [(r0 + start, h0, r1 + start, h1) for r0, h0, r1, h1 in segs.get(g, ())]
    top = max((max(x[1], x[3]) for x in segments), default=0.0)
    return PanelRows(tuple(order), tuple(groups) if grouped else (), tuple(alleles), tuple(segments), top)


def _clone_rows(data, clones: dict, config: PlotConfig) -> tuple[dict, list[str]]:
    """sample -> ``PanelRows`` of every clone panel, and the legend's notes on grouping and order."""
    mode = config.row_order
    if not config.allele_groups and mode != "cluster":
        return {s: arrange_rows(c, mode) for s, c in clones.items()}, (
            ["Most methylated clone on top."] if mode == "methylation" else [])
    from .. import alleles as A
    from ..patterns import clone_sets

    sites, scans = A.grouping_sites(data)
    site = next(iter(sites.values()), None) if config.allele_groups else None
    sets = {cs.sample: cs for cs in clone_sets(data, A.found_cpgs(scans))} if mode == "cluster" else {}
    allele, names = None, ()
    if site is not None:
        names = (site.ref, site.alt)
        allele = {r: a for r, a in site.alleles.items() if a in names}
    rows = {s: arrange_rows(c, mode, allele, names, site.name if site else "", sets.get(s))
            for s, c in clones.items()}
    within = "Within each allele group" if site is not None else ""
    notes = []
    if site is not None:
        where = (f"SNP {site.name}" if site.source == "known" else
                 f"the site {site.name} found from the clones (no known SNP splits them)")
        unread = any(g[0] == NOT_READ for r in rows.values() for g in r.groups)
        notes.append(f"Rows grouped by the allele each clone carries at {where}, bracketed left of the rows: "
                     f"{site.ref} (reference) first, then {site.alt}"
                     + (f", then {NOT_READ} (allele not read)." if unread else ".")
                     + (" Within each group, clones in input order." if mode == "input" else ""))
    if mode == "methylation":
        notes.append(f"{within or 'In each panel'}, most methylated clone on top.")
    elif mode == "cluster":
        notes.append(f"{within or 'In each panel'}, rows ordered by hierarchical clustering of the clones' patterns "
                     "(average linkage, UPGMA; leaves in optimal order), distance = the share of the CpGs called in "
                     "both clones that differ (CpGs under a primer or on a SNP left out); right of the rows its "
                     "dendrogram, as wide as the panel's highest merge (written above it). Clones with no such "
                     "CpG called come last in their group.")
    return rows, notes


def _panel_data(data) -> dict:
    """sample -> list of pass clones (reads.tsv order) with their calls."""
    calls = data.cpg_calls[data.cpg_calls["status"] == "pass"]
    by_read: dict = {}
    for read, cpg, call, why in zip(calls["read"], calls["cpg"], calls["call"], calls["why"]):
        by_read.setdefault(read, {})[int(cpg)] = (call, why)
    out: dict = {s: [] for s in data.sample_order()}
    reads = data.reads[data.reads["status"] == "pass"]
    for read, sample in zip(reads["read"], reads["sample"]):
        c = by_read.get(read, {})
        m = sum(1 for v in c.values() if v[0] == "M")
        u = sum(1 for v in c.values() if v[0] == "U")
        out.setdefault(sample, []).append(Clone(read, m / (m + u) if m + u else None, c))
    return out


def _legend_notes(cpgs, plotted, layout: str) -> list[str]:
    notes = ["Top: CpG number; bottom: CpG position (1-based, reference). Title: clones used, pooled % of "
             "called CpGs methylated. Strip: % methylated per CpG over the clones of the panel."]
    if layout == "proportional":
        notes.append("CpGs spaced by position, small gaps widened so that circles do not overlap (not to scale).")
    elif layout == "position":
        notes.append("CpGs at their positions on a linear bp scale (bar), moved apart only where circles would "
                     "overlap.")
    hidden = [str(int(c)) for c, n in zip(cpgs["cpg"], cpgs["note"]) if n == "under_primer"]
    if hidden:
        notes.append(f"CpG {', '.join(hidden)} under a primer (not assessable): not shown.")
    for c, n in zip(cpgs["cpg"], cpgs["note"]):
        if n.startswith("snp:") and int(c) in plotted:
            notes.append(f"CpG {int(c)} (number in orange) can be destroyed by SNP {n.split(':', 1)[1]}: a triangle "
                         "is a clone carrying that allele (a genotype, not a methylation state).")
    return notes


def lollipop_input(data, config: PlotConfig = PlotConfig()) -> LollipopInput:
    """The grid's content for one amplicon's call tables (``data``)."""
    from ..tables import cpg_table, sheet_columns

    columns = sheet_columns(data)
    rows_col = _resolve(config.rows, "cell_line", columns, "--rows")
    cols_col = _resolve(config.cols, "dose", columns, "--cols")
    samples = data.sample_order()
    sheet = data.samples.drop_duplicates("sample").set_index("sample")

    def values(col):
        if col is None:
            return None
        return [s if col == "sample" else sheet.at[s, col] for s in samples]

    grid = L.grid_layout(samples, values(rows_col), values(cols_col), rows_col or "", cols_col or "", wrap=6,
                         units=_units(data, (rows_col, cols_col)))
    cpgs = cpg_table(data)
    shown = cpgs[cpgs["note"] != "under_primer"].reset_index(drop=True)
    numbers = tuple(int(c) for c in shown["cpg"])
    positions = tuple(float(p) for p in shown["pos"])
    snp = frozenset(int(c) for c, n in zip(shown["cpg"], shown["note"]) if n.startswith("snp:"))
    strips: dict = {}
    s = data.summary
    for sample, cpg, pct in zip(s["sample"], s["cpg"], s["percent"]):
        if not math.isnan(pct):
            strips.setdefault(sample, {})[int(cpg)] = float(pct)
    if data.weighted:
        clones, titles = _epiallele_data(data, numbers)
        notes = [*_legend_notes(cpgs, set(numbers), config.layout), DEEP_NOTE]
        return LollipopInput(tuple(samples), grid, numbers, positions, snp, tuple(notes), clones, strips, titles)
    clones = _panel_data(data)
    rows, order_notes = _clone_rows(data, clones, config)
    return LollipopInput(tuple(samples), grid, numbers, positions, snp,
                         (*_legend_notes(cpgs, set(numbers), config.layout), *order_notes), clones, strips,
                         rows=rows)


DEEP_NOTE = (f"Deep data: rows are the sample's most frequent epialleles (at most {L.TOP_EPIALLELES}, each at least "
             f"{100 * L.MIN_EPIALLELE_SHARE:g}\u00a0% of its molecules), left of each its share; the last row pools "
             "the other molecules, each circle shaded by their % methylated (white 0, black 100).")


def _epiallele_data(data, numbers: Sequence[int]) -> tuple[dict, dict]:
    """sample -> [Clone] (the top epialleles, then the pooled rest) and sample -> title line."""
    out: dict = {}
    titles: dict = {}
    cpg_numbers = [int(c.get("cpg", 0)) for c in data.run.get("amplicon", {}).get("cpgs", [])]
    for s in data.sample_order():
        sub = data.patterns[data.patterns["sample"] == s]
        pats = list(sub["pattern"].astype(str))
        counts = [int(c) for c in sub["count"]]
        total = sum(counts)
        shown, rest = L.epiallele_rows(counts)
        rows = []
        for i in shown:
            calls = {n: (ch, "" if ch in "MU" else "not_covered") for n, ch in zip(cpg_numbers, pats[i])}
            m, t = pats[i].count("M"), pats[i].count("M") + pats[i].count("U")
            rows.append(Clone(pats[i], m / t if t else None, calls, share=counts[i] / total))
        if rest:
            others = [i for i in range(len(pats)) if i not in set(shown)]
            pooled, mt, tt = {}, 0, 0
            for k, n in enumerate(cpg_numbers):
                mk = sum(counts[i] for i in others if pats[i][k] == "M")
                uk = sum(counts[i] for i in others if pats[i][k] == "U")
                if mk + uk:
                    pooled[n] = mk / (mk + uk)
                mt, tt = mt + mk, tt + mk + uk
            calls = {n: ("M" if n in pooled else "-", "" if n in pooled else "not_covered") for n in cpg_numbers}
            rows.append(Clone("other", mt / tt if tt else None, calls, share=rest / total, pooled=pooled))
        out[s] = rows
        srow = data.summary[data.summary["sample"] == s]
        m, u = float(srow["methylated"].sum()), float(srow["unmethylated"].sum())
        pct = f"{100 * m / (m + u):.1f}%" if m + u else ""
        titles[s] = ([f"{total:,} molecules, {pct} methylated", f"{total:,} mol., {pct} meth.",
                      f"n={total:,}, {pct}"] if total and pct else
                     [f"{total:,} molecules", f"n={total:,}"] if total else ["no molecule passed QC", "none"])
    return out, titles



def _title(sample: str, clones: list, start: int, stop: int, room: float = math.inf) -> list[str]:
    """A panel's title: the sample, then clones and pooled methylation, in the longest wording that fits
    ``room`` points."""
    n = len(clones)
    m = sum(sum(1 for v in c.calls.values() if v[0] == "M") for c in clones)
    t = sum(sum(1 for v in c.calls.values() if v[0] in "MU") for c in clones)
    pct = f"{100 * m / t:.1f}%" if t else ""
    if (start, stop) != (0, n) and n:
        options = [f"clones {start + 1}-{stop} of {n}, {pct} methylated", f"clones {start + 1}-{stop} of {n}",
                   f"{start + 1}-{stop}/{n}"]
    else:
        s = "s" if n != 1 else ""
        options = ([f"{n} clone{s}, {pct} methylated", f"{n} clone{s}, {pct} meth.", f"n={n}, {pct}"] if t else
                   [f"{n} clone{s}, no CpG called", f"{n} clone{s}", f"n={n}"])
    line = next((o for o in options if L.text_width(o, L.TITLE_FONT) <= room), options[-1])
    return [L.fit_text(sample, room, L.TITLE_FONT), L.fit_text(line, room, L.TITLE_FONT)]


def _marker(kind: str, x: float, y: float, d: float, edge: float) -> list:
    """The shape(s) of one CpG call, centred at (x, y), diameter ``d``."""
    r = d / 2
    if kind == "M":
        return [Circle(x, y, r, "#000000", "#000000", edge)]
    if kind == "U":
        return [Circle(x, y, r, "#FFFFFF", "#000000", edge)]
    if kind == "S":
        h = r * 0.95
        return [Poly(((x, y - h), (x + h, y + h * 0.8), (x - h, y + h * 0.8)), SNP_COLOUR)]
    a = r * 0.6
    return [Line(((x - a, y - a), (x + a, y + a)), ND_COLOUR, edge), Line(((x - a, y + a), (x + a, y - a)), ND_COLOUR,
                                                                         edge)]


def _legend(scene: Scene, top: float, left: float, width: float, snp: bool, notes: Sequence[str]) -> None:
    labels = ["methylated (M)", "unmethylated (U)", "not determined", *(["SNP allele (CpG destroyed)"] if snp else []),
              "clone (blank: not covered)", "% methylated per CpG"]
    kinds = ["M", "U", "-", *(["S"] if snp else []), "line", "bar"]
    leg = L.legend_layout(labels, notes, width)
    g = Group("legend")
    for (x, y), label, kind in zip(leg.items, labels, kinds):
        cx, cy = left + x, top + y - L.CAP_HEIGHT * L.FONT / 2
        if kind == "line":
            g.items.append(Line(((cx - 4, cy), (cx + 4, cy)), "#000000", 0.6))
        elif kind == "bar":
            g.items.append(Rect(cx - 3, cy - 3.5, 6, 7, BAR_COLOUR))
        else:
            g.items += _marker(kind, cx, cy, 6.0, 0.6)
        g.items.append(Text(cx + 7.0, top + y, label))
    for line, y in leg.notes:
        g.items.append(Text(left, top + y, line, colour=NOTE_COLOUR))
    scene.add(g)


def legend_height(width: float, snp: bool, notes: Sequence[str]) -> float:
    labels = ["methylated (M)", "unmethylated (U)", "not determined", *(["SNP allele (CpG destroyed)"] if snp else []),
              "clone (blank: not covered)", "% methylated per CpG"]
    return L.legend_layout(labels, notes, width).height


def lollipop_pages(inp: LollipopInput, config: PlotConfig = PlotConfig()) -> tuple[tuple[Scene, ...], str]:
    """The pages of the lollipop grid of one amplicon, and the matrix they show (TSV text)."""
    width = _width_pt(config, LOLLIPOP_WIDTH)
    xs = L.cpg_x_positions(inp.positions, config.layout) if inp.numbers else []
    x_of = dict(zip(inp.numbers, xs))
    pos_digits = max([len(str(int(p))) for p in inp.positions if not math.isnan(p)] + [1])
    notes_w = width - 2 * L.MARGIN
    leg_h = legend_height(notes_w, bool(inp.snp_cpgs), inp.notes)
    scale_bar = config.layout == "position" and len(inp.numbers) > 1
    def title_of(sample: str, start: int, stop: int, room: float = math.inf) -> list[str]:
        if inp.titles is not None:
            options = inp.titles.get(sample, [""])
            line = next((o for o in options if L.text_width(o, L.TITLE_FONT) <= room), options[-1])
            return [L.fit_text(sample, room, L.TITLE_FONT), L.fit_text(line, room, L.TITLE_FONT)]
        return _title(sample, inp.clones.get(sample, []), start, stop, room)

    titles = {s: title_of(s, 0, len(inp.clones.get(s, []))) for s in inp.samples}
    if inp.rows is not None:
        arranged = {s: inp.rows.get(s) or PanelRows(tuple(range(len(inp.clones.get(s, []))))) for s in inp.samples}
    else:
        arranged = {s: PanelRows(tuple(L.order_clones([c.fraction for c in inp.clones.get(s, [])],
                                                      config.row_order == "methylation"))) for s in inp.samples}
    dendrogram = any(r.segments for r in arranged.values())
    lay = L.lollipop_layout(inp.grid, xs, {s: inp.clones.get(s, []) for s in inp.samples}, width, titles, leg_h,
                            pos_digits, scale_bar, config.max_height_mm * L.MM,
                            L.DEEP_ROW if inp.titles is not None else None, dendrogram)
    geom = lay.geometry
    d, edge, lw = geom.circle_diameter, geom.edge_width, geom.line_width
    digits = max([len(str(n)) for n in inp.numbers] + [1])
    snp_idx = [i for i, n in enumerate(inp.numbers) if n in inp.snp_cpgs]
    tick_idx = L.label_indices(xs, geom.cpg_pitch, L.text_width("0" * digits, L.FONT) + 2.0, must=snp_idx)
    ptick_idx = L.label_indices(xs, geom.cpg_pitch, L.FONT * L.LINE_SPACING)  # rotated labels: one line tall
    bp_cell = L.bp_per_cell(inp.positions, xs) if scale_bar else None
    rows_out: list[list] = []
    pages = []
    for page_no, page in enumerate(lay.pages, start=1):
        scene = Scene(page.width, page.height)
        used: set = set()
        for box in page.panels:
            clones = inp.clones.get(box.sample, [])
            arr = arranged[box.sample]
            order = arr.order[box.start:box.stop]
            merge = L.adjacent_merge_heights(arr.segments, len(arr.order))[box.start:box.stop]
            gid = f"panel-{_slug(box.sample)}"
            while gid in used:
                gid += "_"
            used.add(gid)
            g = Group(gid)
            left, top = box.left, box.top

            def X(cell: float, left: float = left) -> float:
                return left + geom.x(cell)

            right = left + geom.data_width
            # title and CpG numbers above the clone rows
            # centred over the cell (strip labels and data area), so that it can never leave it
            room = geom.data_width + L.strip_label_width() + lay.dendrogram
            title = title_of(box.sample, box.start, box.stop, room)
            y_numbers = top - L.TICK - L.TICK_PAD
            y_title = y_numbers - L.FONT * L.LINE_SPACING - 1.0 - L.DESCENT * L.TITLE_FONT
            centre = right + lay.dendrogram - room / 2
            for k, line in enumerate(reversed(title)):
                g.items.append(Text(centre, y_title - k * L.TITLE_FONT * L.LINE_SPACING, line, L.TITLE_FONT, "center"))
            for i in tick_idx:
                x = X(xs[i])
                g.items.append(Line(((x, top), (x, top - L.TICK)), "#000000", 0.5))
                hi = inp.numbers[i] in inp.snp_cpgs
                g.items.append(Text(x, y_numbers - L.DESCENT * L.FONT, str(inp.numbers[i]), L.FONT, "center",
                                    bold=hi, colour=SNP_COLOUR if hi else "#000000"))
            # clones
            if not clones:
                g.items.append(Text((left + right) / 2, top + geom.clone_pitch / 2, "no clone passed QC", L.FONT,
                                    "center", "middle", colour=ND_COLOUR))
            name = gid[len("panel-"):]
            if arr.groups:  # allele groups: a bracket and its label left of the rows
                ag = Group("alleles-" + name)
                bottom = top + box.rows * geom.clone_pitch
                for m in L.group_marks(arr.groups, left, top, geom.clone_pitch, box.start, box.stop,
                                       top - L.TICK, bottom):
                    ag.items.append(Line(((m.tick, m.y0), (m.x, m.y0), (m.x, m.y1), (m.tick, m.y1)), "#000000",
                                         0.6))
                    label = L.fit_text(m.label, L.strip_label_width() - L.BRACKET_GAP - L.LABEL_GAP, L.FONT)
                    ag.items.append(Text(m.label_x, m.label_y, label, L.FONT, "right", "middle"))
                scene.add(ag)
            if arr.segments:  # the dendrogram right of the rows, its highest merge written above it
                dg = Group("dendrogram-" + name)
                for a, b in L.dendrogram_lines(arr.segments, arr.max_height, right, top, geom.clone_pitch,
                                               box.start, box.stop):
                    dg.items.append(Line((a, b), DENDROGRAM_COLOUR, 0.5))
                dg.items.append(Text(right + lay.dendrogram, y_numbers - L.DESCENT * L.FONT,
                                     f"{arr.max_height:.2f}", L.FONT, "right", colour=NOTE_COLOUR))
                scene.add(dg)
            for row, idx in enumerate(order):
                c = clones[idx]
                y = L.row_y(top, geom.clone_pitch, row)
                covered = [x_of[n] for n in inp.numbers if c.symbol(n)]
                if covered:
                    g.items.append(Line(((X(min(covered)), y), (X(max(covered)), y)), "#000000", lw))
                symbols = [c.symbol(n) for n in inp.numbers]
                for n, sym in zip(inp.numbers, symbols):
                    if sym and c.pooled is not None:
                        g.items.append(Circle(X(x_of[n]), y, d / 2, L.grey_for(c.pooled[n]), "#000000", edge))
                    elif sym:
                        g.items += _marker(sym, X(x_of[n]), y, d, edge)
                if c.share is not None:
                    g.items.append(Text(left - L.TICK_PAD, y, L.share_label(c.share), L.FONT, "right", "middle"))
                f = "" if c.fraction is None else round(100 * c.fraction, 1)
                if c.pooled is not None:
                    symbols = [f"{100 * c.pooled[n]:.1f}" if n in c.pooled else "" for n in inp.numbers]
                extra = [round(c.share, 6)] if c.share is not None else [
                    arr.alleles[box.start + row] if arr.alleles else "", merge[row]]
                rows_out.append([page_no, box.sample, box.start + row + 1, c.read, f, *extra, *symbols])
            scene.add(g)
            # strip: per-CpG percent methylated
            if box.strip_top is not None:
                sg = Group("strip-" + name)
                st, sb = box.strip_top, box.strip_top + L.STRIP_HEIGHT
                pct = inp.strips.get(box.sample, {})
                half = 0.4 * min(1.0, min([b - a for a, b in zip(xs, xs[1:])] + [1.0]))
                for n in inp.numbers:
                    if n in pct:
                        h = L.STRIP_HEIGHT * pct[n] / 100
                        sg.items.append(Rect(X(x_of[n]) - half * geom.cpg_pitch, sb - h, 2 * half * geom.cpg_pitch, h,
                                             BAR_COLOUR))
                sg.items.append(Line(((left, st), (left, sb), (right, sb)), "#000000", 0.5))
                for v, label in ((0.0, "0"), (100.0, "100%")):
                    y = sb - L.STRIP_HEIGHT * v / 100
                    sg.items.append(Line(((left, y), (left - L.TICK, y)), "#000000", 0.5))
                    sg.items.append(Text(left - L.TICK - L.TICK_PAD, y, label, L.FONT, "right", "middle"))
                if box.positions:
                    for i in ptick_idx:
                        x = X(xs[i])
                        sg.items.append(Line(((x, sb), (x, sb + L.TICK)), "#000000", 0.5))
                        sg.items.append(Text(x, sb + L.TICK + L.TICK_PAD, str(int(inp.positions[i])), L.FONT,
                                             "right", "middle", rotated=True))
                    y = sb + L.TICK + L.TICK_PAD + pos_digits * L.text_width("0", L.FONT) + 1.0 + L.FONT
                    sg.items.append(Text((left + right) / 2, y, "CpG position", L.FONT, "center"))
                    if bp_cell:
                        bar_bp = L.nice_length(0.4 * geom.data_width / geom.cpg_pitch * bp_cell)
                        bar_w = bar_bp / bp_cell * geom.cpg_pitch
                        yb = y + L.FONT * L.LINE_SPACING
                        sg.items.append(Line(((right - bar_w, yb - 2), (right - bar_w, yb), (right, yb),
                                              (right, yb - 2)), "#000000", 0.6))
                        sg.items.append(Text(right - bar_w - 3, yb, f"{bar_bp:g} bp", L.FONT, "right", "middle"))
                scene.add(sg)
        hg = Group("headers")
        for h in page.headers:
            hg.items.append(Text(h.x, h.y, h.text, L.HEADER_FONT, "center", "middle" if h.rotated else "baseline",
                                 rotated=h.rotated, bold=True))
        scene.add(hg)
        _legend(scene, page.legend_top, L.MARGIN, notes_w, bool(inp.snp_cpgs), inp.notes)
        pages.append(scene)
    extra = ["share"] if inp.titles is not None else ["allele", "merge_height"]
    header = ["page", "sample", "row", "read", "methylation_pct", *extra, *(f"cpg_{n}" for n in inp.numbers)]
    return tuple(pages), _tsv(header, rows_out)


def lollipop_figure(data, config: PlotConfig = PlotConfig()) -> Figure:
    """The lollipop grid (not written): pages and the matrix behind them."""
    pages, table = lollipop_pages(lollipop_input(data, config), config)
    return Figure("lollipop", pages, table, "lollipop diagrams")


# =============================================================================================
# dose-response


def _clip(x: float) -> float:
    return x if math.isnan(x) else min(100.0, max(0.0, x))


def dose_response_table(data, dose: str, line: Optional[str]):
    """Per (cell line, dose): clones, mean per-clone % with 95 % t CI, pooled % with Wilson 95 % CI."""
    import pandas as pd
    from scipy.special import stdtrit

    from ..stats import wilson_ci
    from ..tables import clone_table, order_levels

    clones = clone_table(data)
    if data.weighted:  # deep data: each sample one value (its mean per-molecule %): samples are the replicates
        clones = _per_sample(clones, [c for c in (dose, line) if c])
    rows = []
    lines = order_levels(clones[line]) if line else [""]
    for lv in lines:
        sub = clones[clones[line] == lv] if line else clones
        for d in order_levels(sub[dose]):
            g = sub[sub[dose] == d]
            f = 100 * g["fraction"].to_numpy(float)
            n = len(f)
            mean = float(f.mean()) if n else math.nan
            if n > 1:
                half = float(stdtrit(n - 1, 0.975) * f.std(ddof=1) / math.sqrt(n))
            else:
                half = math.nan
            k, tot = int(g["m"].sum()), int(g["n"].sum())
            lo, hi = wilson_ci(k, tot)
            # a t interval can leave [0, 100] with few clones; percentages cannot
            rows.append({"cell_line": lv, "dose": d, "clones": n, "mean": mean, "mean_low": _clip(mean - half),
                         "mean_high": _clip(mean + half), "pooled": 100 * k / tot if tot else math.nan,
                         "pooled_low": 100 * lo, "pooled_high": 100 * hi, "values": list(f),
                         "samples": list(g["sample"]), "reads": list(g["read"]), "m": list(g["m"]),
                         "n": list(g["n"])})
    return pd.DataFrame(rows)


def _per_sample(clones, columns: Sequence[str]):
    """Weighted molecules -> one row per sample: fraction = mean per-molecule fraction, m / n pooled calls."""
    import pandas as pd

    rows = []
    for s, g in clones.groupby("sample", sort=False):
        w = g["weight"].to_numpy(float)
        rows.append({"read": s, "sample": s, "fraction": float((w * g["fraction"]).sum() / w.sum()),
                     "m": int((w * g["m"]).sum()), "n": int((w * g["n"]).sum()),
                     **{c: g[c].iloc[0] for c in columns}})
    return pd.DataFrame(rows, columns=["read", "sample", "fraction", "m", "n", *columns])


DOSE_CAPTION_DEEP = ("Filled circles and lines: mean over the samples of each sample's mean per-molecule "
                     "% methylation, with its 95\u00a0% t interval (samples are the replicates). Open squares: "
                     "all CpG calls pooled, Wilson 95\u00a0% interval. Small dots: single samples. Dose levels are "
                     "equally spaced categories, not to scale; the trend tests (stats.tsv) use dose as a number on a "
                     "linear scale.")
DOSE_CAPTION = ("Filled circles and lines: mean of per-clone % methylation with its 95\u00a0% t interval (the clone is "
                "the unit). Open squares: all CpG calls pooled, Wilson 95\u00a0% interval. Small dots: single clones. "
                "Dose levels are equally spaced categories, not to scale; the trend tests (stats.tsv) use dose as "
                "a number on a linear scale.")


def dose_response_figure(data, config: PlotConfig = PlotConfig()) -> Optional[Figure]:
    """Percent methylation per dose level, one series per cell line; ``None`` when there is no dose column."""
    from ..stats import wilson_ci
    from ..tables import sheet_columns

    columns = sheet_columns(data)
    dose = _resolve(config.dose, "dose", columns, "--dose")
    line = _resolve(config.cell_line, "cell_line", columns, "--cell-line")
    if dose is None:
        return None
    table = dose_response_table(data, dose, line)
    if table.empty:
        return None
    units = _units(data, (dose,))
    unit_set = {u for (c, _), u in units.items() if c == dose}
    unit = next(iter(unit_set)) if len(unit_set) == 1 else None
    levels = L.ordered_levels(list(table["dose"]))
    xcat = L.categorical_positions(levels)
    series = list(dict.fromkeys(table["cell_line"]))
    labels = [str(s) if s != "" else "all clones" for s in series]
    width = _width_pt(config, DOSE_WIDTH)
    lay = L.dose_layout(width, len(levels), labels, DOSE_CAPTION_DEEP if data.weighted else DOSE_CAPTION, line or "")
    px, py, pw, ph = lay.plot
    scene = Scene(lay.width, lay.height)

    def X(level) -> float:
        return px + (xcat[level] + 0.5) * pw / len(levels)

    def Y(v: float) -> float:
        return py + ph * (1 - (v + 3) / 106)

    axes = Group("axes")
    axes.items.append(Line(((px, py), (px, py + ph), (px + pw, py + ph)), "#000000", 0.6))
    for v in L.nice_ticks(0, 100, 5):
        axes.items.append(Line(((px, Y(v)), (px - L.TICK, Y(v))), "#000000", 0.6))
        axes.items.append(Text(px - L.TICK - L.TICK_PAD, Y(v), f"{v:g}", L.FONT, "right", "middle"))
    for lv in levels:
        axes.items.append(Line(((X(lv), py + ph), (X(lv), py + ph + L.TICK)), "#000000", 0.6))
        axes.items.append(Text(X(lv), py + ph + L.TICK + L.TICK_PAD, L.fit_text(str(lv), pw / len(levels), L.FONT),
                               L.FONT, "center", "top"))
    xlabel = f"{L.axis_label(dose, unit)}: levels equally spaced"
    axes.items.append(Text(px + pw / 2, py + ph + L.TICK + L.TICK_PAD + 2 * L.FONT * L.LINE_SPACING - 2, xlabel,
                           L.FONT, "center"))
    axes.items.append(Text(L.MARGIN, py + ph / 2, "% methylation", L.FONT, "center", "top", rotated=True))
    scene.add(axes)
    offsets = L.side_by_side(len(series), min(12.0, 0.6 * pw / len(levels) / max(1, len(series))))
    rows_out: list[list] = []
    for j, (s, label) in enumerate(zip(series, labels)):
        colour = LINE_COLOURS[j % len(LINE_COLOURS)]
        tint = _tint(colour, 0.45)
        g = Group(f"series-{_slug(label)}")
        sub = table[table["cell_line"] == s]
        means = []
        for r in sub.itertuples(index=False):
            xc = X(r.dose) + offsets[j]
            for dx, v in zip(L.jitter(len(r.values), 3.0, j), r.values):
                g.items.append(Circle(xc - 3.0 + dx, Y(v), 1.1, tint))
            for sample, read, m, n, v in zip(r.samples, r.reads, r.m, r.n, r.values):
                lo, hi = wilson_ci(int(m), int(n))
                rows_out.append([label, r.dose, "sample" if data.weighted else "clone", sample, read, 1, v, 100 * lo,
                                 100 * hi, int(m), int(n)])
            if not math.isnan(r.pooled):
                xp = xc + 3.5
                g.items.append(Line(((xp, Y(r.pooled_low)), (xp, Y(r.pooled_high))), colour, 0.5))
                g.items.append(Rect(xp - 1.6, Y(r.pooled) - 1.6, 3.2, 3.2, "#FFFFFF", colour, 0.6))
            rows_out.append([label, r.dose, "pooled", "", "", r.clones, r.pooled, r.pooled_low, r.pooled_high,
                             sum(int(m) for m in r.m), sum(int(n) for n in r.n)])
            rows_out.append([label, r.dose, "mean", "", "", r.clones, r.mean, r.mean_low, r.mean_high, "", ""])
            if not math.isnan(r.mean):
                means.append((xc, Y(r.mean)))
                if not math.isnan(r.mean_low):
                    g.items.append(Line(((xc, Y(r.mean_low)), (xc, Y(r.mean_high))), colour, 0.9))
                    for v in (r.mean_low, r.mean_high):
                        g.items.append(Line(((xc - 1.8, Y(v)), (xc + 1.8, Y(v))), colour, 0.9))
        if len(means) > 1:
            g.items.append(Line(tuple(means), colour, 1.1))
        for xm, ym in means:
            g.items.append(Circle(xm, ym, 2.2, colour, "#FFFFFF", 0.4))
        scene.add(g)
    leg = Group("legend")
    lx, ly = lay.legend_left, py + L.FONT
    if line:
        leg.items.append(Text(lx, ly, L.axis_label(line), L.FONT, bold=True))
        ly += L.FONT * L.LINE_SPACING + 1
    for j, label in enumerate(labels):
        colour = LINE_COLOURS[j % len(LINE_COLOURS)]
        cy = ly - L.CAP_HEIGHT * L.FONT / 2
        leg.items.append(Line(((lx, cy), (lx + 10, cy)), colour, 1.1))
        leg.items.append(Circle(lx + 5, cy, 2.2, colour, "#FFFFFF", 0.4))
        leg.items.append(Text(lx + 13, ly, label, L.FONT))
        ly += L.FONT * L.LINE_SPACING + 1
    for k, text in enumerate(lay.caption):
        leg.items.append(Text(L.MARGIN, lay.caption_top + (k + 1) * L.FONT * L.LINE_SPACING, text, L.FONT,
                              colour=NOTE_COLOUR))
    scene.add(leg)
    header = [line or "cell_line", dose, "kind", "sample", "read", "clones", "percent", "ci_low", "ci_high",
              "methylated", "called"]
    return Figure("dose_response", (scene,), _tsv(header, rows_out), "percent methylation by dose")


def _tint(colour: str, strength: float) -> str:
    """``colour`` mixed with white (strength 1: the colour itself)."""
    c = colour.lstrip("#")
    rgb = [int(c[i:i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(255 - strength * (255 - v)):02X}" for v in rgb)


# =============================================================================================
# writing


def format_names(formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` as bsmeth names them ("PNG", ".png", "tif" -> "png", "tiff"); an unknown one raises
    ``InputError``."""
    from ..errors import InputError

    names = tuple({"tif": "tiff"}.get(f.lower().lstrip("."), f.lower().lstrip(".")) for f in formats)
    for given, name in zip(formats, names):
        if name not in FORMATS:
            raise InputError(f"format {given!r}: choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def figure_files(stem: str, fmt: str, n_pages: int) -> list[Path]:
    """Where a figure of ``n_pages`` pages goes: ``stem.fmt``; several pages: one PDF, else ``stem_pN.fmt``."""
    if n_pages <= 1 or fmt == "pdf":
        return [Path(f"{stem}.{fmt}")]
    return [Path(f"{stem}_p{i}.{fmt}") for i in range(1, n_pages + 1)]


def render(fig: Figure, fmt: str, dpi: int = DPI) -> list[bytes]:
    """The file contents of ``fig`` in ``fmt``, one per file of ``figure_files``."""
    if fmt == "svg":
        from .scene import svg_bytes

        return [svg_bytes(p, fig.title) for p in fig.pages]
    if fmt == "pdf":
        from .pdfwrite import pdf_bytes

        return [pdf_bytes(fig.pages, fig.title)]
    from . import raster

    encode = raster.png_bytes if fmt == "png" else raster.tiff_bytes
    return [encode(p, dpi) for p in fig.pages]


def write_figure(fig: Figure, stem: str | os.PathLike, formats: Sequence[str] = DEFAULT_FORMATS, dpi: int = DPI,
                 progress: Progress = None, table: bool = True) -> list[Path]:
    """Write ``fig`` in every format (atomically, byte-for-byte reproducibly) and, with ``table``, its data as
    ``<stem>.tsv``."""
    from ..atomic import write_bytes, write_text

    stem = str(stem)
    out = []
    for fmt in format_names(formats):
        paths = figure_files(stem, fmt, len(fig.pages))
        for path, data in zip(paths, render(fig, fmt, dpi)):
            out.append(write_bytes(path, data))
            if progress:
                progress(path.name)
    if table:
        out.append(write_text(f"{stem}.tsv", fig.table))
    return out


def output_prefix(call_dir, config: PlotConfig) -> str:
    """Path prefix of the figure files: ``config.out_prefix``, else inside the call folder."""
    return config.out_prefix if config.out_prefix is not None else str(Path(call_dir)) + os.sep


def figure_name(data, base: str) -> str:
    """A figure's file stem: ``base`` for a run of one amplicon, ``base_<amplicon>`` for one amplicon of a panel
    (``data``: the tables of that amplicon, ``CallData.subset``)."""
    if len(data.run.get("amplicons", [])) <= 1:
        return base
    return f"{base}_{_slug(str((data.run.get('amplicon') or {}).get('name', 'amplicon')))}"


def plot_lollipop(data, config: PlotConfig = PlotConfig(), fig: Optional[Figure] = None,
                  progress: Progress = None) -> list[Path]:
    """Write one amplicon's lollipop grid (``fig``, or built here) in every format of ``config``; returns the
    paths."""
    fig = lollipop_figure(data, config) if fig is None else fig
    return write_figure(fig, f"{output_prefix(data.directory, config)}{figure_name(data, 'lollipop')}",
                        config.formats, config.dpi, progress)


def plot_dose_response(data, config: PlotConfig = PlotConfig(), progress: Progress = None) -> list[Path]:
    """Write one amplicon's dose-response figure in every format; no files when there is no dose column."""
    fig = dose_response_figure(data, config)
    if fig is None:
        return []
    return write_figure(fig, f"{output_prefix(data.directory, config)}{figure_name(data, 'dose_response')}",
                        config.formats, config.dpi, progress)


def check_config(config: PlotConfig) -> None:
    """Options that are wrong whatever the data: raised before any work."""
    from ..errors import InputError

    if config.layout not in L.LAYOUTS:
        raise InputError(f"layout {config.layout!r}: choose {', '.join(L.LAYOUTS)}")
    if config.order not in L.ORDERS:
        raise InputError(f"order {config.order!r}: choose {', '.join(L.ORDERS)}")
    if config.sort_clones and config.order not in ("input", "methylation"):
        raise InputError(f"--sort-clones (methylation order) and --order {config.order}: give one of them")
    format_names(config.formats)
    if config.width_mm is not None:
        try:
            L.parse_width(config.width_mm)
        except ValueError as e:
            raise InputError(f"--width-mm: {e}") from None
    if not MIN_DPI <= config.dpi <= MAX_DPI:
        raise InputError(f"--dpi {config.dpi}: choose {MIN_DPI} to {MAX_DPI}")
    if not 50 <= config.max_height_mm <= 5000:
        raise InputError(f"--max-height-mm {config.max_height_mm:g}: choose 50 to 5000")


def run_plot(call_dir: str | os.PathLike, config: PlotConfig = PlotConfig(), progress: Progress = None) -> list[Path]:
    """Entry point of ``bsmeth plot``: lollipop grid (and dose-response when a dose column exists).

    Returns the written paths (figures, then the TSV of each figure's data).
    """
    from ..tables import load_call_dir

    check_config(config)
    paths: list[Path] = []
    for _, data in load_call_dir(call_dir).by_amplicon():
        paths += plot_lollipop(data, config, progress=progress) + plot_dose_response(data, config, progress)
    return paths


def figure_png_bytes(fig, dpi: int = 110, tight: bool = True) -> bytes:
    """PNG of a bsmeth ``Figure`` (its first page) or of a matplotlib figure (``tight=False`` for figures laid out
    edge to edge: saves a draw)."""
    if isinstance(fig, (Figure, Scene)):
        from .raster import png_bytes

        return png_bytes(fig.pages[0] if isinstance(fig, Figure) else fig, dpi)
    import io

    buf = io.BytesIO()
    kwargs = dict(bbox_inches="tight", pad_inches=0.06) if tight else {}
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **kwargs)
    return buf.getvalue()


# =============================================================================================
# matplotlib figures of other stages (report's trace snippets, quantify)


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height))
    FigureCanvasAgg(fig)  # Agg canvas: renderer for text extents and PNG output, no GUI backend
    return fig


def save_figure(fig, stem: str | os.PathLike, formats: Sequence[str] = DEFAULT_FORMATS, tight: bool = True,
                dpi: int = PNG_DPI) -> list[Path]:
    """Write a matplotlib figure as ``<stem>.<fmt>`` for every format, atomically and reproducibly."""
    import matplotlib

    from ..atomic import write_with as write_with_atomic

    out = []
    bbox = None
    for fmt in format_names(formats):
        path = Path(f"{stem}.{fmt}")
        meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {"Software": None},
                "tiff": None}[fmt]
        if bbox is None and tight:  # the tight box costs a full draw: measure it once for every format
            bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.06)
        kwargs = dict(format=fmt, bbox_inches=bbox)
        if meta is not None:
            kwargs["metadata"] = meta
        if fmt in ("png", "tiff"):
            kwargs["dpi"] = dpi
        if fmt == "tiff":
            kwargs["pil_kwargs"] = {"compression": "tiff_lzw"}
        # fixed hash salt: SVG clip-path ids are otherwise random, and outputs must be deterministic
        with matplotlib.rc_context({"svg.hashsalt": "bsmeth", "svg.fonttype": "none", "pdf.fonttype": 42}):
            write_with_atomic(path, lambda fh, kwargs=kwargs: fig.savefig(fh, **kwargs))
        out.append(path)
    return out

