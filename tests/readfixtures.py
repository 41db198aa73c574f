"""Small read builders shared by the stage tests (imported like callfixtures)."""

from dataclasses import replace

from bsmeth.coords import GenomeAnchor, revcomp
from bsmeth.reference import (
    DEFAULT_ANCHOR,
    DEFAULT_FORWARD,
    DEFAULT_REVERSE,
    DEFAULT_SNPS,
    build_amplicon,
    convert,
    load_amplicon,
)


def clone(amp, methylated) -> str:
    """The amplified strand of one clone as sequenced: C kept at methylated CpGs, every other C read as T."""
    read = list(convert(amp.target))
    for cpg, m in zip(amp.cpgs, methylated):
        if m:
            read[cpg.target_pos] = "C"
    return "".join(read)


def amplicon_forms() -> dict:
    """IGFBP3 as shipped (top strand, on hg19's minus strand: flag 16), its reverse complement on the plus strand
    (the bottom strand amplified: flag 0), and the two without an anchor (flag 0 and 16 the other way round)."""
    top = load_amplicon()
    n = len(top.reference)
    snps = tuple(replace(s, pos=n - 1 - s.pos, ref=revcomp(s.ref), alt=revcomp(s.alt)) for s in DEFAULT_SNPS)
    plus = GenomeAnchor("hg19", "chr7", DEFAULT_ANCHOR.start, DEFAULT_ANCHOR.end, "+")
    rc = revcomp(top.reference)
    return {
        "top": top,
        "bottom": build_amplicon("IGFBP3_plus", rc, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=snps, anchor=plus),
        "top_own": build_amplicon("IGFBP3 top", top.reference, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=DEFAULT_SNPS),
        "bottom_own": build_amplicon("IGFBP3/bottom", rc, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=snps),
    }
