"""The ABIF writer: files it writes must read back through Biopython unchanged."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest
from Bio import SeqIO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsmeth.abif import HEADER_SIZE, AbifRecord, abif_bytes, write_abif


def _record(seq="ACGTTGCAN", sample="clone_01", **kw) -> AbifRecord:
    n = len(seq)
    rng = np.random.default_rng(0)
    peaks = (np.arange(n) * 11 + 20).astype(np.int16)
    points = int(peaks[-1]) + 30 if n else 30
    return AbifRecord(
        sample=sample, seq=seq, qual=np.arange(n) % 61, peaks=peaks,
        analysed=rng.integers(0, 2000, (4, points)).astype(np.int16),
        raw=rng.integers(0, 4000, (4, points // 8)).astype(np.int16), **kw,
    )


def _read(path):
    return SeqIO.read(path, "abi")


def test_round_trip_through_biopython(tmp_path):
    rec = _record(run_start=dt.datetime(2023, 5, 6, 7, 8, 9), spacing=11.25, signal_to_noise=(10, 20, 30, 40))
    path = write_abif(tmp_path / "clone_01.ab1", rec)
    got = _read(path)
    raw = got.annotations["abif_raw"]
    assert str(got.seq) == rec.seq
    assert got.letter_annotations["phred_quality"] == list(rec.qual)
    assert got.id == "clone_01"
    assert raw["PBAS1"] == raw["PBAS2"] == rec.seq.encode()
    assert list(raw["PLOC2"]) == list(raw["PLOC1"]) == list(rec.peaks)
    for tag, channel in zip(("DATA9", "DATA10", "DATA11", "DATA12"), rec.analysed):
        assert list(raw[tag]) == list(channel)
    for tag, channel in zip(("DATA1", "DATA2", "DATA3", "DATA4"), rec.raw):
        assert list(raw[tag]) == list(channel)
    assert raw["FWO_1"] == b"GATC"
    assert raw["CMNT1"] == b"simulated by bsmeth"
    assert raw["MODL1"] == b"3730"
    assert raw["SPAC1"] == pytest.approx(11.25)
    assert raw["S/N%1"] == (10, 20, 30, 40)
    assert raw["TUBE1"] == b"A01" and raw["LANE1"] == 1
    assert got.annotations["run_start"] == "2023-05-06 07:08:09"
    assert got.annotations["run_finish"] == "2023-05-06 09:38:09"


def test_header_and_directory_layout():
    data = abif_bytes(_record())
    assert data[:4] == b"ABIF"
    assert struct.unpack(">H", data[4:6])[0] == 101
    name, number, etype, esize, count, size, offset, _ = struct.unpack(">4sIHHIIII", data[6:34])
    assert (name, number, etype, esize) == (b"tdir", 1, 1023, 28)
    assert size == count * 28 and offset + size == len(data)
    assert data[34:HEADER_SIZE] == bytes(HEADER_SIZE - 34)
    tags = {struct.unpack(">4sI", data[offset + 28 * i: offset + 28 * i + 8]) for i in range(count)}
    for tag in ("DATA1", "DATA9", "DATA12", "FWO_1", "PBAS1", "PBAS2", "PCON1", "PCON2", "PLOC1", "PLOC2",
                "SMPL1", "MODL1", "DySN1", "MCHN1", "LANE1", "RUND1", "RUND2", "RUNT1", "RUNT2", "SPAC1",
                "S/N%1", "TUBE1", "CMNT1"):
        assert (tag[:4].encode(), int(tag[4:])) in tags


def test_small_data_lives_in_the_offset_field():
    data = abif_bytes(_record(seq="ACG"))
    offset = struct.unpack(">I", data[26:30])[0]
    entries = [struct.unpack(">4sIHHIIII", data[offset + 28 * i: offset + 28 * (i + 1)]) for i in range(len(data))
               if offset + 28 * (i + 1) <= len(data)]
    fwo = next(e for e in entries if e[0] == b"FWO_")
    assert fwo[5] == 4 and struct.pack(">I", fwo[6]) == b"GATC"


def test_other_base_order_is_written(tmp_path):
    got = _read(write_abif(tmp_path / "x.ab1", _record(base_order="ACGT")))
    assert got.annotations["abif_raw"]["FWO_1"] == b"ACGT"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"qual": np.zeros(3)}, "differ in length"),
        ({"qual": np.full(9, 200)}, "0..127"),
        ({"base_order": "GATT"}, "permutation"),
        ({"analysed": np.zeros((3, 10), dtype=np.int16)}, "(4, n)"),
        ({"peaks": np.full(9, 40000)}, "int16"),
        ({"sample": "x" * 300}, "255"),
    ],
)
def test_invalid_records_are_refused(change, message):
    rec = _record()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        abif_bytes(AbifRecord(**{**rec.__dict__, **change}))


def test_atomic_write_leaves_no_temporary(tmp_path):
    write_abif(tmp_path / "a.ab1", _record())
    assert [p.name for p in tmp_path.iterdir()] == ["a.ab1"]


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seq=st.text(alphabet="ACGTNRY", min_size=1, max_size=300),
    data=st.data(),
    sample=st.text(alphabet=st.characters(categories=("L", "N", "Pd")), min_size=1, max_size=40),
)
def test_arbitrary_calls_round_trip(tmp_path, seq, data, sample):
    n = len(seq)
    qual = np.array(data.draw(st.lists(st.integers(0, 127), min_size=n, max_size=n)))
    peaks = np.cumsum(data.draw(st.lists(st.integers(1, 20), min_size=n, max_size=n)))
    points = data.draw(st.integers(1, 50))
    analysed = np.array(data.draw(st.lists(st.integers(0, 32767), min_size=4 * points, max_size=4 * points)),
                        dtype=np.int16).reshape(4, points)
    rec = AbifRecord(sample=sample, seq=seq, qual=qual, peaks=peaks, analysed=analysed)
    got = SeqIO.read(__import__("io").BytesIO(abif_bytes(rec)), "abi")
    raw = got.annotations["abif_raw"]
    assert str(got.seq) == seq
    assert got.letter_annotations["phred_quality"] == qual.tolist()
    assert np.atleast_1d(raw["PLOC2"]).tolist() == peaks.tolist()
    assert np.atleast_1d(raw["DATA9"]).tolist() == analysed[0].tolist()
    assert got.id == sample
