"""Reading chromatograms (ABIF .ab1/.abi and SCF v2/v3) into ``Read`` objects.

Pipeline position: input stage, called by ``reads`` for files that start with
the ABIF (or SCF) magic.  Base calls and PHRED qualities come from PBAS2/PCON2 (the
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

SCF files (magic ``.scf``; Staden's Standard Chromatogram Format, versions 2
and 3) are read with the same numpy approach by ``read_scf``: the header, the
four channels (v2: interleaved per sample point; v3: one channel after the
other, delta-delta encoded), and the bases with their peak index and per-base
probabilities (v2: one 12-byte record per base; v3: grouped field by field).
The tests check that the BioPerl v2 and v3 copies of one trace read
identically and that sangerseqR's heterozygous trace reads the same as ABIF
and as SCF.
"""

from __future__ import annotations

import itertools
import os
import struct
from pathlib import Path

import numpy as np

from .errors import ReadFormatError
from .files import file_stem
from .models import Read, Trace

_DATA_TAGS = ("DATA9", "DATA10", "DATA11", "DATA12")
_USED = frozenset(_DATA_TAGS + ("PBAS1", "PBAS2", "PCON1", "PCON2", "PLOC1", "PLOC2", "FWO_1"))
_USED_NAMES = frozenset(t[:4].encode() for t in _USED)
_USED_LABELS = {(t[:4].encode(), int(t[4:])): t for t in _USED}  # (name, number) as in the directory -> 'PBAS2'
HEADER_SIZE = 128
_ENTRY = struct.Struct(">4sIHHIIII")  # name, number, element type, element size, count, data size, offset, handle
# ABIF's 16-bit numbers.  np.frombuffer takes its arguments positionally on the per-trace path: its keyword
# parsing costs as much as the rest of the call (0.6 us, three to four calls a trace)
_BE16 = np.dtype(">i2")
_IUPAC = frozenset("ACGTRYKMSWBDHVN")
_IUPAC_BYTES = "".join(sorted(_IUPAC)).encode()
_CUT = "the file was cut short (incomplete download or copy?)"
_AS_PLAIN = "qualities ignored, the base calls are used as plain sequence"


def check_abif(data: bytes, path: Path) -> dict[str, tuple[int, int, int, int]]:
    """The directory entries bsmeth reads: name+number -> (element type, element count, data size, offset).

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
    at = offset + 20  # where an entry's offset field lies: data of 4 bytes or less is stored there
    for tag, number, etype, esize, ecount, dsize, doff, _ in _ENTRY.iter_unpack(data[offset:end]):
        label = _USED_LABELS.get((tag, number)) if tag in _USED_NAMES else None  # a tag bsmeth reads
        if label is not None and esize * ecount != dsize:
            raise ReadFormatError(
                f"{path}: corrupt ABIF trace: tag {label!r} claims {ecount} elements of {esize} bytes "
                f"but holds {dsize} bytes"
            )
        if dsize > 4 and doff + dsize > n:
            label = label or tag.decode("latin-1") + str(number)
            raise ReadFormatError(
                f"{path}: truncated or corrupt ABIF trace: the data of tag {label!r} (bytes {doff}-{doff + dsize}) "
                f"lies past the end of the file ({n} bytes)"
            )
        if label is not None and label not in tags:  # the first of a repeated tag
            tags[label] = (etype, ecount, dsize, doff if dsize > 4 else at)
        at += _ENTRY.size
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
    return np.frombuffer(data, _BE16, ecount, off)


_NO_TRACE = "the chromatogram is not used"
# channel order (FWO_) -> the file's channel of A, C, G and T (Trace.matrix's rows), for the 24 orders there are
_ROWS = {"".join(p): np.array([p.index(b) for b in "ACGT"]) for p in itertools.permutations("ACGT")}


def _trace(data: bytes, tags: dict, n_calls: int) -> tuple[Trace | None, str]:
    """The four analysed channels keyed by base, or None and why (missing, inconsistent or empty)."""
    order = _raw(data, tags, "FWO_1")
    if order is None:
        return None, f"no channel order (FWO_ tag): {_NO_TRACE}"
    order = order[:4].decode("ascii", "replace").upper()
    rows = _ROWS.get(order)
    if rows is None:
        return None, f"channel order {order!r} (FWO_) is not A, C, G, T in some order: {_NO_TRACE}"
    # the channels from their directory entries (what ``_int16s`` checks), without an array each
    entries = [tags.get(t) for t in _DATA_TAGS]
    if None in entries:
        return None, f"analysed data channels (DATA9-12) missing or not 16-bit: {_NO_TRACE}"
    (k9, n, s9, at9), (k10, n10, s10, at10), (k11, n11, s11, at11), (k12, n12, s12, at12) = entries
    if not (k9 == k10 == k11 == k12 == 4 and s9 >= 2 * n and s10 >= 2 * n10 and s11 >= 2 * n11 and s12 >= 2 * n12):
        return None, f"analysed data channels (DATA9-12) missing or not 16-bit: {_NO_TRACE}"
    if not n == n10 == n11 == n12:
        return None, f"the four data channels differ in length ({n}, {n10}, {n11}, {n12}): {_NO_TRACE}"
    # rows A, C, G, T (Trace.matrix): one copy out of the file when the four channels lie one after the other
    if at10 - at9 == at11 - at10 == at12 - at11 == 2 * n:
        matrix = np.frombuffer(data, _BE16, 4 * n, at9).reshape(4, n).take(rows, axis=0)
    else:
        at = (at9, at10, at11, at12)
        matrix = np.stack([np.frombuffer(data, _BE16, n, at[i]) for i in rows.tolist()])
    # all zero?  A few points in the middle of the run show signal in any trace that has some; only when they
    # are all zero is every point looked at
    if not np.count_nonzero(matrix[:, n // 2:n // 2 + 16]) and not np.count_nonzero(matrix):
        return None, f"the data channels are empty (all zero or no points): {_NO_TRACE}"
    peaks = _int16s(data, tags, "PLOC2")
    if peaks is None:
        peaks = _int16s(data, tags, "PLOC1")
    if peaks is None or len(peaks) != n_calls:
        found = "no peak positions (PLOC)" if peaks is None else f"{len(peaks)} peak positions (PLOC)"
        return None, f"{found} for {n_calls} base calls: {_NO_TRACE}"
    peaks = peaks.astype(np.int32)
    # below 0 or at n and past: as unsigned, a negative position is past any n (n < 2**31, a file < 4 GiB); the
    # largest of them says whether any is (one pass), the count is made only then
    wide = peaks.view(np.uint32)
    outside = int(np.count_nonzero(wide >= n)) if len(wide) and int(wide.max()) >= n else 0
    trace = Trace(channels=dict(zip("ACGT", matrix)), peaks=peaks, base_order=order, matrix=matrix)
    return trace, (f"{outside} peak position(s) lie outside the trace: no chromatogram evidence there"
                   if outside else "")


def _bytes_of(path: str | Path, data: bytes | None) -> bytes:
    if data is not None:
        return data
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ReadFormatError(f"{path}: cannot open ({e.strerror})") from None


def read_abif(path: str | Path, data: bytes | None = None) -> Read:
    """One trace file -> one ``Read`` (id = file stem).  Raises ``ReadFormatError`` if unusable."""
    data = _bytes_of(path, data)
    tags = check_abif(data, path)
    calls = _raw(data, tags, "PBAS2")
    if calls is None:
        calls = _raw(data, tags, "PBAS1")
    calls = (calls or b"").upper()
    if not calls:
        raise ReadFormatError(f"{path}: ABIF file has no base calls (a fragment-analysis .fsa file?)")
    if not calls.translate(None, _IUPAC_BYTES):  # IUPAC letters only (the bytes way: no set of the letters)
        seq = calls.decode("ascii")
    else:  # the text way, for its message; bytes a latin-1 reading upper-cases to letters (\xdf: 'SS') pass
        seq = calls.decode("latin-1").upper()
        bad = sorted(set(seq) - _IUPAC)
        if bad:
            shown = "".join(b if b.isprintable() and not b.isspace() else "?" for b in bad[:10])
            raise ReadFormatError(f"{path}: corrupt ABIF trace: the base calls contain non-DNA characters ({shown!r})")
    qual = _raw(data, tags, "PCON2")
    if qual is None:
        qual = _raw(data, tags, "PCON1")
    q = None
    notes = []  # anomalies, shown in the read's detail (never silent)
    if qual is not None and len(qual) == len(seq):
        q = np.frombuffer(qual, np.uint8).copy()
        if not np.count_nonzero(q):
            q = None  # instruments such as the ABI 310 store all-zero qualities: treat as no qualities
            notes.append(f"the trace's qualities are all zero: {_AS_PLAIN}")
    else:
        notes.append(f"the trace has no qualities (no PCON tag): {_AS_PLAIN}" if qual is None else
                     f"the trace's quality array (PCON) has {len(qual)} values for {len(seq)} base calls: {_AS_PLAIN}")
    trace, problem = _trace(data, tags, len(seq))
    return Read(id=file_stem(path), file=os.fspath(path), seq=seq, qual=q, fmt="ab1", trace=trace,
                notes=tuple(notes + ([problem] if problem else [])))


# ---------------------------------------------------------------------------------------------- SCF
# Standard Chromatogram Format (Dear & Staden 1992; io_lib's scf.h), big-endian.  Header: magic '.scf',
# then samples, samples_offset, bases, bases_left_clip, bases_right_clip, bases_offset, comments_size,
# comments_offset (uint32 each), version (4 chars, '2.00' / '3.00'), sample_size (1 or 2 bytes),
# code_set, private_size, private_offset, 18 spare words: 128 bytes.
_SCF_HEADER = struct.Struct(">4s8I4s4I")
_SCF_ORDER = "ACGT"  # SCF stores the channels and the per-base probabilities in this order, always
# v2 and earlier: one 12-byte record per base (peak index, prob A/C/G/T, base, 3 spare bytes)
_SCF_BASE_V2 = np.dtype([("peak", ">u4"), ("prob", "u1", (4,)), ("base", "S1"), ("spare", "V3")])


def _scf_samples(data: bytes, n: int, offset: int, size: int, v3: bool) -> dict[str, np.ndarray] | None:
    """The four channels.  v2: interleaved per sample point (A, C, G, T); v3: per channel, delta-delta coded.

    None when the decoded samples are not a chromatogram: 16-bit samples are the instrument's signed
    analysed data, so a few small negatives (a baseline just below zero) are clipped to 0, but when more
    than 5 % are negative the samples were written in another encoding (bioperl's 13-pilE-F.scf decodes
    to noise over the whole 16-bit range): the base calls stay usable, the trace is dropped.
    """
    dtype = np.dtype(">u2" if size == 2 else "u1")
    work = np.frombuffer(data, dtype=dtype, count=4 * n, offset=offset).astype(dtype.newbyteorder("="))
    if not v3:
        arr = work.reshape(n, 4).T
    else:
        # io_lib's scf_delta_samples: two running sums, in the sample width's modular arithmetic
        work = work.reshape(4, n)
        arr = np.cumsum(np.cumsum(work, axis=1, dtype=work.dtype), axis=1, dtype=work.dtype)
    if size == 2:
        arr = arr.view(np.int16)
        if n and np.count_nonzero(arr < 0) > 0.05 * arr.size:
            return None
        arr = np.maximum(arr, 0)
    return {b: np.ascontiguousarray(arr[i]) for i, b in enumerate(_SCF_ORDER)}


def _scf_bases(data: bytes, n: int, offset: int, v3: bool) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Peak indexes, (n, 4) probabilities (A, C, G, T) and the base letters."""
    if not v3:
        rec = np.frombuffer(data, dtype=_SCF_BASE_V2, count=n, offset=offset)
        return rec["peak"].astype(np.int64), rec["prob"], rec["base"].tobytes()
    # v3 groups the fields: all peak indexes, then all prob_A, prob_C, prob_G, prob_T, then the bases
    peaks = np.frombuffer(data, dtype=">u4", count=n, offset=offset).astype(np.int64)
    probs = np.frombuffer(data, dtype=np.uint8, count=4 * n, offset=offset + 4 * n).reshape(4, n).T
    return peaks, probs, data[offset + 8 * n: offset + 9 * n]


def scf_comments(data: bytes) -> dict[str, str]:
    """The comment block (``NAME=...`` lines) of an SCF file; {} when it has none or it is unreadable."""
    if len(data) < _SCF_HEADER.size:
        return {}
    h = _SCF_HEADER.unpack_from(data)
    size, offset = h[7], h[8]
    text = data[offset: offset + size].split(b"\0", 1)[0].decode("latin-1")
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def read_scf(path: str | Path, data: bytes | None = None) -> Read:
    """One SCF (v2 or v3) trace -> one ``Read`` (id = file stem).  Raises ``ReadFormatError`` if unusable.

    Quality of a base: the SCF probability of its own letter (the PHRED value that phred and the ABI
    converters store there); for an N or IUPAC call the largest of the four.  All zero, or values
    above 100 (a 0-255 probability scale, not PHRED): no qualities.  The channels are in A, C, G, T
    order (SCF's fixed order, ``base_order`` 'ACGT').
    """
    data = _bytes_of(path, data)
    n_bytes = len(data)
    if data[:4] != b".scf":
        raise ReadFormatError(f"{path}: not an SCF trace (starts with {data[:4].decode('latin-1')!r}, not '.scf')")
    if n_bytes < HEADER_SIZE:  # 56 bytes of fields + 18 spare words
        raise ReadFormatError(f"{path}: truncated SCF trace: {n_bytes} bytes, shorter than the 128-byte header; {_CUT}")
    (_, n_samples, s_off, n_bases, _, _, b_off, _, _, version, s_size, _, _, _) = _SCF_HEADER.unpack_from(data)
    try:
        ver = float(version.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ReadFormatError(f"{path}: corrupt SCF trace: version {version!r} is not a number") from None
    if s_size not in (1, 2):
        raise ReadFormatError(f"{path}: corrupt SCF trace: sample size {s_size} bytes (expected 1 or 2)")
    if n_bases == 0:
        raise ReadFormatError(f"{path}: SCF trace has no base calls")
    v3 = ver >= 3.0
    for what, start, size in (("samples", s_off, 4 * n_samples * s_size), ("bases", b_off, 12 * n_bases)):
        if start + size > n_bytes:
            raise ReadFormatError(
                f"{path}: truncated or corrupt SCF trace: its {what} (bytes {start}-{start + size}) run past "
                f"the end of the file ({n_bytes} bytes); {_CUT}")
    peaks, probs, letters = _scf_bases(data, n_bases, b_off, v3)
    # '-' is how some base callers (and makeSCF) write a base they could not call: an N
    seq = letters.decode("latin-1").upper().replace("-", "N")
    bad = sorted(set(seq) - _IUPAC)
    if bad:
        shown = "".join(b if b.isprintable() and not b.isspace() else "?" for b in bad[:10])
        raise ReadFormatError(f"{path}: corrupt SCF trace: the base calls contain non-DNA characters ({shown!r})")
    own = np.frombuffer(seq.encode("ascii"), dtype="S1")
    col = np.select([own == b.encode() for b in _SCF_ORDER], range(4), -1)
    q = np.where(col >= 0, probs[np.arange(n_bases), np.maximum(col, 0)], probs.max(axis=1)).astype(np.uint8)
    # all zero: the writer stored none (ABI's converters).  Values above 100 are no PHRED scale but a
    # 0-255 probability (bioperl's 13-pilE-F.scf): neither gives a usable PHRED, so no qualities
    qual = q if q.any() and q.max() <= 100 else None
    notes = [] if qual is not None else [
        f"the trace's qualities are all zero: {_AS_PLAIN}" if not q.any() else
        f"the trace's base probabilities are not PHRED values (up to {int(q.max())}): {_AS_PLAIN}"]
    trace = None
    channels = _scf_samples(data, n_samples, s_off, s_size, v3) if n_samples > 0 else None
    if n_samples == 0 or (channels is not None and not any(c.any() for c in channels.values())):
        notes.append(f"the trace's samples are empty (all zero or no points): {_NO_TRACE}")
    elif channels is None:
        notes.append(f"the trace's samples do not decode as a chromatogram (over 5 % negative): {_NO_TRACE}")
    elif peaks.max() >= n_samples:
        notes.append(f"peak positions lie past the trace's {n_samples} samples: {_NO_TRACE}")
    else:
        trace = Trace(channels=channels, peaks=peaks.astype(np.int32), base_order=_SCF_ORDER)
    return Read(id=file_stem(path), file=os.fspath(path), seq=seq, qual=qual, fmt="scf", trace=trace,
                notes=tuple(notes))
