"""BAM files as input: the reads of bsmeth's own reads.bam / reads.mod.bam, or of another aligner's BAM
(Bismark's, with its XM/XR/XG tags), so that they go through bsmeth's alignment, calls, QC, plots and statistics.

Pipeline position: input stage, beside ``reads`` (which sniffs a BAM by its content and hands it here); pysam
is behind ``bam``.  Each primary record gives one ``Read`` *as it was sequenced*, whatever orientation the BAM
stores it in, so that ``read_pos`` in cpg_calls.tsv counts along the read as given:

* bsmeth's own BAM (``@PG ID:bsmeth``): the record holds the amplified strand; ``YO:A:-`` says the read was
  its reverse complement; reads.mod.bam's observed bases are in ``YB`` (its SEQ has C restored); ``YN`` holds
  a read id that is no valid QNAME.
* Any other BAM: SEQ as SAM defines it (reverse complemented when flag 16 is set).

Secondary and supplementary records are skipped; unmapped records are read (bsmeth aligns every read itself).
The methylation tags of the input (XM, MM/ML) are not used: bsmeth calls every CpG from the read's bases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from .bam import BamFormatError, read_bam
from .coords import revcomp
from .models import Read, Unreadable

FMT = "bam"


def _own(header: dict) -> bool:
    return any(pg.get("ID") == "bsmeth" for pg in header.get("PG", []) or [])


def read_bam_file(path: Path) -> list[Union[Read, Unreadable]]:
    """Every primary record of the BAM as a read; a file htslib cannot read is one ``Unreadable``."""
    from .readsbam import decode_name

    try:
        header, records = read_bam(path)
    except BamFormatError as e:
        return [Unreadable(path.stem, str(path), f"{path}: not a readable BAM file ({e})")]
    own = _own(header)
    out: list[Union[Read, Unreadable]] = []
    for rec in records:
        if not rec.primary:
            continue
        name = decode_name(rec.tags["YN"]) if own and "YN" in rec.tags else rec.name
        seq = rec.tags.get("YB", rec.seq) if own else rec.seq
        qual = None if rec.qual is None or all(q == 0xFF for q in rec.qual) else np.frombuffer(rec.qual, np.uint8)
        flip = rec.reverse
        if own and rec.tags.get("YO") == "-":
            flip = not flip  # the record holds the amplified strand; the read as given was its reverse complement
        if not seq:
            out.append(Unreadable(name, str(path), f"{path}, record {name}: no sequence (SEQ is '*')"))
            continue
        if flip:
            seq = revcomp(seq)
            qual = None if qual is None else qual[::-1].copy()
        out.append(Read(name, str(path), seq.upper(), qual, FMT))
    if not out:
        out.append(Unreadable(path.stem, str(path), f"{path}: BAM file without primary records"))
    return out
