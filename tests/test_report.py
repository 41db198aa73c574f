"""`bsmeth report` (bsmeth.report) and the call-directory loader it shares with plot/compare (bsmeth.tables)."""

import random
import re
import subprocess
from pathlib import Path

import pytest

from bsmeth import report as R
from bsmeth.errors import InputError
from bsmeth.stats import CompareConfig, run_compare
from bsmeth.tables import clone_table, load_call_dir, order_levels

from callfixtures import dose_design, random_clones, write_call_dir

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


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
    lines = ["\t".join(c for i, c in enumerate(l.split("\t")) if i != at) for l in lines]  # drop 'call'
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


def test_report_is_self_contained_and_complete(call_dir):
    path = R.write_report(call_dir)
    assert path == call_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    for table_id in ("qc-counts", "samples", "reads", "cpgs", "stats"):
        assert f'<table id="{table_id}">' in text
    imgs = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(imgs) == 2  # lollipop grid and dose response
    assert all(src.startswith("data:image/png;base64,") and len(src) > 5000 for src in imgs)
    # nothing that could reach the network
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    # run summary, stats computed on the fly, per-read alignments on demand
    assert "IGFBP3_promoter" in text and "bsmeth call --sheet sheet.tsv" in text
    assert "TGGGTATATTTTGGTTTTTGTAGA" in text and "rs2854744 89:C&gt;A" in text
    assert "trend_jt_clones" in text and "interaction_ols_hc3" in text
    assert text.count("<details><summary>HCT116_d0_r") == 6


def test_report_uses_stats_tsv_when_present(call_dir):
    run_compare(call_dir, CompareConfig(seed=1))
    text = R.write_report(call_dir).read_text()
    assert "from stats.tsv" in text


def test_report_escapes_everything_and_counts_reasons(nasty_dir):
    text = R.write_report(nasty_dir, out=nasty_dir / "sub" / "r.html").read_text()
    assert "<b>x&y</b>" not in text
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text
    assert "&lt;not an ab1&gt;" in text and "a&quot;b" in text
    m = re.search(r'<table id="qc-counts">(.*?)</table>', text, re.S).group(1)
    headers = re.findall(r"<th>(.*?)</th>", m)
    assert headers == ["sample", "pass", "unreadable", "low_conversion", "duplicate", "reads"]
    assert "<td>all</td><td class=\"num\">7</td><td class=\"num\">1</td><td class=\"num\">1</td>" \
           "<td class=\"num\">1</td><td class=\"num\">10</td>" in m
    assert "dose_response" not in text and 'id="dose"' not in text  # no dose column, no dose figure


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


def _chromium(html: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", f"--screenshot={shot}", "--window-size=1400,3000",
           "--enable-logging=stderr", "--v=0", html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return shot, proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(call_dir, tmp_path):
    html = R.write_report(call_dir)
    shot, stderr = _chromium(html, tmp_path)
    assert shot.is_file() and shot.stat().st_size > 50_000, stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 3000)
        colours = im.convert("RGB").resize((140, 300)).getcolors(maxcolors=100_000)
        assert colours is not None and len(colours) > 20  # text, tables and figures, not a blank page
    page = [l for l in stderr.splitlines() if "report.html" in l or "file://" in l]
    assert not [l for l in page if "Uncaught" in l or "ERROR:CONSOLE" in l], page
    assert not [l for l in stderr.splitlines() if "Uncaught" in l]
    assert not [l for l in stderr.splitlines() if "net::ERR" in l and "report" in l]


# --- trace snippets ------------------------------------------------------------------------------


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


def test_report_shows_the_trace_around_each_cpg(traced_call_dir):
    out, reads = traced_call_dir
    data = load_call_dir(out)
    picked = R._snippet_read(data)
    assert not isinstance(picked, str), picked
    rid, path, read, cols, orient = picked
    first = data.reads[data.reads["status"] == "pass"]["read"].iloc[0]
    assert rid == first and path.is_file() and read.trace is not None
    # every covered CpG, its read position on the called C/T (G/A on a '-' read)
    calls = data.cpg_calls[data.cpg_calls["read"] == rid]
    covered = calls[calls["why"] != "not_covered"]
    assert sorted(c for c, _, _ in cols) == sorted(int(c) for c in covered["cpg"])
    call_of = dict(zip(covered["cpg"].astype(int), covered["call"]))
    for cpg, i, call in cols:
        assert call == call_of[cpg]
        if call in "MU":
            want = {"+": {"M": "C", "U": "T"}, "-": {"M": "G", "U": "A"}}[orient][call]
            assert read.seq[i] == want, (cpg, i)
    text = R.write_report(out).read_text()
    section = text.split('<h2 id="traces">')[1].split("<h2")[0]
    assert rid in section and section.count('src="data:image/png;base64,') == 1
    assert not re.search(r"https?://", text)


def test_report_says_when_the_trace_file_is_missing(traced_call_dir):
    out, reads = traced_call_dir
    import shutil

    shutil.move(str(reads), str(reads.with_name("moved")))
    text = R.write_report(out).read_text()
    section = text.split('<h2 id="traces">')[1].split("<h2")[0]
    assert "were not found" in section and "<img" not in section
