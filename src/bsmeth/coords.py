"""Coordinates: the one place that converts positions between frames.

Bottom of the import graph (imports nothing of bsmeth).  Every position
inside bsmeth is 0-based and half-open; ``one_based`` is the only +1, used by
the writers of output files and messages.

The frames of one amplicon:

* **target** ``t``: along the amplified (bisulfite-converted) strand, 5'->3',
  0 at the first base of the forward primer.  Alignment, calling and QC work
  here.
* **reference** ``r``: index into the reference FASTA record as written.
  A *top*-strand amplicon reads the FASTA as written (``r = start + t``), a
  *bottom*-strand one its reverse complement (``r = end - 1 - t``).
* **genome** ``g``: a position on a chromosome of an assembly, given by the
  amplicon's ``GenomeAnchor``: which genome interval the FASTA record covers,
  and on which genome strand it is written (``+``: ``g = anchor.start + r``;
  ``-``: ``g = anchor.end - 1 - r``).
* **read** ``q``: index in the read as given (before any reverse complement);
  the per-read map target -> read is the alignment's ``read_pos`` array.

A CpG is a CG dinucleotide of the reference.  "The C" of a CpG is the C read on
the *assayed* strand: on a top-strand amplicon the C of the FASTA's CG, on a
bottom-strand amplicon the complement of the FASTA's G (one base further on).
``cpg_c_ref`` gives its reference index, ``Frame.genome_of`` its genome
position, ``Frame.genome_strand`` the genome strand it sits on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Optional


class Strand(str, enum.Enum):
    """Which converted strand the PCR amplifies, relative to the FASTA as written."""

    TOP = "top"
    BOTTOM = "bottom"


GENOME_STRANDS = ("+", "-")


@dataclass(frozen=True)
class GenomeAnchor:
    """Where a reference FASTA record lies on a genome.

    ``start``/``end``: the 0-based, half-open genome interval the record covers
    (``end - start`` is the record's length); ``strand``: the genome strand the
    record is written on (``-``: the FASTA is the reverse complement of the
    ``+`` strand, its first base at genome ``end - 1``).
    """

    assembly: str
    chrom: str
    start: int
    end: int
    strand: str = "+"

    def __post_init__(self) -> None:
        if self.strand not in GENOME_STRANDS:
            raise ValueError(f"genome strand must be + or -, not {self.strand!r}")
        if not self.chrom:
            raise ValueError("genome anchor without a chromosome")
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"genome interval {self.start}-{self.end} is empty or negative")

    @property
    def length(self) -> int:
        return self.end - self.start

    def genome_of(self, r: int) -> int:
        """Genome position of reference index ``r``."""
        return self.start + r if self.strand == "+" else self.end - 1 - r

    def ref_of(self, g: int) -> int:
        """Reference index of genome position ``g`` (the inverse of ``genome_of``)."""
        return g - self.start if self.strand == "+" else self.end - 1 - g

    def region(self) -> str:
        """``chr7:45960822-45961163`` (1-based, inclusive: the form genome browsers take)."""
        return f"{self.chrom}:{one_based(self.start)}-{self.end}"


@dataclass(frozen=True)
class Frame:
    """The coordinate frame of one amplicon: its span on the reference, its strand, and the optional anchor."""

    strand: Strand
    start: int  # reference coordinates of the amplicon, half-open
    end: int
    anchor: Optional[GenomeAnchor] = None

    @property
    def length(self) -> int:
        return self.end - self.start

    def ref_of(self, t: int) -> int:
        """Reference index of target position ``t``."""
        return self.start + t if self.strand is Strand.TOP else self.end - 1 - t

    def target_of(self, r: int) -> int:
        """Target position of reference index ``r`` (may fall outside ``[0, length)``)."""
        return r - self.start if self.strand is Strand.TOP else self.end - 1 - r

    def cpg_c_ref(self, cg: int) -> int:
        """Reference index of the C read on the assayed strand, for the CG whose C is at reference ``cg``."""
        return cg if self.strand is Strand.TOP else cg + 1

    def cpg_target(self, cg: int) -> int:
        """Target position of the assayed C of the CG at reference ``cg``."""
        return self.target_of(self.cpg_c_ref(cg))

    def genome_of(self, r: int) -> Optional[int]:
        """Genome position of reference index ``r``; None without an anchor."""
        return None if self.anchor is None else self.anchor.genome_of(r)

    def genome_of_target(self, t: int) -> Optional[int]:
        return self.genome_of(self.ref_of(t))

    @property
    def genome_strand(self) -> Optional[str]:
        """The genome strand the amplified (assayed) strand lies on; None without an anchor."""
        if self.anchor is None:
            return None
        same = self.strand is Strand.TOP
        return self.anchor.strand if same else ("-" if self.anchor.strand == "+" else "+")

    def allele_on_target(self, ref_allele: str) -> str:
        """A reference-strand allele as the amplified strand reads it."""
        return ref_allele if self.strand is Strand.TOP else complement(ref_allele)

    def placed(self, contig: str, length: int) -> "Frame":
        """This frame on a genome: itself when it has an anchor, else on its own contig (``contig_anchor``)."""
        return self if self.anchor is not None else replace(self, anchor=contig_anchor(contig, length))

    def genome_span(self) -> Optional[tuple[int, int]]:
        """The amplicon's genome interval (0-based, half-open); None without an anchor."""
        if self.anchor is None:
            return None
        a, b = self.anchor.genome_of(self.start), self.anchor.genome_of(self.end - 1)
        return (min(a, b), max(a, b) + 1)


def contig_anchor(contig: str, length: int) -> GenomeAnchor:
    """Where a reference record without a genome anchor is placed in exported files (BAM, bedMethyl...): a contig
    of its own, named ``contig``, as long as the record, the record as written on its ``+`` strand (genome
    position = reference index).  ``assembly`` is empty: no genome assembly knows it."""
    return GenomeAnchor("", contig, 0, length, "+")


_COMP = str.maketrans("ACGTUNRYKMSWBDHVacgtunrykmswbdhv-", "TGCAANYRMKSWVHDBtgcaanyrmkswvhdb-")


def complement(seq: str) -> str:
    """Complement (not reversed), IUPAC-aware."""
    return seq.translate(_COMP)


def revcomp(seq: str) -> str:
    """Reverse complement, IUPAC-aware, case preserved."""
    return seq.translate(_COMP)[::-1]


def read_index(q: int, orientation: str, read_length: int) -> int:
    """Index in the read as given of index ``q`` of the oriented read (``-``: its reverse complement)."""
    return q if orientation == "+" else read_length - 1 - q


def one_based(x: Optional[int]) -> Optional[int]:
    """A 0-based position as written out (tables, messages, run.json): the only +1 of bsmeth."""
    return None if x is None else x + 1


def parse_anchor(text: str) -> GenomeAnchor:
    """``hg19:chr7:45,960,822-45,961,163:-`` (1-based, inclusive, as genome browsers show a region; the last
    field is the genome strand the reference is written on, ``+`` if left out) as a ``GenomeAnchor``."""
    import re

    m = re.fullmatch(r"\s*([^:\s]+):([^:\s]+):([\d,]+)-([\d,]+)(?::([+-]))?\s*", text)
    if not m:
        raise ValueError(f"genome anchor {text!r}: expected ASSEMBLY:CHROM:START-END:STRAND, "
                         "e.g. hg19:chr7:45960822-45961163:-")
    start, end = int(m.group(3).replace(",", "")), int(m.group(4).replace(",", ""))
    if start < 1 or end < start:
        raise ValueError(f"genome anchor {text!r}: START-END must be 1-based with START <= END")
    return GenomeAnchor(m.group(1), m.group(2), from_one_based(start), end, m.group(5) or "+")


def from_one_based(x: int) -> int:
    """A 1-based position given by a user (``--snp 89:C>A``, a panel's start) as bsmeth holds it."""
    return x - 1
