"""reads.bam and reads.mod.bam: every read of a call on its amplicon's genome position (docs/interop.md).

Pipeline position: an output stage of ``call`` (run from ``pipeline.write_outputs``), working from the
in-memory results: each ``ReadResult`` with its ``AlignedRead`` (``read_pos``: target position -> index in the
read as given, -1 for a deletion; ``orientation``; ``target_start``/``target_end``) and the read's own bases
and qualities.  Positions go through ``coords`` (via ``contigs.Placement``); pysam is behind ``bam``.

The conventions, in short (docs/interop.md has them in full):

* A record shows the read as the **amplified (bisulfite-converted) strand** it reports on, like a Bismark
  alignment of a directional library: OT (flag 0, ``XR:Z:CT``, ``XG:Z:CT``) when that strand is the genome's
  plus strand, OB (flag 16, ``XR:Z:CT``, ``XG:Z:GA``) when it is the minus strand.  A read sequenced from the
  reverse primer is stored reverse complemented (``YO:A:-``, reads.tsv's ``orientation``).
* ``XM``: Bismark's methylation string; at CpGs exactly bsmeth's call (``Z`` = M, ``z`` = U, ``.`` = not
  determined), at other C the base as read (x/X CHG, h/H CHH, u/U unknown context) where PHRED >= --min-qual
  and outside primers.  ``NM``/``MD`` against the unconverted reference, as the SAM specification and
  ``samtools calmd`` define them (each C read as T counts).
* reads.mod.bam: the same records with C restored at every CpG called M or U, ``MM:Z:C+m?,...;`` listing
  exactly those Cs (``?``: every other C is of unknown status), ``ML`` 255 for M and 0 for U, ``MN`` = SEQ
  length, and the observed bases in ``YB:Z`` (same orientation as SEQ).
* Every read with a sequence is written: passing reads plain, failed reads with flag 0x200 (0x400 for a
  clonal duplicate), reads without an alignment unmapped (flag 4 | 0x200) with their reason in ``YR``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import numpy as np

from . import __version__
from .atomic import write_text
from .bam import (
    FLAG_DUPLICATE,
    FLAG_QCFAIL,
    FLAG_REVERSE,
    FLAG_UNMAPPED,
    Header,
    Record,
    cigar_bytes,
    encode_record,
    index_fasta,
    pack_seq,
    record_bytes,
    reg2bin,
    tag_bytes,
    write_bams,
)
from .contigs import Placement, place_panel
from .coords import complement
from .memo import by_identity
from .models import AlignedRead, Amplicon, CpGCalls, Panel, ReadResult, Reason, Status

READS_BAM = "reads.bam"
MOD_BAM = "reads.mod.bam"
AMPLICONS_FA = "amplicons.fa"
TRACE_FORMATS = ("ab1", "abi", "scf")  # reads from a capillary sequencer for sure: PL:CAPILLARY
_QNAME_OK = frozenset(chr(c) for c in range(33, 127) if chr(c) != "@")  # SAM QNAME [!-?A-~]
# percent-encoding of names for SAM text fields (RFC 3986, as SAM's CT/PT tags): printable ASCII but % and space
_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")


def encode_name(name: str) -> str:
    """A name (read id, sample) as SAM text: printable ASCII but space, other bytes percent-encoded (``decode_name``
    reverses it; bytes of names in a legacy encoding survive through surrogate escapes)."""
    return quote(name.encode("utf-8", "surrogateescape"), safe=_SAFE)


def decode_name(text: str) -> str:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def sam_text(text: str) -> str:
    """Free text (a reason's detail) as a SAM Z value: printable ASCII, anything else as a backslash escape."""
    if text.isascii() and text.isprintable():  # ASCII's printable characters are exactly ' '..'~'
        return text
    return "".join(c if " " <= c <= "~" else c.encode("utf-8", "surrogateescape").decode("latin-1")
                   .encode("unicode_escape").decode("ascii") for c in text)


def qname_of(read_id: str) -> str:
    """The read id as a SAM QNAME ([!-?A-~]+, at most 254): other characters as ``_`` (the id is then kept in
    ``YN:Z``)."""
    if read_id.isascii() and read_id.isprintable() and " " not in read_id and "@" not in read_id:
        return read_id[:254] or "_"
    q = "".join(c if c in _QNAME_OK else "_" for c in read_id)[:254]
    return q or "_"


def read_group_id(sample: str) -> str:
    return encode_name(sample) or "%00"


# ------------------------------------------------------------------------------------------ one read

@dataclass(frozen=True, eq=False)
class ReadParts:
    """The reads.bam and reads.mod.bam records of one aligned read, but for what QC may still change after the
    read is processed (the name, the flag's QC bits and the tags RG, YN, YA, YS, YR, YD, YP, which ``assemble``
    adds).  Made where the read is processed (``pipeline.process_files``, in the worker processes), so that
    writing the BAMs is only assembling, sorting and compressing."""

    min_qual: int  # the --min-qual XM was made with
    amplicon: str
    pos: int  # 0-based leftmost position on the contig
    bin: int
    n_cigar: int
    l_seq: int
    reverse: bool  # flag 16: the amplified strand is the genome's minus strand
    plain: bytes  # CIGAR, bases, qualities, NM, MD, XM, XR, XG (as BAM stores them)
    mod: bytes  # CIGAR, restored bases, qualities, NM, MD, MM, ML, MN, YB
    tail: bytes  # YO, YC, YI, YG


@dataclass(frozen=True, eq=False)
class _AmpliconTables:
    """Per-amplicon tables the records are made from (built once per amplicon).  A read is laid over them in
    target order (its base at every target position), so that XM and the mismatches are a few table look-ups
    over the amplicon rather than a walk over its C.  The arrays are padded: index ``t + 1`` holds target
    position ``t``, and the pads at 0 and ``length + 1`` lie outside the amplicon, where no base of a read is;
    so the aligned columns with a column on each side (MD's pads, see ``_md``) are one slice even where a read
    covers the whole amplicon."""

    length: int
    tgt: bytes  # letters of the target, after one pad (a plus-strand record's reference letters)
    comp: bytes  # letters of the target complemented, after one pad (a minus-strand record's)
    tgt_cmp: np.ndarray  # uint8 letters of the target, 255 where not A, C, G or T and at the pads (no base equals it)
    xm_row: np.ndarray  # uint16 per target position: its row of _XM_OTHER times 256 (row 0: no XM letter, pads)
    call_i: np.ndarray  # intp: the calls whose target letter is a C (the others get no XM letter), in target order
    call_t: np.ndarray  # intp: the (padded) target position of each of those calls


_TABLES: dict = {}


def _tables(amp: Amplicon) -> _AmpliconTables:
    return by_identity(_TABLES, amp, lambda: _make_tables(amp, [c.target_pos for c in amp.cpgs]))


def _make_tables(amp: Amplicon, call_t: Sequence[int]) -> _AmpliconTables:
    """The tables for calls made at target positions ``call_t`` (every other C gets XM from its base)."""
    target = amp.target
    called = set(call_t)
    other = [t for t in range(amp.length) if target[t] == "C" and t not in called and not amp.in_primer(t)]
    xm_row = np.zeros(amp.length + 2, dtype=np.uint16)
    xm_row[[t + 1 for t in other]] = [_XM_ROWS.index(_context(amp, t)) << 8 for t in other]
    perm = np.argsort(np.array(call_t, dtype=np.int64), kind="stable")  # a bottom strand's CpGs run backwards
    on_c = [i for i in perm.tolist() if target[call_t[i]] == "C"]
    tgt = ("N" + target).encode("ascii")
    tgt_u8 = np.frombuffer(tgt, dtype=np.uint8)
    return _AmpliconTables(
        length=amp.length,
        tgt=tgt,
        comp=("N" + complement(target)).encode("ascii"),
        tgt_cmp=np.append(np.where(_OK_BASES[tgt_u8], tgt_u8, 255), 255).astype(np.uint8),
        xm_row=xm_row,
        call_i=np.array(on_c, dtype=np.intp),
        call_t=np.array([call_t[i] + 1 for i in on_c], dtype=np.intp))


_PLACED: dict = {}


def _placed(place: Placement) -> tuple[bool, list[int]]:
    """Whether a record of the amplicon is a minus-strand one, and the genome position of each target position
    (the frame's conversion, done once per amplicon)."""
    return by_identity(_PLACED, place, lambda: (place.strand == "-", [
        place.frame.genome_of_target(t) for t in range(place.frame.length)]))


_OK_BASES = np.zeros(256, dtype=bool)
_OK_BASES[[ord(b) for b in "ACGT"]] = True
_DOT, _C, _G = ord("."), ord("C"), ord("G")
# a CpG call's XM letter: M -> Z, U -> z, anything else '.' (bytes.translate's table), and the ML probability of
# a called C by its XM letter: 255 for Z (M), 0 for z (U)
_CALL_XM = bytes(ord({"M": "Z", "U": "z"}.get(chr(i), ".")) for i in range(256))
_ML_OF = bytes(range(256)).translate(bytes.maketrans(b"Zz", b"\xff\0"))
_DOT_U8, _ZERO = np.uint8(ord(".")), np.intp(0)  # (a ufunc with a Python number first converts it, slowly)
_MARK = 0xFF
_DIGITS = b"0123456789"
_NOT_C_OR_MARK = bytes(b for b in range(256) if b not in (_MARK, ord("C")))


@lru_cache(maxsize=8)  # (as qc._reaches and calling._qual_key, the other tables by PHRED threshold)
def _row_mask(min_qual: int) -> np.ndarray:
    """By PHRED, what keeps (0xffff) or takes away (0x00ff: row 0, no XM letter) a position's row of
    ``_XM_OTHER`` in its key, for --min-qual ``min_qual``."""
    return np.where(np.arange(256) < min_qual, 0x00FF, 0xFFFF).astype(np.uint16)


# XM of a C that is not a call, by Bismark's context letter (rows; row 0: no C of interest) and the base read
# there: the context upper case for a C (not converted), lower case for a T (converted), else '.'
_XM_ROWS = ("", "z", "x", "h", "u")
_XM_OTHER = np.full((len(_XM_ROWS), 256), _DOT, dtype=np.uint8)
for _row, _ctx in enumerate(_XM_ROWS[1:], 1):
    _XM_OTHER[_row, ord("C")], _XM_OTHER[_row, ord("T")] = ord(_ctx.upper()), ord(_ctx)
_XM_OTHER = _XM_OTHER.ravel()


def target_letters(amp: Amplicon, t: int, n: int) -> str:
    """The amplified strand's letters at target positions ``t``..``t+n-1``, beyond the amplicon too ('N' past the
    reference record)."""
    frame = amp.frame
    out = []
    for u in range(t, t + n):
        if 0 <= u < amp.length:
            out.append(amp.target[u])
            continue
        r = frame.ref_of(u)
        if not 0 <= r < len(amp.reference):
            out.append("N")
        else:
            b = amp.reference[r]
            out.append(b if frame.strand.value == "top" else complement(b))
    return "".join(out)


def _context(amp: Amplicon, t: int) -> str:
    """Bismark's context letter of the C at target ``t``: z (CpG), x (CHG), h (CHH) or u (unknown)."""
    nxt = target_letters(amp, t + 1, 2)
    if nxt[0] == "G":
        return "z"
    if nxt[0] == "N":
        return "u"
    if nxt[1] == "G":
        return "x"
    return "u" if nxt[1] == "N" else "h"


_NUMBERS = 4096  # the decimal text of the small numbers MD and MM strings are made of, written once
_NUMBER = [str(i) for i in range(_NUMBERS)]
_COMMA_NUMBER = [f",{i}" for i in range(_NUMBERS)]


def _md(miss: np.ndarray, ref: np.ndarray, dels: Sequence[tuple[int, bytes]], reverse: bool = False) -> bytes:
    """The MD string of an alignment of ``n_m`` aligned (M) columns.  ``miss`` (bool, ``n_m + 2``): per column
    whether the read mismatches, between two True pads; ``ref`` (uint8, ``n_m + 1``): the reference letters of
    the columns as the record shows them, after one pad; ``dels``: the deletions, (number of M columns before
    it, deleted reference letters as the record shows them), in increasing order.  ``reverse``: the record runs
    the other way (the columns are given in the opposite order of the record's)."""
    if not dels:
        return _md_block(miss, ref, reverse)
    parts, start = [], 0  # the blocks between deletions (each with its pads), and the deletions
    for p, d in dels:
        block = miss[start:p + 2].copy()
        block[0] = block[-1] = True
        parts += [_md_block(block, ref[start:p + 1], reverse), b"^" + d]
        start = p
    block = miss[start:].copy()
    block[0] = True
    parts.append(_md_block(block, ref[start:], reverse))
    if reverse:
        parts.reverse()
    return b"".join(parts)


def _md_block(miss: np.ndarray, ref: np.ndarray, reverse: bool) -> bytes:
    """The MD string of columns without a deletion (``miss`` and ``ref`` with their pads, see ``_md``):
    matching run, letter, ..., matching run.

    A bisulfite read mismatches its unconverted reference at every converted C (a hundred events a read, with
    the restored record's): the runs are differences of the mismatches' indexes (the pads make the first and
    last run), each run with the letter after it one 8-byte token (``_RUN_TOKEN``: the run's text, zeros, the
    letter), the zeros deleted from the tokens' bytes; a loop of Python over the events costs twice as much."""
    at = miss.nonzero()[0]  # 0, the columns + 1 of the mismatches, n_m + 1
    steps = at[1:] - at[:-1]  # each run + 1
    if len(miss) > _NUMBERS:  # runs longer than the table's: their text written out
        numbers = [b"%d" % (k - 1) for k in steps.tolist()]
        letters = [ref[at[1:-1]].tobytes()[i:i + 1] for i in range(len(steps) - 1)]
        if reverse:
            numbers, letters = numbers[::-1], letters[::-1]
        out = [b""] * (2 * len(steps) - 1)
        out[::2] = numbers
        out[1::2] = letters
        return b"".join(out)
    if reverse:
        tokens = _RUN_TOKEN.take(steps[::-1])
        tokens[:-1] |= _LETTER_TOKEN.take(ref.take(at[-2:0:-1]))
    else:
        tokens = _RUN_TOKEN.take(steps)
        tokens[:-1] |= _LETTER_TOKEN.take(ref.take(at[1:-1]))
    return tokens.tobytes().translate(None, b"\0")


# a run of MD by its length + 1 as a little-endian 8-byte token: its decimal text, zeros (4 bytes), and room for
# the letter after it (_LETTER_TOKEN: the letter in the fifth byte)
_RUN_TOKEN = np.frombuffer(b"\0" * 8 + b"".join(t.encode("ascii").ljust(8, b"\0") for t in _NUMBER), dtype="<u8")
_LETTER_TOKEN = np.arange(256, dtype="<u8") << np.uint64(32)


def _md_both(miss: np.ndarray, ref: bytes, reverse: bool) -> tuple[bytes, bytes]:
    """The MD strings of the plain and of the restored record of a read without a deletion: ``miss`` (2 rows:
    plain, restored) and ``ref`` (bytes) as ``_md_block`` takes them.  One ``_md_block`` over both rows in a
    row, with '|' as the reference letter of the two pads where they meet: the strings come out joined by
    ``|0|``."""
    both = _md_block(miss.ravel(), np.frombuffer(ref + b"||" + ref[1:], dtype=np.uint8), reverse).split(b"|0|")
    return (both[1], both[0]) if reverse else (both[0], both[1])


def _z(tag: bytes, text: str) -> bytes:
    return tag + b"Z" + text.encode("ascii") + b"\0"


def _i(tag: bytes, value: int) -> bytes:
    return tag + b"i" + _I32.pack(value)


def record_parts(result: ReadResult, amp: Amplicon, place: Placement, min_qual: int) -> ReadParts:
    """Everything of the two records of one aligned read that QC does not change later (see ``ReadParts``).

    A handful of array operations over the amplicon: the read laid over it (``AlignedRead.read_pos``: the index
    of each target position's base in the read as given) gives XM and the mismatches by table look-ups, its
    qualities there (``AlignedRead.quals``: the read's own, where it has any) XM's quality mask; the few called
    CpGs are found again in XM.  Both MD strings come from one pass, the plain and the restored bases are
    packed together; each numpy call costs about a microsecond, so there are few of them, and none with a
    Python number (which costs as much again)."""
    aln = result.aligned
    seq = result.sequence.encode("ascii", "replace")
    n = len(seq)
    minus = aln.orientation == "-"  # the read is the reverse complement of the amplified strand
    given = seq.translate(_COMP_BYTES) if minus else seq  # the amplified strand's letters, in the read's order
    calls = result.calls
    if isinstance(calls, CpGCalls) and calls.cpgs is amp.cpgs:
        tab, codes = _tables(amp), calls.codes
    else:
        tab = _make_tables(amp, [c.cpg.target_pos for c in calls])
        codes = "".join(c.call.value for c in calls)
    rev, genome = _placed(place)
    flip = minus != rev  # the record shows the read as given reversed
    # per (padded) target position the index of its base in the read as given, -1 where none: the pad of `read`
    qt = np.empty(tab.length + 2, dtype=np.intp)
    qt[0] = qt[-1] = -1
    qt[1:-1] = aln.read_pos
    base = np.frombuffer(given + b"\0", dtype=np.uint8)[qt]
    # XM over the target: every other C outside the primers by its base (quality permitting: a low quality
    # takes the row away), then every call on a C by the call; the read's XM from it (``take``: a table
    # look-up by small integers as ``[]`` does it is several times slower)
    key = tab.xm_row + base
    if result.qualities is not None:
        key[1:-1] &= _row_mask(min_qual).take(aln.quals)
    xm_t = _XM_OTHER.take(key)
    letters = np.frombuffer(codes.encode("ascii").translate(_CALL_XM), dtype=np.uint8)[tab.call_i]
    xm_t[tab.call_t] = letters
    xm = bytearray(b"." * (n + 1))
    np.frombuffer(xm, dtype=np.uint8)[qt] = xm_t  # (where there is no base: into the pad)
    # the calls M and U (in target order, the oriented read's), and the index in the read as given of those
    # on a base of the read: C restored there in the mod record
    mu = letters != _DOT_U8
    mu_t = tab.call_t[mu]
    cg = qt[mu_t]
    on = cg >= _ZERO
    cg, on_letters = cg[on], letters[mu][on]
    # mismatches against the unconverted reference per target position (any base but A, C, G, T mismatches;
    # where the target has no base of the read, the pads too, the read mismatches), of the read and of the
    # restored read, which matches at the calls M and U (where they have no base: see the pads again below)
    miss = np.empty((2, tab.length + 2), dtype=bool)
    np.not_equal(base, tab.tgt_cmp, out=miss[0])
    miss[1] = miss[0]
    miss[1, mu_t] = False
    # MM/ML on the oriented read (the record's original orientation, see module docstring): skips over the
    # other C before each called one (no other called one lies between two): the read as given with the calls
    # marked (0xff: no ASCII letter), all but its C and the marks deleted, cut at the marks
    marked = bytearray(given)
    np.frombuffer(marked, dtype=np.uint8)[cg] = _MARK
    runs = marked.translate(None, _NOT_C_OR_MARK).split(b"\xff")
    skips = map(len, runs[:0:-1] if minus else runs[:-1])  # (a minus read's C before a call: after it as given)
    mm = "C+m?" + "".join(map(_COMMA_NUMBER.__getitem__, skips) if n < _NUMBERS else
                          [f",{k}" for k in skips]) + ";"
    probs = on_letters.tobytes().translate(_ML_OF)
    # the aligned columns, the CIGAR (in target order) and the deletions
    t0, t1 = aln.target_start, aln.target_end
    first, last = int(qt[t0 + 1]), int(qt[t1])  # the oriented read's first and last aligned base
    if minus:
        first, last = n - 1 - first, n - 1 - last
    ref_letters = tab.comp if rev else tab.tgt
    if _gap_free(aln, first, last):  # the columns are one slice
        cigar, n_gap = [("M", t1 - t0)], 0
        cols = miss[:, t0:t1 + 2]  # with a pad on each side
        cols[1, 0] = cols[1, -1] = True
        md, md_mod = _md_both(cols, ref_letters[t0:t1 + 1], rev)
        nm, nm_mod = len(md.translate(None, _DIGITS)), len(md_mod.translate(None, _DIGITS))  # (its letters)
    else:
        cigar, dels, n_gap, at = _gapped(aln, qt, minus, n, rev, ref_letters, result.read_id)
        cols = miss[:, at]
        cols[1, 0] = cols[1, -1] = True
        ref = np.frombuffer(ref_letters, dtype=np.uint8)[at[:-1]]
        md, md_mod = _md(cols[0], ref, dels, rev), _md(cols[1], ref, dels, rev)
        nm, nm_mod = np.count_nonzero(cols[0]) + (n_gap - 2), np.count_nonzero(cols[1]) + (n_gap - 2)
    cigar = ([("S", first)] if first else []) + cigar + ([("S", n - 1 - last)] if n - 1 - last else [])
    if rev:
        cigar.reverse()
    # the record's orientation: the genome's forward strand; the plain and the restored bases packed together
    if flip:  # (the complement's complement is not always the letter itself: U -> A -> T)
        rec_read = (given if minus else seq.translate(_COMP_BYTES))[::-1]
    else:
        rec_read = given.translate(_COMP_BYTES) if minus else seq
    odd = n & 1
    both = bytearray((rec_read + b"=" if odd else rec_read) * 2)  # '=': pack_seq's pad of an odd length
    m = n + odd
    restored = np.frombuffer(both, dtype=np.uint8)[m:m + n]
    (restored[::-1] if flip else restored)[cg] = _G if rev else _C
    packed = pack_seq(bytes(both))
    xm_b = bytes(xm[:n])
    quals = result.qualities
    qual = b"\xff" * n if quals is None else np.asarray(quals, dtype=np.uint8).tobytes()
    if flip:
        xm_b = xm_b[::-1]
        if quals is not None:
            qual = qual[::-1]
    pos = genome[t1 - 1 if rev else t0]
    cig = cigar_bytes(cigar)
    plain = b"".join((cig, packed[:m >> 1], qual, _i(b"NM", nm), b"MDZ", md, b"\0XMZ", xm_b, b"\0XRZCT\0",
                      b"XGZGA\0" if rev else b"XGZCT\0"))
    mod = [cig, packed[m >> 1:], qual, _i(b"NM", nm_mod), b"MDZ", md_mod, b"\0", _z(b"MM", mm)]
    if probs:
        mod.append(b"MLBC" + _I32.pack(len(probs)) + probs)
    mod += [_i(b"MN", n), b"YBZ", rec_read, b"\0"]
    parts = _new(ReadParts)  # (a frozen dataclass's __init__ sets its ten fields one by one, slowly)
    parts.__dict__.update(min_qual=min_qual, amplicon=result.amplicon, pos=pos, bin=reg2bin(pos, pos + t1 - t0),
                          n_cigar=len(cigar), l_seq=n, reverse=rev, plain=plain, mod=b"".join(mod),
                          tail=tag_bytes(_fixed_tags(result)))
    return parts


_new = object.__new__


def _gap_free(aln: AlignedRead, first: int, last: int) -> bool:
    """No insertion and no deletion between the oriented read's ``first`` and ``last`` aligned base: the aligned
    columns are the target positions ``target_start`` .. ``target_end - 1`` (else ``_gapped`` finds them; for a
    read without a gap it gives the same, a test shows)."""
    return aln.insertions == 0 and last - first == aln.target_end - aln.target_start - 1 and last >= first


def _gapped(aln: AlignedRead, qt: np.ndarray, minus: bool, n: int, rev: bool, ref_letters: bytes,
            read_id: str) -> tuple[list[tuple[str, int]], list[tuple[int, bytes]], int, np.ndarray]:
    """The aligned columns of a read with insertions or deletions: its CIGAR in target order (without the soft
    clips), the deletions as ``_md`` takes them, the read and reference bases the gaps hold (NM's share), and
    the padded target positions of the columns with a pad on each side."""
    t0, t1 = aln.target_start, aln.target_end
    tm = (aln.read_pos[t0:t1] >= 0).nonzero()[0]
    if len(tm) == 0:
        raise ValueError(f"read {read_id}: no aligned base")
    tm += t0
    qm = qt[tm + 1]  # their index in the oriented read
    if minus:
        qm = n - 1 - qm
    n_m = len(tm)
    dq = qm[1:] - qm[:-1]
    ends = ((dq != 1) | (tm[1:] - tm[:-1] != 1)).nonzero()[0]  # last columns of the gap-free blocks but the last
    if len(ends) and dq[ends].min() <= 0:  # (elsewhere dq is 1)
        raise ValueError(f"read {read_id}: read positions do not increase along the target")
    bounds = [0, *[e + 1 for e in ends.tolist()], n_m]  # the gap-free blocks' first columns, and the end
    cigar: list[tuple[str, int]] = [("M", bounds[1])]
    dels: list[tuple[int, bytes]] = []
    n_gap = 0
    for i, b in enumerate(bounds[1:-1], 1):
        t_prev, t_next = int(tm[b - 1]), int(tm[b])
        d = ref_letters[t_prev + 2:t_next + 1]  # (ref_letters: after one pad)
        ins = int(qm[b] - qm[b - 1]) - 1
        if d:
            cigar.append(("D", len(d)))
            dels.append((b, d[::-1] if rev else d))
        if ins:
            cigar.append(("I", ins))
        cigar.append(("M", bounds[i + 1] - b))
        n_gap += len(d) + ins
    return cigar, dels, n_gap, np.concatenate(([t0], tm + 1, [t1 + 1]))


_I32 = struct.Struct("<i")
_COMP_BYTES = complement("".join(chr(i) for i in range(128))).encode("latin-1") + bytes(range(128, 256))


def _fixed_tags(result: ReadResult) -> list[tuple[str, object, str]]:
    """The tags QC does not change (after the others, in this order)."""
    tags: list[tuple[str, object, str]] = []
    if result.aligned is not None:
        tags.append(("YO", result.aligned.orientation, "A"))
    qc = result.qc
    if qc is not None:
        if qc.conversion is not None:
            tags.append(("YC", round(float(qc.conversion), 4), "f"))
        tags.append(("YI", round(float(qc.identity), 4), "f"))
    if result.genotype:
        tags.append(("YG", sam_text(result.genotype), "Z"))
    return tags


def _qc_tags(result: ReadResult, rg: str, qname: str) -> list[tuple[str, object, str]]:
    """The tags that follow the read's final QC (duplicates, curation), before ``_fixed_tags``."""
    tags: list[tuple[str, object, str]] = [("RG", rg, "Z")]
    if qname != result.read_id:
        tags.append(("YN", encode_name(result.read_id), "Z"))
    if result.amplicon:
        tags.append(("YA", encode_name(result.amplicon), "Z"))
    tags.append(("YS", result.status.value, "Z"))
    if result.reason is not None:
        tags.append(("YR", result.reason.value, "Z"))
    if result.detail:
        tags.append(("YD", sam_text(result.detail), "Z"))
    if result.duplicate_of:
        tags.append(("YP", encode_name(result.duplicate_of), "Z"))
    return tags


def qc_flag(result: ReadResult) -> int:
    if result.status is Status.FAIL:
        return FLAG_DUPLICATE if result.reason is Reason.DUPLICATE else FLAG_QCFAIL
    return 0


def assemble(parts: ReadParts, result: ReadResult, ref_id: int, qname: str, rg: str) -> tuple[bytes, bytes]:
    """The reads.bam and reads.mod.bam records (as BAM stores them) of an aligned read, from its parts and its
    final QC."""
    flag = (FLAG_REVERSE if parts.reverse else 0) | qc_flag(result)
    tags = tag_bytes(_qc_tags(result, rg, qname)) + parts.tail
    return (encode_record(qname, flag, ref_id, parts.pos, parts.bin, parts.n_cigar, parts.l_seq, parts.plain + tags),
            encode_record(qname, flag, ref_id, parts.pos, parts.bin, parts.n_cigar, parts.l_seq, parts.mod + tags))


def _common_tags(result: ReadResult, rg: str, qname: str) -> list[tuple[str, object, str]]:
    return _qc_tags(result, rg, qname) + _fixed_tags(result)


def unmapped_record(result: ReadResult, qname: str, rg: str) -> Record:
    """A read without an alignment (no amplicon, too few good bases...), as given, with its reason."""
    q = None if result.qualities is None else bytes(np.asarray(result.qualities, dtype=np.uint8))
    return Record(qname, FLAG_UNMAPPED | FLAG_QCFAIL, "", -1, (), result.sequence, q,
                  tuple(_common_tags(result, rg, qname)))


# ------------------------------------------------------------------------------------------ the files

def amplicons_fasta(panel: Panel, places: dict[str, Placement]) -> str:
    """Every amplicon's reference record, named by its contig when it has no anchor (else by the amplicon's
    contig name too, with its anchor in the description): the genome of the amplicons without one."""
    out = []
    for amp in panel:
        p = places[amp.name]
        a = amp.anchor
        desc = f" amplicon={encode_name(amp.name)}" + (f" anchor={a.assembly}:{a.region()}:{a.strand}" if a else "")
        name = p.contig if p.own_contig else _fasta_name(amp.name, places)
        out.append(f">{name}{desc}")
        ref = amp.reference
        out += [ref[i:i + 60] for i in range(0, len(ref), 60)]
    return "\n".join(out) + "\n"


def _fasta_name(amplicon: str, places: dict[str, Placement]) -> str:
    from .contigs import sam_name

    taken = {p.contig for p in places.values()}
    base = name = sam_name(amplicon)
    k = 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def bam_header(panel: Panel, places: dict[str, Placement], samples: Sequence[str],
               results: Sequence[ReadResult], command: Sequence[str], mod: bool) -> Header:
    refs: dict[str, tuple[str, int, str]] = {}
    for amp in panel:
        p = places[amp.name]
        if p.contig not in refs:
            refs[p.contig] = (p.contig, p.contig_length, p.assembly)
        else:  # two amplicons on one chromosome: the longest length wins
            name, length, asm = refs[p.contig]
            refs[p.contig] = (name, max(length, p.contig_length), asm)
    formats: dict[str, set] = {}
    for r in results:
        formats.setdefault(r.sample, set()).add(r.fmt)
    rgs = []
    for s in samples:
        rg = {"ID": read_group_id(s), "SM": encode_name(s) or "%00"}
        fmts = formats.get(s, set()) - {""}
        if fmts and fmts <= set(TRACE_FORMATS):
            rg["PL"] = "CAPILLARY"
        rgs.append(rg)
    cl = " ".join(encode_name(a) for a in command)
    program = {"ID": "bsmeth", "PN": "bsmeth", "VN": __version__, **({"CL": cl} if cl else {})}
    comments = (
        "bsmeth: each read is stored as the amplified (bisulfite-converted) strand it reports on: flag 16 when "
        "that strand is the genome's minus strand; YO:A:- marks a read sequenced as its reverse complement",
        "bsmeth: flag 0x200 = failed bsmeth's QC (reason in YR), 0x400 = clonal duplicate; unmapped reads carry "
        "their reason in YR; names in RG, YN, YA and YP are percent-encoded",
        ("bsmeth: SEQ has C restored at every CpG called M or U; MM/ML list exactly those (C+m?, ML 255 = M, "
         "0 = U); the observed bases are in YB" if mod else
         "bsmeth: XM/XR/XG as Bismark; at CpGs XM holds bsmeth's calls (Z = M, z = U, . = not determined)"),
        "bsmeth: conventions in docs/interop.md",
    )
    return Header(tuple(refs.values()), tuple(rgs), program, comments)


def panel_parts(panel: Panel) -> tuple[dict[str, Amplicon], dict[str, Placement]]:
    """The amplicons and placements ``record_parts`` needs, by amplicon name (kept for the last panel)."""
    return by_identity(_PLACES, panel, lambda: ({a.name: a for a in panel}, place_panel(panel)), keep=1)


_PLACES: dict = {}


def with_parts(result: ReadResult, panel: Panel, min_qual: int) -> ReadResult:
    """``result`` carrying its ``ReadParts`` (where it has an alignment to an amplicon of ``panel``)."""
    if result.aligned is None or not result.sequence:
        return result
    amps, places = panel_parts(panel)
    amp = amps.get(result.amplicon)
    if amp is None:
        return result
    parts = record_parts(result, amp, places[result.amplicon], min_qual)
    return result.but(bam_parts=parts)


def write_read_bams(out: Path, panel: Panel, results: Sequence[ReadResult], samples: Sequence[str],
                    min_qual: int, command: Sequence[str] = (), threads: int = 1) -> list[Path]:
    """reads.bam, reads.mod.bam (each with its .bai) and amplicons.fa (with .fai) in ``out``.

    An aligned read's records are assembled from the ``ReadParts`` its result carries (made in the worker
    that processed it), or made here; ``threads``: for compressing the files."""
    out = Path(out)
    by_name, places = panel_parts(panel)
    fasta = write_text(out / AMPLICONS_FA, amplicons_fasta(panel, places))
    index_fasta(fasta)
    headers = [bam_header(panel, places, samples, results, command, mod) for mod in (False, True)]
    ref_ids = {name: i for i, (name, _, _) in enumerate(headers[0].references)}
    unmapped_key = (len(ref_ids), 0)
    groups = {s: read_group_id(s) for s in samples}
    keys: list[tuple[int, int]] = []
    plain: list[bytes] = []
    mod: list[bytes] = []
    used: set[str] = set()
    for r in results:
        if not r.sequence:
            continue  # an unreadable file: no bases to write (reads.tsv lists it)
        qname = qname_of(r.read_id)
        base, k = qname, 2
        while qname in used:
            qname, k = f"{base}#{k}", k + 1
        used.add(qname)
        rg = groups.get(r.sample) or read_group_id(r.sample)
        if r.aligned is None or r.amplicon not in by_name:
            rec = record_bytes(unmapped_record(r, qname, rg), ref_ids)
            keys.append(unmapped_key)
            plain.append(rec)
            mod.append(rec)
            continue
        parts = r.bam_parts
        if not isinstance(parts, ReadParts) or parts.min_qual != min_qual or parts.amplicon != r.amplicon:
            parts = record_parts(r, by_name[r.amplicon], places[r.amplicon], min_qual)
        ref_id = ref_ids[places[r.amplicon].contig]
        a, b = assemble(parts, r, ref_id, qname, rg)
        keys.append((ref_id, parts.pos))
        plain.append(a)
        mod.append(b)
    order = sorted(range(len(keys)), key=keys.__getitem__)  # coordinate order; stable: ties keep input order
    written = write_bams([(out / READS_BAM, headers[0], [plain[i] for i in order]),
                          (out / MOD_BAM, headers[1], [mod[i] for i in order])], threads)
    return [fasta, *written]


def output_names() -> tuple[str, ...]:
    return (READS_BAM, READS_BAM + ".bai", MOD_BAM, MOD_BAM + ".bai", AMPLICONS_FA, AMPLICONS_FA + ".fai")

