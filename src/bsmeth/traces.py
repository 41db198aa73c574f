"""Reading ABIF chromatograms (.ab1/.abi) into ``Read`` objects.

Pipeline position: input stage, called by ``reads`` for files that start with
the ABIF magic.  Base calls and PHRED qualities come from PBAS2/PCON2 (the
basecaller's edited calls; PBAS1/PCON1 when those are missing); the four
analysed dye channels (DATA9-12) are kept in the channel order given by FWO_
(not always GATC), with the peak positions PLOC2, for the trace evidence.

The 128-byte header and the tag directory are checked first, so a file cut
short (the directory sits at the *end* of an ABIF file, so any truncation loses
it) or a corrupt directory gives one clear message, never a low-level error or
a hang.  The few tags bsmeth needs are then read straight from the bytes with
numpy (zero-copy for the channels): Biopython's full parser decodes every tag
into Python tuples and cost more than the whole alignment.  The tests check
this reader against Biopython's on every real trace in tests/data.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import ReadFormatError
from .models import Read, Trace

_DATA_TAGS = ("DATA9", "DATA10", "DATA11", "DATA12")
_USED = frozenset(_DATA_TAGS + ("PBAS1", "PBAS2", "PCON1", "PCON2", "PLOC1", "PLOC2", "FWO_1"))
HEADER_SIZE = 128
_ENTRY = struct.Struct(">4sIHHIIII")  # name, number, element type, element size, count, data size, offset, handle
_IUPAC = frozenset("ACGTRYKMSWBDHVN")
_CUT = "the file was cut short (incomplete download or copy?)"


def _stem(path: Path) -> str:
    """File stem, ignoring a trailing .gz (``x.ab1.gz`` -> ``x``)."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def check_abif(data: bytes, path: Path) -> dict[str, tuple[int, int, int, int]]:
    """The tag directory: name+number -> (element type, element count, data size, offset).

    Raises ``ReadFormatError`` with a clear message if the header or directory is truncated or corrupt.
    """
    n = len(data)
    if data[:4] != b"ABIF":
        raise ReadFormatError(f"{path}: not an ABIF trace (starts with {data[:4].decode('latin-1')!r}, not 'ABIF')")
    if n < HEADER_SIZE:
        raise ReadFormatError(
            f"{path}: truncated ABIF trace: {n} bytes, shorter than the {HEADER_SIZE}-byte header; {_CUT}"
        )
    name, _, _, esize, count, _, offset, _ = _ENTRY.unpack_from(data, 6)
    if name != b"tdir" or esize != _ENTRY.size:
        raise ReadFormatError(f"{path}: corrupt ABIF trace: the header does not point to a tag directory")
    if count == 0:
        raise ReadFormatError(f"{path}: corrupt ABIF trace: the tag directory is empty")
    end = offset + count * _ENTRY.size
    if end > n:
        where = "starts past" if offset >= n else "runs past"
        raise ReadFormatError(
            f"{path}: truncated or corrupt ABIF trace: its directory of {count} tags (bytes {offset}-{end}) "
            f"{where} the end of the file ({n} bytes); {_CUT}"
        )
    tags: dict[str, tuple[int, int, int, int]] = {}
    for i in range(count):
        pos = offset + i * _ENTRY.size
        tag, number, etype, esize, ecount, dsize, doff, _ = _ENTRY.unpack_from(data, pos)
        label = tag.decode("latin-1") + str(number)
        if label in _USED and esize * ecount != dsize:
            raise ReadFormatError(
                f"{path}: corrupt ABIF trace: tag {label!r} claims {ecount} elements of {esize} bytes "
                f"but holds {dsize} bytes"
            )
        if dsize > 4 and doff + dsize > n:
            raise ReadFormatError(
                f"{path}: truncated or corrupt ABIF trace: the data of tag {label!r} (bytes {doff}-{doff + dsize}) "
                f"lies past the end of the file ({n} bytes)"
            )
        # data of 4 bytes or less is stored in the offset field itself
        tags.setdefault(label, (etype, ecount, dsize, doff if dsize > 4 else pos + 20))
    return tags


def _raw(data: bytes, tags: dict, name: str) -> bytes | None:
    entry = tags.get(name)
    if entry is None:
        return None
    _, _, dsize, off = entry
    return data[off:off + dsize]


def _int16s(data: bytes, tags: dict, name: str) -> np.ndarray | None:
    entry = tags.get(name)
    if entry is None or entry[0] != 4:  # element type 4: short
        return None
    _, ecount, dsize, off = entry
    if dsize < 2 * ecount:
        return None
    return np.frombuffer(data, dtype=">i2", count=ecount, offset=off)


def _trace(data: bytes, tags: dict) -> Trace | None:
    """The four analysed channels keyed by base, or None when they are missing or inconsistent."""
    order = _raw(data, tags, "FWO_1")
    if order is None:
        return None
    order = order[:4].decode("ascii", "replace").upper()
    if sorted(order) != list("ACGT"):
        return None
    arrays = [_int16s(data, tags, t) for t in _DATA_TAGS]
    if any(a is None for a in arrays) or len({len(a) for a in arrays}) != 1:
        return None
    peaks = _int16s(data, tags, "PLOC2")
    if peaks is None:
        peaks = _int16s(data, tags, "PLOC1")
    if peaks is None:
        peaks = np.zeros(0, dtype=np.int32)
    return Trace(channels=dict(zip(order, arrays)), peaks=peaks.astype(np.int32), base_order=order)


def read_abif(path: Path, data: bytes | None = None) -> Read:
    """One trace file -> one ``Read`` (id = file stem).  Raises ``ReadFormatError`` if unusable."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ReadFormatError(f"{path}: cannot open ({e.strerror})") from None
    tags = check_abif(data, path)
    calls = _raw(data, tags, "PBAS2")
    if calls is None:
        calls = _raw(data, tags, "PBAS1")
    seq = (calls or b"").decode("latin-1").upper()
    if not seq:
        raise ReadFormatError(f"{path}: ABIF file has no base calls (a fragment-analysis .fsa file?)")
    bad = sorted(set(seq) - _IUPAC)
    if bad:
        shown = "".join(b if b.isprintable() and not b.isspace() else "?" for b in bad[:10])
        raise ReadFormatError(f"{path}: corrupt ABIF trace: the base calls contain non-DNA characters ({shown!r})")
    qual = _raw(data, tags, "PCON2")
    if qual is None:
        qual = _raw(data, tags, "PCON1")
    q = None
    if qual is not None and len(qual) == len(seq):
        q = np.frombuffer(qual, dtype=np.uint8).copy()
        if not q.any():
            q = None  # instruments such as the ABI 310 store all-zero qualities: treat as no qualities
    return Read(id=_stem(path), file=str(path), seq=seq, qual=q, fmt="ab1", trace=_trace(data, tags))
