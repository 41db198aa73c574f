"""Pure layout arithmetic of the figures (bsmeth.figures.layout): no drawing involved."""

import itertools
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.figures import layout as L

# --- CpG x positions ---------------------------------------------------------------------------


def test_equal_spacing():
    assert L.cpg_x_positions([10, 11, 500], "equal") == [0.0, 1.0, 2.0]
    assert L.cpg_x_positions([], "equal") == []
    assert L.cpg_x_positions([42], "proportional") == [0.0]
    assert L.cpg_x_positions([42], "position") == [0.0]


@pytest.mark.parametrize("mode", ["proportional", "position"])
@pytest.mark.parametrize("positions", [
    [100, 101, 102, 150, 400],  # a dense cluster, then a long gap
    [35, 37, 39, 41, 43, 45, 47, 300],
    [1, 2],
    [10, 200, 201, 202, 203, 204, 205, 206, 207, 900],
])
def test_spaced_layouts_never_overlap_and_keep_order(positions, mode):
    xs = L.cpg_x_positions(positions, mode)
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert min(gaps) >= 1.0 - 1e-9  # centre distance >= one cell: circles (diameter < 1 cell) never overlap
    if mode == "proportional":
        assert xs[0] == 0.0
        n = len(positions)
        assert xs[-1] == pytest.approx(max(L.PROPORTIONAL_WIDTH * (n - 1), n - 1), rel=1e-6)


def test_proportional_keeps_ratios_of_unclamped_gaps():
    pos = [0, 1, 2, 100, 300]  # gaps 1, 1, 98, 200: the first two are clamped to the minimum
    xs = L.cpg_x_positions(pos, "proportional")
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert gaps[0] == pytest.approx(1.0) and gaps[1] == pytest.approx(1.0)
    assert gaps[3] / gaps[2] == pytest.approx(200 / 98, rel=1e-6)


def test_position_layout_keeps_the_bp_scale_where_circles_do_not_touch():
    pos = [0, 100, 102, 300, 400]  # one tight pair; everything else far apart
    xs = L.cpg_x_positions(pos, "position")
    scale = L.PROPORTIONAL_WIDTH * 4 / 400  # cells per bp
    assert xs[0] == pytest.approx(0.0) and xs[3] == pytest.approx(300 * scale) and xs[4] == pytest.approx(400 * scale)
    # the pair is pushed apart symmetrically about its mean position
    assert xs[2] - xs[1] == pytest.approx(1.0)
    assert (xs[1] + xs[2]) / 2 == pytest.approx(101 * scale)
    assert L.bp_per_cell(pos, xs) == pytest.approx(1 / scale)


def test_nudge_apart_is_least_squares():
    assert L.nudge_apart([0.0, 0.2, 5.0], 1.0) == pytest.approx([-0.4, 0.6, 5.0])
    assert L.nudge_apart([0.0, 0.0, 0.0], 1.0) == pytest.approx([-1.0, 0.0, 1.0])
    assert L.nudge_apart([], 1.0) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=40), st.floats(0.1, 20))
def test_nudge_apart_properties(values, gap):
    targets = sorted(values)
    xs = L.nudge_apart(targets, gap)
    assert all(b - a >= gap - 1e-6 for a, b in zip(xs, xs[1:]))  # never closer than the gap
    assert sum(xs) == pytest.approx(sum(targets), rel=1e-9, abs=1e-6)  # clusters move about their means
    # nothing moves when nothing is too close
    if all(b - a >= gap for a, b in zip(targets, targets[1:])):
        assert xs == pytest.approx(targets)


def test_bad_layout():
    with pytest.raises(ValueError):
        L.cpg_x_positions([5, 3], "proportional")
    with pytest.raises(ValueError):
        L.cpg_x_positions([1, 3], "log")


def test_label_indices_never_touch_and_keep_required():
    xs = L.cpg_x_positions([1, 2, 3, 4, 5, 6, 50, 51, 52, 200], "proportional")
    pitch, width = 10.0, 20.0
    idx = L.label_indices(xs, pitch, width, must=[4])
    assert 4 in idx and 0 in idx
    for a, b in zip(idx, idx[1:]):
        assert (xs[b] - xs[a]) * pitch >= width - 1e-12
    eq = [float(i) for i in range(30)]
    assert L.label_indices(eq, 10, 15) == list(range(0, 30, 2))  # regular stride for equal spacing
    assert L.label_indices(eq, 30, 15) == list(range(30))


def test_order_clones():
    f = [0.2, 0.9, None, 0.9, 0.5]
    assert L.order_clones(f, sort=False) == [0, 1, 2, 3, 4]
    assert L.order_clones(f, sort=True) == [1, 3, 4, 0, 2]  # ties keep input order, None last


# --- text, headers, widths --------------------------------------------------------------------


def test_text_width_uses_the_font_metrics():
    assert L.text_width("000", 10) == pytest.approx(3 * 1303 / 2048 * 10)
    assert L.text_width("W", 10, bold=True) > L.text_width("W", 10)
    assert L.text_width("", 8) == 0
    assert L.printable("a\u03bcM\tx") == "a?M?x" and L.printable("10 \u00b5M") == "10 \u00b5M"


def test_wrap_and_fit():
    lines = L.wrap("one two three four five six seven", 60, 7)
    assert len(lines) > 1 and all(L.text_width(ln, 7) <= 60 for ln in lines)
    assert " ".join(lines) == "one two three four five six seven"
    short = L.fit_text("a_very_long_sample_name_indeed", 50, 7)
    assert L.text_width(short, 7) <= 50 and "..." in short and short.startswith("a_v")
    assert L.fit_text("short", 50, 7) == "short"


@pytest.mark.parametrize("column, value, unit, expected", [
    ("cell_line", "BT474", None, "BT474"),
    ("dose", "10", None, "dose 10"),
    ("dose", 0, None, "dose 0"),
    ("dose", "10", "uM", "dose 10 uM"),
    ("dose", "10 uM", None, "dose 10 uM"),
    ("dose", "10uM", "nM", "dose 10 uM"),  # the value's own unit wins
    ("time_h", "24", None, "time h 24"),
    ("dose", "0.5", "\u00b5g/ml", "dose 0.5 \u00b5g/ml"),
    ("", "x", None, "x"),
    (None, "10", None, "10"),
    ("condition", "treated 2x", None, "treated 2x"),
])
def test_header_text(column, value, unit, expected):
    assert L.header_text(column, value, unit) == expected


def test_parse_width():
    assert L.parse_width("single") == 89 and L.parse_width("DOUBLE") == 183 and L.parse_width("onehalf") == 120
    assert L.parse_width("180") == 180 and L.parse_width("180mm") == 180 and L.parse_width(120.5) == 120.5
    assert L.parse_width(None) is None and L.parse_width("auto") is None
    for bad in ("wide", "10", "5000", "nan"):
        with pytest.raises(ValueError, match="width"):
            L.parse_width(bad)


# --- grid --------------------------------------------------------------------------------------


def test_grid_orders_numeric_levels_numerically():
    samples = ["a10", "a1", "b0", "a0", "b3", "a3"]
    lines = ["A", "A", "B", "A", "B", "A"]
    doses = ["10", "1", "0", "0", "3", "3"]
    g = L.grid_layout(samples, lines, doses, "cell_line", "dose")
    assert g.col_labels == ("dose 0", "dose 1", "dose 3", "dose 10")  # not '0','1','10','3'
    assert g.row_labels == ("A", "B")  # first appearance
    assert g.cells["a0"] == (0, 0) and g.cells["a10"] == (0, 3) and g.cells["b3"] == (1, 2)
    occupied = set(g.cells.values())
    assert (1, 1) not in occupied and (1, 3) not in occupied  # missing combinations stay empty
    assert (g.n_rows, g.n_cols) == (2, 4)
    g = L.grid_layout(samples, lines, doses, "cell_line", "dose", units={("dose", "10"): "nM"})
    assert g.col_labels[-1] == "dose 10 nM"


def test_grid_numeric_with_decimals_units_and_text():
    assert L.ordered_levels(["0.5", "10", "2", "0"]) == ["0", "0.5", "2", "10"]
    assert L.ordered_levels(["10 uM", "1 uM", "0 uM"]) == ["0 uM", "1 uM", "10 uM"]
    assert L.ordered_levels(["high", "low", "high", "mid"]) == ["high", "low", "mid"]
    assert L.ordered_levels(["1", "x", "0"]) == ["1", "x", "0"]  # not all numbers: appearance order


def test_grid_replicates_get_adjacent_columns():
    g = L.grid_layout(["r1", "r2", "s"], None, ["0", "0", "5"], "", "dose")
    assert g.cells == {"r1": (0, 0), "r2": (0, 1), "s": (0, 2)}
    assert g.col_labels == ("dose 0", "dose 0", "dose 5")


def test_grid_without_variables_wraps():
    g = L.grid_layout(["x", "y", "z"])
    assert (g.n_rows, g.n_cols) == (1, 3)
    g = L.grid_layout([f"s{i}" for i in range(8)], wrap=6)
    assert (g.n_rows, g.n_cols) == (2, 6)


# --- pages -------------------------------------------------------------------------------------


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _boxes(lay, page):
    g = lay.geometry
    out = []
    for p in page.panels:
        bottom = (p.strip_top + L.STRIP_HEIGHT) if p.strip_top is not None else p.top + p.rows * g.clone_pitch
        out.append((p.left, p.top, p.left + g.data_width, bottom))
    return out


def _titles(samples):
    return {s: [s, "11 clones, 50.0% methylated"] for s in samples}


@pytest.mark.parametrize("width_mm", [89, 120, 183, 300])
def test_pages_are_the_width_asked_and_panels_disjoint(width_mm):
    samples = [f"{c}{d}" for c in "ab" for d in (0, 1, 3, 10)]
    g = L.grid_layout(samples, [s[0] for s in samples], [s[1:] for s in samples], "cell_line", "dose")
    clones = {s: [None] * (5 + 7 * i) for i, s in enumerate(samples)}
    lay = L.lollipop_layout(g, [float(i) for i in range(25)], clones, width_mm * L.MM, _titles(samples), 40.0)
    assert (lay.geometry.circle_diameter < lay.geometry.cpg_pitch
            and lay.geometry.circle_diameter < lay.geometry.clone_pitch)
    drawn = [p.sample for page in lay.pages for p in page.panels]
    assert sorted(drawn) == sorted(samples)  # each once
    for page in lay.pages:
        assert page.width == pytest.approx(width_mm * L.MM)
        assert page.height <= L.MAX_HEIGHT_MM * L.MM + 1e-6
        boxes = _boxes(lay, page)
        for a, b in itertools.combinations(boxes, 2):
            assert not _overlap(a, b)
        for x0, y0, x1, y1 in boxes:
            assert x0 >= 0 and y0 >= 0 and x1 <= page.width + 1e-9 and y1 <= page.legend_top + 1e-9
    # a narrow page wraps the 4 dose columns instead of squeezing them below the minimum panel width
    assert lay.geometry.data_width >= L.MIN_DATA_WIDTH - 1e-9 or lay.cols_per_band == 1


def test_panels_of_a_band_have_equal_geometry():
    """A 10-clone panel next to 11-clone ones: same top, same strip height (the issue's odd strip)."""
    samples = ["d0", "d1", "d3", "d10"]
    g = L.grid_layout(samples, None, ["0", "1", "3", "10"], "", "dose")
    clones = {"d0": [None] * 11, "d1": [None] * 10, "d3": [None] * 11, "d10": [None] * 3}
    lay = L.lollipop_layout(g, [float(i) for i in range(25)], clones, 183 * L.MM, _titles(samples), 40.0)
    (page,) = lay.pages
    assert len({p.top for p in page.panels}) == 1
    assert len({p.strip_top for p in page.panels}) == 1
    assert {p.rows for p in page.panels} == {11}
    assert [p.stop for p in page.panels] == [11, 10, 11, 3]
    assert all(p.positions for p in page.panels)  # nothing below: every panel carries the position labels


def test_1200_samples_paginate_instead_of_growing():
    samples = [f"s{i:04d}" for i in range(1200)]
    g = L.grid_layout(samples, wrap=6)
    clones = {s: [None] * 12 for s in samples}
    lay = L.lollipop_layout(g, [float(i) for i in range(25)], clones, 183 * L.MM, _titles(samples), 60.0)
    assert len(lay.pages) > 10
    for page in lay.pages:
        assert page.height <= L.MAX_HEIGHT_MM * L.MM + 1e-6 and page.width == pytest.approx(183 * L.MM)
    assert sorted(p.sample for page in lay.pages for p in page.panels) == samples


def test_replicates_wrap_into_bands():
    samples = [f"r{i}" for i in range(30)]  # 30 replicates of one condition: 30 grid columns
    g = L.grid_layout(samples, None, ["0"] * 30, "", "dose")
    assert g.n_cols == 30
    lay = L.lollipop_layout(g, [float(i) for i in range(25)], {s: [None] * 4 for s in samples}, 183 * L.MM,
                            _titles(samples), 40.0)
    assert lay.cols_per_band < 30
    assert lay.geometry.data_width >= L.MIN_DATA_WIDTH
    assert sorted(p.sample for page in lay.pages for p in page.panels) == sorted(samples)
    texts = [h.text for page in lay.pages for h in page.headers]
    assert texts.count("dose 0") >= 30 // lay.cols_per_band  # every band carries its column header


def test_a_panel_taller_than_a_page_is_sliced():
    g = L.grid_layout(["big", "small"], None, ["0", "1"], "", "dose")
    clones = {"big": [None] * 2000, "small": [None] * 7}
    lay = L.lollipop_layout(g, [float(i) for i in range(25)], clones, 183 * L.MM, _titles(["big", "small"]), 40.0)
    big = [p for page in lay.pages for p in page.panels if p.sample == "big"]
    assert len(big) > 1
    assert [(p.start, p.stop) for p in big] == sorted((p.start, p.stop) for p in big)
    covered = [i for p in big for i in range(p.start, p.stop)]
    assert covered == list(range(2000))  # every clone once
    assert [p.strip_top is not None for p in big] == [False] * (len(big) - 1) + [True]  # strip on the last slice
    for page in lay.pages:
        assert page.height <= L.MAX_HEIGHT_MM * L.MM + 1e-6


def test_legend_layout_fits_its_width():
    labels = ["methylated (M)", "unmethylated (U)", "not determined", "clone", "% methylated per CpG"]
    notes = ["A long note " * 20]
    for width in (200, 500):
        leg = L.legend_layout(labels, notes, width)
        for (x, _), label in zip(leg.items, labels):
            assert x + L.text_width(label, L.FONT) <= width + 20
        assert all(L.text_width(line, L.FONT) <= width for line, _ in leg.notes)
        assert leg.height > leg.notes[-1][1]


def test_dose_helpers():
    assert L.nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    assert L.nice_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert L.nice_ticks(3, 47, 4) == [20, 40]  # raw step 11 -> 20
    assert L.categorical_positions(["10", "0", "3", "1"]) == {"0": 0.0, "1": 1.0, "3": 2.0, "10": 3.0}
    j = L.jitter(50, 3.0)
    assert j == L.jitter(50, 3.0) and all(-1.5 <= v <= 1.5 for v in j) and len(set(j)) == 50
    assert L.side_by_side(2, 10) == [-5, 5] and L.side_by_side(1, 10) == [0]
    lay = L.dose_layout(89 * L.MM, 4, ["BT474", "rBT474"], "caption " * 40, "cell line")
    left, top, w, h = lay.plot
    assert left > 0 and left + w < lay.legend_left < lay.width and lay.caption_top > top + h
    assert all(L.text_width(line, L.FONT) <= lay.width for line in lay.caption)


def test_layout_is_pure():
    import subprocess

    code = ("import sys, bsmeth.figures.layout; "
            "bad = [m for m in ('matplotlib', 'pandas', 'scipy', 'numpy', 'PIL') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- deep data (NGS): epiallele rows -------------------------------------------------------------


def test_epiallele_rows_top_patterns_and_the_pooled_rest():
    from bsmeth.figures.layout import epiallele_rows

    shown, rest = epiallele_rows([5, 500, 3, 300, 192], top=2, min_share=0.01)
    assert shown == [1, 3] and rest == 200
    shown, rest = epiallele_rows([1] * 300, top=10, min_share=0.01)  # no pattern reaches 1 %: all pooled
    assert shown == [] and rest == 300
    assert epiallele_rows([], 10, 0.01) == ([], 0)


@pytest.mark.parametrize("fraction,label", [(0.37, "37%"), (0.042, "4.2%"), (0.003, "0.3%"), (0.0001, "<.1%"),
                                            (0.0, "0%"), (1.0, "100%")])
def test_share_label_fits_the_strip_label_column(fraction, label):
    from bsmeth.figures.layout import FONT, share_label, strip_label_width, text_width

    assert share_label(fraction) == label
    assert text_width(label, FONT) <= strip_label_width()


def test_grey_for_runs_from_white_to_black():
    from bsmeth.figures.layout import grey_for

    assert (grey_for(0.0), grey_for(1.0), grey_for(0.5)) == ("#FFFFFF", "#000000", "#808080")


# --- clone rows: allele groups and the dendrogram --------------------------------------------------

# a dendrogram of 4 rows as patterns.dendrogram_segments gives it: rows 0+1 at 0.2, rows 2+3 at 0.1, both at 0.6
TREE = [(0.0, 0.0, 0.0, 0.2), (1.0, 0.0, 1.0, 0.2), (0.0, 0.2, 1.0, 0.2),
        (2.0, 0.0, 2.0, 0.1), (3.0, 0.0, 3.0, 0.1), (2.0, 0.1, 3.0, 0.1),
        (0.5, 0.2, 0.5, 0.6), (2.5, 0.1, 2.5, 0.6), (0.5, 0.6, 2.5, 0.6)]


def test_dendrogram_leaves_sit_at_the_rows_and_the_tree_fills_its_width():
    top, pitch, right = 50.0, 7.0, 200.0
    lines = L.dendrogram_lines(TREE, 0.6, right, top, pitch)
    assert len(lines) == len(TREE)
    x0 = right + L.DENDROGRAM_GAP
    leaves = sorted(a[1] for a, b in lines if a[0] == pytest.approx(x0) and a[1] == b[1])
    assert leaves == [L.row_y(top, pitch, r) for r in range(4)] == [53.5, 60.5, 67.5, 74.5]
    xs = [x for a, b in lines for x in (a[0], b[0])]
    assert min(xs) == pytest.approx(x0) and max(xs) == pytest.approx(x0 + L.DENDROGRAM_WIDTH)  # root at the edge
    assert min(xs) > right  # never over the circles (data area ends at right)
    # a slice of rows 2..4 (the panel continued on another page): rows 2 and 3 drawn from the slice's top, the
    # bar joining the two halves cut at the slice's edge
    part = L.dendrogram_lines(TREE, 0.6, right, top, pitch, start=2, stop=4)
    ys = [y for a, b in part for y in (a[1], b[1])]
    assert min(ys) == pytest.approx(top) and max(ys) == pytest.approx(top + 1.5 * pitch)
    assert len(part) == 5  # rows 2 and 3 and their bar, the line up from their merge, the cut root bar
    assert L.dendrogram_lines(TREE, 0.0, right, top, pitch)[0][1][0] == pytest.approx(x0)  # identical clones


def test_adjacent_merge_heights_give_the_tree_back():
    assert L.adjacent_merge_heights(TREE, 4) == [0.2, 0.6, 0.1, None]
    assert L.adjacent_merge_heights(TREE, 5) == [0.2, 0.6, 0.1, None, None]  # a fifth row outside the tree
    shifted = [(a + 3, h0, b + 3, h1) for a, h0, b, h1 in TREE]  # the tree of a second group, from row 3
    assert L.adjacent_merge_heights(shifted, 8) == [None, None, None, 0.2, 0.6, 0.1, None, None]
    assert L.adjacent_merge_heights([], 3) == [None, None, None]


def _label_box(m, size=L.FONT):
    up, down = L.label_extent(size)
    return m.label_x - L.text_width(m.label, size), m.label_y - up, m.label_x, m.label_y + down


@pytest.mark.parametrize("pitch", [2.5, 5.0, 7.0, 14.0])
def test_group_brackets_span_their_rows_and_labels_never_overlap(pitch):
    groups = [("C", 0, 1), ("A", 1, 2), ("?", 2, 3), ("G", 3, 9)]
    top, left = 100.0, 60.0
    marks = L.group_marks(groups, left, top, pitch, lo=top - 40, hi=top + 9 * pitch + 40)
    assert [m.label for m in marks] == ["C", "A", "?", "G"]
    for m, (_, a, b) in zip(marks, groups):
        assert top + a * pitch < m.y0 < m.y1 < top + b * pitch  # within its rows, apart from its neighbours
        assert m.x < m.tick < left and m.label_x < m.x  # left of the data area (and of every circle)
        assert _label_box(m)[0] >= left - L.strip_label_width()  # inside the column left of the panel
    boxes = [_label_box(m) for m in marks]
    for a, b in zip(boxes, boxes[1:]):
        assert a[3] <= b[1] + 1e-9  # top to bottom, never overlapping
    if pitch > 8:  # rows taller than a label: nothing moves, each label at its group's middle
        assert [m.label_y for m in marks] == pytest.approx([L.row_y(top, pitch, r) for r in (0, 1, 2, 5.5)])


def test_group_labels_stay_within_their_room_when_they_fit():
    top, pitch = 100.0, 5.0
    marks = L.group_marks([("C", 0, 1), ("A", 1, 2)], 60.0, top, pitch, lo=top - 2, hi=top + 4 * pitch)
    boxes = [_label_box(m) for m in marks]
    assert boxes[0][1] >= top - 2 - 1e-9 and boxes[-1][3] <= top + 4 * pitch + 1e-9
    assert boxes[0][3] <= boxes[1][1] + 1e-9
    # slices: only the rows of the slice, measured from its top
    part = L.group_marks([("C", 0, 6), ("A", 6, 10)], 60.0, top, pitch, start=4, stop=8)
    assert [(m.label, round(m.y0 - top, 6), round(m.y1 - top, 6)) for m in part] == [
        ("C", 0.75, 9.25), ("A", 10.75, 19.25)]


def test_the_dendrogram_widens_each_panel_only_when_drawn():
    samples = [f"{c}{d}" for c in "ab" for d in (0, 1, 3, 10)]
    g = L.grid_layout(samples, [s[0] for s in samples], [s[1:] for s in samples], "cell_line", "dose")
    clones = {s: [None] * 11 for s in samples}
    args = (g, [float(i) for i in range(25)], clones, 183 * L.MM, _titles(samples), 40.0)
    plain, tree = L.lollipop_layout(*args), L.lollipop_layout(*args, dendrogram=True)
    assert plain.dendrogram == 0.0 and tree.dendrogram == L.dendrogram_room(True) > L.DENDROGRAM_WIDTH
    assert plain.geometry.data_width - tree.geometry.data_width == pytest.approx(L.dendrogram_room(True))
    assert plain.cols_per_band == tree.cols_per_band == 4
    (page,) = tree.pages
    assert page.width == pytest.approx(183 * L.MM)
    for band in {p.top for p in page.panels}:
        row = sorted((p for p in page.panels if p.top == band), key=lambda p: p.left)
        for a, b in zip(row, row[1:]):
            # data area + dendrogram end before the next panel's strip-label column starts
            assert a.left + tree.geometry.data_width + tree.dendrogram < b.left - L.strip_label_width()
        assert row[-1].left + tree.geometry.data_width + tree.dendrogram <= page.width - L.MARGIN + 1e-9
