"""samples.py: the sample sheet.  Every error names the sheet file and the line (as an editor numbers it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bsmeth.errors import SampleSheetError
from bsmeth.reads import InputFile, collect, file_key
from bsmeth.samples import assign, read_sheet


@pytest.fixture
def reads(tmp_path) -> Path:
    d = tmp_path / "reads"
    d.mkdir()
    for name in ("a1.ab1", "a2.ab1", "b1.ab1", "c1.fasta"):
        (d / name).write_bytes(b"ABIF")
    return d


def sheet(tmp_path: Path, text, name="sheet.csv", encoding="utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def error(path: Path) -> str:
    with pytest.raises(SampleSheetError) as e:
        read_sheet(path)
    assert e.value.exit_code == 3
    return str(e.value)


def test_basic_sheet_relative_paths_and_columns(tmp_path, reads):
    p = sheet(tmp_path, "file,sample,cell_line,dose\nreads/a1.ab1,ctrl,HeLa,0\nreads/b1.ab1,treated,HeLa,5\n")
    s = read_sheet(p)
    assert s.columns == ("cell_line", "dose")
    assert s.order == (tmp_path / "reads" / "a1.ab1", tmp_path / "reads" / "b1.ab1")
    assert s.rows[file_key(reads / "b1.ab1")] == ("treated", {"cell_line": "HeLa", "dose": "5"})


@pytest.mark.parametrize("delim", [",", "\t", ";"])
def test_delimiters_case_bom_comments_blank_lines(tmp_path, reads, delim):
    text = ("\ufeff# plate 1\n\n" + delim.join(["File", "Sample", "Dose"]) + "\n\n"
            + delim.join(["reads/a1.ab1", " ctrl ", "0"]) + "\n")
    s = read_sheet(sheet(tmp_path, text))
    assert s.columns == ("Dose",)
    assert list(s.rows.values()) == [("ctrl", {"Dose": "0"})]


def test_hash_rows_multiline_cells_and_words(tmp_path, reads):
    """'#' starts a comment only before the header; a file named '#...' in a row is read; a quoted cell may
    span lines; 'nan' among words is a word, not a number."""
    (reads / "#7.ab1").write_bytes(b"ABIF")
    s = read_sheet(sheet(tmp_path, '# plate 3\nfile,sample,note,dose\n'
                                   'reads/#7.ab1,h,"picked twice,\r\nsee ""log""",nan\r\nreads/a1.ab1,a,,high\n'))
    assert list(s.rows.values()) == [("h", {"note": 'picked twice,\r\nsee "log"', "dose": "nan"}),
                                     ("a", {"note": "", "dose": "high"})]
    assert s.order[0].name == "#7.ab1"


def test_absolute_paths(tmp_path, reads):
    s = read_sheet(sheet(tmp_path, f"file,sample\n{reads / 'a1.ab1'},x\n"))
    assert s.order == (reads / "a1.ab1",)


def test_windows_excel_sheets(tmp_path, reads):
    """Excel writes CSV in Windows-1252 (or UTF-16 'Unicode text') with CRLF and trailing empty columns."""
    s = read_sheet(sheet(tmp_path, "file,sample,dose,,\r\nreads/a1.ab1,ctrl,10 \u00b5M,,\r\n", encoding="cp1252"))
    # the cp1252 byte for µ read right; the unit goes to dose_unit (the number stays in dose)
    assert list(s.rows.values()) == [("ctrl", {"dose": "10", "dose_unit": "\u00b5M"})]
    assert s.columns == ("dose", "dose_unit")
    s = read_sheet(sheet(tmp_path, "file\tsample\r\nreads/a1.ab1\tctrl\r\n", name="u.txt", encoding="utf-16"))
    assert list(s.rows.values()) == [("ctrl", {})]


def test_identical_duplicate_row_is_accepted(tmp_path, reads):
    s = read_sheet(sheet(tmp_path, "file,sample,dose\nreads/a1.ab1,ctrl,0\nreads/a2.ab1,ctrl,0\n"
                                   "./reads/a1.ab1,ctrl,0\n"))
    assert len(s.rows) == 2 and len(s.order) == 2


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("text, line, words", [
    ("file,cell_line\nreads/a1.ab1,HeLa\n", 1, "missing column(s) sample (found: file, cell_line)"),
    ("path,sample\nreads/a1.ab1,ctrl\n", 1, "missing column(s) file"),
    ("name\nreads/a1.ab1\n", 1, "missing column(s) file, sample"),
    ("file,sample,Sample\nreads/a1.ab1,a,b\n", 1, "repeated column name"),
    ("file,,sample\nreads/a1.ab1,x,a\n", 1, "column 2 of the header has no name"),
    ("file,sample,status\nreads/a1.ab1,a,ok\n", 1, "status are bsmeth output columns"),
    ("file,sample\nreads/a1.ab1,ctrl\nreads/a2.ab1\n", 3, "1 fields, the header has 2"),
    ("file,sample\nreads/a1.ab1,ctrl,extra\n", 2, "3 fields, the header has 2"),
    ("file,sample\nreads/a1.ab1,\n", 2, "empty 'file' or 'sample'"),
    ("file,sample\nreads/zz.ab1,ctrl\n", 2, "file reads/zz.ab1 does not exist"),
    ("file,sample\nreads,ctrl\n", 2, "reads is a folder"),
    ("file,sample,dose\nreads/a1.ab1,ctrl,0\nreads/a1.ab1,ctrl,5\n", 3,
     "listed again with different values (first on line 2)"),
    ("file,sample\nreads/a1.ab1,ctrl\nreads/a1.ab1,treated\n", 3, "listed again"),
    ("file,sample,dose\nreads/a1.ab1,ctrl,0\nreads/a2.ab1,ctrl,5\n", 3,
     "sample ctrl has other condition values than on line 2"),
    # comment and blank lines count: the line number is the one an editor shows
    ("# my sheet\n\nfile,sample\n\nreads/a1.ab1,ctrl\n\nreads/zz.ab1,ctrl\n", 7, "does not exist"),
    # after the header a '#' line is a row (a file may be named '#3.ab1'), and says so when its file is missing
    ("file,sample\nreads/a1.ab1,ctrl\n# reads/a2.ab1,ctrl\n", 3, "a line starting with # is a row, not a comment"),
    # a quoted cell spans lines: the error names the line where the row starts
    ('file,sample,note\nreads/a1.ab1,ctrl,"two\nlines"\nreads/zz.ab1,ctrl,x\n', 4, "does not exist"),
    ('file,sample,note\nreads/a1.ab1,ctrl,"never closed\nreads/a2.ab1,ctrl,x\n', 2,
     "opened in this row is never closed"),
    ('file,sample\n"reads/a1.ab1"x,ctrl\n', 2, "a quote inside a cell must be doubled"),
    # a column of numbers (e.g. dose) must hold finite numbers: statistics take it as numeric
    ("file,sample,dose\nreads/a1.ab1,a,0\nreads/a2.ab1,b,inf\n", 3, "dose 'inf' is not a finite number"),
    ("file,sample,dose\nreads/a1.ab1,a,NaN\nreads/a2.ab1,b,1\n", 2, "dose 'NaN' is not a finite number"),
    ("file,sample,dose\nreads/a1.ab1,a,1e999\nreads/a2.ab1,b,1\n", 2, "dose '1e999' is not a finite number"),
    ("\n# header below\nfile,cell_line\n", 3, "missing column(s) sample"),
])
def test_errors_name_file_and_line(tmp_path, reads, text, line, words):
    p = sheet(tmp_path, text)
    msg = error(p)
    assert msg.startswith(f"sample sheet {p}, line {line}: "), msg
    assert words in msg


@pytest.mark.parametrize("text, words", [
    ("", "empty; expected a header line"),
    ("# only a comment\n\n", "empty"),
    ("file,sample\n", "no rows after the header"),
    (b"\x00\x01\x02ABIF\xff\xfe\x00", "not a text CSV file"),
])
def test_errors_of_the_whole_sheet(tmp_path, text, words):
    p = sheet(tmp_path, text)
    msg = error(p)
    assert msg.startswith(f"sample sheet {p}: ") and words in msg


def test_missing_or_folder_sheet(tmp_path):
    assert "cannot read (No such file or directory)" in error(tmp_path / "none.csv")
    assert "is a folder" in error(tmp_path)


# ---------------------------------------------------------------------------------------------- assign
def test_assign_with_and_without_sheet(tmp_path, reads):
    files = collect([str(reads / "a1.ab1"), str(reads / "b1.ab1")])
    assert [(f.path.name, s, v) for f, s, v in assign(files, None)] == [("a1.ab1", "a1", {}), ("b1.ab1", "b1", {})]
    s = read_sheet(sheet(tmp_path, "file,sample,dose\nreads/b1.ab1,t,5\nreads/a1.ab1,c,0\nreads/c1.fasta,c,0\n"))
    got = assign(files, s)
    assert [(f.path.name, smp, v) for f, smp, v in got] == [("a1.ab1", "c", {"dose": "0"}),
                                                            ("b1.ab1", "t", {"dose": "5"})]


def test_assign_input_missing_from_sheet_names_the_files(tmp_path, reads):
    s = read_sheet(sheet(tmp_path, "file,sample\nreads/a1.ab1,c\n"))
    files = collect([str(reads)])
    with pytest.raises(SampleSheetError) as e:
        assign(files, s)
    msg = str(e.value)
    assert msg.startswith(f"sample sheet {tmp_path / 'sheet.csv'} does not list 3 input file(s): ")
    for name in ("a2.ab1", "b1.ab1", "c1.fasta"):
        assert name in msg
    assert "a1.ab1" not in msg.split(":", 1)[1]


def test_assign_many_missing_is_shortened(tmp_path, reads):
    s = read_sheet(sheet(tmp_path, "file,sample\nreads/a1.ab1,c\n"))
    files = [InputFile(tmp_path / f"x{i}.ab1", "x", "x") for i in range(9)]
    with pytest.raises(SampleSheetError, match="does not list 9 input file.*and 4 more"):
        assign(files, s)
