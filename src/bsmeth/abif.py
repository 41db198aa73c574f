"""Writing ABIF (.ab1) chromatograms: the inverse of the ``traces`` reader.

Pipeline position: outside the analysis path.  Only ``simulate`` uses it, to
produce synthetic Sanger traces that any ABIF reader (Biopython, the
``traces`` stage, vendor viewers) opens like an instrument file.  Pure Python
(struct + numpy), no Biopython needed for writing.

Layout (Applied Biosystems "ABIF File Format Specification", 2006), big-endian:
a 128-byte header (``ABIF``, version 101, the root directory entry ``tdir``
pointing at the directory, zero padding), the data blocks, then the directory
of 28-byte entries (name, number, element type, element size, number of
elements, data size, data offset, data handle).  Data of 4 bytes or less is
stored left-justified in the offset field itself, as the specification demands
(readers look there, not at an offset).
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .atomic import write_bytes

VERSION = 101
HEADER_SIZE = 128
_DIR_FMT = ">4sIHHIIII"  # name, number, elementtype, elementsize, numelements, datasize, dataoffset, datahandle
# ABIF element type codes
_CHAR, _SHORT, _FLOAT, _DATE, _TIME, _PSTRING, _DIR = 2, 4, 7, 10, 11, 18, 1023
_ANALYSED_TAGS = (9, 10, 11, 12)  # DATA9-12, channel order = FWO_
_RAW_TAGS = (1, 2, 3, 4)  # DATA1-4


@dataclass(frozen=True, eq=False)
class AbifRecord:
    """Everything written into one .ab1 file.

    ``analysed`` and ``raw`` are (4, n) arrays of non-negative signal, rows in
    ``base_order``; ``peaks`` are indexes into the analysed channels (PLOC).
    The same calls are written as basecaller (PBAS2/PCON2/PLOC2) and edited
    (PBAS1/PCON1/PLOC1) versions, as an unedited instrument file has.
    """

    sample: str
    seq: str
    qual: np.ndarray
    peaks: np.ndarray
    analysed: np.ndarray
    raw: Optional[np.ndarray] = None
    base_order: str = "GATC"
    comment: str = "simulated by bsmeth"
    run_start: _dt.datetime = _dt.datetime(2024, 1, 15, 9, 0, 0)
    run_minutes: int = 150
    model: str = "3730"
    dye_set: str = "Z_BigDyeV3"
    machine: str = "bsmeth-simulator"
    lane: int = 1
    tube: str = "A01"
    spacing: float = 11.0
    signal_to_noise: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))


class _Entries:
    """Collects directory entries with their payloads, then lays out the file."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, int, int, int, int, bytes]] = []

    def add(self, name: str, number: int, etype: int, esize: int, count: int, payload: bytes) -> None:
        tag = name.encode("ascii")
        if len(tag) != 4:
            raise ValueError(f"ABIF tag name must be 4 characters: {name!r}")
        if len(payload) != esize * count:
            raise ValueError(f"{name}{number}: payload of {len(payload)} bytes, expected {esize * count}")
        self.items.append((tag, number, etype, esize, count, payload))

    def chars(self, name: str, number: int, data: bytes) -> None:
        self.add(name, number, _CHAR, 1, len(data), data)

    def shorts(self, name: str, number: int, values) -> None:
        arr = np.asarray(values)
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise ValueError(f"{name}{number}: values outside the int16 range")
        self.add(name, number, _SHORT, 2, arr.size, arr.astype(">i2").tobytes())

    def pstring(self, name: str, number: int, text: str) -> None:
        data = text.encode("utf-8")
        if len(data) > 255:
            raise ValueError(f"{name}{number}: pString longer than 255 bytes")
        self.add(name, number, _PSTRING, 1, len(data) + 1, bytes([len(data)]) + data)

    def to_bytes(self) -> bytes:
        blob = bytearray(HEADER_SIZE)
        directory = bytearray()
        for tag, number, etype, esize, count, payload in self.items:
            if len(payload) <= 4:
                # small data lives in the offset field itself
                offset_field = struct.unpack(">I", payload.ljust(4, b"\0"))[0]
            else:
                offset_field = len(blob)
                blob += payload
            directory += struct.pack(_DIR_FMT, tag, number, etype, esize, count, len(payload), offset_field, 0)
        dir_offset = len(blob)
        root = struct.pack(_DIR_FMT, b"tdir", 1, _DIR, 28, len(self.items), len(directory), dir_offset, 0)
        header = b"ABIF" + struct.pack(">H", VERSION) + root
        blob[: len(header)] = header  # the rest of the 128 bytes stays zero (reserved)
        return bytes(blob + directory)


def _check(rec: AbifRecord) -> tuple[bytes, np.ndarray, np.ndarray]:
    try:
        seq = rec.seq.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("base calls must be ASCII letters") from None
    qual = np.asarray(rec.qual, dtype=np.int64)
    peaks = np.asarray(rec.peaks, dtype=np.int64)
    if not (len(qual) == len(peaks) == len(seq)):
        raise ValueError(f"seq ({len(seq)}), qual ({len(qual)}) and peaks ({len(peaks)}) differ in length")
    # Biopython decodes PCON as text, so qualities must stay 7-bit
    if qual.size and (qual.min() < 0 or qual.max() > 127):
        raise ValueError("qualities must be in 0..127")
    if len(rec.base_order) != 4 or sorted(rec.base_order.upper()) != list("ACGT"):
        raise ValueError(f"base_order must be a permutation of ACGT, not {rec.base_order!r}")
    for name, arr in (("analysed", rec.analysed), ("raw", rec.raw)):
        if arr is not None and (np.ndim(arr) != 2 or np.shape(arr)[0] != 4):
            raise ValueError(f"{name} channels must be a (4, n) array")
    return seq, qual, peaks


def abif_bytes(rec: AbifRecord) -> bytes:
    """The complete .ab1 file for ``rec``."""
    seq, qual, peaks = _check(rec)
    e = _Entries()
    if rec.raw is not None:
        for number, channel in zip(_RAW_TAGS, rec.raw):
            e.shorts("DATA", number, channel)
    for number, channel in zip(_ANALYSED_TAGS, rec.analysed):
        e.shorts("DATA", number, channel)
    e.chars("FWO_", 1, rec.base_order.upper().encode("ascii"))
    qbytes = qual.astype(np.uint8).tobytes()
    for number in (1, 2):
        e.chars("PBAS", number, seq)
        e.chars("PCON", number, qbytes)
        e.shorts("PLOC", number, peaks)
    e.pstring("SMPL", 1, rec.sample)
    e.chars("MODL", 1, rec.model.encode("ascii")[:4].ljust(4))
    e.pstring("DySN", 1, rec.dye_set)
    e.pstring("MCHN", 1, rec.machine)
    e.shorts("LANE", 1, [rec.lane])
    stop = rec.run_start + _dt.timedelta(minutes=rec.run_minutes)
    for number, t in ((1, rec.run_start), (2, stop)):
        e.add("RUND", number, _DATE, 4, 1, struct.pack(">hBB", t.year, t.month, t.day))
        e.add("RUNT", number, _TIME, 4, 1, struct.pack(">4B", t.hour, t.minute, t.second, 0))
    e.add("SPAC", 1, _FLOAT, 4, 1, struct.pack(">f", rec.spacing))
    e.shorts("S/N%", 1, list(rec.signal_to_noise))
    e.pstring("TUBE", 1, rec.tube)
    e.pstring("CMNT", 1, rec.comment)
    return e.to_bytes()


def write_abif(path: str | Path, rec: AbifRecord) -> Path:
    """Write ``rec`` to ``path`` atomically."""
    return write_bytes(path, abif_bytes(rec))
