"""Figures of `bsmeth plot` (bsmeth.figures: plots, scene, raster, pdfwrite): files, one panel per sample, text that is
readable at print size and never overlaps, the data behind each figure, pages instead of unbounded growth."""

import csv
import io
import itertools
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from callfixtures import dose_design, random_clones, write_call_dir

from bsmeth.errors import InputError
from bsmeth.figures import layout as L
from bsmeth.figures import plots as P
from bsmeth.figures.scene import Circle, Text, text_box
from bsmeth.tables import load_call_dir

EFFECT = {("HCT116", 0): 0.8, ("HCT116", 1): 0.6, ("HCT116", 3): 0.4, ("HCT116", 10): 0.2,
          ("DKO", 0): 0.3, ("DKO", 1): 0.3, ("DKO", 10): 0.3}  # DKO dose 3 missing: an empty grid cell


def _n(line, dose):
    return {("HCT116", 0): 5, ("DKO", 10): 40, ("HCT116", 1): 11}.get((line, dose), 12)


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


def read_tsv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# --- files ---------------------------------------------------------------------------------------


def test_writes_every_format_with_its_data(dose_dir, tmp_path):
    from PIL import Image

    paths = P.run_plot(dose_dir, P.PlotConfig(formats=("svg", "png", "pdf", "tiff"), dpi=150,
                                              out_prefix=str(tmp_path / "figs" / "run1_")))
    names = sorted(p.name for p in paths)
    assert names == sorted(f"run1_{k}.{f}" for k in ("lollipop", "dose_response")
                           for f in ("svg", "png", "pdf", "tiff", "tsv"))
    for p in paths:
        assert p.stat().st_size > 1000, p.name
    assert (tmp_path / "figs" / "run1_lollipop.pdf").read_bytes().startswith(b"%PDF")
    with Image.open(tmp_path / "figs" / "run1_lollipop.png") as im:
        assert round(im.info["dpi"][0]) == 150
        assert im.width == round(183 / 25.4 * 150)  # the default width: a double column
    with Image.open(tmp_path / "figs" / "run1_dose_response.tiff") as im:
        assert im.info["compression"] == "tiff_lzw" and round(im.info["dpi"][0]) == 150
        assert im.width == round(89 / 25.4 * 150)  # the dose-response plot: a single column
    assert not [p for p in (tmp_path / "figs").iterdir() if p.name.endswith(".tmp")]


def test_default_outputs_go_into_call_dir(dose_dir):
    paths = P.run_plot(dose_dir, P.PlotConfig(formats=("svg",)))
    assert {p.name for p in paths} == {"lollipop.svg", "dose_response.svg", "lollipop.tsv", "dose_response.tsv"}
    assert all(p.parent == dose_dir for p in paths)


def test_svg_has_one_panel_group_per_sample(dose_dir):
    svg = P.run_plot(dose_dir, P.PlotConfig(formats=("svg",), out_prefix=str(dose_dir / "x_")))[0]
    text = svg.read_text()
    panels = re.findall(r'<g id="(panel-[^"]+)"', text)
    strips = re.findall(r'<g id="(strip-[^"]+)"', text)
    samples = load_call_dir(dose_dir).sample_order()
    assert sorted(panels) == sorted(f"panel-{s}" for s in samples)
    assert len(strips) == len(samples) == 7
    assert re.search(r'<svg [^>]*width="518\.74pt"', text)  # 183 mm


def test_outputs_are_deterministic(tmp_path):
    rng = random.Random(2)
    small = write_call_dir(tmp_path / "small", [
        {"sample": f"s{d}", "dose": str(d), "clones": random_clones(rng, 4, 0.5, 5)} for d in (0, 5)],
        positions=(3, 9, 15, 30, 31), sheet_columns=("dose",))
    cfg = dict(formats=("svg", "pdf", "png", "tiff"))
    a = P.run_plot(small, P.PlotConfig(out_prefix=str(tmp_path / "a_"), **cfg))
    b = P.run_plot(small, P.PlotConfig(out_prefix=str(tmp_path / "b_"), **cfg))
    assert len(a) == 10
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


# --- print size: width and text in the PDF itself -------------------------------------------------


def pdf_text(path):
    """(page width, page height, [(character, size in points)]) for each page, read by pdfminer."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar

    def walk(obj, chars):
        if isinstance(obj, LTChar):
            a, b = obj.matrix[0], obj.matrix[1]
            # pdfminer's box is the font size tall across the baseline: height upright, width turned 90 degrees
            chars.append((obj.get_text(), obj.height if abs(a) >= abs(b) else obj.width))
        for child in getattr(obj, "_objs", ()):
            walk(child, chars)
        return chars

    return [(page.width, page.height, walk(page, [])) for page in extract_pages(str(path))]


def test_plot_width_mm_180_gives_a_180_mm_pdf_with_no_text_under_6_pt(dose_dir, tmp_path):
    """The issue's check: `bsmeth plot --width-mm 180`, then the PDF measured, not the code's intentions."""
    from command import bsmeth_cmd

    subprocess.run([*bsmeth_cmd(), "plot", str(dose_dir), "--width-mm", "180", "--formats", "pdf"], check=True,
                   capture_output=True)
    for name in ("lollipop.pdf", "dose_response.pdf"):
        ((w, h, chars),) = pdf_text(dose_dir / name)
        assert w / L.MM == pytest.approx(180, abs=0.01), name
        assert len(chars) > 100
        sizes = [s for _, s in chars]
        assert min(sizes) >= 6.0 - 1e-6, (name, min(sizes))
        assert max(sizes) <= 9.0
    text = "".join(c for c, _ in pdf_text(dose_dir / "lollipop.pdf")[0][2])
    for expected in ("HCT116", "DKO", "dose10", "CpGposition", "methylated(M)"):
        assert expected in text.replace(" ", ""), expected


@pytest.mark.parametrize("width", ["single", "double", "300"])
def test_pdf_fonts_are_embedded(dose_dir, tmp_path, width):
    (path,) = [p for p in P.run_plot(dose_dir, P.PlotConfig(formats=("pdf",), width_mm=L.parse_width(width),
                                                              out_prefix=str(tmp_path / "w_")))
               if p.name == "w_lollipop.pdf"]
    data = path.read_bytes()
    assert data.count(b"/FontFile2") == 2 and b"+DejaVuSans" in data
    for w, h, chars in pdf_text(path):
        assert w / L.MM == pytest.approx(L.parse_width(width), abs=0.01) and h <= 240 * L.MM + 0.01
        assert min(s for _, s in chars) >= 6.0 - 1e-6


def test_shipped_font_subsets_match_the_installed_fonts():
    """The shipped subsets (data/DejaVuSans*-base.ttf) were cut from matplotlib's DejaVu Sans: for every
    character of BASE_CHARS the same advance width and outline (and the table's hash is that font file's)."""
    from fontTools.ttLib import TTFont

    from bsmeth.figures import pdfwrite
    from bsmeth.figures.scene import font_path

    for bold in (False, True):
        shipped = pdfwrite._shipped_base(bold)
        if shipped is None:
            pytest.skip("this matplotlib's DejaVu Sans is not the file the subsets were cut from (made at run time)")
        sub, full = TTFont(io.BytesIO(shipped)), TTFont(str(font_path(bold)))
        sub_map, full_map = sub.getBestCmap(), full.getBestCmap()
        for ch in pdfwrite.BASE_CHARS:  # glyph names may differ (the subset renames a few), not their shapes
            g_sub, g_full = sub_map[ord(ch)], full_map[ord(ch)]
            assert sub["hmtx"][g_sub] == full["hmtx"][g_full], ch
            a, b = sub["glyf"][g_sub], full["glyf"][g_full]
            assert a.numberOfContours == b.numberOfContours, ch
            if a.numberOfContours > 0:
                assert list(a.coordinates) == list(b.coordinates), ch


def test_pdfs_of_base_characters_need_no_font_subsetting(dose_dir):
    """A figure whose texts stay within BASE_CHARS embeds the shipped subsets: fontTools is not even imported
    (it cost a run 0.4 s); a character beyond them (Greek omega) is subset at run time and embedded."""
    code = ("import sys; from bsmeth.figures.plots import run_plot, PlotConfig; "
            f"run_plot({str(dose_dir)!r}, PlotConfig(formats=('pdf',), out_prefix={str(dose_dir / 'f_')!r})); "
            "assert 'fontTools' not in sys.modules, 'fontTools imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    from bsmeth.figures import pdfwrite
    from bsmeth.figures.scene import Scene, Text

    scene = Scene(100, 50, (Text(10, 20, "50 % \u03a9 methylated", 8),))
    data = pdfwrite.pdf_bytes([scene])
    assert data.count(b"/FontFile2") == 1
    assert pdfwrite._font_chars({"\u03a9"}) != pdfwrite.BASE_CHARS  # so _subset_font made this one


# --- geometry of what is drawn ----------------------------------------------------------------------


def _all_texts(scene):
    return [t for t in scene.texts() if t.text]


def text_problems(scene):
    """Texts smaller than 6 pt, outside the page, or overlapping another text."""
    bad = []
    boxes = [(t, text_box(t)) for t in _all_texts(scene)]
    for t, (x0, y0, x1, y1) in boxes:
        if t.size < L.MIN_FONT:
            bad.append(("small", t.text))
        if x0 < -0.5 or y0 < -0.5 or x1 > scene.width + 0.5 or y1 > scene.height + 0.5:
            bad.append(("outside", t.text))
    for (t1, a), (t2, b) in itertools.combinations(boxes, 2):
        if a[0] < b[2] - 0.3 and b[0] < a[2] - 0.3 and a[1] < b[3] - 0.3 and b[1] < a[3] - 0.3:
            bad.append((t1.text, t2.text))
    return bad


@pytest.mark.parametrize("layout", ["equal", "proportional", "position"])
@pytest.mark.parametrize("width", [89.0, 183.0])
def test_no_text_overlaps_or_leaves_the_page(dose_dir, dense_dir, layout, width):
    for d in (dose_dir, dense_dir):
        fig = P.lollipop_figure(load_call_dir(d), P.PlotConfig(layout=layout, sort_clones=True, width_mm=width))
        for scene in fig.pages:
            assert text_problems(scene) == []
            assert scene.width == pytest.approx(width * L.MM)


def _panel_circles(scene):
    return [c for g in scene.items if getattr(g, "gid", "").startswith("panel-") for c in g.items
            if isinstance(c, Circle)]


def test_circles_never_overlap(dense_dir):
    for layout in L.LAYOUTS:
        fig = P.lollipop_figure(load_call_dir(dense_dir), P.PlotConfig(layout=layout))
        circles = _panel_circles(fig.pages[0])
        rows: dict = {}
        for c in circles:
            rows.setdefault(round(c.y, 3), []).append(c)
        for row in rows.values():
            row.sort(key=lambda c: c.x)
            for a, b in zip(row, row[1:]):
                assert b.x - a.x >= a.r + b.r + a.lw / 2 + b.lw / 2 - 1e-6, layout
        ys = sorted(rows)
        r = max(c.r + c.lw / 2 for c in circles)
        assert min(b - a for a, b in zip(ys, ys[1:])) >= 2 * r - 1e-6  # rows do not touch either


def test_panels_of_a_row_line_up(dose_dir):
    """The issue's 10-clone panel: its strip sits at its neighbours' height (here 11 vs 5 and 12 clones)."""
    fig = P.lollipop_figure(load_call_dir(dose_dir), P.PlotConfig())
    (scene,) = fig.pages
    strip_tops = {}
    for g in scene.items:
        if getattr(g, "gid", "").startswith("strip-"):
            tops = [t.y for t in g.items if isinstance(t, Text) and t.text == "100%"]
            strip_tops[g.gid] = tops[0]
    hct = {k: v for k, v in strip_tops.items() if "HCT116" in k}
    dko = {k: v for k, v in strip_tops.items() if "DKO" in k}
    assert len(hct) == 4 and len(set(hct.values())) == 1
    assert len(dko) == 3 and len(set(dko.values())) == 1


def test_headers_are_readable_and_units_come_from_the_sheet(tmp_path):
    rng = random.Random(3)
    d = write_call_dir(tmp_path / "u", [
        {"sample": f"{c}_{x}", "cell_line": c, "dose": str(x), "dose_unit": "uM",
         "clones": random_clones(rng, 3, 0.5, 5)} for c in ("BT474", "rBT474") for x in (0, 10)],
        positions=(3, 9, 15, 30, 31), sheet_columns=("cell_line", "dose", "dose_unit"))
    data = load_call_dir(d)
    fig = P.lollipop_figure(data, P.PlotConfig())
    headers = [t.text for t in fig.pages[0].texts() if t.bold and t.size == L.HEADER_FONT]
    assert headers == ["dose 0 uM", "dose 10 uM", "BT474", "rBT474"]
    dose = P.dose_response_figure(data, P.PlotConfig())
    texts = [t.text for t in dose.pages[0].texts()]
    assert "dose (uM): levels equally spaced" in texts  # the axis says what it is
    assert ["0", "10"] == [t for t in texts if t in ("0", "10")][-2:]


def test_swapped_grid_axes(dose_dir):
    fig = P.lollipop_figure(load_call_dir(dose_dir), P.PlotConfig(rows="dose", cols="cell_line"))
    headers = [t.text for page in fig.pages for t in page.texts() if t.bold and t.size == L.HEADER_FONT]
    assert [h for h in headers if h.startswith("dose")] == ["dose 0", "dose 1", "dose 3", "dose 10"]
    assert headers[:2] == ["HCT116", "DKO"]  # column headers first (again on every further page)


def test_position_layout_draws_a_scale_bar(dense_dir):
    fig = P.lollipop_figure(load_call_dir(dense_dir), P.PlotConfig(layout="position"))
    texts = [t.text for t in fig.pages[0].texts()]
    assert any(re.fullmatch(r"\d+ bp", t) for t in texts)
    assert any("linear bp scale" in t for t in texts)  # the legend says what the spacing means
    eq = [t.text for t in P.lollipop_figure(load_call_dir(dense_dir), P.PlotConfig()).pages[0].texts()]
    assert not any(re.fullmatch(r"\d+ bp", t) for t in eq)


def test_no_sheet_columns_gives_one_row_and_no_dose_figure(dense_dir):
    data = load_call_dir(dense_dir)
    assert P.dose_response_figure(data, P.PlotConfig()) is None
    fig = P.lollipop_figure(data, P.PlotConfig())
    texts = [t.text for t in fig.pages[0].texts()]
    assert "five" in texts and "forty" in texts and "5 clones, " in " ".join(texts)
    # the SNP CpG's number is labelled (bold, orange) even where labels are thinned out
    assert any(t.text == "10" and t.bold and t.colour == P.SNP_COLOUR for t in fig.pages[0].texts())


def test_same_circle_size_in_5_and_40_clone_panels(dense_dir):
    fig = P.lollipop_figure(load_call_dir(dense_dir), P.PlotConfig())
    sizes = {round(c.r, 6) for c in _panel_circles(fig.pages[0])}
    assert len(sizes) == 1


def test_1200_samples_paginate(tmp_path):
    """1,200 samples: pages of bounded size (the old PNG was 5,708 x 54,659 px), every sample drawn once."""
    clones = {f"s{i:04d}": [P.Clone(f"r{i}_{k}", 0.5, {c: ("M" if (i + k + c) % 2 else "U", "") for c in range(1, 6)})
                            for k in range(4)] for i in range(1200)}
    samples = tuple(clones)
    inp = P.LollipopInput(samples, L.grid_layout(samples, wrap=6), (1, 2, 3, 4, 5), (10.0, 20.0, 30.0, 40.0, 50.0),
                          frozenset(), ("note",), clones, {s: {1: 50.0} for s in samples})
    pages, table = P.lollipop_pages(inp, P.PlotConfig())
    assert len(pages) > 5
    for scene in pages:
        assert scene.width == pytest.approx(183 * L.MM) and scene.height <= 240 * L.MM + 1e-6
    drawn = [g.gid for scene in pages for g in scene.items if getattr(g, "gid", "").startswith("panel-")]
    assert sorted(drawn) == [f"panel-{s}" for s in samples]
    rows = list(csv.DictReader(io.StringIO(table), delimiter="\t"))
    assert len(rows) == 4800 and int(rows[-1]["page"]) == len(pages)
    fig = P.Figure("lollipop", pages[:2], table)
    paths = P.write_figure(fig, tmp_path / "big", ("png", "pdf"), dpi=72)
    assert sorted(p.name for p in paths) == ["big.pdf", "big.tsv", "big_p1.png", "big_p2.png"]
    assert len(pdf_text(tmp_path / "big.pdf")) == 2


# --- the data behind each figure -----------------------------------------------------------------------


def test_lollipop_tsv_is_the_drawn_matrix(dose_dir):
    P.run_plot(dose_dir, P.PlotConfig(formats=("svg",), sort_clones=True))
    rows = read_tsv(dose_dir / "lollipop.tsv")
    calls = read_tsv(dose_dir / "cpg_calls.tsv")
    reads = read_tsv(dose_dir / "reads.tsv")
    assert len(rows) == sum(r["status"] == "pass" for r in reads)
    assert [c for c in rows[0] if c.startswith("cpg_")] == [f"cpg_{i}" for i in range(2, 13)]  # CpG 1: primer
    by = {(c["read"], c["cpg"]): c for c in calls}
    for r in rows:
        for i in range(2, 13):
            c = by[(r["read"], str(i))]
            expect = c["call"] if c["call"] in "MU" else ("S" if c["why"] == "snp" else "-")
            assert r[f"cpg_{i}"] == expect
    # sorted: the most methylated clone first within each sample
    first = [r for r in rows if r["sample"] == "HCT116_d0"]
    assert [int(r["row"]) for r in first] == list(range(1, 6))
    meth = [float(r["methylation_pct"]) for r in first]
    assert meth == sorted(meth, reverse=True)


def test_dose_response_tsv_has_clones_means_and_intervals(dose_dir):
    P.run_plot(dose_dir, P.PlotConfig(formats=("svg",)))
    rows = read_tsv(dose_dir / "dose_response.tsv")
    clones = [r for r in rows if r["kind"] == "clone"]
    assert len(clones) == sum(_n(line, dose) for line, dose in EFFECT)
    for r in clones:
        assert float(r["percent"]) == pytest.approx(100 * int(r["methylated"]) / int(r["called"]), abs=1e-3)
        assert float(r["ci_low"]) <= float(r["percent"]) <= float(r["ci_high"])
    mean = next(r for r in rows if r["kind"] == "mean" and r["cell_line"] == "DKO" and r["dose"] == "10")
    vals = [float(r["percent"]) for r in clones if r["cell_line"] == "DKO" and r["dose"] == "10"]
    assert int(mean["clones"]) == 40 and float(mean["percent"]) == pytest.approx(sum(vals) / 40, abs=1e-3)
    assert float(mean["ci_low"]) < float(mean["percent"]) < float(mean["ci_high"])


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


def test_dose_axis_is_categorical_and_says_so(dose_dir):
    fig = P.dose_response_figure(load_call_dir(dose_dir), P.PlotConfig())
    (scene,) = fig.pages
    assert text_problems(scene) == []
    ticks = [t for t in scene.texts() if t.text in ("0", "1", "3", "10") and t.va == "top"]
    xs = [t.x for t in sorted(ticks, key=lambda t: float(t.text))]
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert len(xs) == 4 and max(gaps) - min(gaps) < 1e-6  # equally spaced, whatever the doses
    texts = [t.text for t in scene.texts()]
    assert "dose: levels equally spaced" in texts and "HCT116" in texts and "DKO" in texts
    assert "not to scale" in " ".join(texts)


# --- options, imports ---------------------------------------------------------------------------


def test_bad_options(dose_dir):
    with pytest.raises(InputError, match="no such sample column"):
        P.run_plot(dose_dir, P.PlotConfig(rows="treatment"))
    with pytest.raises(InputError, match="layout"):
        P.run_plot(dose_dir, P.PlotConfig(layout="log"))
    with pytest.raises(InputError, match="format"):
        P.run_plot(dose_dir, P.PlotConfig(formats=("jpg",)))
    with pytest.raises(InputError, match="dpi"):
        P.run_plot(dose_dir, P.PlotConfig(dpi=10))
    assert P.format_names(["PNG", ".tif", "tiff"]) == ("png", "tiff")


def test_heavy_modules_not_imported_at_package_import():
    code = ("import sys, bsmeth, bsmeth.figures.plots, bsmeth.stats, bsmeth.report, bsmeth.figures.layout, "
            "bsmeth.figures.scene; "
            "bad = [m for m in ('matplotlib', 'pandas', 'scipy', 'PIL', 'fontTools') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figures_are_drawn_without_matplotlib(dose_dir):
    code = ("import sys; from bsmeth.figures.plots import run_plot, PlotConfig; "
            f"run_plot({str(dose_dir)!r}, PlotConfig(formats=('svg', 'png', 'pdf', 'tiff'), "
            f"out_prefix={str(dose_dir / 'q_')!r})); "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("rotated", [False, True])
def test_raster_puts_ink_where_the_scene_says(rotated):
    """The PNG writer's geometry: a circle at its centre, a text (turned or not) inside the box the layout
    reserves for it, and filling most of that box along the text."""
    from PIL import ImageChops

    from bsmeth.figures import raster
    from bsmeth.figures.scene import Scene

    k = 4  # pixels per point at 288 dpi
    s = Scene(120, 120)
    s.add(Circle(20, 20, 5, "#000000"))
    # turned, 'left' is the bottom end: the text runs up from y=90
    t = Text(70, 90, "Hello 100%", 10, "left" if rotated else "right", "middle", rotated=rotated)
    s.add(t)
    im = raster.render(s, 72 * k)
    assert im.size == (480, 480)
    assert im.getpixel((80, 80)) == (0, 0, 0) and im.getpixel((80 + 28, 80)) == (255, 255, 255)
    im.paste((255, 255, 255), (0, 0, 26 * k, 26 * k))  # the circle's corner of the page
    bbox = ImageChops.invert(im.convert("L")).getbbox()
    x0, y0, x1, y1 = text_box(t)
    assert bbox is not None
    assert bbox[0] >= (x0 - 0.5) * k and bbox[1] >= (y0 - 0.5) * k
    assert bbox[2] <= (x1 + 0.5) * k and bbox[3] <= (y1 + 0.5) * k
    along = (bbox[3] - bbox[1]) if rotated else (bbox[2] - bbox[0])
    assert along >= 0.9 * L.text_width(t.text, 10) * k


# --- rows grouped by allele, ordered by methylation or by cluster -----------------------------------------


def _clone(read, pattern):
    calls = {k + 1: (ch, "") if ch in "MU" else ("-", "low_quality") for k, ch in enumerate(pattern)}
    m, t = pattern.count("M"), pattern.count("M") + pattern.count("U")
    return P.Clone(read, m / t if t else None, calls)


def test_arrange_rows_groups_reference_allele_first_and_unread_last():
    clones = [_clone("r0", "UUUU"), _clone("r1", "MMMM"), _clone("r2", "MUUU"), _clone("r3", "MMUU"),
              _clone("r4", "MMMU")]
    allele = {"r1": "C", "r2": "A", "r4": "C"}  # r0, r3: allele not read
    rows = P.arrange_rows(clones, "input", allele, ("C", "A"), "rs1")
    assert rows.order == (1, 4, 2, 0, 3)
    assert rows.groups == (("C", 0, 2), ("A", 2, 3), (P.NOT_READ, 3, 5))
    assert rows.alleles == ("rs1:C", "rs1:C", "rs1:A", "", "") and rows.segments == ()
    by_meth = P.arrange_rows(clones, "methylation", allele, ("C", "A"), "rs1")
    assert by_meth.order == (1, 4, 2, 3, 0)  # most methylated first, within each group
    plain = P.arrange_rows(clones, "methylation")
    assert plain.order == (1, 4, 3, 2, 0) and plain.groups == ()  # no site: one group, not marked


def test_arrange_rows_by_cluster_keeps_groups_and_puts_clones_without_a_pattern_last():
    import numpy as np

    from bsmeth.patterns import CloneSet

    pats = ["MMMM", "UUUU", "MMMU", "UUUM", "MMUM", "UUUU", "----"]
    clones = [_clone(f"r{i}", p) for i, p in enumerate(pats)]
    calls = np.array([[{"M": 1.0, "U": 0.0}.get(ch, np.nan) for ch in p] for p in pats[:6]])
    cs = CloneSet("", "s", tuple(f"r{i}" for i in range(6)), (1, 2, 3, 4), calls, ())  # r6: no pattern
    allele = {"r0": "A", "r1": "A", "r2": "A", "r3": "A", "r4": "A", "r6": "A", "r5": "C"}
    rows = P.arrange_rows(clones, "cluster", allele, ("C", "A"), "rs1", cs)
    assert rows.groups == (("C", 0, 1), ("A", 1, 7))
    assert rows.order[0] == 5 and rows.order[-1] == 6  # r6 after the clustered clones of its group
    a_rows = [pats[i] for i in rows.order[1:6]]
    assert {"UUUU", "UUUM"} in ({*a_rows[:2]}, {*a_rows[3:]})  # the two U-rich clones side by side, at an end
    leaf_rows = sorted({s[0] for s in rows.segments if s[1] == 0.0})
    assert leaf_rows == [1.0, 2.0, 3.0, 4.0, 5.0]  # the dendrogram covers the clustered rows of group A only
    assert rows.max_height == pytest.approx(max(s[3] for s in rows.segments)) and 0 < rows.max_height <= 1


@pytest.mark.parametrize("width", [89.0, 183.0])
def test_clustered_figure_keeps_text_apart_and_the_tree_beside_the_circles(dose_dir, dense_dir, width):
    for d in (dose_dir, dense_dir):
        fig = P.lollipop_figure(load_call_dir(d), P.PlotConfig(order="cluster", width_mm=width, layout="position"))
        for scene in fig.pages:
            assert text_problems(scene) == []
            groups = {g.gid: g for g in scene.items if hasattr(g, "gid")}
            for gid, panel in groups.items():
                if not gid.startswith("panel-"):
                    continue
                name = gid[len("panel-"):]
                circles = [c for c in panel.items if isinstance(c, Circle)]
                right = max(c.x + c.r for c in circles)
                left = min(c.x - c.r for c in circles)
                tree = [x for it in groups[f"dendrogram-{name}"].items if not isinstance(it, Text)
                        for x, _ in it.points]
                assert min(tree) > right  # the dendrogram never over the circles
                marks = [x for it in groups[f"alleles-{name}"].items
                         for x in ([text_box(it)[0], text_box(it)[2]] if isinstance(it, Text) else
                                   [p[0] for p in it.points])]
                assert max(marks) < left  # brackets and labels left of them
        assert any("hierarchical clustering" in t.text for t in fig.pages[-1].texts())


def test_without_groups_and_in_input_order_the_figure_is_as_before(dose_dir):
    data = load_call_dir(dose_dir)
    fig = P.lollipop_figure(data, P.PlotConfig(allele_groups=False))
    gids = [g.gid for g in fig.pages[0].items if hasattr(g, "gid")]
    assert not [g for g in gids if g.startswith(("alleles-", "dendrogram-"))]
    rows = list(csv.DictReader(io.StringIO(fig.table), delimiter="\t"))
    reads = [r["read"] for r in read_tsv(dose_dir / "reads.tsv") if r["status"] == "pass"]
    assert [r["read"] for r in rows] == reads  # samples in sheet order, clones in reads.tsv order
    assert {r["allele"] for r in rows} == {""} and {r["merge_height"] for r in rows} == {""}
    assert not any("grouped" in t.text for t in fig.pages[0].texts())


def test_bad_order(dose_dir):
    with pytest.raises(InputError, match="order"):
        P.run_plot(dose_dir, P.PlotConfig(order="random"))
    with pytest.raises(InputError, match="--sort-clones"):
        P.run_plot(dose_dir, P.PlotConfig(order="cluster", sort_clones=True))
    assert P.PlotConfig(sort_clones=True).row_order == "methylation"


# --- real traces: the example reads' IGFBP3 clones carry rs2854744 (C/A at CpG 6) ---------------------------


@pytest.fixture(scope="module")
def igfbp3(tmp_path_factory):
    """Two samples of the example reads (22 traces) called with the shipped SNP, and without it (the site is then
    found from the clones)."""
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.reference import DEFAULT_FORWARD, DEFAULT_REVERSE, DEFAULT_SNPS, build_amplicon, read_reference

    root = Path(__file__).resolve().parents[1] / "example_reads"
    base = tmp_path_factory.mktemp("igfbp3")
    name, seq, _ = read_reference()
    out = {}
    for key, snps in (("known", DEFAULT_SNPS), ("bare", ())):
        amp = build_amplicon(name, seq, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=snps)
        run_call([str(root / "BT474_d0"), str(root / "rBT474_d10")], amp, base / key, CallConfig(threads=1))
        out[key] = base / key
    return out


def _fresh(igfbp3, key, tmp_path):
    """A copy of one call folder of the fixture: ``plot`` writes its figures into it."""
    import shutil

    return Path(shutil.copytree(igfbp3[key], tmp_path / key))


def _plot_cli(call_dir, *options):
    from click.testing import CliRunner

    from bsmeth.cli import cli

    return CliRunner().invoke(cli, ["plot", str(call_dir), "--formats", "svg", *options], catch_exceptions=False)


def _cophenetic_of_shown_patterns(rows, snp_cpgs):
    """Average-linkage cophenetic distances of the drawn clones, from lollipop.tsv's own columns: the share of the
    CpGs called M/U in both clones that differ (SNP CpGs left out), written here from that definition."""
    import numpy as np
    from scipy.cluster.hierarchy import cophenet, linkage
    from scipy.spatial.distance import squareform

    cols = [c for c in rows[0] if c.startswith("cpg_") and c not in snp_cpgs]
    pats = [[r[c] for c in cols] for r in rows]
    n = len(pats)
    d = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        shared = [(a, b) for a, b in zip(pats[i], pats[j]) if a in "MU" and b in "MU" and a and b]
        d[i, j] = d[j, i] = sum(a != b for a, b in shared) / len(shared)
    return squareform(cophenet(linkage(squareform(d), "average"))) if n > 2 else d


def test_plot_cli_groups_real_clones_by_rs2854744_and_draws_their_dendrograms(igfbp3, tmp_path):
    d = _fresh(igfbp3, "known", tmp_path)
    r = _plot_cli(d, "--order", "cluster")
    assert r.exit_code == 0, r.output
    svg = (d / "lollipop.svg").read_text()
    reads = {x["read"]: x for x in read_tsv(d / "reads.tsv")}
    rows = read_tsv(d / "lollipop.tsv")
    assert list(rows[0])[:7] == ["page", "sample", "row", "read", "methylation_pct", "allele", "merge_height"]
    for sample in ("BT474_d0", "rBT474_d10"):
        mine = [x for x in rows if x["sample"] == sample]
        # every clone's allele is the genotype bsmeth read from its trace; C (reference) rows first, then A
        assert [x["allele"] for x in mine] == [reads[x["read"]]["genotype"] for x in mine]
        assert [x["allele"] for x in mine] == sorted((x["allele"] for x in mine), key=["rs2854744:C",
                                                                                        "rs2854744:A"].index)
        # the bracket labels and the dendrogram of the panel are in the SVG
        block = re.search(rf'<g id="alleles-{sample}">(.*?)</g>', svg, re.S).group(1)
        assert re.findall(r">([A-Z?])</text>", block) == ["C", "A"]
        tree = re.search(rf'<g id="dendrogram-{sample}">(.*?)</g>', svg, re.S).group(1)
        assert tree.count("<polyline") == 3 * (len(mine) - 2)  # 3 lines per merge, one tree per allele
        # merge_height: the tree's height between neighbouring rows, recomputed here from the drawn patterns
        # (tied distances make UPGMA's tree depend on the input order: the clones go in as bsmeth gives them,
        # in reads.tsv order)
        order = list(reads)
        for allele in ("rs2854744:C", "rs2854744:A"):
            group = [x for x in mine if x["allele"] == allele]
            given = sorted(group, key=lambda x: order.index(x["read"]))
            coph = _cophenetic_of_shown_patterns(given, {"cpg_6"})
            at = [given.index(x) for x in group]  # drawn row -> input index
            for k in range(len(group) - 1):
                assert float(group[k]["merge_height"]) == pytest.approx(coph[at[k], at[k + 1]], abs=5e-5)
            assert group[-1]["merge_height"] == ""
    legend = " ".join(re.findall(r">([^<]*)</text>", svg))
    assert "SNP rs2854744" in legend and "average linkage" in legend


def test_plot_cli_old_options_still_work_on_real_clones(igfbp3, tmp_path):
    d = _fresh(igfbp3, "known", tmp_path)
    assert _plot_cli(d, "--sort-clones").exit_code == 0
    rows = [x for x in read_tsv(d / "lollipop.tsv") if x["sample"] == "BT474_d0"]
    for allele in ("rs2854744:C", "rs2854744:A"):
        meth = [float(x["methylation_pct"]) for x in rows if x["allele"] == allele]
        assert meth == sorted(meth, reverse=True) and meth
    assert "dendrogram-" not in (d / "lollipop.svg").read_text()
    assert _plot_cli(d, "--no-allele-groups").exit_code == 0
    svg = (d / "lollipop.svg").read_text()
    assert "alleles-" not in svg and "dendrogram-" not in svg
    pass_reads = [x["read"] for x in read_tsv(d / "reads.tsv") if x["status"] == "pass"]
    assert [x["read"] for x in read_tsv(d / "lollipop.tsv")] == pass_reads
    r = _plot_cli(d, "--sort-clones", "--order", "cluster")
    assert r.exit_code == 2 and "--sort-clones" in r.output


def test_plot_cli_groups_by_the_site_found_when_no_snp_is_known(igfbp3, tmp_path):
    d, known_dir = _fresh(igfbp3, "bare", tmp_path), _fresh(igfbp3, "known", tmp_path)
    assert _plot_cli(d, "--order", "cluster").exit_code == 0 and _plot_cli(known_dir).exit_code == 0
    rows = read_tsv(d / "lollipop.tsv")
    assert {x["allele"] for x in rows} == {"89:C>A:C", "89:C>A:A"}
    svg = (d / "lollipop.svg").read_text()
    assert "found from the clones" in svg and '<g id="dendrogram-BT474_d0">' in svg
    known = {x["read"]: x["allele"].split(":")[-1] for x in read_tsv(known_dir / "lollipop.tsv")}
    assert {x["read"]: x["allele"].split(":")[-1] for x in rows} == known  # the same split as rs2854744's
