"""`bsmeth report` (bsmeth.report) and the call-directory loader it shares with plot/compare (bsmeth.tables)."""

import base64
import io
import json
import random
import re
import struct
import zlib

import pytest
from callfixtures import dose_design, random_clones, write_call_dir

from bsmeth.errors import InputError
from bsmeth.models import Reason, Why
from bsmeth.report import build as R
from bsmeth.report import html as H
from bsmeth.report import reads as RR
from bsmeth.report import summary as S
from bsmeth.stats import CompareConfig, run_compare
from bsmeth.tables import clone_table, load_call_dir, order_levels


@pytest.fixture
def call_dir(tmp_path):
    eff = {("HCT116", 0): 0.8, ("HCT116", 10): 0.2, ("DKO", 0): 0.3, ("DKO", 10): 0.3}
    d = dose_design(tmp_path / "call", eff, n_clones=6, snp_cpg=6, under_primer=(1,))
    return d


@pytest.fixture
def nasty_dir(tmp_path):
    """Names that must be escaped, failed reads of several reasons."""
    rng = random.Random(4)
    samples = [
        {"sample": "<b>x&y</b>", "cond": 'a"b', "clones": random_clones(rng, 3, 0.5, 10),
         "failed": [("low_conversion", "conversion 88.4% < 95%"), ("unreadable", "<not an ab1>")]},
        {"sample": "plain", "cond": "c", "clones": random_clones(rng, 4, 0.2, 10), "failed": [("duplicate", "")]},
    ]
    return write_call_dir(tmp_path / "nasty", samples, sheet_columns=("cond",))


# --- loading -------------------------------------------------------------------------------------


def test_load_call_dir_keeps_strings(call_dir):
    data = load_call_dir(call_dir)
    assert data.sample_columns == ("cell_line", "dose")
    assert set(data.cpg_calls["call"]) <= {"M", "U", "-"}  # '-' is not read as missing
    assert data.summary["percent"].dtype.kind == "f"
    assert data.sample_order() == ["HCT116_d0", "HCT116_d10", "DKO_d0", "DKO_d10"]
    clones = clone_table(data)
    assert len(clones) == 24 and (clones["n"] > 0).all()
    assert clones["fraction"].between(0, 1).all()


@pytest.mark.parametrize("victim,match", [
    ("summary.tsv", "summary.tsv: missing"),
    ("run.json", "run.json: missing"),
])
def test_missing_file(call_dir, victim, match):
    (call_dir / victim).unlink()
    with pytest.raises(InputError, match=match):
        load_call_dir(call_dir)


def test_missing_column_is_named(call_dir):
    p = call_dir / "cpg_calls.tsv"
    lines = p.read_text().split("\n")
    at = lines[0].split("\t").index("call")
    lines = ["\t".join(c for i, c in enumerate(ln.split("\t")) if i != at) for ln in lines]  # drop 'call'
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"cpg_calls.tsv: missing column\(s\) call"):
        load_call_dir(call_dir)


def test_not_a_directory_and_bad_json(tmp_path, call_dir):
    with pytest.raises(InputError, match="not a directory"):
        load_call_dir(tmp_path / "nope")
    (call_dir / "run.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_call_dir(call_dir)


def test_sample_columns_fall_back_to_samples_tsv(tmp_path):
    rng = random.Random(1)
    d = write_call_dir(tmp_path / "c", [{"sample": "s", "line": "A", "clones": random_clones(rng, 2, .5, 10)}],
                       sheet_columns=("line",), run_sample_columns=False)
    assert load_call_dir(d).sample_columns == ("line",)


def test_order_levels():
    assert order_levels(["10", "1", "", "0", "3", "1"]) == ["0", "1", "3", "10"]
    assert order_levels(["b", "a", "b"]) == ["b", "a"]


# --- the report ----------------------------------------------------------------------------------


def _packed(text: str, element: str) -> bytes:
    m = re.search(rf'<script type="application/octet-stream" {element}[^>]*>([^<]*)</script>', text)
    assert m, element
    return zlib.decompress(base64.b64decode(m.group(1)))


def _index(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="bsm-index">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def test_report_is_self_contained_and_complete(call_dir):
    path = R.write_report(call_dir)
    assert path == call_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    for table_id in ("qc-counts", "samples", "reads", "cpgs", "stats", "stats-ref", "stats-cpg"):
        assert re.search(rf'<table id="{table_id}"[^>]* class="[^"]*data', text), table_id
    imgs = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(imgs) == 2  # lollipop grid and dose response
    assert all(src.startswith("data:image/png;base64,") and len(src) > 5000 for src in imgs)
    # nothing that could reach the network: inline style and script only, links within the page
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert not re.search(r"<script[^>]* src=", text) and "@import" not in text and "url(" not in text
    # the results first, then quality control, the figures and tests, the reads, the glossary, the run
    headings = re.findall(r'<h2 id="([^"]+)"', text)
    assert headings == ["summary", "qc", "results", "reads-h", "glossary", "run"]
    # run description, tests named in words, per-read alignments packed for the page
    assert "IGFBP3_promoter" in text and "bsmeth call --sheet sheet.tsv" in text
    assert "TGGGTATATTTTGGTTTTTGTAGA" in text and "rs2854744 89:C&gt;A" in text
    for words in ("Mann-Whitney U test on per-clone fractions", "Jonckheere-Terpstra trend test",
                  "Cochran-Armitage trend test", "Fisher&#x27;s exact test", "HC3 robust errors"):
        assert words in text, words
    alignments = json.loads(_packed(text, 'id="bsm-alignments"'))
    assert sum(rid.startswith("HCT116_d0_r") for rid in alignments) == 6
    assert all("||" in block for block in alignments.values())


def test_summary_says_what_changed_in_words_and_numbers(call_dir):
    """HCT116 falls from 80 % to 20 % with dose, DKO stays at 30 %: the summary says so, with the test and p."""
    text = R.write_report(call_dir).read_text()
    summary = text.split('<h2 id="summary">')[1].split("<h2")[0]
    items = re.findall(r"<li>(.*?)</li>", summary, re.S)
    hct = next(i for i in items if i.startswith("<b>HCT116</b>"))
    dko = next(i for i in items if i.startswith("<b>DKO</b>"))
    assert "methylation falls with dose from" in hct and "Jonckheere-Terpstra" in hct and "p = " in hct
    m = re.search(r"from (\d+) % at dose 0 to (\d+) % at dose 10", hct)
    assert m and abs(int(m.group(1)) - 80) <= 10 and abs(int(m.group(2)) - 20) <= 10
    assert "no clear trend with dose (flat)" in dko
    inter = next(i for i in items if "dose acts differently" in i or "No clear difference between the cell" in i)
    assert inter.startswith("Yes: dose acts differently") and "HC3" in inter
    d10 = next(i for i in items if i.startswith("<b>dose 10</b>"))
    assert "Mann-Whitney U test on per-clone fractions" in d10 and "6 vs 6 clones" in d10
    assert "Per CpG (Fisher&#x27;s exact test" in d10 or "Per CpG (Fisher's exact test" in d10


def test_summary_items_from_stats_rows():
    """The sentences come from stats.tsv's cells: a rise, a flat line, a skipped test and a p below 0.001."""
    import pandas as pd

    clones = pd.DataFrame({"line": ["A"] * 4 + ["B"] * 4, "dose": ["0", "0", "5", "5"] * 2,
                           "fraction": [0.1, 0.1, 0.9, 0.7, 0.5, 0.5, 0.5, 0.5]})
    rows = [
        {"test": "trend_jt_clones", "scope": "line=A", "groups": "dose=0 < dose=5", "p": "0.0004", "effect": "14",
         "ci_low": "9.5", "ci_high": "18", "n": "4", "note": ""},
        {"test": "trend_jt_clones", "scope": "line=B", "groups": "dose=0 < dose=5", "p": "0.8", "effect": "0",
         "ci_low": "-1", "ci_high": "1", "n": "4", "note": ""},
        {"test": "mannwhitney_clones", "scope": "all", "groups": "", "p": "", "note": "skipped: needs two line groups"},
    ]
    items = dict(S.summary_items(rows, clones))
    a, b = items["Dose trend"]
    assert a.startswith("<b>A</b>: methylation rises with dose from 10 % at dose 0 to 80 % at dose 5")
    assert "p = 4.0 × 10<sup>-4</sup>" in a and "95 % CI +9.5 to +18.0" in a
    assert b.startswith("<b>B</b>: no clear trend with dose (flat): 50 % at dose 0 to 50 % at dose 5")
    assert items["Groups compared"] == ["<b>all samples</b>: not compared (skipped: needs two line groups)."]
    assert S.p_html(0.032) == "0.032" and S.p_html(0.41) == "0.41"


def test_every_reason_why_and_test_is_explained(call_dir):
    """A new QC reason, why token or test cannot be added without its line in the glossary."""
    assert set(S.REASONS) == set(Reason), "add the new Reason to report.summary.REASONS"
    assert set(S.WHYS) == set(Why), "add the new Why to report.summary.WHYS"
    assert all(len(v) > 20 for v in [*S.REASONS.values(), *S.WHYS.values()])
    text = R.write_report(call_dir).read_text()
    glossary = text.split('<h2 id="glossary">')[1].split("<h2")[0]
    for token in [*Reason, *Why]:
        assert f"<code>{token.value}</code>" in glossary, token
    from bsmeth.stats import CompareConfig, compare_rows

    tests = {r["test"] for r in compare_rows(load_call_dir(call_dir), CompareConfig(bootstrap_reps=50))}
    unnamed = tests - set(S.TESTS)
    assert not unnamed, f"name these tests in words in report.summary.TESTS: {sorted(unnamed)}"
    for tid in tests:
        assert f"<code>{tid}</code>" in glossary


def test_report_uses_stats_tsv_when_present(call_dir):
    run_compare(call_dir, CompareConfig(seed=1))
    text = R.write_report(call_dir).read_text()
    assert "From stats.tsv" in text


def test_report_escapes_everything_and_counts_reasons(nasty_dir):
    text = R.write_report(nasty_dir, out=nasty_dir / "sub" / "r.html").read_text()
    assert "<b>x&y</b>" not in text
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text
    assert "&lt;not an ab1&gt;" in text and "a&quot;b" in text
    m = re.search(r'<table id="qc-counts"[^>]*>(.*?)</table>', text, re.S).group(1)
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", m)
    assert headers == ["sample", "pass", "unreadable", "low_conversion", "duplicate", "reads"]
    assert "<td>all<td class=n>7<td class=n>1<td class=n>1<td class=n>1<td class=n>10" in m
    assert "dose_response" not in text and 'id="dose"' not in text  # no dose column, no dose figure
    # the page's data: JSON cannot be ended by a name holding </script>
    index = _index(text)
    assert index["samples"][0] == "<b>x&y</b>"


def test_split_alignments_on_headers(call_dir):
    data = load_call_dir(call_dir)
    text = (call_dir / "alignments.txt").read_text()
    recs = R.split_alignments(text, data.reads)
    assert [r for r, _ in recs] == list(data.reads["read"])
    assert all(block.count("\n") == 4 and "|" in block for _, block in recs)
    # tab-separated headers without '>' work too; alignment lines never look like headers
    alt = "r1\tS\tpass\t\t+\t0.97\t0.99\nTTGCG\n||*||\nTTGCG\n  M\nr2\tS\tfail\tlow_identity\t+\t0.5\t0.9\nAAA\n"
    import pandas as pd

    reads = pd.DataFrame({"read": ["r1", "r2", "TTGCG"], "status": ["pass", "fail", "pass"]})
    recs = R.split_alignments(alt, reads)
    assert [r for r, _ in recs] == ["r1", "r2"]


def test_read_index_counts_every_clone(call_dir):
    """The page's live numbers start from these counts: per read M and U as in cpg_calls.tsv, so the pooled %
    of a sample's passing reads is samples.tsv's methylation."""
    data = load_call_dir(call_dir)
    index = RR.read_index(data)
    assert [r[0] for r in index["reads"]] == list(data.reads["read"])
    for sample, pct in zip(data.samples["sample"], data.samples["methylation_pct"]):
        k = index["samples"].index(sample)
        m = sum(r[5] for r in index["reads"] if r[1] == k and r[3] == 1)
        u = sum(r[6] for r in index["reads"] if r[1] == k and r[3] == 1)
        assert round(100 * m / (m + u), 2) == pytest.approx(pct)


def test_big_tables_are_paged_and_readable_without_javascript(tmp_path):
    """Over PAGE_ROWS rows a table shows one page until the script pages it; a <noscript> style shows them all."""
    rng = random.Random(3)
    samples = [{"sample": f"S{i:03d}", "cell_line": "AB"[i % 2], "dose": str(i % 3),
                "clones": random_clones(rng, 2, 0.4, 10)} for i in range(60)]
    d = write_call_dir(tmp_path / "many", samples)
    text = R.build_report(load_call_dir(d), pngs={"lollipop": _png(300, 200), "dose_response": _png(300, 200)},
                          compare_config=CompareConfig(bootstrap_reps=50))
    assert re.search(r'<table id="reads" class="data big">', text)  # 120 reads
    assert re.search(r'<table id="samples"[^>]* class="samples data">', text)  # 60 samples: one page
    assert H.NOSCRIPT_STYLE in text.split("</head>")[0]
    assert "table.big:not(.js) tbody tr:nth-child(n+101){display:none}" in text


# --- figures -------------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A figure-like PNG: black rings and dots on white, a few colours (made with numpy: fast at any size)."""
    import numpy as np
    from PIL import Image

    y, x = np.ogrid[:height, :width]
    r2 = (x % 31 - 12) ** 2 + (y % 23 - 10) ** 2
    ring = (r2 >= 49) & (r2 <= 81)
    dot = (r2 < 49) & (((x // 31) * (y // 23)) % 7 == 0)
    im = np.where(ring | dot, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(im, "L").convert("RGB").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_large_figures_are_embedded_reduced_or_linked():
    small = _png(300, 200)
    assert H.preview_png(small, 2600, 12000, 450_000) == (small, (300, 200), "as drawn")
    tall = _png(900, 16000)  # a grid of many samples: reduced to fit, quantised, legible size
    shown, size, how = H.preview_png(tall, 2600, 12000, 450_000)
    assert shown is not None and len(shown) <= 450_000 and H.png_size(shown) == size
    assert size[1] <= 12000 and size[0] >= 400 and how.startswith("reduced from 900 x 16000 px")
    # over the pixel limit (a 5,708 x 54,659 px grid): not decoded at all, linked instead
    shown, size, how = H.preview_png(tall, 2600, 12000, 450_000, max_pixels=1_000_000)
    assert shown is None and "too large to embed" in how


def test_report_embeds_what_run_passes_within_the_caps(call_dir):
    data = load_call_dir(call_dir)
    tall = _png(700, 14000)
    text = R.build_report(data, pngs={"lollipop": tall, "dose_response": [_png(400, 300), _png(400, 300)]})
    sizes = [H.png_size(base64.b64decode(src)) for src in re.findall(r'src="data:image/png;base64,([^"]*)"', text)]
    assert len(sizes) == 3 and all(w <= R.FIGURE_MAX_PX[0] and h <= R.FIGURE_MAX_PX[1] for w, h in sizes)
    assert "Shown reduced from 700 x 14000 px" in text and "lollipop.png, .svg, .pdf in the result folder" in text
    assert "percent methylation vs dose, page 2" in text


# --- chromatograms -------------------------------------------------------------------------------


@pytest.fixture
def traced_call_dir(tmp_path):
    """A real call folder over simulated traces (small: 1 sample, 4 clones)."""
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.reference import load_amplicon
    from bsmeth.simulate import Condition, Design, simulate

    reads = tmp_path / "reads"
    simulate(Design((Condition("s", {"dose": 0}, 4, 0.5),)), load_amplicon(), reads, seed=5)
    out = tmp_path / "call"
    run_call([str(reads)], load_amplicon(), out, CallConfig(), str(reads / "samples.csv"))
    return out, reads


def _traces(text: str) -> tuple[dict, bytes]:
    buf = _packed(text, 'class="bsm-traces"')
    (n,) = struct.unpack("<I", buf[:4])
    return json.loads(buf[4:4 + n]), buf[4 + n:]


def test_every_read_carries_its_chromatogram_at_every_cpg(traced_call_dir):
    """Decoded as the page decodes it: the peaks of the CpGs' bases read C/T (G/A on a '-' read), each covered
    CpG is there, and the channels are the trace's to within the 64 levels kept."""
    from bsmeth.reads import read_file

    out, reads = traced_call_dir
    data = load_call_dir(out)
    text = R.write_report(out).read_text()
    index, binary = _traces(text)
    aligned = set(data.cpg_calls.loc[data.cpg_calls["read_pos"].notna(), "read"])
    assert set(index) == aligned and len(index) >= 4
    for rid, meta in index.items():
        path = RR.trace_file(data, data.reads.set_index("read").at[rid, "file"])
        read = read_file(path)[0]
        chunk = binary[meta["off"]:]
        peaks = list(__import__("itertools").accumulate(struct.unpack(f"<{meta['nb']}H", chunk[:2 * meta["nb"]])))
        rows = data.cpg_calls[(data.cpg_calls["read"] == rid) & data.cpg_calls["read_pos"].notna()]
        assert sorted(c for c, _, _ in meta["cpg"]) == sorted(rows["cpg"].astype(int))
        for _cpg, i, call in meta["cpg"]:
            if call in "MU":
                want = {"+": {"M": "C", "U": "T"}, "-": {"M": "G", "U": "A"}}[meta["o"]][call]
                assert meta["seq"][i] == want
        # channel A, undone as the page does (running sum modulo 256), against the trace itself
        n = meta["n"]
        a = list(__import__("itertools").accumulate(chunk[2 * meta["nb"]:2 * meta["nb"] + n],
                                                    lambda x, y: (x + y) & 255))
        tr = read.trace
        x0 = int(tr.peaks[meta["i0"]]) - peaks[0] * meta["step"]
        raw = [float(v) for v in tr.channels["A"][x0:x0 + n * meta["step"]:meta["step"]]]
        top = max(float(max(tr.channels[b][x0:x0 + n * meta["step"]:meta["step"]])) for b in "ACGT")
        assert max(abs(q - v * (RR.LEVELS - 1) / top) for q, v in zip(a, raw)) <= 0.5 + 1e-9
    assert "Chromatograms: 4 of the 4 aligned reads are embedded" in text or \
        re.search(r"Chromatograms: \d+ of the \d+ aligned reads are embedded", text)


def test_trace_budget_puts_failed_reads_first(traced_call_dir):
    out, reads = traced_call_dir
    data = load_call_dir(out)
    last = data.reads["read"].iloc[-1]
    data.reads.loc[data.reads["read"] == last, ["status", "reason"]] = ["fail", "low_conversion"]
    index, _, counts = RR.trace_payload(data, budget=5000)  # room for two reads, not four
    assert last in index and counts["over_budget"] >= 1  # the failed read, last in the file, is embedded
    html = RR.trace_section(data, budget=5000)
    blob = re.search(r'data-z="deflate">([^<]*)<', html).group(1)
    assert len(blob) <= 5000 and "did not fit the page&#x27;s budget" not in html
    assert "did not fit the page's budget of 0.0 MB" in html


def test_report_says_when_the_trace_file_is_missing(traced_call_dir):
    out, reads = traced_call_dir
    import shutil

    shutil.move(str(reads), str(reads.with_name("moved")))
    text = R.write_report(out).read_text()
    assert "trace files named in reads.tsv were not found" in text
    assert not _traces(text)[0]


# --- scale ---------------------------------------------------------------------------------------


def test_two_thousand_reads_stay_under_three_megabytes(tmp_path):
    """2,000 clones (8 samples of 250, 25 CpGs), figures drawn by the report: the page without chromatograms plus
    the whole chromatogram budget (test_trace_budget_puts_failed_reads_first: never exceeded) is under 3 MB.
    benchmarks/bench_report.py measures the same on 2,008 simulated traces, chromatograms included."""
    rng = random.Random(8)
    positions = tuple(20 + 8 * k for k in range(25))
    samples = [{"sample": f"{line}_d{dose}", "cell_line": line, "dose": str(dose),
                "clones": random_clones(rng, 250, 0.1 + 0.05 * dose * (line == "rB"), 25, clone_sd=0.1)}
               for line in ("B", "rB") for dose in (0, 1, 3, 10)]
    d = write_call_dir(tmp_path / "big", samples, positions=positions)
    # the figures as run passes them (a 2,000-clone lollipop grid at 200 dpi is 3,862 x 9,242 px)
    text = R.build_report(load_call_dir(d), pngs={"lollipop": _png(3862, 9242), "dose_response": _png(995, 771)},
                          # Kruskal-Wallis over the samples (pooled Fisher on 12,500 calls takes seconds)
                          compare_config=CompareConfig(by="sample", within=None))
    size = len(text.encode())
    assert size + RR.TRACE_BUDGET < 3_000_000, size
    assert text.count('<a href="#read" class="rd">') == 2000
    assert "rB</b>: methylation rises with dose" in text


def test_twelve_hundred_samples_stay_usable(tmp_path):
    """1,200 samples: every table is there (paged), no figure is embedded beyond the caps, the page is a few MB."""
    rng = random.Random(12)
    samples = [{"sample": f"P{i:04d}", "cell_line": "AB"[i % 2], "dose": str((i // 2) % 4),
                "clones": random_clones(rng, 2, 0.3, 10)} for i in range(1200)]
    d = write_call_dir(tmp_path / "wide", samples)
    data = load_call_dir(d)
    tall = _png(1000, 30000)  # a grid of 1,200 samples in one piece
    text = R.build_report(data, pngs={"lollipop": tall, "dose_response": _png(900, 700)},
                          compare_config=CompareConfig(by="sample", within=None))
    sizes = [H.png_size(base64.b64decode(src)) for src in re.findall(r'src="data:image/png;base64,([^"]*)"', text)]
    assert all(w <= R.FIGURE_MAX_PX[0] and h <= R.FIGURE_MAX_PX[1] for w, h in sizes) and len(sizes) == 2
    for table_id in ("qc-counts", "samples", "cpgs", "reads"):
        assert re.search(rf'<table id="{table_id}"[^>]* class="[^"]*big', text), table_id
    assert len(text.encode()) < 6_000_000
