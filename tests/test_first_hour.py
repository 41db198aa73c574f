"""What a new user types in the first hour, through the installed command: globs, a wrong reference, a result
folder moved or copied elsewhere."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from command import bsmeth_cmd

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "example_reads"
BIQ = Path(__file__).parent / "data" / "biq_demo"


def bsmeth(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*bsmeth_cmd(), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_glob_of_files_warns_that_every_sample_is_one_read(tmp_path):
    """`bsmeth call example_reads/BT474_d0/*.ab1 example_reads/rBT474_d0/*.ab1` (the shell expands the globs):
    each file becomes a sample of one read; bsmeth says so and what to do."""
    files = sorted((EXAMPLE / "BT474_d0").glob("*.ab1"))[:3] + sorted((EXAMPLE / "rBT474_d0").glob("*.ab1"))[:3]
    r = bsmeth("call", *files, "--out", tmp_path / "x", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert "every sample holds a single read (6 samples of one read each)" in r.stderr
    assert "--samples" in r.stderr
    run = json.loads((tmp_path / "x" / "run.json").read_text())
    assert any("single read" in w for w in run["warnings"])
    # the same files as folders: one sample each, no warning
    r = bsmeth("call", EXAMPLE / "BT474_d0", "--out", tmp_path / "y", "-j", "1")
    assert r.returncode == 0 and "single read" not in r.stderr


def test_glob_pattern_given_to_bsmeth_itself(tmp_path):
    """A pattern bsmeth expands (quoted on the command line) behaves the same."""
    r = bsmeth("call", str(EXAMPLE / "BT474_d0" / "BT474_d0_0*.ab1"), "--out", tmp_path / "x", "-j", "1")
    assert r.returncode == 0 and "every sample holds a single read" in r.stderr


def test_reads_of_another_region_get_a_hint(tmp_path):
    """IGFBP3 clones called against the BiQ demo reference: nothing matches; exit 0 with a run-level hint."""
    files = sorted((EXAMPLE / "rBT474_d3").glob("*.ab1"))[:5]
    r = bsmeth("call", *files, "--reference", BIQ / "Master_Sequence.txt", "--out", tmp_path / "x", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert "5 of 5 reads fail no_amplicon" in r.stderr and "check --reference" in r.stderr
    run = json.loads((tmp_path / "x" / "run.json").read_text())
    assert run["counts"]["pass"] == 0 and any("no_amplicon" in w for w in run["warnings"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder: its reads and a result folder beside them."""
    root = tmp_path_factory.mktemp("project")
    reads = root / "reads"
    for sample in ("BT474_d0", "rBT474_d10"):
        (reads / sample).mkdir(parents=True)
        for f in sorted((EXAMPLE / sample).glob("*.ab1"))[:4]:
            shutil.copy(f, reads / sample)
    r = bsmeth("run", "reads", "--out", "results", "-j", "1", "--formats", "png", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def test_reads_tsv_paths_are_relative_to_the_results(project):
    rows = list(csv.DictReader(open(project / "results" / "reads.tsv", newline=""), delimiter="\t"))
    assert rows and all(r["file"].startswith("../reads/") for r in rows)
    assert all((project / "results" / r["file"]).is_file() for r in rows)


def _report_has_trace(results: Path) -> bool:
    r = bsmeth("report", results)
    assert r.returncode == 0, r.stderr
    html = (results / "report.html").read_text()
    return re.search(r"Chromatograms: [1-9]\d* of the \d+ aligned reads are embedded", html) is not None


def test_results_moved_alone_still_find_the_traces(project, tmp_path):
    moved = tmp_path / "elsewhere" / "results"
    shutil.copytree(project / "results", moved)
    assert _report_has_trace(moved)


def test_project_copied_with_its_reads_finds_the_traces_there(project, tmp_path):
    """Copied together (to another machine, say): the copy's own reads are used, not the original ones."""
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    run = json.loads((copy / "results" / "run.json").read_text())
    run["results_dir"] = "/nonexistent/results"  # as on another machine: the original place is gone
    (copy / "results" / "run.json").write_text(json.dumps(run))
    assert _report_has_trace(copy / "results")


def _sheet_with_doses(tmp_path: Path, doses: dict) -> Path:
    """A sheet of two example samples per cell line whose dose cells are written as given."""
    rows = ["file,sample,cell_line,dose"]
    for sample, dose in doses.items():
        for f in sorted((EXAMPLE / sample).glob("*.ab1"))[:4]:
            rows.append(f"{f},{sample},{sample.split('_')[0]},{dose}")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return sheet


def test_doses_written_with_units_are_numbers_with_a_unit(tmp_path):
    """`10 uM` in the sheet: the statistics see 10 (a linear dose trend, not rank scores), the unit is recorded
    (samples.tsv dose_unit) and shown on the figures."""
    sheet = _sheet_with_doses(tmp_path, {"BT474_d0": "0", "BT474_d10": "10 uM", "rBT474_d0": "0",
                                         "rBT474_d10": "10 µM"})
    r = bsmeth("run", "--samples", sheet, "--out", tmp_path / "x", "-j", "1", "--formats", "svg,png",
               "--export", "none", "--no-bam")
    assert r.returncode == 0, r.stderr
    samples = list(csv.DictReader(open(tmp_path / "x" / "samples.tsv", newline=""), delimiter="\t"))
    assert {(s["dose"], s["dose_unit"]) for s in samples} == {("0", "uM"), ("10", "uM")}
    stats = list(csv.DictReader(open(tmp_path / "x" / "stats.tsv", newline=""), delimiter="\t"))
    trend = [s for s in stats if s["test"] == "trend_jt_clones"]
    assert trend and not any("rank" in s["note"] for s in trend)
    svg = (tmp_path / "x" / "lollipop.svg").read_text()
    assert "dose 10 uM" in svg


@pytest.mark.parametrize("doses,words", [
    ({"BT474_d0": "1 uM", "BT474_d10": "10 nM"}, ["line", "in nM", "in uM", "one unit"]),
    ({"BT474_d0": "0", "BT474_d10": "ten uM"}, ["line", "'ten uM' is not a number with a unit"]),
    ({"BT474_d0": "5", "BT474_d10": "10 uM"}, ["line 2", "'5' has no unit"]),
])
def test_doses_in_mixed_units_or_unreadable_are_errors_naming_the_row(tmp_path, doses, words):
    sheet = _sheet_with_doses(tmp_path, doses)
    r = bsmeth("call", "--samples", sheet, "--out", tmp_path / "x", "-j", "1", "--no-bam")
    assert r.returncode == 3, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("bsmeth: error: sample sheet") and all(w in line for w in words), line


def test_a_fraction_where_a_percent_is_meant_gets_a_hint(tmp_path):
    r = bsmeth("call", EXAMPLE / "BT474_d0", "--out", tmp_path / "x", "--min-conversion", "0.95")
    assert r.returncode == 2 and "did you mean 95?" in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args", [
    ["call", "{reads}", "--min-conversion", "150"], ["call", "{reads}", "--min-identity", "0.9"],
    ["call", "{reads}", "--min-qual", "-5"], ["call", "{reads}", "--duplicate-evidence", "-3"],
    ["call", "{reads}", "--min-hq-bases", "-1"], ["call", "{reads}", "--max-mismatches", "-1"],
    ["call", "{reads}", "--min-clone-coverage", "101"], ["call", "{reads}", "--threads", "-1"],
    ["call", "{reads}", "--min-conversion", "nan"], ["compare", "{results}", "--seed", "-1"],
    ["plot", "{results}", "--dpi", "0"], ["plot", "{results}", "--width-mm", "-5"],
    ["plot", "{results}", "--max-height-mm", "0"], ["quantify", "{reads}", "--min-signal", "2"],
    ["simulate", "--seed", "-2"],
])
def test_no_option_accepts_a_value_outside_its_range(project, tmp_path, args):
    args = [a.replace("{reads}", str(EXAMPLE / "BT474_d0")).replace("{results}", str(project / "results"))
            for a in args]
    if args[0] in ("call", "quantify", "simulate"):
        args += ["--out", str(tmp_path / "x")]
    r = bsmeth(*args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert "Invalid value" in r.stderr


def test_reference_published_already_converted_still_calls(tmp_path):
    """methylcircleplot's Oct4 example gives its reference already converted: the two real clones pass with
    all 16 CpGs called, conversion is left empty (nothing to check it on) and the user is told why."""
    oct4 = Path(__file__).parent / "data" / "oct4"
    r = bsmeth("call", oct4 / "clones.fasta", "--reference", oct4 / "reference_as_published.fa",
               "--forward", "TGGGTTGAAATATTGGGTTTATTT", "--reverse", "CTAAAACCAAATATCCAACCATA",
               "--out", tmp_path / "o", "--no-bam")
    assert r.returncode == 0, r.stderr
    assert "already bisulfite-converted, so conversion cannot be checked" in r.stderr
    with open(tmp_path / "o" / "reads.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(row["status"], row["cpgs_called"], row["conversion_pct"]) for row in rows] == [("pass", "16", "")] * 2
    assert all(row["detail"].startswith("conversion not checked") for row in rows)
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["amplicon"]["converted_reference"] is True
