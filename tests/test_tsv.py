"""Tests of bsmeth.tsv: tables that round-trip through bsmeth, Python's csv module and pandas."""

from __future__ import annotations

import csv
import io
import os

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.tsv import TableError, cell, needs_guard, parse, read_table, table_text, undo_byte_escapes, write_table

HOSTILE = ['"quoted" id', 'a"b', "line\nbreak", "carriage\rreturn", "tab\there", "=cmd|' /C calc'!A0",
           "+1+2", "-2+3", "@SUM(A1)", "'already quoted", "'", "-", "+", "-0.25", "NA", "", "001", " padded ",
           "\ttab-first", "\rcr-first", "名前", "x#2"]


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))


def _pandas_rows(path) -> list[list[str]]:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return [list(df.columns), *df.values.tolist()]


def test_hostile_names_round_trip(tmp_path):
    rows = [[name, i, float(i) / 3, None] for i, name in enumerate(HOSTILE)]
    p = write_table(tmp_path / "t.tsv", ["name", "n", "x", "empty"], rows)
    header, back = read_table(p)
    assert header == ["name", "n", "x", "empty"]
    assert [r[0] for r in back] == HOSTILE
    assert [r[1] for r in back] == [str(i) for i in range(len(HOSTILE))]
    # the csv module and pandas cut exactly the same rows and cells, and agree with each other
    text = p.read_bytes().decode("utf-8")  # not read_text: universal newlines would turn a CR in a name into LF
    by_csv = _csv_rows(text)
    by_pandas = _pandas_rows(p)
    assert len(by_csv) == len(by_pandas) == len(HOSTILE) + 1
    assert by_csv == [[str(c) for c in r] for r in by_pandas]
    # what they show is the text as written, with the formula guard where a spreadsheet would run it
    for name, shown in zip(HOSTILE, (r[0] for r in by_csv[1:])):
        assert shown == ("'" + name if needs_guard(name) else name)


@pytest.mark.parametrize("text,guarded", [("=1+1", True), ("+cmd", True), ("-cmd", True), ("@x", True),
                                          ("\tx", True), ("\rx", True), ("'x", True), ("-", False), ("+", False),
                                          ("-0.25", False), ("+3", False), ("1e-5", False), ("-inf", False),
                                          ("seq_A", False), ("", False)])
def test_formula_guard(text, guarded):
    assert needs_guard(text) is guarded


def test_numbers_are_never_guarded():
    assert cell(-0.25) == "-0.2500" and cell(-3) == "-3" and cell(None) == "" and cell(float("nan")) == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(max_size=12), min_size=3, max_size=3), max_size=8))
def test_any_text_round_trips(rows):
    text = table_text(["a", "b", "c"], rows)
    header, back = parse(text)
    assert header == ["a", "b", "c"]
    assert back == rows


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10),
                         min_size=2, max_size=2), min_size=1, max_size=6))
def test_pandas_and_csv_see_the_same_cells(rows):
    text = table_text(["a", "b"], rows)
    df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    assert [list(df.columns), *df.values.tolist()] == _csv_rows(text)
    assert len(df) == len(rows)


def test_non_utf8_names_are_escaped_and_found_again(tmp_path):
    name = os.fsdecode(b"clone_\xff\xfe.ab1")  # a Latin-1 file name as Python sees it on Linux
    p = write_table(tmp_path / "t.tsv", ["file"], [[name]])
    _, rows = read_table(p)
    assert rows[0][0] == "clone_\\xff\\xfe.ab1"
    assert undo_byte_escapes(rows[0][0]) == name
    assert undo_byte_escapes("plain.ab1") is None


def test_reader_refuses_what_is_not_a_table(tmp_path):
    p = tmp_path / "bad.tsv"
    p.write_bytes(b"a\tb\n1\t2\t3\n")
    with pytest.raises(TableError, match="data row 1: 3 cells"):
        read_table(p)
    p.write_bytes(b"a\tb\n\xff\t1\n")
    with pytest.raises(TableError, match="not UTF-8"):
        read_table(p)
