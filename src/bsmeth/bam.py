"""BAM files through pysam: the one module that imports it (imported only where a BAM is written or read).

Pipeline position: a library wrapper beside ``atomic``/``tsv``; ``readsbam`` builds the records of reads.bam
and reads.mod.bam as plain ``Record`` values and ``write_bam`` writes them, coordinate-sorted and indexed;
``read_bam`` gives back plain records for ``bam_reads`` (BAM as input).  Every file appears whole or not at all
(``atomic``).
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .atomic import write_text, write_via_path, write_with

FLAG_REVERSE = 0x10
FLAG_UNMAPPED = 0x4
FLAG_SECONDARY = 0x100
FLAG_QCFAIL = 0x200
FLAG_DUPLICATE = 0x400
FLAG_SUPPLEMENTARY = 0x800
CIGAR_CODES = {"M": 0, "I": 1, "D": 2, "N": 3, "S": 4, "H": 5, "P": 6, "=": 7, "X": 8}
CIGAR_LETTERS = {v: k for k, v in CIGAR_CODES.items()}


@dataclass(frozen=True)
class Record:
    """One alignment record, independent of pysam.  ``pos`` is 0-based (-1 and ``contig`` '' when unmapped);
    ``qual`` holds PHRED values (None: no qualities, written as ``*``); ``tags`` are (tag, value, type) with
    type one of A, i, f, Z, or B followed by the element type (``BC`` for an array of unsigned bytes)."""

    name: str
    flag: int
    contig: str
    pos: int
    cigar: tuple[tuple[str, int], ...]
    seq: str
    qual: Optional[bytes]
    tags: tuple[tuple[str, object, str], ...] = ()
    mapq: int = 255  # 255: not available (SAM); bsmeth aligns to one amplicon, it computes no mapping quality


@dataclass(frozen=True)
class Header:
    """@SQ (name, length[, assembly]), @RG and @PG entries, and @CO comment lines."""

    references: tuple[tuple[str, int, str], ...]
    read_groups: tuple[dict, ...] = ()
    program: dict = field(default_factory=dict)
    comments: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        sq = []
        for name, length, assembly in self.references:
            entry = {"SN": name, "LN": length}
            if assembly:
                entry["AS"] = assembly
            sq.append(entry)
        out = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": sq}
        if self.read_groups:
            out["RG"] = [dict(rg) for rg in self.read_groups]
        if self.program:
            out["PG"] = [dict(self.program)]
        if self.comments:
            out["CO"] = list(self.comments)
        return out


# ------------------------------------------------------------------------------------ encoding (SAM v1.6, 4.2)

_SEQ_CODES = np.full(256, 15, dtype=np.uint8)  # htslib's seq_nt16_table: '=ACMGRSVTWYHKDBN', anything else N
for _i, _c in enumerate("=ACMGRSVTWYHKDBN"):
    _SEQ_CODES[ord(_c)] = _SEQ_CODES[ord(_c.lower())] = _i
_FIXED = struct.Struct("<iiiBBHHHiiii")  # block_size ... tlen: the fixed 36 bytes of a record
_INT32 = struct.Struct("<i")
_FLOAT = struct.Struct("<f")
_B_TYPES = {"C": "B", "c": "b", "S": "H", "s": "h", "I": "I", "i": "i", "f": "f"}  # B subtype -> array code


def reg2bin(beg: int, end: int) -> int:
    """The BAI bin of the 0-based half-open interval [beg, end) (SAM v1.6, 5.3; 4680 for an unmapped read)."""
    end -= 1
    for shift, offset in ((14, 4681), (17, 585), (20, 73), (23, 9), (26, 1)):
        if beg >> shift == end >> shift:
            return offset + (beg >> shift)
    return 0


# two letters (a little-endian uint16 of their bytes) -> BAM's byte of their two 4-bit codes
_PAIRS = ((_SEQ_CODES[np.arange(1 << 16) & 0xFF] << 4) | _SEQ_CODES[np.arange(1 << 16) >> 8]).astype(np.uint8)


def pack_seq(seq: str | bytes) -> bytes:
    """Bases as BAM stores them: two 4-bit codes a byte (one table lookup per pair of letters; ``take``, which
    makes the pairs indexes first: a look-up by 16-bit integers as ``[]`` does it is several times slower)."""
    letters = seq if isinstance(seq, bytes) else seq.encode("ascii", "replace")
    if len(letters) % 2:
        letters += b"="  # code 0: the pad nibble
    return _PAIRS.take(np.frombuffer(letters, dtype="<u2")).tobytes()


def cigar_bytes(cigar: Sequence[tuple[str, int]]) -> bytes:
    return struct.pack(f"<{len(cigar)}I", *[n << 4 | CIGAR_CODES[op] for op, n in cigar])


def ref_length(cigar: Sequence[tuple[str, int]]) -> int:
    """Reference bases the alignment covers (M, D, N, =, X)."""
    return sum(n for op, n in cigar if op in "MDN=X")


def tag_bytes(tags: Sequence[tuple[str, object, str]]) -> bytes:
    """Optional fields as BAM stores them (types as pysam's ``set_tag`` writes them: ``i`` as int32)."""
    out = []
    for tag, value, kind in tags:
        t = tag.encode("ascii")
        if kind == "Z":
            out.append(t + b"Z" + str(value).encode("ascii") + b"\0")
        elif kind == "i":
            out.append(t + b"i" + _INT32.pack(value))
        elif kind == "A":
            out.append(t + b"A" + str(value).encode("ascii"))
        elif kind == "f":
            out.append(t + b"f" + _FLOAT.pack(value))
        elif kind.startswith("B"):
            sub = kind[1]
            values = array(_B_TYPES[sub], value)
            out.append(t + b"B" + sub.encode("ascii") + _INT32.pack(len(values)) + values.tobytes())
        else:
            raise ValueError(f"tag {tag}: unknown type {kind!r}")
    return b"".join(out)


def encode_record(name: str, flag: int, ref_id: int, pos: int, bin_: int, n_cigar: int, l_seq: int, body: bytes,
                  mapq: int = 255) -> bytes:
    """One BAM record from its parts: ``body`` is the CIGAR, the packed bases, the qualities and the tags, as
    BAM stores them (``cigar_bytes``, ``pack_seq``, ``tag_bytes``)."""
    qname = name.encode("ascii") + b"\0"
    size = 32 + len(qname) + len(body)
    return _FIXED.pack(size, ref_id, pos, len(qname), mapq, bin_, n_cigar, flag, l_seq, -1, -1, 0) + qname + body


def record_bytes(rec: Record, ref_ids: dict[str, int]) -> bytes:
    """A ``Record`` as BAM stores it."""
    q = b"\xff" * len(rec.seq) if rec.qual is None else bytes(rec.qual)
    body = cigar_bytes(rec.cigar) + pack_seq(rec.seq) + q + tag_bytes(rec.tags)
    if not rec.contig:
        return encode_record(rec.name, rec.flag, -1, -1, 4680, 0, len(rec.seq), body, 0)
    end = rec.pos + max(ref_length(rec.cigar), 1)
    return encode_record(rec.name, rec.flag, ref_ids[rec.contig], rec.pos, reg2bin(rec.pos, end), len(rec.cigar),
                         len(rec.seq), body, rec.mapq)


def header_bytes(header: Header) -> bytes:
    """The BAM header: magic, the SAM header text (as pysam formats it) and the reference list."""
    import pysam

    text = str(pysam.AlignmentHeader.from_dict(header.as_dict())).encode("utf-8")
    out = [b"BAM\1", _INT32.pack(len(text)), text, _INT32.pack(len(header.references))]
    for name, length, _ in header.references:
        n = name.encode("utf-8") + b"\0"
        out += [_INT32.pack(len(n)), n, _INT32.pack(length)]
    return b"".join(out)


# ------------------------------------------------------------------------------------------- BGZF (SAM v1.6, 4.1)

BGZF_BLOCK = 0xFF00  # uncompressed bytes a block holds at most (htslib's BGZF_BLOCK_SIZE)
BGZF_LEVEL = 6  # zlib's default, as htslib writes "wb"
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _bgzf_block(data: bytes) -> bytes:
    """One BGZF block: gzip member with the BC extra field holding the block's size."""
    z = zlib.compressobj(BGZF_LEVEL, zlib.DEFLATED, -15)
    packed = z.compress(data) + z.flush()
    if len(packed) + 26 > 0x10000:  # incompressible: stored
        z = zlib.compressobj(0, zlib.DEFLATED, -15)
        packed = z.compress(data) + z.flush()
    head = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, 66, 67, 2, len(packed) + 25)
    return head + packed + struct.pack("<II", zlib.crc32(data), len(data))


def _blocks(header: bytes, records: Iterable[bytes]) -> list[bytes]:
    """Uncompressed blocks: the header alone (as htslib flushes after it), then records, a record never split
    across blocks unless it is larger than a block (as htslib's ``bam_write1``)."""
    out = [header[i:i + BGZF_BLOCK] for i in range(0, len(header), BGZF_BLOCK)] or [b""]
    cur: list[bytes] = []
    size = 0
    for rec in records:
        if size and size + len(rec) > BGZF_BLOCK:
            out.append(b"".join(cur))
            cur, size = [], 0
        cur.append(rec)
        size += len(rec)
    if cur:
        out.append(b"".join(cur))
    big = [b for b in out if len(b) > BGZF_BLOCK]
    if big:  # a record larger than a block: cut the stream at block size
        data = b"".join(out[1:])
        out = out[:1] + [data[i:i + BGZF_BLOCK] for i in range(0, len(data), BGZF_BLOCK)]
    return out


def write_bams(files: Sequence[tuple[str | os.PathLike, Header, Sequence[bytes]]], threads: int = 1) -> list[Path]:
    """Write BAM files of already encoded records (``record_bytes``/``encode_record``), in the order given, each
    with a ``.bai`` index.  The BGZF blocks of all files are compressed on ``threads`` threads (zlib runs
    outside the interpreter lock)."""
    import pysam

    jobs = [(Path(path), _blocks(header_bytes(header), records)) for path, header, records in files]
    flat = [b for _, blocks in jobs for b in blocks]
    if threads > 1 and len(flat) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(flat))) as pool:
            packed = list(pool.map(_bgzf_block, flat))
    else:
        packed = [_bgzf_block(b) for b in flat]
    out, k = [], 0
    for path, blocks in jobs:
        mine = packed[k:k + len(blocks)]
        k += len(blocks)
        write_with(path, lambda fh, mine=mine: fh.write(b"".join(mine) + BGZF_EOF))
        write_via_path(path.with_name(path.name + ".bai"),
                       lambda tmp, path=path: pysam.index("-o", str(tmp), str(path)))
        out.append(path)
    return out


def write_bam(path: str | os.PathLike, header: Header, records: Sequence[Record]) -> Path:
    """Write ``records`` coordinate-sorted (stable: equal positions keep their order) with a ``.bai`` index."""
    order = {name: i for i, name in enumerate(n for n, _, _ in header.references)}
    records = sorted(records, key=lambda r: sort_key(r, order))
    return write_bams([(path, header, [record_bytes(r, order) for r in records])])[0]


def sort_key(rec: Record, order: dict[str, int]) -> tuple:
    """Coordinate order (samtools sort's): by reference in header order, then position; unmapped last."""
    if not rec.contig:
        return (len(order), 0)
    return (order[rec.contig], rec.pos)


def fai_text(fasta: bytes) -> str:
    """The samtools ``.fai`` index of a FASTA file's bytes: per record its name (first word), length, offset of
    its first base, bases per line and bytes per line (``\n`` or ``\r\n`` endings).  As ``samtools faidx``,
    every line of a record but its last must have the same length; else ``ValueError``."""
    rows = []
    pos = 0
    name = None
    length = offset = line_bases = line_width = 0
    short_seen = False
    for line in fasta.splitlines(keepends=True):
        content = line.rstrip(b"\r\n")
        if content.startswith(b">"):
            if name is not None:
                rows.append(f"{name}\t{length}\t{offset}\t{line_bases}\t{line_width}\n")
            name = content[1:].split(None, 1)[0].decode() if content[1:].split() else ""
            length = line_bases = line_width = 0
            offset = pos + len(line)
            short_seen = False
        elif name is not None:
            if content and short_seen:  # a line after a shorter one (or a blank one)
                raise ValueError(f"FASTA record {name}: lines of different lengths (byte {pos})")
            if not line_bases:
                # a record's only line without a line end: samtools counts one byte for it
                line_bases, line_width = len(content), max(len(line), len(content) + 1)
            elif len(content) > line_bases:
                raise ValueError(f"FASTA record {name}: lines of different lengths (byte {pos})")
            short_seen = short_seen or not content or len(content) < line_bases or len(line) < line_width
            length += len(content)
        pos += len(line)
    if name is not None:
        rows.append(f"{name}\t{length}\t{offset}\t{line_bases}\t{line_width}\n")
    return "".join(rows)


def index_fasta(path: str | os.PathLike) -> Path:
    """The samtools ``.fai`` index of a FASTA file (what IGV and samtools need to use it as a genome), written
    next to it (``fai_text``; the tests check it against pysam's ``faidx``)."""
    path = Path(path)
    return write_text(path.with_name(path.name + ".fai"), fai_text(path.read_bytes()))


# ---------------------------------------------------------------------------------------------- reading

BGZF_MAGIC = b"\x1f\x8b\x08\x04"


def is_bam(data: bytes) -> bool:
    """Do these first bytes of a file start a BAM file (BGZF-compressed, decompressing to ``BAM\\1``)?"""
    if not data.startswith(BGZF_MAGIC) or data[12:14] != b"BC":
        return False
    try:
        return zlib.decompressobj(31).decompress(data[:65536], 4) == b"BAM\x01"
    except zlib.error:
        return False


@dataclass(frozen=True)
class InRecord:
    """A record read from a BAM file: what ``bam_reads`` needs of it."""

    name: str
    flag: int
    seq: str  # as stored (on the reference's forward strand when flag 0x10 is set)
    qual: Optional[bytes]
    tags: dict
    contig: str
    pos: int

    @property
    def reverse(self) -> bool:
        return bool(self.flag & FLAG_REVERSE)

    @property
    def primary(self) -> bool:
        return not self.flag & (FLAG_SECONDARY | FLAG_SUPPLEMENTARY)


class BamFormatError(ValueError):
    """A BAM file pysam/htslib cannot read (truncated, corrupt)."""


def read_bam(path: str | os.PathLike) -> tuple[dict, list[InRecord]]:
    """(header as a dict, records in file order).  Raises ``BamFormatError`` for a file htslib cannot read."""
    import pysam

    try:
        with pysam.AlignmentFile(str(path), "rb", check_sq=False) as fh:
            header = fh.header.to_dict()
            out = [InRecord(a.query_name or "", a.flag, a.query_sequence or "",
                            bytes(a.query_qualities) if a.query_qualities is not None else None,
                            dict(a.get_tags()), a.reference_name or "" if not a.is_unmapped else "",
                            a.reference_start if not a.is_unmapped else -1)
                   for a in fh.fetch(until_eof=True)]
    except (OSError, ValueError) as e:
        raise BamFormatError(str(e)) from None
    return header, out
