"""SCF (v2 and v3) traces: bsmeth.traces.read_scf and read_file on real files (tests/data/traces, SOURCE_*.md)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsmeth.errors import ReadFormatError
from bsmeth.models import Read, Unreadable
from bsmeth.reads import read_file
from bsmeth.traces import read_abif, read_scf, scf_comments

TRACES = Path(__file__).parent / "data" / "traces"


def test_v2_and_v3_copies_of_one_trace_are_identical():
    v2, v3 = read_scf(TRACES / "version2.scf"), read_scf(TRACES / "version3.scf")
    assert len(v2.seq) == 1106 and v2.seq == v3.seq  # BioPerl: 1106 bases, 14107 samples in both
    assert v2.seq.startswith("GATGATTCCGGCTTCGGACG")
    assert list(v2.qual) == list(v3.qual) and v2.qual.max() <= 100
    assert list(v2.trace.peaks) == list(v3.trace.peaks)
    for b in "ACGT":
        assert len(v2.trace.channels[b]) == 14107
        assert np.array_equal(v2.trace.channels[b], v3.trace.channels[b])
    assert v2.trace.base_order == "ACGT" and v2.fmt == "scf" and v2.id == "version2"
    assert scf_comments((TRACES / "version3.scf").read_bytes())["NAME"] == "IIABP1D4373"
    assert scf_comments((TRACES / "version3.scf").read_bytes())["CONV"] == "phred version=0.990722.h"


def test_chad100_bioperl_known_values():
    """BioPerl t/SeqIO/scf.t: 761 bases, the last 7 with their qualities and peaks, A-trace values."""
    r = read_scf(TRACES / "chad100.scf")
    assert len(r.seq) == 761 == len(r.trace.peaks)
    assert r.seq[-7:] == "CCTCAAG"
    assert list(r.qual[-7:]) == [18, 18, 21, 15, 8, 8, 8]
    assert list(r.trace.peaks[-7:]) == [8819, 8831, 8843, 8853, 8862, 8873, 8891]
    a = r.trace.channels["A"]
    assert a[754] == 482  # BioPerl's trace point 755 (1-based)
    assert list(a[-7:]) == [13, 3, 0, 0, 75, 274, 431]
    assert scf_comments((TRACES / "chad100.scf").read_bytes())["NAME"] == "ML4942R"


def test_heterozygous_same_trace_as_abif_and_scf():
    ab, scf = read_abif(TRACES / "heterozygous.ab1"), read_scf(TRACES / "heterozygous.scf")
    assert len(scf.seq) == 605 and scf.seq == ab.seq  # sangerseqR: same trace, two formats
    assert list(scf.trace.peaks) == list(ab.trace.peaks)
    for b in "ACGT":  # ABIF stores G, A, T, C (FWO_), SCF A, C, G, T: the letters must line up
        s, a = scf.trace.channels[b].astype(float), ab.trace.channels[b].astype(float)
        assert len(s) == len(a) == 16215
        assert np.corrcoef(s, a)[0, 1] > 0.99
    assert scf.qual is None  # its per-base probabilities are all 0


@pytest.mark.parametrize("name", ["version3.scf", "chad100.scf", "abcZ_F.scf", "heterozygous.scf"])
def test_called_channel_is_the_highest(name):
    r = read_scf(TRACES / name)
    t = r.trace
    calls = [i for i in range(40, len(r.seq)) if r.seq[i] in "ACGT" and (r.qual is None or r.qual[i] >= 20)][:200]
    wrong = [i for i in calls if max("ACGT", key=lambda b: t.channels[b][t.peaks[i]]) != r.seq[i]]
    assert len(wrong) <= (0.1 if name.startswith("heterozygous") else 0.0) * len(calls)


def test_abcz_reads_with_dashes_as_n():
    r = read_file(TRACES / "abcZ_F.scf")[0]
    assert isinstance(r, Read) and r.fmt == "scf" and len(r.seq) == 654
    assert r.seq.startswith("ANGNGCACCGTATTTGATCC") and "-" not in r.seq
    assert r.trace is not None and len(r.trace.channels["C"]) == 7831


def test_odd_file_keeps_its_base_calls():
    """13-pilE-F.scf: no comment block, bases before samples, 0-255 'probabilities', undecodable samples."""
    r = read_scf(TRACES / "13-pilE-F.scf")
    assert len(r.seq) == 427 and r.seq.startswith("TAACATTACGCCAAGAAAAA")
    assert r.qual is None and r.trace is None
    assert scf_comments((TRACES / "13-pilE-F.scf").read_bytes()) == {}


def _header(data: bytes) -> tuple:
    return struct.unpack_from(">4s8I4s4I", data)


@pytest.mark.parametrize("cut, words", [
    (60, "shorter than the 128-byte header"),
    (5000, "run past the end of the file"),
    (120_000, "run past the end of the file"),
])
def test_truncated(tmp_path, cut, words):
    data = (TRACES / "version3.scf").read_bytes()[:cut]
    with pytest.raises(ReadFormatError, match=words):
        read_scf(Path("t.scf"), data)
    (u,) = read_file(_write(tmp_path / "t.scf", data))
    assert isinstance(u, Unreadable) and "SCF" in u.message


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_corrupt_fields(tmp_path):
    data = bytearray((TRACES / "version2.scf").read_bytes())
    bad_size = bytes(data[:40]) + struct.pack(">I", 3) + bytes(data[44:])
    with pytest.raises(ReadFormatError, match="sample size 3"):
        read_scf(Path("c.scf"), bad_size)
    bad_version = bytes(data[:36]) + b"x.yz" + bytes(data[40:])
    with pytest.raises(ReadFormatError, match="version"):
        read_scf(Path("c.scf"), bad_version)
    h = _header(bytes(data))
    base0 = h[6] + 8  # v2: the letter of the first base record
    bad_base = bytes(data[:base0]) + b"*" + bytes(data[base0 + 1:])
    with pytest.raises(ReadFormatError, match="non-DNA"):
        read_scf(Path("c.scf"), bad_base)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["version2.scf", "version3.scf"]), cut=st.integers(0, 126_454),
       flips=st.lists(st.tuples(st.integers(0, 126_453), st.integers(1, 255)), max_size=4))
def test_damaged_scf_never_raises(tmp_path, name, cut, flips):
    data = bytearray((TRACES / name).read_bytes())
    for at, x in flips:
        data[at % len(data)] ^= x
    p = _write(tmp_path / "d.scf", bytes(data[: max(cut, 4)]))
    out = read_file(p)
    assert len(out) == 1
    r = out[0]
    if isinstance(r, Read):
        assert r.seq and set(r.seq) <= set("ACGTRYKMSWBDHVN")
        assert r.trace is None or int(r.trace.peaks.max()) < len(r.trace.channels["A"])
    else:
        assert "SCF" in r.message or "scf" in r.message


def test_reads_from_a_folder(tmp_path):
    """Folders take .scf files; a call over them aligns like any trace."""
    from bsmeth.reads import collect

    (tmp_path / "s").mkdir()
    _write(tmp_path / "s" / "a.scf", (TRACES / "version2.scf").read_bytes())
    files = collect([str(tmp_path / "s")])
    assert [f.path.name for f in files] == ["a.scf"]
    (r,) = read_file(files[0].path)
    assert isinstance(r, Read) and r.fmt == "scf"


def _real_traces():
    for p in sorted(TRACES.iterdir()):
        if p.suffix.lower() in (".ab1", ".abi", ".scf"):
            yield p.name


@pytest.mark.parametrize("name", list(_real_traces()))
def test_every_real_trace_copy_keys_its_channels_by_letter(name):
    """ABIF (FWO_ order, GATC or GTAC) and SCF (ACGT): past the noisy start, the called base's channel is the
    highest at its peak (nearly always: heterozygous traces have true double peaks, the 310 some noise)."""
    r = read_file(TRACES / name)[0]
    if not isinstance(r, Read) or r.trace is None or len(r.seq) < 50:
        assert name in ("fake.ab1", "13-pilE-F.scf", "empty.ab1")  # not a trace / undecodable samples / NNNNN
        return
    t = r.trace
    calls = [i for i in range(40, len(r.seq)) if r.seq[i] in "ACGT" and (r.qual is None or r.qual[i] >= 20)][:300]
    wrong = [i for i in calls if max("ACGT", key=lambda b: t.channels[b][t.peaks[i]]) != r.seq[i]]
    assert len(calls) >= 50 and len(wrong) <= 0.1 * len(calls), (name, len(wrong), len(calls))
