"""`--curation curation.tsv` (bsmeth.curation): reading the file, applying it in `call`, the record in run.json,
and errors that name the line.  The round trip through the report's page is in test_report_browser.py."""

from __future__ import annotations

import json
import subprocess

import pytest
from command import bsmeth_cmd

from bsmeth.curation import apply_curation, load_curation
from bsmeth.errors import InputError
from bsmeth.models import ReadResult, Reason, Status
from bsmeth.tsv import read_table


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def _results() -> list[ReadResult]:
    return [ReadResult("a", "a.ab1", "S", Status.PASS), ReadResult("b", "b.ab1", "S", Status.PASS),
            ReadResult("c", "c.ab1", "S", Status.FAIL, Reason.LOW_CONVERSION, "conversion 90% < 95%"),
            ReadResult("d#2", "d.fa", "T", Status.PASS)]


def test_excluded_reads_fail_as_excluded_by_user_after_every_qc_reason(tmp_path):
    cur = load_curation(_write(tmp_path / "c.tsv", "read\tdecision\tnote\na\texclude\tsmeared trace\n"
                                                   "c\texclude\t\nd#2\tinclude\tchecked\n"))
    out, applied = apply_curation(_results(), cur)
    assert [(r.read_id, r.status, r.reason) for r in out] == [
        ("a", Status.FAIL, Reason.EXCLUDED_BY_USER), ("b", Status.PASS, None),
        ("c", Status.FAIL, Reason.LOW_CONVERSION),  # QC's reason comes first: it is kept
        ("d#2", Status.PASS, None)]
    assert applied == ["a"]
    assert out[0].detail == "excluded by the user (curation line 2): smeared trace"
    assert list(Reason)[-1] is Reason.EXCLUDED_BY_USER  # last in precedence
    assert cur.as_dict(applied) == {"file": str(tmp_path / "c.tsv"), "excluded": ["a", "c"], "included": ["d#2"],
                                    "applied": ["a"], "notes": {"a": "smeared trace", "d#2": "checked"}}


def test_the_file_the_page_writes_is_read_back(tmp_path):
    """The page writes cells as bsmeth's table writer does: formula guard, quotes around tabs and quotes."""
    text = "read\tdecision\tnote\n'=a\texclude\t\"two\tcells \"\"quoted\"\"\"\n"
    cur = load_curation(_write(tmp_path / "c.tsv", text))
    assert [(d.read, d.decision, d.note) for d in cur.decisions] == [("=a", "exclude", 'two\tcells "quoted"')]
    assert read_table(tmp_path / "c.tsv")[1] == [["=a", "exclude", 'two\tcells "quoted"']]


@pytest.mark.parametrize("text,match", [
    ("read\tnote\na\tx\n", r"line 1: missing column\(s\) decision"),
    ("read\tdecision\na\tdrop\n", r"line 2: decision 'drop' for read 'a'; write exclude or include"),
    ("read\tdecision\na\texclude\n\tinclude\n", "line 3: empty read id"),
    ("read\tdecision\na\texclude\nb\tinclude\na\tinclude\n", "line 4: read 'a' is to include here but to exclude on "
                                                             "line 2"),
    ('read\tdecision\n"a\texclude\n', "not a tab-separated table"),
])
def test_a_bad_file_is_an_error_naming_the_line(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        load_curation(_write(tmp_path / "c.tsv", text))


def test_an_unknown_read_is_an_error_naming_the_line(tmp_path):
    cur = load_curation(_write(tmp_path / "c.tsv", "read\tdecision\na\texclude\nzz\texclude\n"))
    with pytest.raises(InputError, match=r"c.tsv: line 3: read 'zz' is not a read of this run"):
        apply_curation(_results(), cur)


def test_call_applies_the_curation_reproducibly(tmp_path, biq):
    """Through the installed command: two reads excluded; samples.tsv, reads.tsv and run.json say so; an unknown
    read id stops with exit 3 before anything is written."""
    reads = biq["dir"] / "Demo_data"
    base = [*bsmeth_cmd(), "call", str(reads), "--reference", str(biq["reference"]), "-j", "1", "-q"]
    assert subprocess.run([*base, "--out", str(tmp_path / "plain")], capture_output=True).returncode == 0
    header, rows = read_table(tmp_path / "plain" / "reads.tsv")
    passing = [r[0] for r in rows if r[header.index("status")] == "pass"]
    cur = _write(tmp_path / "curation.tsv", f"read\tdecision\tnote\n{passing[0]}\texclude\tnoisy\n"
                                            f"{passing[-1]}\texclude\t\n")
    for k in (1, 2):
        r = subprocess.run([*base, "--out", str(tmp_path / f"cur{k}"), "--curation", str(cur)], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
    a, b = ((tmp_path / f"cur{k}" / "samples.tsv").read_text() for k in (1, 2))
    assert a == b  # reproducible
    header, rows = read_table(tmp_path / "cur1" / "reads.tsv")
    got = {r[0]: (r[header.index("status")], r[header.index("reason")]) for r in rows}
    assert got[passing[0]] == got[passing[-1]] == ("fail", "excluded_by_user")
    assert sum(s == "pass" for s, _ in got.values()) == len(passing) - 2
    run = json.loads((tmp_path / "cur1" / "run.json").read_text())
    assert run["curation"]["excluded"] == [passing[0], passing[-1]]
    assert run["curation"]["notes"] == {passing[0]: "noisy"}
    assert run["counts"]["by_reason"]["excluded_by_user"] == 2
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["curation"] is None
    bad = _write(tmp_path / "bad.tsv", "read\tdecision\nnot_a_read\texclude\n")
    r = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--curation", str(bad)], capture_output=True, text=True)
    assert r.returncode == 3 and "bad.tsv: line 2: read 'not_a_read' is not a read of this run" in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "bad" / "reads.tsv").exists()
