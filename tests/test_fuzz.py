"""Property tests of the readers: whatever the bytes, ``read_file`` answers and never raises.

Random bytes, and real ABIF / FASTA / FASTQ bytes (tests/data) with random damage -- truncation,
byte flips (aimed at the ABIF header, directory and base calls as well as anywhere), inserted junk,
rewritten header fields, gzip wrapping -- are written to a file and read.  The answer is always at
least one item; a ``Read`` has a non-empty upper-case IUPAC sequence and no or per-base uint8
qualities; an ``Unreadable`` says which file.  Examples are few so this runs in seconds (deadline
off: the ABIF parser's time depends on the file); benchmarks/fuzz_readers.py runs the same
properties for minutes.
"""

from __future__ import annotations

import gzip
import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsmeth.models import Read, Unreadable
from bsmeth.reads import read_file

DATA = Path(__file__).parent / "data"
IUPAC = set("ACGTRYKMSWBDHVN")
SUFFIXES = [".ab1", ".abi", ".fasta", ".fa", ".fastq", ".seq", ".txt", ".fasta.gz", ".ab1.gz", ""]
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def _real_files() -> dict[str, bytes]:
    demo = DATA / "biq_demo"
    seq_b = "".join((demo / "Demo_data" / "seq_B.fasta").read_text().splitlines()[1:])
    files = {
        "3100.ab1": (DATA / "traces" / "3100.ab1").read_bytes(),
        "no_smpl1.ab1": (DATA / "traces" / "no_smpl1.ab1").read_bytes(),
        "test.fsa": (DATA / "traces" / "test.fsa").read_bytes(),
        "multi.fasta": (demo / "multiFASTA.fasta").read_bytes(),
        "clone.fastq": f"@seq_B\n{seq_b}\n+\n{'I' * len(seq_b)}\n@seq_B2\n{seq_b}\n+\n{'5' * len(seq_b)}\n".encode(),
    }
    # wrapped FASTQ: sequence and qualities over several lines, quality lines starting with '@' and '+'
    files["wrapped.fastq"] = (DATA / "bad" / "reads" / "wrapped.fastq").read_bytes().replace(b"\n@I", b"\n+I", 2)
    # compressed files are damaged too (a bad deflate stream is not a bad gzip header)
    files["multi.fasta.gz"] = gzip.compress(files["multi.fasta"], mtime=0)
    files["clone.fastq.gz"] = gzip.compress(files["clone.fastq"], mtime=0)
    return files


REAL = _real_files()


def _tag_data_span(data: bytes, name: bytes, number: int) -> tuple[int, int]:
    count, offset = struct.unpack_from(">I", data, 18)[0], struct.unpack_from(">I", data, 26)[0]
    for i in range(count):
        tag, num, _, _, _, size, where, _ = struct.unpack_from(">4sIHHIIII", data, offset + 28 * i)
        if (tag, num) == (name, number):
            return where, where + size
    raise KeyError(name)


PBAS2_3100 = _tag_data_span(REAL["3100.ab1"], b"PBAS", 2)


def abif_regions(data: bytes, tags: tuple[bytes, ...] = (b"PBAS", b"PCON", b"PLOC", b"FWO_")) -> list[tuple[int, int]]:
    """Byte ranges worth damaging in an ABIF file: header, directory, and the data of the tags read.

    With ``tags`` given, only the data of those tags (e.g. ``(b"PBAS",)``: the base calls).
    """
    if data[:4] != b"ABIF" or len(data) < 128:
        return [(0, len(data))]
    count, offset = struct.unpack_from(">I", data, 18)[0], struct.unpack_from(">I", data, 26)[0]
    regions = [] if len(tags) == 1 else [(0, 128), (offset, min(len(data), offset + 28 * count))]
    for i in range(min(count, 10_000)):
        at = offset + 28 * i
        if at + 28 > len(data):
            break
        name, number, _, _, _, size, where, _ = struct.unpack_from(">4sIHHIIII", data, at)
        if name in tags and number in (1, 2):
            regions.append((at + 20, at + 24) if size <= 4 else (where, min(len(data), where + size)))
    regions = [(a, b) for a, b in regions if a < b <= len(data)]
    return regions or [(0, len(data))]


@st.composite
def damaged(draw, real: dict[str, bytes] | None = None) -> tuple[str, bytes]:
    """(file suffix, bytes) of a real file (name -> bytes, default ``REAL``) after 1-4 random damages."""
    real = REAL if real is None else real
    name = draw(st.sampled_from(sorted(real)))
    data = bytearray(real[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip_basecalls", "truncate", "flip", "flip_aimed", "insert", "header_field",
                                     "overwrite"]))
        if len(data) < 2:
            break
        if kind == "truncate":
            del data[draw(st.integers(1, len(data) - 1)):]
        elif kind.startswith("flip"):
            regions = ([(0, len(data))] if kind == "flip" else
                       abif_regions(bytes(data), (b"PBAS",)) if kind == "flip_basecalls" else abif_regions(bytes(data)))
            a, b = draw(st.sampled_from(regions))
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(a, b - 1))] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "header_field" and len(data) >= 30:
            at, fmt = draw(st.sampled_from([(16, ">H"), (18, ">I"), (22, ">I"), (26, ">I")]))
            value = draw(st.one_of(st.integers(0, 2 ** (16 if fmt == ">H" else 32) - 1),
                                   st.integers(0, len(data) + 100)))
            value = min(value, 2 ** (16 if fmt == ">H" else 32) - 1)
            struct.pack_into(fmt, data, at, value)
        elif kind == "overwrite":
            at = draw(st.integers(0, len(data) - 1))
            junk = draw(st.binary(min_size=1, max_size=32))
            data[at : at + len(junk)] = junk
    suffix = "".join(Path(name).suffixes)
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter are gzip'd (after the damage)
        return suffix + ".gz", gzip.compress(bytes(data), mtime=0)
    return draw(st.sampled_from([suffix, suffix, ".txt", ".ab1", ".fasta"])), bytes(data)


_counter = itertools.count()


def check(directory: Path, suffix: str, data: bytes) -> None:
    """Write ``data`` to a file with ``suffix`` in ``directory``, read it, assert the properties."""
    path = directory / f"in{next(_counter)}{suffix}"
    path.write_bytes(data)
    try:
        items = read_file(path)
    finally:
        path.unlink()
    assert isinstance(items, list) and len(items) >= 1
    for x in items:
        assert isinstance(x, (Read, Unreadable)), type(x)
        assert isinstance(x.id, str) and x.file == str(path)
        if isinstance(x, Read):
            assert x.seq and set(x.seq) <= IUPAC, x.seq[:50]
            if x.qual is not None:
                assert isinstance(x.qual, np.ndarray) and x.qual.dtype == np.uint8
                assert len(x.qual) == len(x.seq)
        else:
            assert str(path) in x.message and x.message.strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, **SETTINGS)
@given(suffix=st.sampled_from(SUFFIXES), data=st.binary(max_size=2048))
def test_random_bytes(workdir, suffix, data):
    check(workdir, suffix, data)


@settings(max_examples=60, **SETTINGS)
@given(suffix=st.sampled_from(SUFFIXES),
       head=st.sampled_from([b"ABIF", b"\x1f\x8b", b">", b"@", b".scf", b"PK\x03\x04"]),
       data=st.binary(max_size=1024))
def test_random_bytes_after_a_magic(workdir, suffix, head, data):
    check(workdir, suffix, head + data)


@settings(max_examples=60, **SETTINGS)
@given(suffix=st.sampled_from(SUFFIXES), text=st.text(max_size=600))
def test_random_text(workdir, suffix, text):
    check(workdir, suffix, (">r\n" + text).encode("utf-8"))
    check(workdir, suffix, ("@r\n" + text).encode("utf-8"))


@settings(max_examples=120, **SETTINGS)
@given(case=damaged())
def test_damaged_real_files(workdir, case):
    suffix, data = case
    check(workdir, suffix, data)


@settings(max_examples=40, **SETTINGS)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4))
def test_damaged_base_calls(workdir, flips):
    """Byte flips inside the base calls (PBAS2) of a real trace: never a Read with non-DNA letters."""
    data = bytearray(REAL["3100.ab1"])
    a, b = PBAS2_3100
    for at, x in flips:
        data[a + at % (b - a)] ^= x
    check(workdir, ".ab1", bytes(data))
