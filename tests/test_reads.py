"""reads.py: finding input files (collect) and reading sequences from them (read_file)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bsmeth import files as files_mod
from bsmeth.errors import InputError
from bsmeth.files import Refused, read_input_bytes
from bsmeth.models import Read, Reason, Unreadable
from bsmeth.reads import collect, read_file

DATA = Path(__file__).parent / "data"
DEMO = DATA / "biq_demo" / "Demo_data"
SEQ_B = "".join(DEMO.joinpath("seq_B.fasta").read_text().splitlines()[1:])


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def kinds(items) -> list[tuple]:
    return [(type(x).__name__, x.id) for x in items]


# ---------------------------------------------------------------------------------------------- collect
def test_collect_files_keep_order_and_stem_is_sample(tmp_path):
    a = write(tmp_path / "b_clone.fasta", ">x\nACGT\n")
    b = write(tmp_path / "a_clone.ab1.gz", b"")
    got = collect([str(a), str(b)])
    assert [f.path for f in got] == [a, b]  # command-line order, not sorted
    assert [f.default_sample for f in got] == ["b_clone", "a_clone"]
    assert [f.given for f in got] == [str(a), str(b)]


def test_collect_folder_recursive_subfolder_is_sample(tmp_path):
    root = tmp_path / "plate1"
    write(root / "top.ab1", b"ABIF")
    write(root / "ctrl" / "c1.fasta", ">c1\nACGT\n")
    write(root / "ctrl" / "deeper" / "c2.seq", "ACGT\n")
    write(root / "treated" / "t1.fastq.gz", b"")
    write(root / "treated" / "notes.txt", "not a read\n")  # .txt is taken only when named explicitly
    write(root / "README.md", "# plate 1\n")
    write(root / "sheet.csv", "file,sample\n")
    write(root / ".hidden.fasta", ">h\nACGT\n")
    write(root / ".ipynb_checkpoints" / "c1-checkpoint.fasta", ">c1\nACGT\n")
    write(root / "__MACOSX" / "ctrl" / "._c1.fasta", b"\x00\x05\x16\x07")
    got = collect([str(root)])
    rel = [(f.path.relative_to(root).as_posix(), f.default_sample) for f in got]
    assert rel == [
        ("ctrl/c1.fasta", "ctrl"),
        ("ctrl/deeper/c2.seq", "ctrl"),
        ("top.ab1", "plate1"),
        ("treated/t1.fastq.gz", "treated"),
    ]
    assert all(f.given == str(root) for f in got)


def test_collect_glob(tmp_path):
    for name in ("s1.fasta", "s2.fasta", "s10.fasta", "other.ab1"):
        write(tmp_path / name, ">x\nACGT\n")
    got = collect([str(tmp_path / "s*.fasta")])
    assert [f.path.name for f in got] == ["s1.fasta", "s10.fasta", "s2.fasta"]
    assert [f.default_sample for f in got] == ["s1", "s10", "s2"]
    got = collect([str(tmp_path / "**" / "*.ab1")])
    assert [f.path.name for f in got] == ["other.ab1"]


def test_collect_same_file_twice_is_read_once(tmp_path):
    a = write(tmp_path / "a.fasta", ">x\nACGT\n")
    got = collect([str(a), str(tmp_path), str(tmp_path / "*.fasta")])
    assert [f.path.name for f in got] == ["a.fasta"]
    assert got[0].default_sample == "a"  # the first mention decides


@pytest.mark.parametrize("arg, words", [
    ("missing.fasta", "no such file or folder"),
    ("missing_*.fasta", "pattern matches no file"),
])
def test_collect_missing_path_is_an_input_error(tmp_path, arg, words):
    with pytest.raises(InputError, match=words) as e:
        collect([str(tmp_path / arg)])
    assert str(tmp_path / arg) in str(e.value)
    assert e.value.exit_code == 3


def test_collect_folder_without_reads(tmp_path):
    d = tmp_path / "empty_plate"
    write(d / "README.txt", "later\n")
    write(d / "notes.md", "# notes\n")
    with pytest.raises(InputError, match="folder has no read files") as e:
        collect([str(d)])
    assert "README.txt" in str(e.value) and "notes.md" in str(e.value)
    (d / "README.txt").unlink()
    (d / "notes.md").unlink()
    with pytest.raises(InputError, match="it is empty"):
        collect([str(d)])


def test_collect_empty_argument(tmp_path):
    with pytest.raises(InputError, match="empty"):
        collect([""])


# ---------------------------------------------------------------------------------------------- read_file
def test_fasta_multi_record_and_plain(tmp_path):
    p = write(tmp_path / "m.fasta", f">r1 first clone\n{SEQ_B[:120]}\n{SEQ_B[120:]}\n; a comment\n>r2\nacgtNRY\n")
    got = read_file(p)
    assert kinds(got) == [("Read", "r1"), ("Read", "r2")]
    assert got[0].seq == SEQ_B and got[0].qual is None and got[0].fmt == "fasta" and got[0].file == str(p)
    assert got[1].seq == "ACGTNRY"
    plain = write(tmp_path / "clone7.seq", "ACGT acgt\n1 ACGT\n")
    (r,) = read_file(plain)
    assert (r.id, r.seq) == ("clone7", "ACGTACGTACGT")  # header-less: one record named after the file


def test_fasta_gap_and_stop_symbols_are_layout(tmp_path):
    (r,) = read_file(write(tmp_path / "g.fasta", ">g\nAC-GT..AC*\n"))
    assert r.seq == "ACGTAC"


@pytest.mark.parametrize("seq, bad", [("ACGTJ", "J"), ("ACGT\u00dfA", "\u00df"), ("ACG!T", "!"), ("ACG\x01T", "\\x01")])
def test_fasta_non_dna_letters_are_reported(tmp_path, seq, bad):
    p = write(tmp_path / "n.fasta", f">rec\n{seq}\n")
    (u,) = read_file(p)
    assert isinstance(u, Unreadable) and u.id == "rec"
    assert u.message.startswith(f"{p}, record rec (line 1): non-DNA letter(s)")
    assert bad in u.message


def test_fasta_crlf_lowercase_bom(tmp_path):
    p = write(tmp_path / "w.fasta", b"\xef\xbb\xbf>w\r\nacgt\r\nACGT\r\n")
    (r,) = read_file(p)
    assert (r.id, r.seq) == ("w", "ACGTACGT")


def test_fasta_empty_records_and_duplicate_ids(tmp_path):
    p = write(tmp_path / "e.fasta", ">a\n>b\nACGT\n>\nACGT\n>b\nTTTT\n>c\n")
    got = read_file(p)
    # every header is a read: duplicates and empty records are kept (the pipeline makes ids unique)
    assert kinds(got) == [("Unreadable", "a"), ("Read", "b"), ("Read", "record_at_line_4"), ("Read", "b"),
                          ("Unreadable", "c")]
    assert "line 1" in got[0].message and "empty record" in got[0].message
    assert "line 8" in got[4].message


def test_utf16_and_windows1252(tmp_path):
    (r,) = read_file(write(tmp_path / "u.fasta", ">u\r\nACGT\r\n".encode("utf-16")))
    assert (r.id, r.seq) == ("u", "ACGT")
    (r,) = read_file(write(tmp_path / "c.fasta", ">c 5 \u00b5M\nACGT\n".encode("cp1252")))
    assert (r.id, r.seq) == ("c", "ACGT")


def test_fastq(tmp_path):
    p = write(tmp_path / "r.fastq", "@q1 desc\nACGTN\n+\nII#!5\n@q2\nacgu\n+q2\n!!!!\n")
    a, b = read_file(p)
    assert (a.id, a.seq, a.fmt) == ("q1", "ACGTN", "fastq")
    assert a.qual.dtype == np.uint8 and a.qual.tolist() == [40, 40, 2, 0, 20]
    assert (b.id, b.seq) == ("q2", "ACGT")


def test_fastq_malformed_records_are_reported_and_reading_resumes(tmp_path):
    p = write(tmp_path / "bad.fastq", "@ok1\nACGT\n+\nIIII\n@short\nACGT\n+\nII\ngarbage line\nmore garbage\n"
                                      "@ok2\nAC\n+\nII\n@cut\nACGT\n")
    got = read_file(p)
    assert kinds(got) == [("Read", "ok1"), ("Unreadable", "short"), ("Unreadable", "record_at_line_9"),
                          ("Read", "ok2"), ("Unreadable", "cut")]
    assert "lengths differ (4 and 2)" in got[1].message
    assert "lines 9-10 skipped" in got[2].message
    assert all(str(p) in u.message for u in got if isinstance(u, Unreadable))


@pytest.mark.parametrize("name", ["r.fasta.gz", "r.fa.gz", "r.gz"])
def test_gzip_fasta_and_fastq(tmp_path, name):
    p = write(tmp_path / name, gzip.compress(b">g1\nACGT\n>g2\nTTTT\n"))
    assert kinds(read_file(p)) == [("Read", "g1"), ("Read", "g2")]
    q = write(tmp_path / ("q_" + name.replace("fasta", "fastq").replace("fa.", "fq.")),
              gzip.compress(b"@g1\nACGT\n+\nIIII\n"))
    (r,) = read_file(q)
    assert r.qual.tolist() == [40] * 4


def test_gzip_trace_id_is_the_stem(tmp_path):
    p = write(tmp_path / "clone.ab1.gz", gzip.compress((DATA / "traces" / "3100.ab1").read_bytes()))
    (r,) = read_file(p)
    assert isinstance(r, Read) and r.id == "clone" and r.fmt == "ab1" and len(r.seq) == 795


@pytest.mark.parametrize("data, words", [
    (b"", "empty file"),
    (b"  \n\n", "empty file"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    (b"PK\x03\x04\x14\x00", "ZIP archive"),
    (b"%PDF-1.4\n", "PDF"),
    (bytes(range(256)) * 4, "binary file"),
    (b".scf\x00\x00", "SCF"),
])
def test_unusable_files(tmp_path, data, words):
    p = write(tmp_path / "x.fasta", data)
    (u,) = read_file(p)
    assert isinstance(u, Unreadable) and u.id == "x"
    assert u.message.startswith(f"{p}: ") and words in u.message


def test_gzip_with_flipped_byte_does_not_raise(tmp_path):
    """zlib.error is not an OSError: a corrupt deflate stream used to escape read_file."""
    g = bytearray(gzip.compress(b">seq\n" + SEQ_B.encode() + b"\n", mtime=0))
    g[30] ^= 0xFF
    (u,) = read_file(write(tmp_path / "c.fasta.gz", bytes(g)))
    assert isinstance(u, Unreadable) and "corrupt gzip" in u.message



# ---------------------------------------------------------------------------------------------- the bytes
def _os_read_at_most(monkeypatch, k: int) -> None:
    real = files_mod.os.read
    monkeypatch.setattr(files_mod.os, "read", lambda fd, n: real(fd, min(n, k)))


@pytest.mark.parametrize("k", [1, 2, 1000])
@pytest.mark.parametrize("gz", [False, True])
def test_short_reads_give_the_whole_file(tmp_path, monkeypatch, k, gz):
    """read_input_bytes reads a file in one os.read; reads that return less (allowed, rare) are completed."""
    trace = (DATA / "traces" / "3100.ab1").read_bytes()
    p = write(tmp_path / "t.ab1", gzip.compress(trace) if gz else trace)
    _os_read_at_most(monkeypatch, k)
    assert read_input_bytes(p) == trace


@pytest.mark.parametrize("gz", [False, True])
def test_a_file_larger_than_its_fstat_size_is_read_whole_and_limited(tmp_path, monkeypatch, gz):
    """A file that grew after fstat, or reports size 0 (/proc, some network files): read on to the end, never
    past the limit."""
    text = b">g1\n" + b"ACGT" * 5000 + b"\n"
    p = write(tmp_path / "g.fasta", gzip.compress(text) if gz else text)
    real = files_mod.os.fstat

    class Zero:
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 0

    monkeypatch.setattr(files_mod.os, "fstat", lambda fd: Zero(real(fd)))
    assert read_input_bytes(p) == text
    with pytest.raises(Refused) as e:
        read_input_bytes(p, limit=1000)
    assert e.value.reason == Reason.TOO_LARGE


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc")
def test_proc_files_report_size_zero_and_are_read():
    assert b"Pid:" in read_input_bytes("/proc/self/status")


def test_sniffing_by_content_not_extension(tmp_path):
    """What a file *is* decides how it is read; the extension only decides what a folder takes."""
    trace = (DATA / "traces" / "3100.ab1").read_bytes()
    (r,) = read_file(write(tmp_path / "trace.fasta", trace))  # an ABIF named .fasta is read as a trace
    assert isinstance(r, Read) and r.fmt == "ab1"
    (r,) = read_file(write(tmp_path / "reads.txt", "@q\nACGT\n+\nIIII\n"))  # FASTQ named .txt
    assert r.fmt == "fastq"
    (u,) = read_file(write(tmp_path / "clone.ab1", ">clone\nACGT\n"))  # FASTA named .ab1: said so
    assert isinstance(u, Unreadable)
    assert "not an ABIF trace" in u.message and "looks like a FASTA file" in u.message
    (u,) = read_file(write(tmp_path / "notes.abi", "These are my notes\n"))
    assert "not an ABIF trace (starts with 'Thes'" in u.message


def test_missing_and_unopenable_file(tmp_path):
    (u,) = read_file(tmp_path / "gone.ab1")
    assert isinstance(u, Unreadable) and u.id == "gone" and "cannot open" in u.message
    (u,) = read_file(tmp_path)  # a folder where a file was expected
    assert "cannot open" in u.message


@given(st.lists(st.text(alphabet="ab.-_éZ", min_size=1, max_size=6).filter(lambda p: p not in (".", "..")),
               min_size=1, max_size=3),
       st.sampled_from(["", ".gz", ".GZ"]))
def test_file_stem_is_pathlibs_stem_with_gz_skipped(parts, gz):
    """The read id of a file: pathlib's stem of its name once a trailing .gz is dropped, for any name."""
    from bsmeth.files import file_stem

    path = "/".join(parts) + gz
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    assert file_stem(path) == Path(name).stem
    assert file_stem(Path(path)) == Path(name).stem
