"""traces.py: ABIF chromatograms from real instruments (tests/data/traces, see SOURCE_*.md and MANIFEST.tsv)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bsmeth.errors import ReadFormatError
from bsmeth.models import Read, Unreadable
from bsmeth.reads import read_file
from bsmeth.traces import check_abif, read_abif

TRACES = Path(__file__).parent / "data" / "traces"


def test_310_all_zero_qualities_mean_no_qualities():
    r = read_abif(TRACES / "310.ab1")
    assert (r.id, len(r.seq), r.fmt) == ("310", 868, "ab1")
    assert r.seq.startswith("TGATNTTNACNNTTTTGAAN")
    assert r.qual is None  # the ABI 310 writes PCON2 as all zeros


def test_3100_qualities():
    r = read_abif(TRACES / "3100.ab1")
    assert len(r.seq) == 795 and r.seq.startswith("CAAGATTGCATTCATGATCT")
    assert r.qual is not None and r.qual.dtype == np.uint8 and len(r.qual) == 795
    assert round(float(r.qual.mean()), 1) == 46.8  # MANIFEST.tsv (Biopython 1.88)
    assert r.trace is not None and r.trace.base_order == "GATC"


def test_a_forward_3500():
    r = read_abif(TRACES / "A_forward.ab1")
    assert len(r.seq) == 809 and r.seq.startswith("TCGCCGCMTMGCWCTATGGA")  # IUPAC calls kept
    assert round(float(r.qual.mean()), 1) == 43.3
    assert len(r.trace.peaks) == 809 and all(len(c) == 10014 for c in r.trace.channels.values())


def _called_channel_is_highest(r: Read, positions: list[int]) -> list[int]:
    """Positions where the called base's channel is not the highest of the four at the peak."""
    t = r.trace
    wrong = []
    for i in positions:
        at = {b: int(t.channels[b][t.peaks[i]]) for b in "ACGT"}
        if max(at, key=at.get) != r.seq[i]:
            wrong.append(i)
    return wrong


def test_channels_gatc_file():
    r = read_abif(TRACES / "3100.ab1")
    hq = [i for i in range(len(r.seq)) if r.seq[i] in "ACGT" and r.qual[i] >= 20][:200]
    assert len(hq) == 200
    assert _called_channel_is_highest(r, hq) == []


def test_channels_gtac_file_mapped_by_fwo():
    """teal_sample.abi stores DATA9-12 in the order G, T, A, C (FWO_ = GTAC) and has no qualities."""
    r = read_abif(TRACES / "teal_sample.abi")
    assert r.trace.base_order == "GTAC" and r.qual is None and len(r.seq) == 1451
    calls = [i for i in range(50, len(r.seq)) if r.seq[i] in "ACGT"][:200]  # past the noisy start
    assert _called_channel_is_highest(r, calls) == []
    # the check has teeth: reading the channels as G, A, T, C gets most calls wrong
    wrong_map = {b: r.trace.channels[o] for b, o in zip("GATC", "GTAC")}
    misread = Read(r.id, r.file, r.seq, None, "ab1", type(r.trace)(wrong_map, r.trace.peaks, "GATC"))
    assert len(_called_channel_is_highest(misread, calls)) > 100


def test_no_smpl1_lower_case_calls_are_upper_cased():
    r = read_abif(TRACES / "no_smpl1.ab1")
    assert len(r.seq) == 164 and r.seq.startswith("CGATGGGCCTTCACCTTTAT") and r.seq == r.seq.upper()
    assert r.qual is not None and len(r.qual) == 164


def test_empty_ab1_is_a_5n_read():
    r = read_abif(TRACES / "empty.ab1")
    assert r.seq == "NNNNN" and r.qual is None


@pytest.mark.parametrize("name, words", [
    ("fake.ab1", "not an ABIF trace (starts with 'This', not 'ABIF')"),
    ("test.fsa", "ABIF file has no base calls (a fragment-analysis .fsa file?)"),
])
def test_unreadable_with_clear_message(name, words):
    (u,) = read_file(TRACES / name)
    assert isinstance(u, Unreadable)
    assert u.message == f"{TRACES / name}: {words}"


def test_read_abif_raises_read_format_error(tmp_path):
    with pytest.raises(ReadFormatError, match="no base calls"):
        read_abif(TRACES / "test.fsa")
    with pytest.raises(ReadFormatError, match="cannot open"):
        read_abif(tmp_path / "gone.ab1")


# ---------------------------------------------------------------------------------------------- corrupt ABIF
@pytest.fixture(scope="module")
def ab3100() -> bytes:
    return (TRACES / "3100.ab1").read_bytes()


@pytest.mark.parametrize("cut, words", [
    (4, "shorter than the 128-byte header"),
    (127, "shorter than the 128-byte header"),
    (128, "starts past the end of the file (128 bytes)"),
    (100_000, "starts past the end of the file (100000 bytes)"),
    (206_000, "runs past the end of the file (206000 bytes)"),
])
def test_truncated(ab3100, cut, words):
    with pytest.raises(ReadFormatError) as e:
        check_abif(ab3100[:cut], Path("t.ab1"))
    assert words in str(e.value) and str(e.value).startswith("t.ab1: truncated")


def _patched(data: bytes, at: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


@pytest.mark.parametrize("at, fmt, value, words", [
    (26, ">I", 10**9, "starts past the end"),  # directory offset
    (18, ">I", 10**8, "runs past the end"),  # number of directory entries
    (16, ">H", 0, "does not point to a tag directory"),  # entry size 0: Biopython would reread one entry N times
    (6, ">4s", b"xdir", "does not point to a tag directory"),
    (18, ">I", 0, "directory is empty"),
])
def test_corrupt_header(ab3100, at, fmt, value, words):
    with pytest.raises(ReadFormatError, match=words):
        read_abif(Path("c.ab1"), _patched(ab3100, at, fmt, value))


def _entry_at(data: bytes, name: bytes, number: int) -> int:
    count, offset = struct.unpack_from(">I", data, 18)[0], struct.unpack_from(">I", data, 26)[0]
    for i in range(count):
        at = offset + 28 * i
        if data[at : at + 4] == name and struct.unpack_from(">I", data, at + 4)[0] == number:
            return at
    raise KeyError(name)


def test_tag_data_past_the_end(ab3100):
    at = _entry_at(ab3100, b"PBAS", 2)
    with pytest.raises(ReadFormatError, match="tag 'PBAS2'.*past the end"):
        read_abif(Path("c.ab1"), _patched(ab3100, at + 20, ">I", len(ab3100) - 10))


def test_non_dna_base_calls(ab3100):
    at = _entry_at(ab3100, b"PBAS", 2)
    off = struct.unpack_from(">I", ab3100, at + 20)[0]
    with pytest.raises(ReadFormatError, match="non-DNA characters"):
        read_abif(Path("c.ab1"), ab3100[:off] + b"AC*T" + ab3100[off + 4 :])


def test_inconsistent_sizes(ab3100):
    at = _entry_at(ab3100, b"PLOC", 2)
    with pytest.raises(ReadFormatError, match="corrupt ABIF trace"):
        read_abif(Path("c.ab1"), _patched(ab3100, at + 12, ">I", 3))  # element count vs data size


def test_bad_channel_order_gives_no_trace_but_a_read(ab3100):
    at = _entry_at(ab3100, b"FWO_", 1)
    r = read_abif(Path("c.ab1"), ab3100[: at + 20] + b"GGTC" + ab3100[at + 24 :])
    assert isinstance(r, Read) and len(r.seq) == 795 and r.trace is None


@pytest.mark.parametrize("name", ["310.ab1", "3100.ab1", "A_forward.ab1", "teal_sample.abi", "no_smpl1.ab1",
                                  "empty.ab1"])
def test_own_reader_agrees_with_biopython(data, name):
    """bsmeth reads the few tags it needs straight from the bytes; Biopython's full parser is the oracle."""
    import warnings

    from Bio import SeqIO

    path = data / "traces" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = SeqIO.read(path, "abi")
    ours = read_abif(path)
    assert ours.seq == str(rec.seq).upper()
    q = rec.letter_annotations["phred_quality"]
    assert (ours.qual is None and not any(q)) or list(ours.qual) == list(q)
    raw = rec.annotations["abif_raw"]
    order = raw["FWO_1"].decode() if isinstance(raw["FWO_1"], bytes) else raw["FWO_1"]
    for base, tag in zip(order[:4], ("DATA9", "DATA10", "DATA11", "DATA12")):
        assert list(ours.trace.channels[base]) == list(raw[tag])
    assert list(ours.trace.peaks) == list(raw["PLOC2"])


# ---------------------------------------------------------------------------------------------- the chromatogram
def _entry(data: bytes, name: bytes, number: int) -> tuple[int, int, int]:
    """(directory position, element count, data offset) of one tag."""
    at = _entry_at(data, name, number)
    return at, struct.unpack_from(">I", data, at + 12)[0], struct.unpack_from(">I", data, at + 20)[0]


def test_channels_anywhere_in_the_file_read_the_same(ab3100):
    """The four channels are taken in one piece when they lie one after the other (as instruments write them),
    else one by one: a copy of DATA10 placed after the directory gives the same chromatogram."""
    at, n, off = _entry(ab3100, b"DATA", 10)
    moved = _patched(ab3100 + ab3100[off:off + 2 * n], at + 20, ">I", len(ab3100))
    a, b = read_abif(Path("a.ab1"), ab3100), read_abif(Path("b.ab1"), moved)
    assert np.array_equal(a.trace.matrix, b.trace.matrix)
    assert {m.dtype.newbyteorder("=") for m in (a.trace.matrix, b.trace.matrix)} == {np.dtype(np.int16)}
    assert all(np.array_equal(a.trace.channels[x], b.trace.channels[x]) for x in "ACGT")
    assert np.array_equal(a.trace.peaks, b.trace.peaks) and a.notes == b.notes


def _damaged(data: bytes, how: str) -> bytes:
    at, n, off = _entry(data, b"DATA", 10)
    if how == "shorter channel":  # one element fewer, its size to match
        return _patched(_patched(data, at + 12, ">I", n - 1), at + 16, ">I", 2 * (n - 1))
    if how == "not 16-bit":  # element type 5 (long) instead of 4 (short)
        return _patched(data, at + 8, ">H", 5)
    if how == "no channel":  # DATA10 renamed
        return _patched(data, at, ">4s", b"DATX")
    if how == "all zero":
        first = _entry(data, b"DATA", 9)[2]
        return data[:first] + bytes(8 * n) + data[first + 8 * n:]
    ploc, calls, poff = _entry(data, b"PLOC", 2)
    if how == "peaks outside":  # a negative position and one past the end
        return _patched(_patched(data, poff, ">h", -3), poff + 2, ">h", n)
    assert how == "peaks missing"  # PLOC2 and PLOC1 as text (element type 2), not 16-bit numbers
    return _patched(_patched(data, ploc + 8, ">H", 2), _entry_at(data, b"PLOC", 1) + 8, ">H", 2)


@pytest.mark.parametrize("how, note", [
    ("shorter channel", "the four data channels differ in length (10303, 10302, 10303, 10303)"),
    ("not 16-bit", "analysed data channels (DATA9-12) missing or not 16-bit"),
    ("no channel", "analysed data channels (DATA9-12) missing or not 16-bit"),
    ("all zero", "the data channels are empty (all zero or no points)"),
    ("peaks missing", "no peak positions (PLOC) for 795 base calls"),
])
def test_unusable_chromatogram_is_a_note(ab3100, how, note):
    r = read_abif(Path("c.ab1"), _damaged(ab3100, how))
    assert r.trace is None and len(r.seq) == 795
    assert r.notes[-1] == f"{note}: the chromatogram is not used"


@pytest.mark.parametrize("point", [0, 5151, 10302])
def test_one_point_of_signal_is_not_an_empty_chromatogram(ab3100, point):
    """Whether the channels are all zero is answered from a few middle points when they show signal, else from
    every point: signal at a single point anywhere (here the first, the middle, the last of DATA9) keeps them."""
    first, n = _entry(ab3100, b"DATA", 9)[2], _entry(ab3100, b"DATA", 9)[1]
    zeros = ab3100[:first] + bytes(8 * n) + ab3100[first + 8 * n:]
    r = read_abif(Path("c.ab1"), _patched(zeros, first + 2 * point, ">h", 7))
    assert r.trace is not None and int(np.count_nonzero(r.trace.matrix)) == 1
    assert "empty" not in " ".join(r.notes)


def test_peaks_outside_the_trace_are_counted(ab3100):
    r = read_abif(Path("c.ab1"), _damaged(ab3100, "peaks outside"))
    assert r.trace is not None and r.trace.peaks[:2].tolist() == [-3, r.trace.matrix.shape[1]]
    assert r.notes[-1] == "2 peak position(s) lie outside the trace: no chromatogram evidence there"


@example(b"\xdf")  # latin-1 sharp s: upper-cased to 'SS', letters, as the text reading has always taken it
@example(b"acgt")
@example(b"A*")
@given(st.binary(min_size=1, max_size=6))
def test_base_calls_checked_as_text(ab3100, calls):
    """The base calls are checked as bytes (IUPAC letters after upper-casing) and, when that fails, as text;
    whatever the bytes, the result is the text rule's: the latin-1 text upper-cased, IUPAC letters only."""
    at, count, off = _entry(ab3100, b"PBAS", 2)
    data = ab3100[:off] + calls + ab3100[off + len(calls):]
    text = (calls + ab3100[off + len(calls):off + count]).decode("latin-1").upper()
    if set(text) <= set("ACGTRYKMSWBDHVN"):
        assert read_abif(Path("c.ab1"), data).seq == text
    else:
        with pytest.raises(ReadFormatError, match="non-DNA characters"):
            read_abif(Path("c.ab1"), data)
