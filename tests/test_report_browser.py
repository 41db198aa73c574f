"""report.html of example_reads in headless Chromium, used as a biologist uses it: the summary comes first, the
read table sorts, filters and searches, a read's trace opens on demand, and a curation round trip (untick two
clones, download curation.tsv, rerun with --curation) changes samples.tsv as the page said it would.

Chromium is Debian's (``.ci/run`` installs it), driven over the DevTools pipe by tests/headless.py; no browser
is downloaded.  Skipped where chromium is not installed.  Render time is measured by benchmarks/bench_report.py,
never asserted here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from command import bsmeth_cmd
from headless import Browser, chromium_path

from bsmeth.tsv import read_table

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "example_reads"

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="chromium not installed (CI: apt-get install -y chromium)")


def run(out: Path, *extra: str) -> Path:
    r = subprocess.run([*bsmeth_cmd(), "-q", "run", str(EXAMPLE), "--samples", str(EXAMPLE / "samples.csv"),
                        "--out", str(out), "--formats", "png", *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("browser") / "results")


def table(path: Path) -> list[dict]:
    header, rows = read_table(path)
    return [dict(zip(header, r)) for r in rows]


VISIBLE = """(col) => {
  const t = document.getElementById('reads');
  const c = Array.from(t.tHead.rows[0].cells).findIndex(h => h.textContent === col);
  return Array.from(t.tBodies[0].rows).filter(r => !r.hidden).map(r => r.cells[c].textContent);
}"""


def visible(page, col: str) -> list[str]:
    return page.eval(f"({VISIBLE})({json.dumps(col)})")


def set_filter(page, col: str, value: str) -> None:
    page.eval(f"""(() => {{
      const t = document.getElementById('reads');
      const c = Array.from(t.tHead.rows[0].cells).findIndex(h => h.textContent === {json.dumps(col)});
      const input = t.tHead.rows[1].cells[c].firstChild;
      input.value = {json.dumps(value)};
      input.dispatchEvent(new Event(input.tagName === 'SELECT' ? 'change' : 'input'));
    }})()""")


def test_summary_comes_first_and_the_page_has_no_errors(results, tmp_path):
    with Browser(width=1300, height=1600) as b:
        page = b.open(results / "report.html")
        assert page.eval("document.documentElement.dataset.ready") == "1"
        first = page.eval("document.querySelector('h2').id")
        assert first == "summary"
        tops = page.eval("['summary', 'qc', 'results', 'reads-h'].map(id => "
                         "document.getElementById(id).getBoundingClientRect().top)")
        assert tops == sorted(tops)
        text = page.eval("document.getElementById('summary-s').innerText")
        assert "rBT474: methylation rises with dose" in text and "Jonckheere-Terpstra" in text
        assert "96 reads in 8 samples" in text
        shot = page.screenshot(tmp_path / "top.png")
        assert not page.errors(), page.errors()
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("RGB").resize((130, 160)).getcolors(maxcolors=100_000)
        assert colours is not None and len(colours) > 20  # text and tables, not a blank page


def test_read_table_sorts_filters_and_searches(results):
    reads = table(results / "reads.tsv")
    with Browser() as b:
        page = b.open(results / "report.html")
        assert len(visible(page, "read")) == len(reads) == 96
        page.eval("Array.from(document.querySelectorAll('#reads thead tr:first-child th'))"
                  ".find(h => h.textContent === 'conversion_pct').click()")
        conv = [float(x) for x in visible(page, "conversion_pct") if x]
        assert conv == sorted(conv) and conv[0] < 95
        page.eval("Array.from(document.querySelectorAll('#reads thead tr:first-child th'))"
                  ".find(h => h.textContent === 'conversion_pct').click()")
        conv = [float(x) for x in visible(page, "conversion_pct") if x]
        assert conv == sorted(conv, reverse=True)
        set_filter(page, "status", "fail")
        failed = [r["read"] for r in reads if r["status"] == "fail"]
        assert sorted(visible(page, "read")) == sorted(failed) and set(visible(page, "status")) == {"fail"}
        set_filter(page, "status", "")
        set_filter(page, "conversion_pct", "<95")
        low = [r["read"] for r in reads if r["conversion_pct"] and float(r["conversion_pct"]) < 95]
        assert sorted(visible(page, "read")) == sorted(low)
        page.click(".toolbar[data-for=reads] button")  # clear filters
        assert len(visible(page, "read")) == 96
        page.eval("(() => { const s = document.querySelector('.toolbar[data-for=reads] input[type=search]'); "
                  "s.value = 'rBT474_d10'; s.dispatchEvent(new Event('input')); })()")
        assert set(visible(page, "sample")) == {"rBT474_d10"} and len(visible(page, "read")) == 12
        assert not page.errors(), page.errors()


def test_a_failed_reads_trace_opens_on_demand(results):
    """Nothing is drawn until a read is opened; then its calls, its alignment and a chromatogram cell for every
    CpG it covers."""
    reads = table(results / "reads.tsv")
    calls = table(results / "cpg_calls.tsv")
    rid = next(r["read"] for r in reads if r["reason"] == "low_conversion")
    covered = sum(1 for c in calls if c["read"] == rid and c["read_pos"])
    with Browser() as b:
        page = b.open(results / "report.html")
        assert page.eval("document.querySelectorAll('canvas').length") == 0
        page.eval(f"Array.from(document.querySelectorAll('#reads a.rd')).find(a => a.textContent === "
                  f"{json.dumps(rid)}).click()")
        page.wait_for(f"document.querySelectorAll('#viewer canvas').length === {covered}")
        assert page.eval("document.getElementById('viewer').open") is True
        assert page.eval("document.getElementById('viewer-title').textContent") == rid
        assert page.eval("document.querySelector('#viewer pre').textContent").startswith(f">{rid} ")
        inked = page.eval("""Array.from(document.querySelectorAll('#viewer canvas')).map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 600) n++;
            return n; })""")
        assert len(inked) == covered and min(inked) > 200  # four channels drawn in every cell
        assert not page.errors(), page.errors()


def test_curation_round_trip_changes_samples_tsv(results, tmp_path):
    """Untick two clones in the page, download curation.tsv, rerun with --curation: samples.tsv changes exactly as
    the page's live numbers said."""
    before = {r["sample"]: r for r in table(results / "samples.tsv")}
    reads = table(results / "reads.tsv")
    picks = [next(r["read"] for r in reads if r["sample"] == s and r["status"] == "pass")
             for s in ("BT474_d0", "rBT474_d10")]
    downloads = tmp_path / "downloads"
    with Browser(download_dir=downloads) as b:
        page = b.open(results / "report.html")
        live_before = page.eval("Array.from(document.querySelectorAll('table.samples tbody tr')).map(r => "
                                "[r.cells[0].textContent, ...Array.from(r.cells).slice(-3).map(c => c.textContent)])")
        for sample, clones, pooled, _ in live_before:  # the page starts from samples.tsv
            assert int(clones) == int(before[sample]["pass"]) and pooled == before[sample]["methylation_pct"]
        for rid in picks:
            page.eval(f"""(() => {{ const idx = JSON.parse(document.getElementById('bsm-index').textContent);
                const i = idx.reads.findIndex(r => r[0] === {json.dumps(rid)});
                document.querySelector('#reads input[type=checkbox][data-i="' + i + '"]').click(); }})()""")
        live = {row[0]: row[1:] for row in page.eval(
            "Array.from(document.querySelectorAll('table.samples tbody tr')).map(r => "
            "[r.cells[0].textContent, ...Array.from(r.cells).slice(-3).map(c => c.textContent)])")}
        assert "2 clones excluded by hand" in page.eval("document.getElementById('curation-status').textContent")
        page.click("#download-curation")
        got = page.wait_download("curation.tsv")
        assert not page.errors(), page.errors()
    header, rows = read_table(got)
    assert header == ["read", "decision", "note"] and sorted(rows) == sorted([p, "exclude", ""] for p in picks)
    again = run(tmp_path / "curated", "--curation", str(got))
    after = {r["sample"]: r for r in table(again / "samples.tsv")}
    for sample, row in after.items():
        if sample in ("BT474_d0", "rBT474_d10"):
            assert int(row["pass"]) == int(before[sample]["pass"]) - 1
            assert row["pass"] == live[sample][0] and row["methylation_pct"] == live[sample][1]
        else:
            assert row == before[sample]
    run_json = json.loads((again / "run.json").read_text())
    assert run_json["curation"]["applied"] == picks
    # the rerun's report shows the exclusion, with the two clones unticked and re-includable
    with Browser() as b:
        page = b.open(again / "report.html")
        assert "Curation applied from" in page.eval("document.getElementById('summary-s').innerText")
        state = page.eval(f"""(() => {{ const idx = JSON.parse(document.getElementById('bsm-index').textContent);
            return {json.dumps(picks)}.map(id => {{ const i = idx.reads.findIndex(r => r[0] === id);
              const box = document.querySelector('#reads input[data-i="' + i + '"]');
              return [idx.reads[i][4], box.checked, box.disabled]; }}); }})()""")
        assert state == [["excluded_by_user", False, False]] * 2
