"""Pure layout arithmetic of the lollipop figure (no matplotlib, no pandas).

Pipeline position: used by ``plots`` (the ``plot`` and ``report`` stages,
after ``call``).  Everything here is plain numbers in, plain numbers out, so
the geometry (no overlapping circles, sizes that suit 5 and 40 clones, grid
order) is tested without drawing anything.

Units: CpG x positions are in *cell units* (the minimum centre distance of two
circles is 1.0); sizes are in inches.  A cell unit becomes ``cpg_pitch`` inches
and a clone row ``clone_pitch`` inches; the circle diameter is a fraction of the
smaller of the two, so circles can neither touch along a row nor between rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

# --- typography (points) -------------------------------------------------------------------
FONT = 7.5  # tick labels, legend
TITLE_FONT = 8.0
LABEL_FONT = 9.0  # grid row / column headers
POINTS_PER_INCH = 72.0

# --- sizes (inches) -------------------------------------------------------------------------
MAX_DATA_WIDTH = 4.2  # a panel's CpG axis never grows past this ...
MIN_CPG_PITCH = 0.10  # ... unless the CpGs would come closer than this
MAX_CPG_PITCH = 0.30
MAX_CLONES_HEIGHT = 3.8  # height of the clone rows of the tallest panel
MIN_CLONE_PITCH = 0.085
MAX_CLONE_PITCH = 0.24
CIRCLE_FILL = 0.72  # circle diameter / min(cpg pitch, clone pitch)
STRIP_HEIGHT = 0.42  # per-CpG percent strip under each panel
STRIP_GAP = 0.06
PANEL_TOP = 0.50  # title (2 lines) + CpG number ticks above the clone rows
PANEL_BOTTOM = 0.14  # ticks under the strip
MIN_FIGURE_WIDTH = 3.4  # room for the legend under a single small panel
PANEL_LEFT = 0.42  # strip y tick labels
PANEL_RIGHT = 0.12
ROW_HEADER = 0.30  # grid row labels (e.g. cell line), rotated, left of everything
COL_HEADER = 0.26  # grid column labels (e.g. dose) above the top row
CPG_MARGIN = 0.6  # cell units of empty axis left of the first and right of the last CpG


PROPORTIONAL_WIDTH = 1.5  # a proportional axis is this many times as wide as an equal one


def cpg_x_positions(positions: Sequence[float], mode: str = "equal", min_gap: float = 1.0) -> list[float]:
    """x of each CpG in cell units, first CpG at 0.

    ``equal``: 0, 1, 2, ...  ``proportional``: distances proportional to the amplicon positions, but no two
    centres closer than ``min_gap`` (circles never overlap), and the whole axis ``PROPORTIONAL_WIDTH`` times
    the equal-spacing width.  This is "push apart, then rescale" solved exactly: gap_i = max(min_gap, s * d_i)
    with the scale ``s`` found by bisection so the gaps add up to the target width.  Dense clusters end up at
    ``min_gap``, all other distances stay proportional to each other; the order never changes.
    ``positions`` must be increasing (CpGs in FASTA order).
    """
    n = len(positions)
    if n == 0:
        return []
    if mode == "equal" or n == 1:
        return [float(i) for i in range(n)]
    if mode != "proportional":
        raise ValueError(f"layout must be 'equal' or 'proportional', not {mode!r}")
    pos = [float(p) for p in positions]
    d = [b - a for a, b in zip(pos, pos[1:])]
    if any(g < 0 for g in d):
        raise ValueError("CpG positions must be in increasing order")
    if sum(d) <= 0:
        return [float(i) for i in range(n)]
    target = PROPORTIONAL_WIDTH * (n - 1) * min_gap

    def total(scale: float) -> float:
        return sum(max(min_gap, scale * g) for g in d)

    lo, hi = 0.0, target / min(g for g in d if g > 0)  # at hi every gap is >= target: total(hi) >= target
    for _ in range(200):
        mid = (lo + hi) / 2
        if total(mid) < target:
            lo = mid
        else:
            hi = mid
    out = [0.0]
    for g in d:
        out.append(out[-1] + max(min_gap, hi * g))
    return out


def tick_stride(n_cpgs: int, cpg_pitch: float, fontsize: float = FONT, max_chars: int = 2,
                label_width_in: Optional[float] = None) -> int:
    """Label every k-th CpG (k in 1, 2, 5, 10, ...) so that equally spaced labels do not touch."""
    need = label_width_in if label_width_in is not None else label_width(max_chars, fontsize)
    for k in (1, 2, 5, 10, 20, 50, 100):
        if k * cpg_pitch >= need or k >= n_cpgs:
            return k
    return 100


def label_width(max_chars: int, fontsize: float = FONT) -> float:
    """Inches a horizontal label of ``max_chars`` digits needs, with a small gap."""
    return (max_chars * 0.62 + 0.5) * fontsize / POINTS_PER_INCH


def label_indices(xs: Sequence[float], pitch: float, width: float, must: Sequence[int] = ()) -> list[int]:
    """Which CpGs get a text label so that labels ``width`` inches wide never touch.

    ``must`` (e.g. SNP CpGs) are labelled first.  Equal spacing: every k-th CpG with k from 1, 2, 5, 10, ...
    (regular, easy to read).  Proportional spacing: greedy left to right.  Either way a label that would
    touch an already placed one is dropped.
    """
    n = len(xs)
    if n == 0:
        return []
    steps = [b - a for a, b in zip(xs, xs[1:])]
    if all(abs(d - 1.0) < 1e-9 for d in steps):
        k = tick_stride(n, pitch, label_width_in=width)
        candidates = list(range(0, n, k))
    else:
        candidates = list(range(n))
    placed = sorted(set(i for i in must if 0 <= i < n))
    for i in candidates:
        if all(abs(xs[i] - xs[j]) * pitch >= width for j in placed):
            placed.append(i)
    return sorted(set(placed))


@dataclass(frozen=True)
class PanelGeometry:
    """Sizes (inches) shared by every panel of one figure, so all panels use the same CpG axis."""

    cpg_pitch: float  # inches per cell unit
    clone_pitch: float  # inches per clone row
    circle_diameter: float  # inches
    x_min: float  # axis limits in cell units
    x_max: float
    data_width: float  # axes width in inches (x_max - x_min) * cpg_pitch
    n_cpgs: int

    @property
    def marker_size(self) -> float:
        """matplotlib scatter ``s`` (points squared) for the circles."""
        return (self.circle_diameter * POINTS_PER_INCH) ** 2

    @property
    def line_width(self) -> float:
        """Width (points) of the thin per-clone line."""
        return max(0.4, min(1.0, self.circle_diameter * POINTS_PER_INCH * 0.12))

    def clones_height(self, n_clones: int) -> float:
        return max(1, n_clones) * self.clone_pitch

    def panel_height(self, n_clones: int) -> float:
        """Axes area of one panel: clone rows + gap + strip (no decorations)."""
        return self.clones_height(n_clones) + STRIP_GAP + STRIP_HEIGHT


def panel_geometry(xs: Sequence[float], max_clones: int) -> PanelGeometry:
    """Pitches from the CpG span and the largest clone count of the figure."""
    n = len(xs)
    x_min = (xs[0] if n else 0.0) - CPG_MARGIN
    x_max = (xs[-1] if n else 0.0) + CPG_MARGIN
    units = x_max - x_min
    cpg_pitch = min(MAX_CPG_PITCH, max(MIN_CPG_PITCH, MAX_DATA_WIDTH / units))
    clone_pitch = min(MAX_CLONE_PITCH, max(MIN_CLONE_PITCH, MAX_CLONES_HEIGHT / max(1, max_clones)))
    diameter = CIRCLE_FILL * min(cpg_pitch, clone_pitch)
    return PanelGeometry(cpg_pitch, clone_pitch, diameter, x_min, x_max, units * cpg_pitch, n)


def order_clones(fractions: Sequence[Optional[float]], sort: bool) -> list[int]:
    """Indices of clones top to bottom: input order, or most methylated first (ties keep input order).

    Clones without a fraction (nothing called) go last when sorting.
    """
    idx = list(range(len(fractions)))
    if not sort:
        return idx
    return sorted(idx, key=lambda i: (fractions[i] is None, -(fractions[i] or 0.0)))


@dataclass(frozen=True)
class Grid:
    """Where each sample goes: ``cells[sample] = (row, col)``; labels of rows and columns."""

    n_rows: int
    n_cols: int
    row_labels: tuple[str, ...]  # '' when there is no row variable
    col_labels: tuple[str, ...]
    cells: dict  # sample -> (row, col)

    def samples_in_row(self, r: int) -> list:
        return [s for s, (rr, _) in self.cells.items() if rr == r]


def _number(v) -> Optional[float]:
    try:
        x = float(str(v).strip())
    except ValueError:
        return None
    return None if math.isnan(x) else x


def ordered_levels(values: Sequence[Hashable]) -> list:
    """Numeric order when every value is a number (dose 0, 1, 3, 10), else first-appearance order."""
    distinct = list(dict.fromkeys(values))
    nums = [_number(v) for v in distinct]
    if distinct and all(x is not None for x in nums):
        # ties (e.g. '1' and '1.0') keep their appearance order
        return [v for _, _, v in sorted((x, i, v) for i, (x, v) in enumerate(zip(nums, distinct)))]
    return distinct


def grid_layout(
    samples: Sequence[str],
    row_values: Optional[Sequence] = None,
    col_values: Optional[Sequence] = None,
    row_name: str = "",
    col_name: str = "",
    wrap: int = 4,
) -> Grid:
    """Arrange samples in a grid: rows = levels of the row variable, columns = levels of the column variable.

    Levels are ordered numerically when they are all numbers.  Combinations without a sample stay empty.
    Several samples in one combination (replicates) get adjacent columns under the same column label.
    With neither variable, samples fill rows of ``wrap`` panels in input order.
    """
    samples = list(samples)
    if row_values is None and col_values is None:
        n_cols = max(1, min(wrap, len(samples)))
        cells = {s: (i // n_cols, i % n_cols) for i, s in enumerate(samples)}
        n_rows = max(1, math.ceil(len(samples) / n_cols))
        return Grid(n_rows, n_cols, ("",) * n_rows, ("",) * n_cols, cells)
    rv = list(row_values) if row_values is not None else [""] * len(samples)
    cv = list(col_values) if col_values is not None else [""] * len(samples)
    rows = ordered_levels(rv)
    cols = ordered_levels(cv)
    # replicates: how many samples share (row, col) at most, per column level
    seen: dict = {}
    slot: list[int] = []
    for r, c in zip(rv, cv):
        k = seen.get((r, c), 0)
        slot.append(k)
        seen[(r, c)] = k + 1
    width = {c: max([seen.get((r, c), 0) for r in rows] + [1]) for c in cols}
    start, offset = {}, 0
    col_labels: list[str] = []
    for c in cols:
        start[c] = offset
        offset += width[c]
        label = f"{col_name}={c}" if col_name and col_values is not None else str(c)
        col_labels += [label] * width[c]
    cells = {s: (rows.index(r), start[c] + k) for s, r, c, k in zip(samples, rv, cv, slot)}
    row_labels = tuple((f"{row_name}={r}" if row_name else str(r)) if row_values is not None else "" for r in rows)
    return Grid(len(rows), offset, row_labels, tuple(col_labels), cells)


@dataclass(frozen=True)
class FigureLayout:
    """Absolute placement (inches, origin bottom-left) of every panel of the lollipop figure."""

    width: float
    height: float
    panels: dict  # sample -> (left, bottom, width, height) of the clone axes
    strips: dict  # sample -> (left, bottom, width, height) of the strip axes
    row_label_y: tuple[float, ...]  # centre of each grid row
    col_label_x: tuple[float, ...]  # centre of each grid column
    col_label_top: float
    legend_box: tuple[float, float, float, float]


def position_labels_height(digits: int, fontsize: float = FONT) -> float:
    """Room under the bottom grid row: rotated position labels (digits tall), tick, axis label."""
    return (digits * 0.62 + 0.4) * fontsize / POINTS_PER_INCH + 0.05 + 1.5 * fontsize / POINTS_PER_INCH


def figure_layout(grid: Grid, geom: PanelGeometry, clones: dict, legend_height: float = 0.9,
                  position_digits: int = 4, min_width: float = MIN_FIGURE_WIDTH) -> FigureLayout:
    """Place panels: every grid column is one panel wide, every grid row as tall as its tallest panel.

    Clone rows are top-aligned in their cell and the strip sits right under a panel's own clones, so a
    5-clone panel next to a 40-clone one is short, with circles of the same size.
    """
    has_rows = any(grid.row_labels)
    has_cols = any(grid.col_labels)
    left0 = ROW_HEADER if has_rows else 0.05
    cell_w = PANEL_LEFT + geom.data_width + PANEL_RIGHT
    row_h = []
    for r in range(grid.n_rows):
        tallest = max([geom.panel_height(clones.get(s, 0)) for s in grid.samples_in_row(r)] + [geom.panel_height(1)])
        bottom_extra = position_labels_height(position_digits) if r == grid.n_rows - 1 else 0.0
        row_h.append(PANEL_TOP + tallest + PANEL_BOTTOM + bottom_extra)
    top_extra = COL_HEADER if has_cols else 0.0
    width = max(min_width, left0 + grid.n_cols * cell_w + 0.05)
    height = top_extra + sum(row_h) + legend_height
    panels, strips = {}, {}
    row_centres = []
    y_top = height - top_extra
    for r in range(grid.n_rows):
        cell_top = y_top - PANEL_TOP
        for s in grid.samples_in_row(r):
            _, c = grid.cells[s]
            x = left0 + c * cell_w + PANEL_LEFT
            ch = geom.clones_height(clones.get(s, 0))
            panels[s] = (x, cell_top - ch, geom.data_width, ch)
            strips[s] = (x, cell_top - ch - STRIP_GAP - STRIP_HEIGHT, geom.data_width, STRIP_HEIGHT)
        row_centres.append(y_top - row_h[r] / 2)
        y_top -= row_h[r]
    col_centres = tuple(left0 + c * cell_w + PANEL_LEFT + geom.data_width / 2 for c in range(grid.n_cols))
    legend = (left0, 0.0, width - left0, legend_height)
    return FigureLayout(width, height, panels, strips, tuple(row_centres), col_centres,
                        height - top_extra / 2 if has_cols else height, legend)


def legend_columns(width_in: float, n_items: int, item_width: float = 1.9) -> int:
    return max(1, min(n_items, int(width_in // item_width)))
