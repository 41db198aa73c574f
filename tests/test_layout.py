"""Pure layout arithmetic of the lollipop figure (bsmeth.layout): no drawing involved."""

import itertools
import sys

import pytest

from bsmeth import layout as L


# --- CpG x positions ---------------------------------------------------------------------------


def test_equal_spacing():
    assert L.cpg_x_positions([10, 11, 500], "equal") == [0.0, 1.0, 2.0]
    assert L.cpg_x_positions([], "equal") == []
    assert L.cpg_x_positions([42], "proportional") == [0.0]


@pytest.mark.parametrize("positions", [
    [100, 101, 102, 150, 400],  # a dense cluster, then a long gap
    [35, 37, 39, 41, 43, 45, 47, 300],
    [1, 2],
    [10, 200, 201, 202, 203, 204, 205, 206, 207, 900],
])
def test_proportional_never_overlaps_and_keeps_order(positions):
    xs = L.cpg_x_positions(positions, "proportional")
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert min(gaps) >= 1.0 - 1e-9  # centre distance >= one cell: circles (diameter < 1 cell) never overlap
    assert xs[0] == 0.0
    n = len(positions)
    assert xs[-1] == pytest.approx(max(L.PROPORTIONAL_WIDTH * (n - 1), n - 1), rel=1e-6)


def test_proportional_keeps_ratios_of_unclamped_gaps():
    pos = [0, 1, 2, 100, 300]  # gaps 1, 1, 98, 200: the first two are clamped to the minimum
    xs = L.cpg_x_positions(pos, "proportional")
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert gaps[0] == pytest.approx(1.0) and gaps[1] == pytest.approx(1.0)
    assert gaps[3] / gaps[2] == pytest.approx(200 / 98, rel=1e-6)


def test_proportional_rejects_unsorted_and_bad_mode():
    with pytest.raises(ValueError):
        L.cpg_x_positions([5, 3], "proportional")
    with pytest.raises(ValueError):
        L.cpg_x_positions([1, 3], "log")


def test_circles_fit_their_cells():
    for n_cpg, n_clones in itertools.product([3, 12, 45, 80], [1, 5, 40, 120]):
        xs = L.cpg_x_positions(list(range(0, 10 * n_cpg, 10)), "proportional")
        g = L.panel_geometry(xs, n_clones)
        assert g.circle_diameter < g.cpg_pitch * 1.0  # along a row (min gap is one cell)
        assert g.circle_diameter < g.clone_pitch  # between clone rows
        assert g.circle_diameter >= 0.05  # still visible (3.6 pt)


def test_sizes_scale_with_clones_and_cpgs():
    xs = [float(i) for i in range(12)]
    five, forty = L.panel_geometry(xs, 5), L.panel_geometry(xs, 40)
    # a 5-clone figure gets roomier rows and bigger circles than a 40-clone one ...
    assert five.clone_pitch > forty.clone_pitch
    assert five.circle_diameter >= forty.circle_diameter
    # ... but the 40-clone panel is still taller, and within the height budget
    assert forty.clones_height(40) > five.clones_height(5)
    assert forty.clones_height(40) <= L.MAX_CLONES_HEIGHT + 1e-9
    assert five.clone_pitch <= L.MAX_CLONE_PITCH
    # in one figure (shared geometry) a 5-clone panel is shorter than a 40-clone one, same circle size
    assert forty.clones_height(5) < forty.clones_height(40)
    # more CpGs -> narrower cells, same width budget
    many = L.panel_geometry([float(i) for i in range(40)], 5)
    assert many.cpg_pitch < five.cpg_pitch
    assert many.data_width <= L.MAX_DATA_WIDTH + 1e-9
    assert five.marker_size == pytest.approx((five.circle_diameter * 72) ** 2)


def test_label_indices_never_touch_and_keep_required():
    xs = L.cpg_x_positions([1, 2, 3, 4, 5, 6, 50, 51, 52, 200], "proportional")
    pitch, width = 0.1, 0.2
    idx = L.label_indices(xs, pitch, width, must=[4])
    assert 4 in idx and 0 in idx
    for a, b in zip(idx, idx[1:]):
        assert (xs[b] - xs[a]) * pitch >= width - 1e-12
    eq = [float(i) for i in range(30)]
    idx = L.label_indices(eq, 0.1, 0.15)
    assert idx == list(range(0, 30, 2))  # regular stride for equal spacing
    assert L.label_indices(eq, 0.3, 0.15) == list(range(30))


# --- clone order --------------------------------------------------------------------------------


def test_order_clones():
    f = [0.2, 0.9, None, 0.9, 0.5]
    assert L.order_clones(f, sort=False) == [0, 1, 2, 3, 4]
    assert L.order_clones(f, sort=True) == [1, 3, 4, 0, 2]  # ties keep input order, None last


# --- grid --------------------------------------------------------------------------------------


def test_grid_orders_numeric_levels_numerically():
    samples = ["a10", "a1", "b0", "a0", "b3", "a3"]
    lines = ["A", "A", "B", "A", "B", "A"]
    doses = ["10", "1", "0", "0", "3", "3"]
    g = L.grid_layout(samples, lines, doses, "cell_line", "dose")
    assert g.col_labels == ("dose=0", "dose=1", "dose=3", "dose=10")  # not '0','1','10','3'
    assert g.row_labels == ("cell_line=A", "cell_line=B")  # first appearance
    assert g.cells["a0"] == (0, 0) and g.cells["a10"] == (0, 3) and g.cells["b3"] == (1, 2)
    # missing combinations stay empty
    occupied = set(g.cells.values())
    assert (1, 1) not in occupied and (1, 3) not in occupied
    assert (g.n_rows, g.n_cols) == (2, 4)


def test_grid_numeric_with_decimals_and_text():
    assert L.ordered_levels(["0.5", "10", "2", "0"]) == ["0", "0.5", "2", "10"]
    assert L.ordered_levels(["high", "low", "high", "mid"]) == ["high", "low", "mid"]
    assert L.ordered_levels(["1", "x", "0"]) == ["1", "x", "0"]  # not all numbers: appearance order


def test_grid_replicates_get_adjacent_columns():
    g = L.grid_layout(["r1", "r2", "s"], None, ["0", "0", "5"], "", "dose")
    assert g.cells == {"r1": (0, 0), "r2": (0, 1), "s": (0, 2)}
    assert g.col_labels == ("dose=0", "dose=0", "dose=5")


def test_grid_without_variables_is_one_row():
    g = L.grid_layout(["x", "y", "z"])
    assert (g.n_rows, g.n_cols) == (1, 3)
    assert [g.cells[s] for s in "xyz"] == [(0, 0), (0, 1), (0, 2)]
    g = L.grid_layout([f"s{i}" for i in range(8)], wrap=6)
    assert (g.n_rows, g.n_cols) == (2, 6)


def _overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_figure_layout_panels_disjoint_and_inside():
    samples = ["a0", "a1", "b0", "b1"]
    g = L.grid_layout(samples, ["A", "A", "B", "B"], ["0", "1", "0", "1"], "cell_line", "dose")
    geom = L.panel_geometry([float(i) for i in range(10)], 40)
    fl = L.figure_layout(g, geom, {"a0": 5, "a1": 40, "b0": 12, "b1": 1})
    boxes = list(fl.panels.values()) + list(fl.strips.values()) + [fl.legend_box]
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b)
    for x, y, w, h in boxes:
        assert x >= 0 and y >= -1e-9 and x + w <= fl.width + 1e-9 and y + h <= fl.height + 1e-9
    # the strip sits right under its panel
    for s in samples:
        p, st = fl.panels[s], fl.strips[s]
        assert st[1] + st[3] == pytest.approx(p[1] - L.STRIP_GAP)
    # same circle size everywhere: panel heights proportional to clone counts
    assert fl.panels["a1"][3] == pytest.approx(8 * fl.panels["a0"][3])


def test_layout_is_pure():
    import subprocess

    code = ("import sys, bsmeth.layout; "
            "bad = [m for m in ('matplotlib', 'pandas', 'scipy', 'numpy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
