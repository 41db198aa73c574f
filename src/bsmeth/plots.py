"""The ``plot`` stage: lollipop grid and dose-response figure from a call directory.

Pipeline position: after ``call``; reads only the call directory (through
``tables``) and writes figures (SVG, PNG at 200 dpi, PDF).  ``report`` reuses
the figure builders.  matplotlib's object API only (``Figure`` + Agg canvas),
never ``pyplot``: no global figure state, safe in a library and in tests.
Geometry comes from ``layout`` (pure functions), so circle size, spacing and
panel placement are decided and tested without drawing.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from . import layout as L

AUTO = "auto"
PNG_DPI = 200
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
LINE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
SNP_COLOUR = "#B35806"
ND_COLOUR = "#8C8C8C"
FORMATS = ("svg", "png", "pdf")


@dataclass(frozen=True)
class PlotConfig:
    """Options of ``bsmeth plot``.

    ``rows``/``cols``: sample columns whose levels make the grid rows / columns (``"auto"``: cell_line /
    dose when the sheet has them; ``None``: not used; with neither, samples fill one row, wrapping after 6).
    ``layout``: ``equal`` or ``proportional`` CpG spacing.  ``sort_clones``: most methylated clone on top
    (else input order).  ``out_prefix``: output path prefix; files are ``<prefix>lollipop.<fmt>`` and
    ``<prefix>dose_response.<fmt>`` (default: inside the call directory).
    """

    rows: Optional[str] = AUTO
    cols: Optional[str] = AUTO
    layout: str = "equal"
    sort_clones: bool = False
    formats: tuple[str, ...] = FORMATS
    out_prefix: Optional[str] = None
    dose: Optional[str] = AUTO
    cell_line: Optional[str] = AUTO


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text)) or "_"


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # Agg canvas: renderer for text extents and PNG output, no GUI backend
    return fig


def _resolve(value: Optional[str], default: str, columns: Sequence[str], option: str) -> Optional[str]:
    from .errors import InputError

    if value == AUTO:
        return default if default in columns else None
    if value is not None and value not in columns:
        raise InputError(f"{option} {value!r}: no such sample column; available: {', '.join(columns)}")
    return value


# =============================================================================================
# lollipop grid


@dataclass(frozen=True)
class _Clone:
    read: str
    fraction: Optional[float]
    calls: dict  # cpg number -> (call, why)


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
        out.setdefault(sample, []).append(_Clone(read, m / (m + u) if m + u else None, c))
    return out


def _legend_notes(cpgs, plotted) -> list[str]:
    notes = ["Top: CpG number; bottom: CpG position (1-based, reference). Title: clones used, pooled % of "
             "called CpGs methylated. Strip: % methylated per CpG over the clones of the panel."]
    hidden = [str(int(c)) for c, n in zip(cpgs["cpg"], cpgs["note"]) if n == "under_primer"]
    if hidden:
        notes.append(f"CpG {', '.join(hidden)} under a primer (not assessable): not shown.")
    snps = [(int(c), n.split(":", 1)[1]) for c, n in zip(cpgs["cpg"], cpgs["note"]) if n.startswith("snp:")]
    for c, name in snps:
        if c in plotted:
            notes.append(f"CpG {c} (number in orange) can be destroyed by SNP {name}: a triangle is a clone "
                         "carrying that allele (a genotype, not a methylation state).")
    return notes


# Panel decoration is drawn with plain artists, not matplotlib's tick machinery: Axis objects with
# hundreds of Tick artists made up half of every draw, and a figure is drawn once per format.
TICK_LENGTH = 2.0  # points
TICK_PAD = 1.0
DIGIT_EM = 0.64  # width of a digit in DejaVu Sans, in em
LABEL_TITLE = "_title"  # artist labels (leading underscore: never in a legend) that tests look for
LABEL_CPG_NUMBER = "_cpg_number"
LABEL_CPG_POSITION = "_cpg_position"


def _text_at(ax, x, y, offset_points, text, transform=None, **kwargs):
    """``text`` at (x, y) in ``transform`` (default: axes fraction), moved by ``offset_points`` on the page."""
    from matplotlib.transforms import ScaledTranslation

    base = ax.transAxes if transform is None else transform
    dx, dy = offset_points
    shift = ScaledTranslation(dx / L.POINTS_PER_INCH, dy / L.POINTS_PER_INCH, ax.figure.dpi_scale_trans)
    return ax.text(x, y, text, transform=base + shift, clip_on=False, **kwargs)


def _x_ticks(ax, xs, labels, side: str, highlight=None, label: str = "_tick", fontsize: float = L.FONT):
    """Tick marks at data ``xs`` on the top or bottom edge, with horizontal (top) or rotated (bottom) labels.

    ``labels`` None: marks only.  ``highlight[i]``: label drawn bold in the SNP colour.
    """
    from matplotlib.lines import TICKDOWN, TICKUP, Line2D

    top = side == "top"
    y = 1.0 if top else 0.0
    tr = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.add_line(Line2D(list(xs), [y] * len(xs), transform=tr, ls="none", marker=TICKUP if top else TICKDOWN,
                       ms=TICK_LENGTH, mew=0.8, color="black", clip_on=False))
    if labels is None:
        return
    off = (TICK_LENGTH + TICK_PAD) * (1 if top else -1)
    for i, (x, text) in enumerate(zip(xs, labels)):
        hi = bool(highlight[i]) if highlight is not None else False
        _text_at(ax, x, y, (0, off), text, transform=tr, ha="center", va="bottom" if top else "top",
                 rotation=0 if top else 90, fontsize=fontsize, color=SNP_COLOUR if hi else "black",
                 fontweight="bold" if hi else "normal", label=label)


def _y_ticks(ax, ys, labels, fontsize: float = L.FONT):
    """Tick marks and labels at data ``ys`` on the left edge."""
    from matplotlib.lines import TICKLEFT, Line2D

    tr = ax.get_yaxis_transform()  # x in axes fraction, y in data
    ax.add_line(Line2D([0.0] * len(ys), list(ys), transform=tr, ls="none", marker=TICKLEFT, ms=TICK_LENGTH,
                       mew=0.8, color="black", clip_on=False))
    for y, text in zip(ys, labels):
        _text_at(ax, 0.0, y, (-(TICK_LENGTH + TICK_PAD), 0), text, transform=tr, ha="right", va="center_baseline",
                 fontsize=fontsize, label="_ytick")


def lollipop_figure(data, config: PlotConfig = PlotConfig()):
    """The lollipop grid as a matplotlib ``Figure`` (not saved)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .tables import cpg_table, sheet_columns

    columns = sheet_columns(data)
    rows_col = _resolve(config.rows, "cell_line", columns, "--rows")
    cols_col = _resolve(config.cols, "dose", columns, "--cols")
    samples = data.sample_order()
    sheet = data.samples.drop_duplicates("sample").set_index("sample")

    def values(col):
        if col is None:
            return None
        return [s if col == "sample" else sheet.at[s, col] for s in samples]

    grid = L.grid_layout(samples, values(rows_col), values(cols_col), rows_col or "", cols_col or "", wrap=6)
    cpgs = cpg_table(data)
    shown = cpgs[cpgs["note"] != "under_primer"].reset_index(drop=True)
    numbers = [int(c) for c in shown["cpg"]]
    positions = [float(p) for p in shown["pos"]]
    xs = L.cpg_x_positions(positions, config.layout) if numbers else []
    x_of = dict(zip(numbers, xs))
    clones = _panel_data(data)
    geom = L.panel_geometry(xs or [0.0], max([len(v) for v in clones.values()] + [1]))
    pos_digits = max([len(str(int(p))) for p in positions if not math.isnan(p)] + [1])
    snp_cpgs = {int(c) for c, n in zip(shown["cpg"], shown["note"]) if n.startswith("snp:")}
    notes = _legend_notes(cpgs, set(numbers))

    # legend height depends on the figure width (columns, wrapped notes): lay out twice
    fl = L.figure_layout(grid, geom, {s: len(v) for s, v in clones.items()}, position_digits=pos_digits)
    width = fl.width
    n_items = 6 if snp_cpgs else 5
    ncol = L.legend_columns(width - 0.2, n_items)
    chars = max(30, int((width - 0.3) * L.POINTS_PER_INCH / (0.52 * L.FONT)))
    wrapped = [textwrap.fill(n, chars) for n in notes]
    note_lines = sum(w.count("\n") + 1 for w in wrapped)
    legend_h = 0.15 + math.ceil(n_items / ncol) * 0.2 + note_lines * (L.FONT * 1.3 / L.POINTS_PER_INCH) + 0.1
    fl = L.figure_layout(grid, geom, {s: len(v) for s, v in clones.items()}, legend_height=legend_h,
                         position_digits=pos_digits)
    fig = _new_figure(width, fl.height)
    W, H = width, fl.height

    def box(b):
        return (b[0] / W, b[1] / H, b[2] / W, b[3] / H)

    summary = data.summary
    digits = max([len(str(n)) for n in numbers] + [1])
    snp_idx = [i for i, n in enumerate(numbers) if n in snp_cpgs]
    tick_idx = L.label_indices(xs, geom.cpg_pitch, L.label_width(digits), must=snp_idx)
    # rotated position labels only need one line height between them
    ptick_idx = L.label_indices(xs, geom.cpg_pitch, 1.15 * L.FONT / L.POINTS_PER_INCH)
    used_gids: set = set()
    for s in samples:
        if s not in fl.panels:
            continue
        r, _ = grid.cells[s]
        gid = f"panel-{_slug(s)}"
        while gid in used_gids:
            gid += "_"
        used_gids.add(gid)
        ax = fig.add_axes(box(fl.panels[s]), label=f"panel:{s}")
        ax.set_gid(gid)
        sx = fig.add_axes(box(fl.strips[s]), label=f"strip:{s}")
        sx.set_gid("strip-" + gid[len("panel-"):])
        _draw_clones(ax, clones.get(s, []), numbers, x_of, geom, config.sort_clones, snp_cpgs)
        _draw_strip(sx, summary[summary["sample"] == s], numbers, x_of, geom)
        ax.set_xlim(geom.x_min, geom.x_max)
        sx.set_xlim(geom.x_min, geom.x_max)
        ax.set_axis_off()
        _x_ticks(ax, [xs[i] for i in tick_idx], [str(numbers[i]) for i in tick_idx], "top",
                 highlight=[numbers[i] in snp_cpgs for i in tick_idx], label=LABEL_CPG_NUMBER)
        n_used = len(clones.get(s, []))
        m_tot = sum(sum(1 for v in c.calls.values() if v[0] == "M") for c in clones.get(s, []))
        n_tot = sum(sum(1 for v in c.calls.values() if v[0] in "MU") for c in clones.get(s, []))
        pct = f"{100 * m_tot / n_tot:.1f}% methylated" if n_tot else "no CpG called"
        _text_at(ax, 0.5, 1, (0, TICK_LENGTH + TICK_PAD + L.FONT * 1.2 + 2), f"{s}\n{n_used} "
                 f"clone{'s' if n_used != 1 else ''}, {pct}", ha="center", va="bottom", fontsize=L.TITLE_FONT,
                 linespacing=1.15, label=LABEL_TITLE)
        if n_used == 0:
            ax.text(0.5, 0.5, "no clone passed QC", transform=ax.transAxes, ha="center", va="center",
                    fontsize=L.FONT, color=ND_COLOUR)
        last_row = r == grid.n_rows - 1
        _x_ticks(sx, [xs[i] for i in ptick_idx], [str(int(positions[i])) for i in ptick_idx] if last_row else None,
                 "bottom", label=LABEL_CPG_POSITION)
        if last_row:
            # under the rotated labels: they are as tall as the widest position is long
            drop = TICK_LENGTH + TICK_PAD + pos_digits * DIGIT_EM * L.FONT + 2
            _text_at(sx, 0.5, 0, (0, -drop), "CpG position", ha="center", va="top", fontsize=L.FONT)
    for label, y in zip(grid.row_labels, fl.row_label_y):
        if label:
            fig.text(0.06 / W, y / H, label, rotation=90, ha="left", va="center", fontsize=L.LABEL_FONT,
                     fontweight="bold")
    seen_cols: set = set()
    for c, (label, x) in enumerate(zip(grid.col_labels, fl.col_label_x)):
        if label and label not in seen_cols:
            # replicates share one header, centred over their columns
            span = [xx for lab, xx in zip(grid.col_labels, fl.col_label_x) if lab == label]
            seen_cols.add(label)
            fig.text(sum(span) / len(span) / W, fl.col_label_top / H, label, ha="center", va="center",
                     fontsize=L.LABEL_FONT, fontweight="bold")
    # legend
    lx = fig.add_axes(box(fl.legend_box), label="legend")
    lx.set_gid("legend")
    lx.set_axis_off()
    ms = max(4.0, min(7.0, geom.circle_diameter * L.POINTS_PER_INCH))
    handles = [
        Line2D([], [], marker="o", ls="", mfc="black", mec="black", ms=ms, label="methylated (M)"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="black", ms=ms, label="unmethylated (U)"),
        Line2D([], [], marker="x", ls="", color=ND_COLOUR, ms=ms * 0.7, label="not determined"),
        Line2D([], [], color="black", lw=0.8, label="clone (blank: not covered)"),
        Patch(facecolor="#7F7F7F", edgecolor="none", label="% methylated per CpG"),
    ]
    if snp_cpgs:
        handles.insert(3, Line2D([], [], marker="^", ls="", mfc=SNP_COLOUR, mec=SNP_COLOUR, ms=ms * 0.8,
                                 label="SNP allele (CpG destroyed)"))
    lx.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=L.FONT, frameon=False,
                    bbox_to_anchor=(0, 1), borderaxespad=0.2, handletextpad=0.4, columnspacing=1.2)
    rows_h = 0.15 + math.ceil(n_items / ncol) * 0.2
    lx.text(0.0, 1 - rows_h / fl.legend_box[3], "\n".join(wrapped), transform=lx.transAxes, va="top", ha="left",
            fontsize=L.FONT, color="#333333", linespacing=1.25)
    return fig


def _draw_clones(ax, clones: list, numbers: list, x_of: dict, geom, sort: bool, snp_cpgs: set) -> None:
    order = L.order_clones([c.fraction for c in clones], sort)
    cat = {"M": ([], []), "U": ([], []), "-": ([], []), "snp": ([], [])}
    segments = []
    for row, i in enumerate(order):
        c = clones[i]
        covered = [x_of[n] for n in numbers if n in c.calls and c.calls[n][1] != "not_covered"]
        if covered:
            segments.append(((min(covered), row), (max(covered), row)))
        for n in numbers:
            call, why = c.calls.get(n, ("-", "not_covered"))
            if why == "not_covered" or why == "under_primer":
                continue
            key = call if call in ("M", "U") else ("snp" if why == "snp" else "-")
            cat[key][0].append(x_of[n])
            cat[key][1].append(row)
    from matplotlib.collections import LineCollection

    lw = geom.line_width
    ax.add_collection(LineCollection(segments, colors="black", linewidths=lw, zorder=1))
    s = geom.marker_size
    edge = max(0.4, min(0.9, lw))
    ax.scatter(*cat["U"], s=s, facecolors="white", edgecolors="black", linewidths=edge, zorder=2)
    ax.scatter(*cat["M"], s=s, facecolors="black", edgecolors="black", linewidths=edge, zorder=2)
    ax.scatter(*cat["-"], s=s * 0.45, c=ND_COLOUR, marker="x", linewidths=edge, zorder=2)
    ax.scatter(*cat["snp"], s=s * 0.8, c=SNP_COLOUR, marker="^", linewidths=0, zorder=2)
    ax.set_ylim(max(1, len(clones)) - 0.5, -0.5)  # first clone on top


def _draw_strip(sx, summary, numbers: list, x_of: dict, geom) -> None:
    from matplotlib.collections import PolyCollection

    pct = {int(c): p for c, p in zip(summary["cpg"], summary["percent"])}
    xs = [x_of[n] for n in numbers if n in pct and not math.isnan(pct[n])]
    hs = [pct[n] for n in numbers if n in pct and not math.isnan(pct[n])]
    # one collection, not a Rectangle artist per bar: drawing hundreds of patches cost a tenth of a second
    bars = [[(x - 0.4, 0), (x + 0.4, 0), (x + 0.4, h), (x - 0.4, h)] for x, h in zip(xs, hs)]
    sx.add_collection(PolyCollection(bars, facecolors="#7F7F7F", edgecolors="none", linewidths=0))
    sx.set_ylim(0, 100)
    sx.xaxis.set_visible(False)
    sx.yaxis.set_visible(False)
    _y_ticks(sx, [0, 100], ["0", "100%"])
    for side in ("top", "right"):
        sx.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        sx.spines[side].set_linewidth(0.6)


# =============================================================================================
# dose-response


def _clip(x: float) -> float:
    return x if math.isnan(x) else min(100.0, max(0.0, x))


def dose_response_table(data, dose: str, line: Optional[str]):
    """Per (cell line, dose): clones, mean per-clone % with 95 % t CI, pooled % with Wilson 95 % CI."""
    import pandas as pd
    from scipy.special import stdtrit

    from .stats import wilson_ci
    from .tables import clone_table, order_levels

    clones = clone_table(data)
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
                         "pooled_low": 100 * lo, "pooled_high": 100 * hi, "values": list(f)})
    return pd.DataFrame(rows)


def _shift_points(ax, fig, xs, points):
    """Data x of ``xs`` moved by ``points`` (typographic points) on screen; the axes limits must be fixed."""
    import numpy as np

    xs = np.asarray(xs, float)
    disp = ax.transData.transform(np.column_stack([xs, np.zeros_like(xs)]))
    disp[:, 0] += np.asarray(points, float) * fig.dpi / 72.0
    return ax.transData.inverted().transform(disp)[:, 0]


def dose_response_figure(data, config: PlotConfig = PlotConfig()):
    """Percent methylation vs dose, one line per cell line; ``None`` when there is no dose column."""
    import numpy as np
    from matplotlib.transforms import offset_copy

    from .tables import is_numeric_levels, order_levels, sheet_columns

    columns = sheet_columns(data)
    dose = _resolve(config.dose, "dose", columns, "--dose")
    line = _resolve(config.cell_line, "cell_line", columns, "--cell-line")
    if dose is None:
        return None
    table = dose_response_table(data, dose, line)
    if table.empty:
        return None
    levels = order_levels(table["dose"])
    numeric = is_numeric_levels(levels)
    xval = {lv: (float(lv) if numeric else float(i)) for i, lv in enumerate(levels)}
    fig = _new_figure(5.6, 4.2)
    ax = fig.add_axes((0.12, 0.25, 0.60, 0.68), label="dose_response")
    ax.set_gid("dose-response")
    pos = sorted(v for v in xval.values() if v > 0)
    if numeric and pos and max(xval.values()) / pos[0] >= 10:
        # doses such as 0, 1, 3, 10 crowd on a linear axis; symlog keeps 0 and spreads the rest
        ax.set_xscale("symlog", linthresh=pos[0], linscale=0.6)
    # artists below are drawn with offset transforms, which autoscaling ignores: anchor the limits here
    ax.plot(list(xval.values()), [50] * len(xval), alpha=0)
    ax.margins(x=0.1)
    ax.set_xlim(*ax.get_xlim())  # freeze: the clone dots are placed in display space below
    rng = np.random.default_rng(0)  # deterministic jitter of the clone dots
    lines = list(dict.fromkeys(table["cell_line"]))
    n_lines = len(lines)
    for j, lv in enumerate(lines):
        g = table[table["cell_line"] == lv]
        colour = LINE_COLOURS[j % len(LINE_COLOURS)]
        shift = (j - (n_lines - 1) / 2) * 7.0  # points: side by side so the error bars do not hide each other
        tr = offset_copy(ax.transData, fig=fig, x=shift, y=0, units="points")
        trp = offset_copy(ax.transData, fig=fig, x=shift + 3.5, y=0, units="points")
        x = [xval[d] for d in g["dose"]]
        for xv, vals in zip(x, g["values"]):
            if not vals:
                continue
            # jitter in points (not dose units) so that it looks the same on linear and symlog axes
            jit = shift - 3.5 + rng.uniform(-1.5, 1.5, len(vals))
            ax.scatter(_shift_points(ax, fig, [xv] * len(vals), jit), vals, s=5, color=colour, alpha=0.35,
                       linewidths=0)
        yerr = np.array([g["mean"] - g["mean_low"], g["mean_high"] - g["mean"]])
        ax.errorbar(x, g["mean"], yerr=np.nan_to_num(yerr), transform=tr, color=colour, marker="o", ms=5,
                    lw=1.4, capsize=2.5, label=(str(lv) if lv != "" else "all clones"))
        perr = np.array([g["pooled"] - g["pooled_low"], g["pooled_high"] - g["pooled"]])
        ax.errorbar(x, g["pooled"], yerr=np.nan_to_num(perr), transform=trp, color=colour, marker="s", ms=4,
                    mfc="white", ls="none", lw=0.8, capsize=1.5)
    ax.set_xticks([xval[lv] for lv in levels], [str(lv) for lv in levels])
    ax.set_ylim(-3, 103)
    ax.set_xlabel(dose, fontsize=9)
    ax.set_ylabel("% methylation", fontsize=9)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(title=line or None, fontsize=8, title_fontsize=8, frameon=False, loc="upper left",
                    bbox_to_anchor=(1.02, 1.0))
    caption = ("Filled circles and lines: mean of per-clone % methylation, 95 % t CI (clone = unit). "
               "Open squares: pooled CpG calls, Wilson 95 % CI. Faint dots: single clones.")
    fig.text(0.12, 0.04, textwrap.fill(caption, 90), fontsize=7, va="bottom", ha="left", color="#333333")
    return fig


# =============================================================================================
# saving


def format_names(formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` as bsmeth names them ("PNG", ".png" -> "png"); an unknown one raises ``InputError``."""
    from .errors import InputError

    names = tuple(f.lower().lstrip(".") for f in formats)
    for given, name in zip(formats, names):
        if name not in FORMATS:
            raise InputError(f"format {given!r}: choose from {', '.join(FORMATS)}")
    return names


def save_figure(fig, stem: str | os.PathLike, formats: Sequence[str] = FORMATS, tight: bool = True) -> list[Path]:
    """Write ``<stem>.<fmt>`` for every format, atomically and byte-for-byte reproducibly.

    ``tight``: crop to the drawn content (costs one extra draw); off for figures whose layout already
    fits their content exactly (the lollipop grid: its overlap test checks that every text lies inside).
    """
    import matplotlib

    from .atomic import write_with as write_with_atomic

    out = []
    bbox = None
    for fmt in format_names(formats):
        path = Path(f"{stem}.{fmt}")
        meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {"Software": None}}[fmt]
        if bbox is None and tight:  # the tight box costs a full draw: measure it once for every format
            bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.06)
        kwargs = dict(format=fmt, bbox_inches=bbox, metadata=meta)
        if fmt == "png":
            kwargs["dpi"] = PNG_DPI
        # fixed hash salt: SVG clip-path ids are otherwise random, and outputs must be deterministic
        with matplotlib.rc_context({"svg.hashsalt": "bsmeth", "svg.fonttype": "none", "pdf.fonttype": 42}):
            write_with_atomic(path, lambda fh: fig.savefig(fh, **kwargs))
        out.append(path)
    return out


def figure_png_bytes(fig, dpi: int = 110, tight: bool = True) -> bytes:
    """PNG of ``fig``; ``tight=False`` for figures laid out edge to edge (saves a draw)."""
    import io

    buf = io.BytesIO()
    kwargs = dict(bbox_inches="tight", pad_inches=0.06) if tight else {}
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **kwargs)
    return buf.getvalue()


def _prefix(call_dir, config: PlotConfig) -> str:
    return config.out_prefix if config.out_prefix is not None else str(Path(call_dir)) + os.sep


def figure_name(data, base: str) -> str:
    """A figure's file stem: ``base`` for a run of one amplicon, ``base_<amplicon>`` for one amplicon of a panel
    (``data``: the tables of that amplicon, ``CallData.subset``)."""
    if len(data.run.get("amplicons", [])) <= 1:
        return base
    return f"{base}_{_slug(str((data.run.get('amplicon') or {}).get('name', 'amplicon')))}"


def plot_lollipop(data, config: PlotConfig = PlotConfig(), fig=None) -> list[Path]:
    """Write the lollipop grid of one amplicon's tables (``fig``, or built here) in every format of ``config``."""
    fig = lollipop_figure(data, config) if fig is None else fig
    return save_figure(fig, f"{_prefix(data.directory, config)}{figure_name(data, 'lollipop')}", config.formats,
                       tight=False)


def plot_dose_response(data, config: PlotConfig = PlotConfig()) -> list[Path]:
    """Write one amplicon's dose-response figure in every format; no files when there is no dose column."""
    fig = dose_response_figure(data, config)
    if fig is None:
        return []
    return save_figure(fig, f"{_prefix(data.directory, config)}{figure_name(data, 'dose_response')}", config.formats)


def check_config(config: PlotConfig) -> None:
    """Options that are wrong whatever the data: raised before any work."""
    from .errors import InputError

    if config.layout not in ("equal", "proportional"):
        raise InputError(f"layout {config.layout!r}: choose equal or proportional")
    format_names(config.formats)


def run_plot(call_dir: str | os.PathLike, config: PlotConfig = PlotConfig()) -> list[Path]:
    """Entry point of ``bsmeth plot``: lollipop grid (and dose-response when a dose column exists).

    Returns the written paths.
    """
    from .tables import load_call_dir

    check_config(config)
    paths: list[Path] = []
    for _, data in load_call_dir(call_dir).by_amplicon():
        paths += plot_lollipop(data, config) + plot_dose_response(data, config)
    return paths
