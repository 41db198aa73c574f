"""Reading ABIF chromatograms (.ab1/.abi) into ``Read`` objects.

Pipeline position: input stage, called by ``reads`` for files that start with
the ABIF magic.  Biopython's ABIF parser lives here and nowhere else.  Base
calls and PHRED qualities come from PBAS2/PCON2 (the basecaller's edited
calls); the four analysed dye channels (DATA9-12) are kept in the channel order
given by FWO_ (not always GATC), with the peak positions PLOC2, for the
trace-evidence features.

Before Biopython sees the bytes, the 128-byte header and the tag directory are
checked here, so a file cut short (the directory sits at the *end* of an ABIF
file, so any truncation loses it) or a corrupt directory gives one clear
message instead of a low-level ``struct`` error, and never a hang.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from .errors import ReadFormatError
from .models import Read, Trace

_DATA_TAGS = ("DATA9", "DATA10", "DATA11", "DATA12")
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


def check_abif(data: bytes, path: Path) -> None:
    """Raise ``ReadFormatError`` with a clear message if the ABIF header or directory is truncated or corrupt."""
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
    for i in range(count):
        tag, number, _, _, _, dsize, doff, _ = _ENTRY.unpack_from(data, offset + i * _ENTRY.size)
        if dsize > 4 and doff + dsize > n:
            label = tag.decode("latin-1") + str(number)
            raise ReadFormatError(
                f"{path}: truncated or corrupt ABIF trace: the data of tag {label!r} (bytes {doff}-{doff + dsize}) "
                f"lies past the end of the file ({n} bytes)"
            )


def _trace(raw: dict) -> Trace | None:
    """The four analysed channels keyed by base, or None when they are missing or inconsistent."""
    try:
        order = raw.get("FWO_1")
        if isinstance(order, bytes):
            order = order.decode("ascii", "replace")
        if not isinstance(order, str) or any(t not in raw for t in _DATA_TAGS):
            return None
        order = order[:4].upper()
        if sorted(order) != list("ACGT"):
            return None
        channels = {base: np.asarray(raw[tag], dtype=np.int32).reshape(-1) for base, tag in zip(order, _DATA_TAGS)}
        if len({len(c) for c in channels.values()}) != 1:
            return None
        ploc = raw.get("PLOC2")
        if ploc is None:
            ploc = raw.get("PLOC1")
        peaks = np.asarray(ploc if ploc is not None else (), dtype=np.int32).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        return None
    return Trace(channels=channels, peaks=peaks, base_order=order)


def read_abif(path: Path, data: bytes | None = None) -> Read:
    """One trace file -> one ``Read`` (id = file stem).  Raises ``ReadFormatError`` if unusable."""
    from io import BytesIO

    from Bio import SeqIO

    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ReadFormatError(f"{path}: cannot open ({e.strerror})") from None
    check_abif(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = SeqIO.read(BytesIO(data), "abi")
    except Exception as e:  # Biopython raises many kinds on corrupt files
        detail = str(e) or "inconsistent tag sizes"
        raise ReadFormatError(f"{path}: corrupt ABIF trace ({type(e).__name__}: {detail})") from None
    seq = str(record.seq).upper()
    if not seq:
        raise ReadFormatError(f"{path}: ABIF file has no base calls (a fragment-analysis .fsa file?)")
    bad = sorted(set(seq) - _IUPAC)
    if bad:
        shown = "".join(b if b.isprintable() and not b.isspace() else "?" for b in bad[:10])
        raise ReadFormatError(f"{path}: corrupt ABIF trace: the base calls contain non-DNA characters ({shown!r})")
    qual = record.letter_annotations.get("phred_quality")
    q = None
    if qual is not None and len(qual) == len(seq):
        q = np.clip(np.asarray(qual, dtype=np.int64), 0, 255).astype(np.uint8)
        if not q.any():
            q = None  # instruments such as the ABI 310 store all-zero qualities: treat as no qualities
    raw = record.annotations.get("abif_raw", {})
    return Read(id=_stem(path), file=str(path), seq=seq, qual=q, fmt="ab1", trace=_trace(raw))
