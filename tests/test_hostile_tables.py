"""A result folder made of hostile names reads back identically, and its figures and statistics agree with it.

Read ids with quotes, formula starts and a real ``x#2`` next to two reads named ``x``; sample names with a tab,
a quote, a formula and a line break; a file name with a carriage return and one that is not UTF-8.  Run through
the installed command; read back with bsmeth's reader, Python's csv module and pandas.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from command import bsmeth_cmd

from bsmeth.tables import clone_table, load_call_dir
from bsmeth.tsv import needs_guard, read_table

BIQ = Path(__file__).parent / "data" / "biq_demo"
# the six BiQ demo clones that pass (real reads), under hostile ids; seq_B twice more as 'x' and once as 'x#2'
GOOD = ("seq_B", "seq_C", "seq_E", "seq_G", "seq_H", "seq_I")
IDS = ('"quoted', "=cmd|'/C_calc'!A0", "@SUM(1)", "-minus", "x", "x")


def _records() -> dict[str, str]:
    out, name = {}, None
    for line in (BIQ / "multiFASTA.fasta").read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].strip()
            out[name] = ""
        elif name:
            out[name] += line.strip()
    return out


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """Three read files; without a sample sheet each file is a sample named by its stem, so the sample names
    carry a carriage return, a tab + quote + formula, and a byte that is not UTF-8."""
    tmp = tmp_path_factory.mktemp("hostile")
    seqs = _records()
    reads = tmp / "reads"
    reads.mkdir()
    f1 = reads / "plate\r1.fasta"
    f1.write_text("".join(f">{i}\n{seqs[g]}\n" for i, g in zip(IDS[:4], GOOD[:4])))
    f2 = Path(os.fsdecode(bytes(reads) + b"/plate_\xff2.fasta"))
    f2.write_text(f">x\n{seqs['seq_H']}\n>x#2\n{seqs['seq_I']}\n")
    f3 = reads / '=HYPERLINK("x")\tq.fasta'
    f3.write_text(f">x\n{seqs['seq_B']}\n>x\n{seqs['seq_E']}\n")
    files = [f1, f2, f3]
    out = tmp / "out"
    cmd = [*bsmeth_cmd(), "run", *map(str, files), "--reference", str(BIQ / "Master_Sequence.txt"),
           "--out", str(out), "--by", "sample", "-j", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    assert r.returncode == 0, r.stderr
    return out, files


def test_read_ids_are_unique_and_never_collide(hostile_run):
    out, _ = hostile_run
    _, rows = read_table(out / "reads.tsv")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == 8
    # the first x keeps its name, the real x#2 keeps its own, the two later x become x#3 and x#4
    assert ids == ['"quoted', "=cmd|'/C_calc'!A0", "@SUM(1)", "-minus", "x", "x#2", "x#3", "x#4"]


@pytest.mark.parametrize("name", ["reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "stats.tsv"])
def test_every_reader_cuts_the_same_cells(hostile_run, name):
    out, _ = hostile_run
    raw = (out / name).read_bytes().decode("utf-8")
    by_csv = list(csv.reader(io.StringIO(raw, newline=""), delimiter="\t"))
    df = pd.read_csv(out / name, sep="\t", dtype=str, keep_default_na=False)
    assert by_csv == [list(df.columns), *df.values.tolist()]
    header, ours = read_table(out / name)
    assert len(ours) == len(by_csv) - 1 == len(df)
    # what the others show differs from bsmeth's reading only by the documented formula guard
    for mine, theirs in zip(ours, by_csv[1:]):
        assert [("'" + c if needs_guard(c) else c) for c in mine] == theirs


def test_hostile_names_read_back_identically(hostile_run):
    out, files = hostile_run
    data = load_call_dir(out)
    # sample names as the stems were; the byte that is not UTF-8 written as \xff (documented)
    expected = ["plate\r1", "plate_\\xff2", '=HYPERLINK("x")\tq']
    assert list(data.samples["sample"]) == expected
    assert list(dict.fromkeys(data.reads["sample"])) == expected
    # plain pandas shows the guard on the formula-like name, nothing else changed
    df = pd.read_csv(out / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(df["sample"]) == ["plate\r1", "plate_\\xff2", "'" + expected[2]]
    # file names: one cell each; the one that is not UTF-8 found again from its escaped text
    from bsmeth.tsv import undo_byte_escapes

    shown = [os.path.normpath(out / f) for f in dict.fromkeys(data.reads["file"])]  # relative to the results
    assert shown[0] == str(files[0]) and shown[2] == str(files[2])
    assert os.path.normpath(out / undo_byte_escapes(list(dict.fromkeys(data.reads["file"]))[1])) == str(files[1])


def test_figures_and_statistics_agree_with_samples_tsv(hostile_run):
    out, _ = hostile_run
    data = load_call_dir(out)
    passing = dict(zip(data.samples["sample"], data.samples["pass"].astype(int)))
    clones = clone_table(data)
    assert clones.groupby("sample").size().to_dict() == {s: n for s, n in passing.items() if n}
    stats = pd.DataFrame(read_table(out / "stats.tsv")[1], columns=read_table(out / "stats.tsv")[0])
    kw = stats[(stats["test"] == "kruskal_clones") & (stats["scope"] == "all")]
    assert int(kw["n"].iloc[0]) == sum(passing.values())
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "=cmd|" in html and "<script" not in html.split("</style>")[0]
