"""Figures of `bsmeth plot` (bsmeth.plots): files, one panel per sample, no clipped or overlapping text."""

import random
import re
import subprocess
import sys

import pytest

from bsmeth import plots as P
from bsmeth.errors import InputError
from bsmeth.tables import load_call_dir

from callfixtures import dose_design, random_clones, write_call_dir

EFFECT = {("HCT116", 0): 0.8, ("HCT116", 1): 0.6, ("HCT116", 3): 0.4, ("HCT116", 10): 0.2,
          ("DKO", 0): 0.3, ("DKO", 1): 0.3, ("DKO", 10): 0.3}  # DKO dose 3 missing: an empty grid cell


def _n(line, dose):
    return {("HCT116", 0): 5, ("DKO", 10): 40}.get((line, dose), 12)


@pytest.fixture
def dose_dir(tmp_path):
    return dose_design(tmp_path / "call", EFFECT, n_clones=_n, under_primer=(1,), snp_cpg=6,
                       positions=(35, 41, 44, 48, 60, 66, 89, 95, 130, 133, 170, 172))


@pytest.fixture
def dense_dir(tmp_path):
    """45 CpGs with a tight cluster, a 5-clone and a 40-clone sample, SNP alleles, uncovered ends."""
    rng = random.Random(5)
    pos = sorted(set(30 + int(rng.random() * 400) for _ in range(60)))[:40] + [451, 453, 455, 456, 458]
    n = len(pos)

    def clones(k, p):
        out = random_clones(rng, k, p, n)
        out = [c[:9] + ("s" if i % 3 == 0 else c[9]) + c[10:] for i, c in enumerate(out)]
        return [("...." + c[4:]) if i == 1 else c for i, c in enumerate(out)]

    return write_call_dir(tmp_path / "dense", [{"sample": "five", "clones": clones(5, 0.5)},
                                               {"sample": "forty", "clones": clones(40, 0.3)}],
                          positions=pos, sheet_columns=(), snp_cpg=10)


def test_writes_svg_png_pdf(dose_dir, tmp_path):
    paths = P.run_plot(dose_dir, P.PlotConfig(out_prefix=str(tmp_path / "figs" / "run1_")))
    names = sorted(p.name for p in paths)
    assert names == sorted(f"run1_{k}.{f}" for k in ("lollipop", "dose_response") for f in ("svg", "png", "pdf"))
    for p in paths:
        assert p.stat().st_size > 2000
    assert (tmp_path / "figs" / "run1_lollipop.pdf").read_bytes().startswith(b"%PDF")
    from PIL import Image

    with Image.open(tmp_path / "figs" / "run1_lollipop.png") as im:
        dpi = im.info.get("dpi")
        assert dpi and round(dpi[0]) == 200
    assert not [p for p in (tmp_path / "figs").iterdir() if p.name.endswith(".tmp")]


def test_default_outputs_go_into_call_dir(dose_dir):
    paths = P.run_plot(dose_dir, P.PlotConfig(formats=("svg",)))
    assert {p.name for p in paths} == {"lollipop.svg", "dose_response.svg"}
    assert all(p.parent == dose_dir for p in paths)


def test_svg_has_one_panel_group_per_sample(dose_dir):
    (svg,) = P.run_plot(dose_dir, P.PlotConfig(formats=("svg",), out_prefix=str(dose_dir / "x_")))[:1]
    text = svg.read_text()
    panels = re.findall(r'<g id="(panel-[^"]+)"', text)
    strips = re.findall(r'<g id="(strip-[^"]+)"', text)
    samples = load_call_dir(dose_dir).sample_order()
    assert sorted(panels) == sorted(f"panel-{s}" for s in samples)
    assert len(strips) == len(samples) == 7


def test_outputs_are_deterministic(tmp_path):
    rng = random.Random(2)
    small = write_call_dir(tmp_path / "small", [
        {"sample": f"s{d}", "dose": str(d), "clones": random_clones(rng, 4, 0.5, 5)} for d in (0, 5)],
        positions=(3, 9, 15, 30, 31), sheet_columns=("dose",))
    a = P.run_plot(small, P.PlotConfig(formats=("svg", "pdf", "png"), out_prefix=str(tmp_path / "a_")))
    b = P.run_plot(small, P.PlotConfig(formats=("svg", "pdf", "png"), out_prefix=str(tmp_path / "b_")))
    assert len(a) == 6
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def _texts_of(ax):
    out = [ax.title]
    if ax.axison:  # an axes switched off draws no ticks or axis labels; nor does a hidden axis
        for axis, labels in ((ax.xaxis, ax.get_xticklabels()), (ax.yaxis, ax.get_yticklabels())):
            if axis.get_visible():
                out += [axis.label] + labels
    out += ax.texts
    leg = ax.get_legend()
    if leg is not None:
        out += leg.get_texts()
    return [t for t in out if t.get_visible() and t.get_text()]


def overlaps(fig):
    """(text, axes) pairs where a text of one axes (or of the figure) runs into another axes' area,
    and pairs of texts that overlap each other (of any axes, the same one included)."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    axes = fig.axes
    boxes = {id(ax): ax.get_window_extent(renderer) for ax in axes}
    owned = [(ax, t, t.get_window_extent(renderer)) for ax in axes for t in _texts_of(ax)]
    owned += [(None, t, t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    bad = []
    for owner, t, bb in owned:
        for ax in axes:
            if ax is owner:
                continue
            if bb.overlaps(boxes[id(ax)]):
                bad.append((t.get_text(), ax.get_label()))
    for i in range(len(owned)):
        for j in range(i + 1, len(owned)):
            (_, t1, b1), (_, t2, b2) = owned[i], owned[j]
            if b1.overlaps(b2):  # also within one axes: neighbouring CpG labels must not touch
                bad.append((t1.get_text(), t2.get_text()))
    return bad


@pytest.mark.parametrize("layout", ["equal", "proportional"])
def test_no_text_runs_into_another_panel(dose_dir, dense_dir, layout):
    for d in (dose_dir, dense_dir):
        fig = P.lollipop_figure(load_call_dir(d), P.PlotConfig(layout=layout, sort_clones=True))
        assert overlaps(fig) == []
        # and every text lies inside the figure, so nothing is clipped even without bbox_inches='tight'
        r = fig.canvas.get_renderer()
        fb = fig.bbox
        for ax in fig.axes:
            for t in _texts_of(ax):
                bb = t.get_window_extent(r)
                assert bb.x0 >= fb.x0 - 1 and bb.x1 <= fb.x1 + 1 and bb.y0 >= fb.y0 - 1 and bb.y1 <= fb.y1 + 1, \
                    t.get_text()


def test_dose_response_has_no_overlaps(dose_dir):
    fig = P.dose_response_figure(load_call_dir(dose_dir), P.PlotConfig())
    assert overlaps(fig) == []
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["HCT116", "DKO"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "3", "10"]


def test_dose_response_table_values(dose_dir):
    from bsmeth.tables import clone_table

    data = load_call_dir(dose_dir)
    t = P.dose_response_table(data, "dose", "cell_line")
    clones = clone_table(data)
    row = t[(t["cell_line"] == "DKO") & (t["dose"] == "10")].iloc[0]
    sub = clones[(clones["cell_line"] == "DKO") & (clones["dose"] == "10")]
    assert row["clones"] == 40
    assert row["mean"] == pytest.approx(100 * sub["fraction"].mean())
    assert row["pooled"] == pytest.approx(100 * sub["m"].sum() / sub["n"].sum())
    assert row["mean_low"] < row["mean"] < row["mean_high"]
    assert 0 <= row["pooled_low"] < row["pooled"] < row["pooled_high"] <= 100


def test_no_sheet_columns_gives_one_row_and_no_dose_figure(dense_dir):
    data = load_call_dir(dense_dir)
    assert P.dose_response_figure(data, P.PlotConfig()) is None
    fig = P.lollipop_figure(data, P.PlotConfig())
    panels = [ax for ax in fig.axes if ax.get_label().startswith("panel:")]
    assert len(panels) == 2
    tops = {round(ax.get_position().y1, 6) for ax in panels}
    assert len(tops) == 1  # one panel row
    titles = [t.get_text() for ax in panels for t in ax.texts if t.get_label() == P.LABEL_TITLE]
    assert titles[0].startswith("five\n5 clones,") and titles[1].startswith("forty\n40 clones,")
    # the SNP CpG's number is labelled even where labels are thinned out
    assert "10" in [t.get_text() for t in panels[1].texts if t.get_label() == P.LABEL_CPG_NUMBER]


def test_same_circle_size_in_5_and_40_clone_panels(dense_dir):
    fig = P.lollipop_figure(load_call_dir(dense_dir), P.PlotConfig())
    five, forty = [ax for ax in fig.axes if ax.get_label().startswith("panel:")]
    h5, h40 = five.get_position().height, forty.get_position().height
    assert h40 == pytest.approx(8 * h5, rel=1e-6)
    s5 = {float(s) for c in five.collections for s in getattr(c, "get_sizes", lambda: [])()}
    s40 = {float(s) for c in forty.collections for s in getattr(c, "get_sizes", lambda: [])()}
    assert s5 == s40


def test_bad_options(dose_dir):
    with pytest.raises(InputError, match="no such sample column"):
        P.run_plot(dose_dir, P.PlotConfig(rows="treatment"))
    with pytest.raises(InputError, match="layout"):
        P.run_plot(dose_dir, P.PlotConfig(layout="log"))
    with pytest.raises(InputError, match="format"):
        P.run_plot(dose_dir, P.PlotConfig(formats=("jpg",)))


def test_swapped_grid_axes(dose_dir):
    fig = P.lollipop_figure(load_call_dir(dose_dir), P.PlotConfig(rows="dose", cols="cell_line"))
    headers = [t.get_text() for t in fig.texts]
    assert headers == ["dose=0", "dose=1", "dose=3", "dose=10", "cell_line=HCT116", "cell_line=DKO"]


def test_heavy_modules_not_imported_at_package_import():
    code = ("import sys, bsmeth, bsmeth.plots, bsmeth.stats, bsmeth.report, bsmeth.layout; "
            "bad = [m for m in ('matplotlib', 'pandas', 'scipy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pyplot_is_never_used(dose_dir):
    code = ("import sys; from bsmeth.plots import run_plot, PlotConfig; "
            f"run_plot({str(dose_dir)!r}, PlotConfig(formats=('png',), out_prefix={str(dose_dir / 'q_')!r})); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
