"""Tests of bsmeth.output: the column contract of docs/outputs.md, 1-based positions, atomic and
deterministic writing."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

import bsmeth.atomic as atomic_mod
from bsmeth.errors import OutputError
from bsmeth.models import CallConfig, Reason, Why
from bsmeth.output import CALL_COLUMNS, READ_COLUMNS, SUMMARY_COLUMNS, atomic_write
from bsmeth.pipeline import run_call
from bsmeth.reference import convert, load_amplicon, read_reference

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
BIQ = DATA / "biq_demo"
SHEET_COLUMNS = ("cell_line", "dose")
SHEET_MARK = "<sheet columns>"


# --------------------------------------------------------------------------- the contract in docs/outputs.md

def documented_columns() -> dict[str, list[str]]:
    """Column names per file, in order, as docs/outputs.md lists them."""
    text = (ROOT / "docs/outputs.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    out = {}
    for sec in sections:
        m = re.match(r"`([^`]+)`", sec)
        if not m:  # e.g. "Files added by plot, compare, report": not a table's column list
            continue
        name = m.group(1)
        cols: list[str] = []
        for line in sec.splitlines():
            if not line.startswith("| ") or line.startswith("| column") or line.startswith("| ---"):
                continue
            first = line.split("|")[1]
            if "sheet columns" in first:
                cols.append(SHEET_MARK)
            else:
                cols += re.findall(r"`([^`]+)`", first)
        if name == "samples.tsv":  # a sentence, not a table
            para = sec.split("\n\n")[1]
            para = re.sub(r"\(e\.g\.[^)]*\)", "", para)  # drop the example sheet columns
            cols = re.findall(r"`([^`]+)`", para.replace("the sheet columns", f"`{SHEET_MARK}`"))
        if cols:
            out[name] = cols
    return out


def with_sheet(cols: list[str]) -> list[str]:
    out = []
    for c in cols:
        out += list(SHEET_COLUMNS) if c == SHEET_MARK else [c]
    return out


def test_docs_list_every_table():
    docs = documented_columns()
    assert set(docs) >= {"reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv"}


def test_column_constants_equal_docs():
    docs = documented_columns()
    assert [c for c in docs["reads.tsv"] if c != SHEET_MARK] == list(READ_COLUMNS)
    assert docs["reads.tsv"].index(SHEET_MARK) == 3  # right after read, file, sample
    assert docs["cpg_calls.tsv"] == list(CALL_COLUMNS)
    assert docs["summary.tsv"] == list(SUMMARY_COLUMNS)


def documented_tokens(column: str) -> list[str]:
    line = next(ln for ln in (ROOT / "docs/outputs.md").read_text().splitlines() if ln.startswith(f"| `{column}` |"))
    return re.findall(r"`([^`]+)`", line.split("|")[2])


def test_sheet_and_summary_columns_equal_docs():
    """The parts of the contract that did not move: summary.tsv and the sheet-column slot of reads.tsv."""
    docs = documented_columns()
    assert docs["summary.tsv"] == list(SUMMARY_COLUMNS)
    assert docs["reads.tsv"][:4] == ["read", "file", "sample", SHEET_MARK]
    assert docs["samples.tsv"] == ["sample", SHEET_MARK, "amplicon", "reads", "pass", "cpgs_called", "methylation_pct"]


def test_reason_and_why_tokens_equal_docs():
    assert documented_tokens("reason")[1:] == [r.value for r in Reason]  # [0] is `pass`
    assert sorted(documented_tokens("why")) == sorted(w.value for w in Why)


# --------------------------------------------------------------------------- a run with a sample sheet

@pytest.fixture(scope="module")
def sheet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sheet")
    files = sorted((BIQ / "Demo_data").glob("seq_*.fasta"))
    lines = ["file,sample,cell_line,dose"]
    for f in files:
        sample = "early" if f.stem <= "seq_E" else "late"
        lines.append(f"{f},{sample},{'HeLa' if sample == 'early' else 'HCT116'},{0 if sample == 'early' else 5}")
    sheet = tmp / "sheet.csv"
    sheet.write_text("\n".join(lines) + "\n")
    amp = load_amplicon(BIQ / "Master_Sequence.txt")
    out = tmp / "out"
    run = run_call([], amp, out, CallConfig(), sheet_path=str(sheet))
    return out, run, amp


def header(path: Path) -> list[str]:
    return path.read_text().split("\n", 1)[0].split("\t")


def rows(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def test_file_headers_equal_docs(sheet_run):
    out, _, _ = sheet_run
    docs = documented_columns()
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv"):
        assert header(out / name) == with_sheet(docs[name]), name


def test_tables_are_well_formed(sheet_run):
    out, run, amp = sheet_run
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv"):
        raw = (out / name).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        text = raw.decode("utf-8")
        n = len(header(out / name))
        assert all(len(ln.split("\t")) == n for ln in text.splitlines()), name
    reads = rows(out / "reads.tsv")
    assert len(reads) == 10  # every input read, nothing dropped
    assert {r["cell_line"] for r in reads if r["sample"] == "early"} == {"HeLa"}
    for r in reads:
        for col in ("conversion_pct", "identity_pct", "methylation_pct"):  # shares in percent, named so
            assert r[col] == "" or (re.fullmatch(r"\d{1,3}\.\d\d", r[col]) and 0 <= float(r[col]) <= 100), (col, r[col])
    for r in rows(out / "summary.tsv"):
        assert r["percent"] == "" or re.fullmatch(r"\d+\.\d\d", r["percent"])
    calls = rows(out / "cpg_calls.tsv")
    aligned = [r for r in run.results if r.aligned is not None]
    assert len(calls) == len(aligned) * len(amp.cpgs)


def test_positions_are_one_based(sheet_run):
    out, run, amp = sheet_run
    seq = amp.reference
    calls = rows(out / "cpg_calls.tsv")
    for r in calls:
        p = int(r["pos"])
        assert seq[p - 1:p + 1] == "CG"
    assert sorted({int(r["pos"]) for r in calls}) == [c.ref_pos + 1 for c in amp.cpgs]
    assert [int(r["cpg"]) for r in calls[:len(amp.cpgs)]] == list(range(1, len(amp.cpgs) + 1))
    summary = rows(out / "summary.tsv")
    assert [int(r["pos"]) for r in summary[:len(amp.cpgs)]] == [c.ref_pos + 1 for c in amp.cpgs]
    by_id = {r.read_id: r for r in run.results}
    for r in rows(out / "reads.tsv"):
        aln = by_id[r["read"]].aligned
        if aln is None:
            assert r["aligned_start"] == r["aligned_end"] == ""
        else:
            assert (int(r["aligned_start"]), int(r["aligned_end"])) == (aln.target_start + 1, aln.target_end)
    meta = json.loads((out / "run.json").read_text())
    assert (meta["amplicon"]["start"], meta["amplicon"]["end"]) == (1, 233)
    assert [c["pos"] for c in meta["amplicon"]["cpgs"]] == [c.ref_pos + 1 for c in amp.cpgs]


def test_default_amplicon_positions_and_partial_read(tmp_path):
    """The embedded amplicon is FASTA 37-262; a read covering amplicon [60, 170) is reported as 61-170."""
    amp = load_amplicon()
    read = convert(amp.target, methylated_cpg=True)[60:170]
    fa = tmp_path / "partial.fa"
    fa.write_text(">partial\n" + read + "\n")
    out = tmp_path / "out"
    run_call([str(fa)], amp, out, CallConfig())
    (r,) = rows(out / "reads.tsv")
    assert (r["aligned_start"], r["aligned_end"]) == ("61", "170")
    meta = json.loads((out / "run.json").read_text())
    assert (meta["amplicon"]["start"], meta["amplicon"]["end"], meta["amplicon"]["length"]) == (37, 262, 226)
    calls = rows(out / "cpg_calls.tsv")
    ref = read_reference()[1]
    for c in calls:
        p = int(c["pos"])
        assert ref[p - 1:p + 1] == "CG"
        inside = 60 <= next(x.target_pos for x in amp.cpgs if x.ref_pos == p - 1) < 170
        if c["why"] != "under_primer":
            assert (c["call"] == "M") == inside and (c["why"] == "not_covered") == (not inside)
    assert [c["pos"] for c in calls if c["why"] == "under_primer"] == ["37", "256"]
    first_block = (out / "alignments.txt").read_text().split("\n>")[1].splitlines()[1]
    assert first_block.startswith("   61 ")  # alignment labels are 1-based amplicon positions


# --------------------------------------------------------------------------- atomic writing

def test_atomic_write_success_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "reads.tsv"
    atomic_write(target, "a\tb\n1\t2\n")
    assert target.read_text() == "a\tb\n1\t2\n"
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(os.listdir(tmp_path)) == ["reads.tsv"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "reads.tsv"
    target.write_text("old complete table\n")
    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the text, then fails (a full disk, or Ctrl-C mid-write)."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()
            return False

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise exc

    monkeypatch.setattr(atomic_mod.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    # an OS error while writing is an output problem (exit 4); Ctrl-C stays an interrupt
    with pytest.raises(OutputError if isinstance(exc, OSError) else type(exc)):
        atomic_write(target, "new table that never completes\n" * 100)
    assert target.read_text() == "old complete table\n"
    assert sorted(os.listdir(tmp_path)) == ["reads.tsv"]


def test_atomic_write_failure_on_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "reads.tsv"
    target.write_text("old\n")

    def boom(*a, **k):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic_mod.os, "replace", boom)
    with pytest.raises(OutputError, match="rename failed") as e:
        atomic_write(target, "new\n")
    assert e.value.exit_code == 4
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["reads.tsv"]


def test_atomic_write_gives_the_permissions_of_a_normal_write(tmp_path):
    plain, atomic = tmp_path / "plain.tsv", tmp_path / "atomic.tsv"
    plain.write_text("x\n")
    atomic_write(atomic, "x\n")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


# --------------------------------------------------------------------------- determinism

def test_two_runs_give_byte_identical_tables(tmp_path):
    amp = load_amplicon(BIQ / "Master_Sequence.txt")
    outs = []
    for name in ("one", "two"):
        out = tmp_path / name
        run_call([str(BIQ / "multiFASTA.fasta")], amp, out, CallConfig())
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    assert {"reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "run.json"} <= set(files)
    for name in files:
        if name != "run.json":
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    a, b = (json.loads((o / "run.json").read_text()) for o in outs)
    assert a["counts"] == b["counts"] and a["amplicon"] == b["amplicon"] and a["parameters"] == b["parameters"]
