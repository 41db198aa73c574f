"""BAM files through pysam: the one module that imports it (imported only where a BAM is written or read).

Pipeline position: a library wrapper beside ``atomic``/``tsv``; ``readsbam`` builds the records of reads.bam
and reads.mod.bam as plain ``Record`` values and ``write_bam`` writes them, coordinate-sorted and indexed;
``read_bam`` gives back plain records for ``bam_reads`` (BAM as input).  Every file appears whole or not at all
(``atomic``).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .atomic import write_via_path

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


def _segment(rec: Record, header, pysam):
    from array import array

    a = pysam.AlignedSegment(header)
    a.query_name = rec.name
    a.flag = rec.flag
    if rec.contig:
        a.reference_name = rec.contig
        a.reference_start = rec.pos
        a.mapping_quality = rec.mapq
        a.cigartuples = [(CIGAR_CODES[op], n) for op, n in rec.cigar]
    else:
        a.reference_id = -1
        a.reference_start = -1
        a.mapping_quality = 0
    a.query_sequence = rec.seq
    if rec.qual is not None:
        a.query_qualities = array("B", rec.qual)
    for tag, value, kind in rec.tags:
        if kind.startswith("B"):
            a.set_tag(tag, array(kind[1].replace("C", "B").replace("c", "b"), value))
        else:
            a.set_tag(tag, value, kind)
    return a


def sort_key(rec: Record, order: dict[str, int]) -> tuple:
    """Coordinate order (samtools sort's): by reference in header order, then position; unmapped last."""
    if not rec.contig:
        return (len(order), 0)
    return (order[rec.contig], rec.pos)


def write_bam(path: str | os.PathLike, header: Header, records: Sequence[Record]) -> Path:
    """Write ``records`` coordinate-sorted (stable: equal positions keep their order) with a ``.bai`` index."""
    import pysam

    path = Path(path)
    order = {name: i for i, name in enumerate(n for n, _, _ in header.references)}
    records = sorted(records, key=lambda r: sort_key(r, order))

    def write(tmp: Path) -> None:
        h = pysam.AlignmentHeader.from_dict(header.as_dict())
        with pysam.AlignmentFile(str(tmp), "wb", header=h) as out:
            for rec in records:
                out.write(_segment(rec, h, pysam))

    write_via_path(path, write)
    write_via_path(path.with_name(path.name + ".bai"), lambda tmp: pysam.index("-o", str(tmp), str(path)))
    return path


def index_fasta(path: str | os.PathLike) -> Path:
    """The samtools ``.fai`` index of a FASTA file (what IGV and samtools need to use it as a genome)."""
    import pysam

    path = Path(path)
    fai = path.with_name(path.name + ".fai")
    # faidx writes next to the FASTA; make it under a temporary name, then rename
    return write_via_path(fai, lambda tmp: _faidx_to(pysam, path, tmp))


def _faidx_to(pysam, fasta: Path, out: Path) -> None:
    pysam.faidx(str(fasta), "--fai-idx", str(out))


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
