"""Pure layout arithmetic of the figures (no drawing library, no pandas, no numpy).

Pipeline position: used by ``plots`` (the ``plot`` and ``report`` stages, after
``call``).  Plain numbers in, plain numbers out, so the geometry (the figure
is exactly the width asked for, no text under 6 pt, no overlapping circles,
equal panels within a row, pages instead of a figure growing without bound)
is tested without drawing anything.

Units: page coordinates are typographic points (1/72 inch), origin top-left,
y growing downwards (as in SVG).  CpG x positions are in *cell units*: two
circle centres are never closer than 1.0; a cell unit becomes ``cpg_pitch``
points.  Text widths come from the advance widths of DejaVu Sans (the font
every output format uses), so labels are placed from the same numbers the
renderers draw with.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

# --- page and type ----------------------------------------------------------------------------
POINTS_PER_INCH = 72.0
MM = POINTS_PER_INCH / 25.4  # points per millimetre
WIDTH_PRESETS_MM = {"single": 89.0, "onehalf": 120.0, "double": 183.0}  # journal columns (Nature's sizes)
MIN_WIDTH_MM = 50.0
MAX_WIDTH_MM = 1000.0
MAX_HEIGHT_MM = 240.0  # a page never grows taller: beyond it the figure continues on another page

MIN_FONT = 6.0  # no text of any figure is smaller than this (journals ask for 5-7 pt at print size)
FONT = 7.0  # tick labels, legend, notes
TITLE_FONT = 7.0  # panel titles (two lines)
HEADER_FONT = 8.0  # grid row / column headers (bold)
LINE_SPACING = 1.2  # baseline distance / font size

# DejaVu Sans metrics (units per em 2048): advance widths of U+0020..U+00FF, regular and bold.
_UPM = 2048.0
ASCENT = 1901 / _UPM
DESCENT = 483 / _UPM
CAP_HEIGHT = 1493 / _UPM
_W_REGULAR = (
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303, 1303, 1303, 1303,
    1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048, 1401, 1405, 1430, 1577, 1294, 1178,
    1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251,
    1403, 799, 690, 799, 1716, 1024, 1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995,
    1298, 1253, 1300, 1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716, 0,
    *([0] * 32),
    651, 821, 1303, 1303, 1303, 1303, 690, 1024, 1024, 2048, 965, 1253, 1716, 739, 2048, 1024, 1024, 1716, 821, 821,
    1024, 1303, 1303, 651, 1024, 821, 965, 1253, 1985, 1985, 1985, 1087, 1401, 1401, 1401, 1401, 1401, 1401, 1995,
    1430, 1294, 1294, 1294, 1294, 604, 604, 604, 604, 1587, 1532, 1612, 1612, 1612, 1612, 1612, 1716, 1612, 1499,
    1499, 1499, 1499, 1251, 1239, 1290, 1255, 1255, 1255, 1255, 1255, 1255, 2011, 1126, 1260, 1260, 1260, 1260, 569,
    569, 569, 569, 1253, 1298, 1253, 1253, 1253, 1253, 1253, 1716, 1253, 1298, 1298, 1298, 1298, 1212, 1300, 1212,
)
_W_BOLD = (
    713, 934, 1067, 1716, 1425, 2052, 1786, 627, 936, 936, 1071, 1716, 778, 850, 778, 748, 1425, 1425, 1425, 1425,
    1425, 1425, 1425, 1425, 1425, 1425, 819, 819, 1716, 1716, 1716, 1188, 2048, 1585, 1561, 1503, 1700, 1399, 1399,
    1681, 1714, 762, 762, 1587, 1305, 2038, 1714, 1741, 1501, 1741, 1577, 1475, 1397, 1663, 1585, 2259, 1579, 1483,
    1485, 936, 748, 936, 1716, 1024, 1024, 1382, 1466, 1214, 1466, 1389, 891, 1466, 1458, 702, 702, 1362, 702, 2134,
    1458, 1407, 1466, 1466, 1010, 1219, 979, 1458, 1335, 1892, 1321, 1335, 1192, 1458, 748, 1458, 1716, 0,
    *([0] * 32),
    713, 934, 1425, 1425, 1303, 1425, 748, 1024, 1024, 2048, 1155, 1323, 1716, 850, 2048, 1024, 1024, 1716, 897, 897,
    1024, 1507, 1303, 778, 1024, 897, 1155, 1323, 2120, 2120, 2120, 1188, 1585, 1585, 1585, 1585, 1585, 1585, 2222,
    1503, 1399, 1399, 1399, 1399, 762, 762, 762, 762, 1716, 1714, 1741, 1741, 1741, 1741, 1741, 1716, 1741, 1663,
    1663, 1663, 1663, 1483, 1511, 1473, 1382, 1382, 1382, 1382, 1382, 1382, 2146, 1214, 1389, 1389, 1389, 1389, 702,
    702, 702, 702, 1407, 1458, 1407, 1407, 1407, 1407, 1407, 1716, 1407, 1458, 1458, 1458, 1458, 1335, 1466, 1335,
)
_W_FALLBACK = 1303  # a digit: characters outside Latin-1 are written as '?' (PDF) or drawn by fallback fonts


def printable(text: str) -> str:
    """``text`` in the characters the figures can set (Latin-1 without control characters); others become '?'."""
    return "".join(ch if 32 <= ord(ch) <= 126 or 160 <= ord(ch) <= 255 else "?" for ch in str(text))


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in points of one line of ``text`` set in DejaVu Sans at ``size`` points."""
    table = _W_BOLD if bold else _W_REGULAR
    units = 0
    for ch in printable(text):
        w = table[ord(ch) - 32]
        units += w if w else _W_FALLBACK
    return units * size / _UPM


def wrap(text: str, width: float, size: float, bold: bool = False) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``width`` points (a single long word may exceed it)."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        current = ""
        for word in para.split(" "):
            trial = f"{current} {word}" if current else word
            if current and text_width(trial, size, bold) > width:
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
    return lines


def fit_text(text: str, width: float, size: float, bold: bool = False) -> str:
    """``text`` shortened with an ellipsis (middle of the text cut) so that it is at most ``width`` points wide."""
    text = printable(text)
    if text_width(text, size, bold) <= width:
        return text
    for keep in range(len(text) - 1, 0, -1):
        head, tail = text[: (keep + 1) // 2], text[len(text) - keep // 2:] if keep // 2 else ""
        trial = f"{head}...{tail}"
        if text_width(trial, size, bold) <= width:
            return trial
    return "..."


def parse_width(value: Optional[str | float]) -> Optional[float]:
    """``--width-mm``: a preset (single, onehalf, double) or millimetres; ``None``/'auto' stays ``None``.

    Raises ``ValueError`` with a message a user can act on.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        mm = float(value)
    else:
        key = str(value).strip().lower()
        if key in ("", "auto"):
            return None
        if key in WIDTH_PRESETS_MM:
            return WIDTH_PRESETS_MM[key]
        try:
            mm = float(key.removesuffix("mm").strip())
        except ValueError:
            raise ValueError(f"width {value!r}: give millimetres or one of "
                             f"{', '.join(f'{k} ({v:g} mm)' for k, v in WIDTH_PRESETS_MM.items())}") from None
    if not (MIN_WIDTH_MM <= mm <= MAX_WIDTH_MM) or math.isnan(mm):
        raise ValueError(f"width {value!r}: must be {MIN_WIDTH_MM:g} to {MAX_WIDTH_MM:g} mm")
    return mm


# --- headers ------------------------------------------------------------------------------------

_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")


def header_text(column: Optional[str], value: Hashable, unit: Optional[str] = None) -> str:
    """A readable grid header for one level of a sample-sheet column.

    A number gets the column's name in front (``dose 10``) and its unit after it, from ``unit`` or from the
    value itself (``10 uM``); text stands alone (``BT474``), since the text names the level already.
    Underscores in the column name read as spaces.
    """
    text = "" if value is None else str(value).strip()
    if not column:
        return text
    m = _NUMBER_UNIT.match(text)
    if m is None:
        return text
    number, own_unit = m.group(1), (m.group(2) or "").strip()
    unit = (unit or "").strip()
    name = str(column).replace("_", " ").strip()
    shown_unit = own_unit or unit
    return f"{name} {number}{' ' + shown_unit if shown_unit else ''}"


def axis_label(column: str, unit: Optional[str] = None) -> str:
    """``dose`` or ``dose (uM)``."""
    name = str(column).replace("_", " ").strip()
    return f"{name} ({unit.strip()})" if unit and unit.strip() else name


# --- CpG x positions ----------------------------------------------------------------------------

LAYOUTS = ("equal", "proportional", "position")
PROPORTIONAL_WIDTH = 1.5  # a proportional or position axis is this many times as wide as an equal one (cells)


def nudge_apart(targets: Sequence[float], min_gap: float) -> list[float]:
    """Positions as close as possible to ``targets`` (least squares) with neighbours at least ``min_gap`` apart.

    ``targets`` must be increasing.  With y_i = x_i - i * min_gap the constraint is y non-decreasing, so the
    answer is the isotonic regression of targets_i - i * min_gap (pool adjacent violators), shifted back.
    Only circles that would overlap move, and each cluster moves symmetrically about its own mean.
    """
    blocks: list[list[float]] = []  # [sum, count]
    for i, t in enumerate(targets):
        blocks.append([t - i * min_gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    out: list[float] = []
    for s, n in blocks:
        out += [s / n] * int(n)
    return [y + i * min_gap for i, y in enumerate(out)]


def cpg_x_positions(positions: Sequence[float], mode: str = "equal", min_gap: float = 1.0) -> list[float]:
    """x of each CpG in cell units, first CpG at (or near) 0.

    ``equal``: 0, 1, 2, ...  ``proportional``: distances proportional to the amplicon positions, but no two
    centres closer than ``min_gap``, and the whole axis ``PROPORTIONAL_WIDTH`` times the equal-spacing width:
    gap_i = max(min_gap, s * d_i), ``s`` found by bisection so the gaps add up to that width (small gaps are
    inflated, the others stay proportional to each other).  ``position`` (QUMA's position layout): x is the
    position on a linear bp scale of the same width, circles nudged apart (least squares) only where they
    would overlap, so that the bp scale stays true everywhere else.
    ``positions`` must be increasing (CpGs in FASTA order).
    """
    n = len(positions)
    if mode not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {mode!r}")
    if n == 0:
        return []
    if mode == "equal" or n == 1:
        return [float(i) for i in range(n)]
    pos = [float(p) for p in positions]
    d = [b - a for a, b in zip(pos, pos[1:])]
    if any(g < 0 for g in d):
        raise ValueError("CpG positions must be in increasing order")
    if sum(d) <= 0:
        return [float(i) for i in range(n)]
    target = PROPORTIONAL_WIDTH * (n - 1) * min_gap
    if mode == "position":
        scale = target / (pos[-1] - pos[0])
        return nudge_apart([(p - pos[0]) * scale for p in pos], min_gap)

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


def bp_per_cell(positions: Sequence[float], xs: Sequence[float]) -> Optional[float]:
    """bp per cell unit of a ``position`` axis (the scale its scale bar shows); None for fewer than two CpGs."""
    if len(positions) < 2 or positions[-1] == positions[0]:
        return None
    return (positions[-1] - positions[0]) / (PROPORTIONAL_WIDTH * (len(positions) - 1))


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``limit`` (a scale bar length)."""
    if limit <= 0:
        return 0.0
    k = math.floor(math.log10(limit))
    for m in (5, 2, 1):
        if m * 10 ** k <= limit:
            return float(m * 10 ** k)
    return float(10 ** k)


def label_indices(xs: Sequence[float], pitch: float, width: float, must: Sequence[int] = ()) -> list[int]:
    """Which CpGs get a text label so that labels ``width`` points wide never touch (``pitch``: points/cell).

    ``must`` (e.g. SNP CpGs) are labelled first.  Equal spacing: every k-th CpG with k from 1, 2, 5, 10, ...
    (regular, easy to read).  Other spacings: greedy left to right.  Either way a label that would touch an
    already placed one is dropped.
    """
    n = len(xs)
    if n == 0:
        return []
    steps = [b - a for a, b in zip(xs, xs[1:])]
    if all(abs(d - 1.0) < 1e-9 for d in steps):
        k = next((k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k * pitch >= width or k >= n), 1000)
        candidates = list(range(0, n, k))
    else:
        candidates = list(range(n))
    placed = sorted(set(i for i in must if 0 <= i < n))
    for i in candidates:
        if all(abs(xs[i] - xs[j]) * pitch >= width for j in placed):
            placed.append(i)
    return sorted(set(placed))


def order_clones(fractions: Sequence[Optional[float]], sort: bool) -> list[int]:
    """Indices of clones top to bottom: input order, or most methylated first (ties keep input order).

    Clones without a fraction (nothing called) go last when sorting.
    """
    idx = list(range(len(fractions)))
    if not sort:
        return idx
    return sorted(idx, key=lambda i: (fractions[i] is None, -(fractions[i] or 0.0)))


# --- clone rows: allele groups and the dendrogram -------------------------------------------------

ORDERS = ("input", "methylation", "cluster")  # --order: rows of a clone panel, within each allele group
DENDROGRAM_GAP = 2.0  # points between a panel's data area and its dendrogram's leaves
DENDROGRAM_WIDTH = 18.0  # points from the leaves (height 0) to the panel's highest merge
BRACKET_GAP = 2.0  # points between a panel's data area and the bracket of an allele group
BRACKET_TICK = 1.5  # the bracket's ends point this far towards the rows
LABEL_GAP = 1.5  # between the bracket and its label


def row_y(top: float, pitch: float, row: float, start: int = 0) -> float:
    """y (points) of the centre of clone row ``row`` (0 = the panel's first) in a slice drawn from row ``start``
    with its first row's top edge at ``top``."""
    return top + (row - start + 0.5) * pitch


def dendrogram_room(drawn: bool) -> float:
    """Width (points) a panel's dendrogram adds right of its data area: nothing when none is drawn."""
    return DENDROGRAM_GAP + DENDROGRAM_WIDTH if drawn else 0.0


def dendrogram_lines(segments: Sequence[tuple[float, float, float, float]], max_height: float, right: float,
                     top: float, pitch: float, start: int = 0, stop: Optional[int] = None
                     ) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """A dendrogram's segments (row0, height0, row1, height1: ``patterns.dendrogram_segments``) as page lines
    right of a panel whose data area ends at x = ``right``: leaves (height 0) at ``right + DENDROGRAM_GAP``,
    the panel's highest merge ``max_height`` at ``DENDROGRAM_WIDTH`` further right, row r at ``row_y``.

    Only rows ``start``..``stop`` (a slice of a panel continued on another page) are drawn: a line along a row
    is kept when its row lies in the slice, a line across rows is cut at the slice's edges (half a row beyond
    its first and last rows)."""
    x0 = right + DENDROGRAM_GAP
    scale = DENDROGRAM_WIDTH / max_height if max_height > 0 else 0.0
    lo = start - 0.5
    hi = math.inf if stop is None else stop - 0.5
    out = []
    for r0, h0, r1, h1 in segments:
        if r0 == r1:
            if not lo <= r0 < hi:
                continue
            a, b = r0, r1
        else:
            a, b = max(min(r0, r1), lo), min(max(r0, r1), hi)
            if a >= b:
                continue
        out.append(((x0 + h0 * scale, row_y(top, pitch, a, start)), (x0 + h1 * scale, row_y(top, pitch, b, start))))
    return out


def adjacent_merge_heights(segments: Sequence[tuple[float, float, float, float]], rows: int
                           ) -> list[Optional[float]]:
    """Per row: the height at which the dendrogram joins it with the next row (the lowest bar across the gap
    between them), None when no bar crosses it (the last row of a group, rows not clustered).  With the row
    order these heights give the whole dendrogram back (split at the highest gap, recursively)."""
    out: list[Optional[float]] = [None] * rows
    for r0, h0, r1, h1 in segments:
        if r0 == r1 or h0 != h1:
            continue
        a, b = min(r0, r1), max(r0, r1)
        for k in range(max(0, math.ceil(a - 0.5)), min(rows - 1, math.floor(b - 0.5)) + 1):
            if a < k + 0.5 < b and (out[k] is None or h0 < out[k]):
                out[k] = h0
    return out


@dataclass(frozen=True)
class GroupMark:
    """The bracket and label of one allele group beside a panel's rows (points)."""

    label: str
    x: float  # the bracket's vertical line
    y0: float  # its ends
    y1: float
    tick: float  # x its ends point to (towards the rows)
    label_x: float  # right end of the label
    label_y: float  # vertical middle of the label's capitals (``Text`` va='middle')


def label_extent(size: float = FONT) -> tuple[float, float]:
    """(above, below) the anchor of a one-line label drawn with va='middle': the ink box ``scene.text_box``
    reserves (capitals and ascenders up to 0.76 em above the baseline, descenders below it)."""
    base = CAP_HEIGHT * size / 2
    return 0.76 * size - base, base + DESCENT * size


def group_marks(groups: Sequence[tuple[str, int, int]], left: float, top: float, pitch: float, start: int = 0,
                stop: Optional[int] = None, lo: Optional[float] = None, hi: Optional[float] = None,
                size: float = FONT) -> list[GroupMark]:
    """Brackets left of a panel's data area (which starts at x = ``left``), one per group (label, first row,
    end row) over the rows it spans in the slice ``start``..``stop``, each with its label right-aligned beside
    it, vertically centred on the group.  Labels of small groups are moved apart (least squares,
    ``nudge_apart``) so that none overlaps another, and kept within ``lo``..``hi`` (points) where they fit."""
    stop = max((g[2] for g in groups), default=0) if stop is None else stop
    inset = min(1.0, 0.15 * pitch)
    x = left - BRACKET_GAP
    spans = [(lab, max(a, start), min(b, stop)) for lab, a, b in groups]
    spans = [s for s in spans if s[1] < s[2]]
    up, down = label_extent(size)
    targets = [(row_y(top, pitch, a, start) + row_y(top, pitch, b - 1, start)) / 2 for _, a, b in spans]
    ys = nudge_apart(targets, up + down + 0.5) if targets else []
    if ys:
        low = lo if lo is not None else -math.inf
        high = hi if hi is not None else math.inf
        shift = 0.0
        if ys[-1] + down > high:
            shift = high - (ys[-1] + down)
        if ys[0] - up + shift < low:
            shift = low - (ys[0] - up)
        ys = [y + shift for y in ys]
    out = []
    for (lab, a, b), y in zip(spans, ys):
        y0 = top + (a - start) * pitch + inset
        y1 = top + (b - start) * pitch - inset
        out.append(GroupMark(lab, x, y0, y1, x + BRACKET_TICK, x - LABEL_GAP, y))
    return out


# --- deep data: epialleles ----------------------------------------------------------------------

TOP_EPIALLELES = 10  # rows of a deep-data panel: the most frequent patterns ...
MIN_EPIALLELE_SHARE = 0.01  # ... that reach this share of the sample's molecules; the rest pooled in one row


def epiallele_rows(counts: Sequence[int], top: int = TOP_EPIALLELES,
                   min_share: float = MIN_EPIALLELE_SHARE) -> tuple[list[int], int]:
    """(indices of the patterns drawn as rows, most frequent first (ties keep input order), molecules pooled
    into the last row).  At most ``top`` rows, each at least ``min_share`` of all molecules."""
    total = sum(counts)
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    shown = [i for i in order[:top] if total and counts[i] >= min_share * total]
    return shown, total - sum(counts[i] for i in shown)


def share_label(fraction: float) -> str:
    """A row's share of the molecules in at most four characters (it sits in the strip-label column):
    '37%', '4.2%', '0.3%', '<.1%'."""
    pct = 100 * fraction
    if pct >= 9.95:
        return f"{pct:.0f}%"
    if pct >= 0.05:
        return f"{pct:.1f}%"
    return "<.1%" if pct > 0 else "0%"


DEEP_ROW = FONT * LINE_SPACING  # a deep-data row: tall enough for its share label


def grey_for(fraction: float) -> str:
    """The fill of a pooled call: white at 0 % methylated, black at 100 % (sRGB grey)."""
    v = round(255 * (1 - min(1.0, max(0.0, fraction))))
    return f"#{v:02X}{v:02X}{v:02X}"


# --- grid ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """Where each sample goes: ``cells[sample] = (row, col)``; headers of rows and columns."""

    n_rows: int
    n_cols: int
    row_labels: tuple[str, ...]  # '' when there is no row variable
    col_labels: tuple[str, ...]
    cells: dict  # sample -> (row, col)

    def samples_in_row(self, r: int) -> list:
        return [s for s, (rr, _) in self.cells.items() if rr == r]


def _number(v) -> Optional[float]:
    m = _NUMBER_UNIT.match(str(v))
    if m is None:
        return None
    x = float(m.group(1))
    return None if math.isnan(x) else x


def ordered_levels(values: Sequence[Hashable]) -> list:
    """Numeric order when every value is a number, with or without a unit (dose 0, 1, 3, 10), else
    first-appearance order."""
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
    units: Optional[dict] = None,
) -> Grid:
    """Arrange samples in a grid: rows = levels of the row variable, columns = levels of the column variable.

    Levels are ordered numerically when they are all numbers.  Combinations without a sample stay empty.
    Several samples in one combination (replicates) get adjacent columns under the same column header.
    With neither variable, samples fill rows of ``wrap`` panels in input order.  Headers come from
    ``header_text``; ``units`` maps (column, level) to a unit (e.g. from a ``dose_unit`` sheet column).
    """
    samples = list(samples)
    units = units or {}
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
        label = header_text(col_name, c, units.get((col_name, c))) if col_values is not None else ""
        col_labels += [label] * width[c]
    cells = {s: (rows.index(r), start[c] + k) for s, r, c, k in zip(samples, rv, cv, slot)}
    row_labels = tuple(header_text(row_name, r, units.get((row_name, r))) if row_values is not None else ""
                       for r in rows)
    return Grid(len(rows), offset, row_labels, tuple(col_labels), cells)


# --- lollipop pages -----------------------------------------------------------------------------

# sizes in points
MAX_CPG_PITCH = 14.0  # a narrow amplicon in a wide figure does not get huge circles
MAX_CLONE_PITCH = 14.0
MIN_CLONE_PITCH = 2.5
MAX_CLONES_HEIGHT = 200.0  # clone rows of the tallest panel, while the clone pitch can still shrink
CIRCLE_FILL = 0.74  # circle diameter / min(cpg pitch, clone pitch): circles never touch
STRIP_HEIGHT = 18.0  # per-CpG percent strip under each panel
STRIP_GAP = 3.0
TICK = 2.0  # tick length
TICK_PAD = 1.0
PANEL_GAP_X = 6.0  # between neighbouring panels
BAND_GAP = 6.0  # between bands (grid rows)
MARGIN = 3.0  # around the page
CPG_MARGIN = 0.6  # cell units of empty axis left of the first and right of the last CpG
MIN_DATA_WIDTH = 40.0  # a panel's CpG axis is never narrower (nor under MIN_CPG_PITCH a cell): more columns
MIN_CPG_PITCH = 2.4  # than fit wrap to another band
LEGEND_ITEM_GAP = 10.0


def strip_label_width(size: float = FONT) -> float:
    """Room left of a panel for the strip's '100%' label and its tick."""
    return text_width("100%", size) + TICK + TICK_PAD + 1.0


def title_height(lines: int = 2, size: float = TITLE_FONT) -> float:
    return lines * size * LINE_SPACING


def numbers_height(size: float = FONT) -> float:
    """CpG numbers above the clone rows: tick, pad, one line of digits."""
    return TICK + TICK_PAD + size * LINE_SPACING


def positions_height(digits: int, size: float = FONT, scale_bar: bool = False) -> float:
    """Under a strip: rotated position labels (as tall as the widest position is wide), then 'CpG position';
    a scale bar adds a line."""
    rotated = digits * text_width("0", size) + TICK + TICK_PAD + 1.0
    return rotated + size * LINE_SPACING + (size * LINE_SPACING + 3.0 if scale_bar else 0.0)


@dataclass(frozen=True)
class PanelGeometry:
    """Sizes (points) shared by every panel of one figure, so all panels use the same CpG axis and circles."""

    cpg_pitch: float  # points per cell unit
    clone_pitch: float  # points per clone row
    circle_diameter: float
    x_min: float  # axis limits in cell units
    x_max: float
    data_width: float  # (x_max - x_min) * cpg_pitch
    n_cpgs: int

    @property
    def line_width(self) -> float:
        """Width (points) of the thin per-clone line."""
        return max(0.3, min(0.9, self.circle_diameter * 0.12))

    @property
    def edge_width(self) -> float:
        return max(0.3, min(0.8, self.circle_diameter * 0.1))

    def x(self, cell: float) -> float:
        """Points from the left edge of a panel's data area."""
        return (cell - self.x_min) * self.cpg_pitch


def panel_geometry(xs: Sequence[float], max_clones: int, data_width: float,
                   min_row: Optional[float] = None) -> PanelGeometry:
    """Pitches from the CpG span, the panel's data width (points) and the figure's largest clone count.
    ``min_row``: rows at least this tall (deep data: each row carries a label of ``FONT`` size)."""
    n = len(xs)
    x_min = (xs[0] if n else 0.0) - CPG_MARGIN
    x_max = (xs[-1] if n else 0.0) + CPG_MARGIN
    units = x_max - x_min
    cpg_pitch = min(MAX_CPG_PITCH, data_width / units)
    width = units * cpg_pitch
    clone_pitch = min(MAX_CLONE_PITCH, max(cpg_pitch, MIN_CLONE_PITCH),
                      max(MIN_CLONE_PITCH, MAX_CLONES_HEIGHT / max(1, max_clones)))
    if min_row is not None:
        clone_pitch = max(clone_pitch, min_row)
    diameter = CIRCLE_FILL * min(cpg_pitch, clone_pitch)
    return PanelGeometry(cpg_pitch, clone_pitch, diameter, x_min, x_max, width, n)


@dataclass(frozen=True)
class PanelBox:
    """One panel (or one slice of a tall panel) on a page.  ``left``: left edge of the data area;
    ``top``: top of the clone rows; ``rows``: clone-row slots of its band (the same for every panel of a
    band, so strips line up); clones ``start``..``stop`` of ``total`` are drawn."""

    sample: str
    left: float
    top: float
    rows: int
    start: int
    stop: int
    total: int
    strip_top: Optional[float]  # None: a slice continued on the next page carries no strip
    positions: bool  # position labels under this panel (nothing below it on the page)


@dataclass(frozen=True)
class Header:
    text: str
    x: float
    y: float  # baseline
    rotated: bool = False


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    panels: tuple[PanelBox, ...]
    headers: tuple[Header, ...]
    legend_top: float


@dataclass(frozen=True)
class LollipopLayout:
    geometry: PanelGeometry
    pages: tuple[Page, ...]
    cols_per_band: int
    title_font: float
    dendrogram: float = 0.0  # points right of each data area taken by a dendrogram (0: none drawn)


@dataclass(frozen=True)
class _Band:
    grid_row: int
    cols: tuple[int, ...]  # grid columns of this band, left to right
    samples: tuple[str, ...]
    start: int  # clone slice of every panel of the band
    stop: int
    rows: int
    strip: bool


def _slices(n: int, per: int) -> list[tuple[int, int]]:
    per = max(1, per)
    return [(a, min(n, a + per)) for a in range(0, max(n, 1), per)] or [(0, 0)]


def lollipop_layout(grid: Grid, xs: Sequence[float], clones: dict, width: float, titles: dict,
                    legend_height: float, position_digits: int = 3, scale_bar: bool = False,
                    max_height: float = MAX_HEIGHT_MM * MM, min_row: Optional[float] = None,
                    dendrogram: bool = False) -> LollipopLayout:
    """Pages of the lollipop grid, ``width`` points wide, none taller than ``max_height``.

    Every panel has the same CpG axis and circle size.  A grid row is a *band*; when the grid has more
    columns than fit (each data area at least ``MIN_DATA_WIDTH`` and ``MIN_CPG_PITCH`` a cell), a grid row wraps
    into several bands, each with its own column headers.  Within a band every panel is as tall as the band's
    largest clone count, clone rows top-aligned, so strips line up.  A band taller than a page is sliced into
    clone ranges (the title says which clones; the strip comes with the last slice).  Bands fill pages top to
    bottom; each page is as tall as its content plus the legend (``legend_height``).  ``titles[sample]``: the
    panel title's lines (for its width; a title wider than its panel is shortened by the caller, see ``fit_text``).
    ``dendrogram``: each panel is ``dendrogram_room(True)`` wider, right of its data area (whose share of the
    width shrinks by as much).
    """
    has_rows = any(grid.row_labels)
    has_cols = any(grid.col_labels)
    left0 = MARGIN + (HEADER_FONT * LINE_SPACING + 2.0 if has_rows else 0.0)
    usable = width - left0 - MARGIN
    extra = dendrogram_room(dendrogram)
    per_panel = strip_label_width() + PANEL_GAP_X + extra
    n_cols = max(1, grid.n_cols)
    units = ((xs[-1] - xs[0]) if len(xs) else 0.0) + 2 * CPG_MARGIN
    min_data = max(MIN_DATA_WIDTH, units * MIN_CPG_PITCH)
    fits = max(1, int((usable + PANEL_GAP_X) // (min_data + per_panel)))
    cols_per_band = min(n_cols, fits)
    cell_w = (usable + PANEL_GAP_X) / cols_per_band
    data_width = max(1.0, cell_w - per_panel)
    max_clones = max([len(v) for v in clones.values()] + [1])
    geom = panel_geometry(list(xs) or [0.0], max_clones, data_width, min_row)
    title_lines = max([len(t) for t in titles.values()] + [1])
    above = title_height(title_lines) + numbers_height() + 2.0
    col_header_h = HEADER_FONT * LINE_SPACING + 2.0 if has_cols else 0.0
    below_h = positions_height(position_digits, scale_bar=scale_bar)
    strip_h = STRIP_GAP + STRIP_HEIGHT

    # bands, before pagination
    bands: list[_Band] = []
    for r in range(grid.n_rows):
        in_row = grid.samples_in_row(r)
        for c0 in range(0, n_cols, cols_per_band):
            cols = tuple(range(c0, min(n_cols, c0 + cols_per_band)))
            samples = tuple(s for s in in_row if grid.cells[s][1] in cols)
            if not samples and grid.n_rows > 1:
                continue
            n = max([len(clones.get(s, ())) for s in samples] + [1])
            # the tallest slice that fits an otherwise empty page
            room = max_height - legend_height - col_header_h - above - strip_h - below_h - 2 * MARGIN
            per = max(1, int(room // geom.clone_pitch))
            for a, b in _slices(n, per):
                bands.append(_Band(r, cols, samples, a, b, b - a, b >= n))

    def band_height(band: _Band, header: bool, positions: bool) -> float:
        return ((col_header_h if header else 0.0) + above + band.rows * geom.clone_pitch
                + (strip_h if band.strip else 0.0) + (below_h if positions else 0.0))

    # paginate: a band goes on the current page if it fits (with room for position labels under it)
    page_bands: list[list[_Band]] = [[]]
    used = MARGIN
    for band in bands:
        prev = page_bands[-1][-1] if page_bands[-1] else None
        header = has_cols and (prev is None or prev.cols != band.cols)
        h = band_height(band, header, True) + (BAND_GAP if prev else 0.0)
        if prev is not None and used + h + legend_height + MARGIN > max_height:
            page_bands.append([])
            used = MARGIN
            h = band_height(band, has_cols, True)
        page_bands[-1].append(band)
        used += h - below_h  # position labels are counted again only where they are drawn

    pages = []
    for pb in page_bands:
        panels: list[PanelBox] = []
        headers: list[Header] = []
        y = MARGIN
        for k, band in enumerate(pb):
            prev = pb[k - 1] if k else None
            if prev is not None:
                y += BAND_GAP
            if has_cols and (prev is None or prev.cols != band.cols):
                seen: dict = {}
                for j, c in enumerate(band.cols):
                    seen.setdefault(grid.col_labels[c], []).append(j)
                for label, js in seen.items():
                    if label:
                        xc = left0 + (sum(js) / len(js)) * cell_w + strip_label_width() + data_width / 2
                        headers.append(Header(label, xc, y + HEADER_FONT))
                y += col_header_h
            top = y + above
            # a panel carries position labels when no panel of a later band on this page sits in its column
            below_cols = {c for later in pb[k + 1:] for c in
                          (grid.cells[s][1] - later.cols[0] for s in later.samples)}
            positions_here = False
            for s in band.samples:
                j = grid.cells[s][1] - band.cols[0]
                n = len(clones.get(s, ()))
                pos = band.strip and j not in below_cols
                positions_here |= pos
                panels.append(PanelBox(
                    s, left0 + j * cell_w + strip_label_width(), top, band.rows, min(band.start, n),
                    min(band.stop, n), n, top + band.rows * geom.clone_pitch + STRIP_GAP if band.strip else None,
                    pos))
            band_bottom = top + band.rows * geom.clone_pitch + (strip_h if band.strip else 0.0)
            if has_rows:
                label = grid.row_labels[band.grid_row]
                if label:
                    headers.append(Header(label, MARGIN + HEADER_FONT, (y + band_bottom) / 2, rotated=True))
            y = band_bottom + (below_h if positions_here else 0.0)
        y += 4.0
        pages.append(Page(width, y + legend_height + MARGIN, tuple(panels), tuple(headers), y))
    return LollipopLayout(geom, tuple(pages), cols_per_band, TITLE_FONT, extra)


@dataclass(frozen=True)
class LegendLayout:
    items: tuple[tuple[float, float], ...]  # (x of the marker centre, baseline y) per item, relative to the top
    notes: tuple[tuple[str, float], ...]  # (line, baseline y)
    height: float


def legend_layout(labels: Sequence[str], notes: Sequence[str], width: float, marker: float = 8.0,
                  size: float = FONT) -> LegendLayout:
    """Legend items flowed left to right in rows, then the notes wrapped to ``width``."""
    line = size * LINE_SPACING + 1.0
    x, y = 0.0, size
    items = []
    for label in labels:
        w = marker + 3.0 + text_width(label, size)
        if x > 0 and x + w > width:
            x, y = 0.0, y + line
        items.append((x + marker / 2, y))
        x += w + LEGEND_ITEM_GAP
    y += 3.0
    out = []
    for note in notes:
        for ln in wrap(note, width, size):
            y += size * LINE_SPACING
            out.append((ln, y))
    return LegendLayout(tuple(items), tuple(out), y + DESCENT * size + 1.0)


# --- dose-response ------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 x 10^k, about ``target`` of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    k = math.floor(math.log10(raw))
    step = next(m * 10 ** k for m in (1, 2, 5, 10) if m * 10 ** k >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, v = [], first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def categorical_positions(levels: Sequence) -> dict:
    """Dose levels at equally spaced positions 0, 1, 2, ... in numeric order (the dose axis is categorical)."""
    return {lv: float(i) for i, lv in enumerate(ordered_levels(levels))}


def side_by_side(n_groups: int, spacing: float) -> list[float]:
    """Horizontal offsets (points) that put ``n_groups`` series side by side around a category's centre."""
    return [(j - (n_groups - 1) / 2) * spacing for j in range(n_groups)]


def jitter(n: int, width: float, seed: int = 0) -> list[float]:
    """Deterministic offsets in [-width/2, width/2] for ``n`` dots (a fixed low-discrepancy sequence, so
    figures are reproducible without a random generator)."""
    phi = 0.6180339887498949
    return [((seed * 0.37 + (i + 1) * phi) % 1.0 - 0.5) * width for i in range(n)]


@dataclass(frozen=True)
class DoseLayout:
    width: float
    height: float
    plot: tuple[float, float, float, float]  # left, top, width, height of the data area
    legend_left: float
    caption_top: float
    caption: tuple[str, ...]


def dose_layout(width: float, n_levels: int, legend_labels: Sequence[str], caption: str,
                legend_title: str = "") -> DoseLayout:
    """The dose-response figure: data area, legend to its right, caption under the axis label."""
    legend_w = max([text_width(t, FONT) for t in legend_labels] + [text_width(legend_title, FONT, bold=True), 0.0])
    legend_w += 18.0
    left = MARGIN + FONT * LINE_SPACING + text_width("100", FONT) + TICK + TICK_PAD + 4.0
    plot_w = max(60.0, width - left - legend_w - 8.0 - MARGIN)
    plot_h = max(90.0, min(200.0, 0.62 * plot_w))
    top = MARGIN + FONT
    caption_lines = tuple(wrap(caption, width - 2 * MARGIN, FONT))
    caption_top = top + plot_h + TICK + TICK_PAD + 2 * FONT * LINE_SPACING + 4.0
    height = caption_top + len(caption_lines) * FONT * LINE_SPACING + DESCENT * FONT + MARGIN
    return DoseLayout(width, height, (left, top, plot_w, plot_h), left + plot_w + 8.0, caption_top, caption_lines)

