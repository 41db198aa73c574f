"""Tests of bsmeth.coords: every frame conversion, on both amplicon strands and both genome strands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.coords import (
    Frame,
    GenomeAnchor,
    Strand,
    complement,
    from_one_based,
    one_based,
    parse_anchor,
    read_index,
    revcomp,
)
from bsmeth.reference import DEFAULT_ANCHOR, build_amplicon, convert, cpg_sites, load_amplicon

COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def test_default_anchor_matches_source_md():
    """reference/SOURCE.md: index i = hg19 chr7:(45,961,163 - i); the amplicon is chr7:45,960,902-45,961,127."""
    amp = load_amplicon()
    a = amp.anchor
    assert (a.assembly, a.chrom, a.strand) == ("hg19", "chr7", "-")
    for i in (0, 36, 88, 292, 341):
        assert one_based(a.genome_of(i)) == 45_961_163 - i
    g0, g1 = amp.frame.genome_span()
    assert (one_based(g0), g1) == (45_960_902, 45_961_127)
    assert amp.frame.genome_strand == "-"  # the gene-sense strand is hg19's minus strand


@pytest.mark.parametrize("probe,plus_c", [("cg04796162", 45_961_102), ("cg21268650", 45_961_089),
                                          ("cg23193639", 45_961_078)])
def test_450k_probes_land_on_igfbp3_cpgs(probe, plus_c):
    """The probes' plus-strand C (hg19, 1-based); the amplicon assays the minus strand: its C is the next base."""
    amp = load_amplicon()
    by_genome = {one_based(c.genome_pos): c for c in amp.cpgs}
    cpg = by_genome[plus_c + 1]
    assert amp.reference[cpg.ref_pos:cpg.ref_pos + 2] == "CG"
    # the plus-strand C is the G of the FASTA's CG (the FASTA is the minus strand)
    assert one_based(amp.anchor.genome_of(cpg.ref_pos + 1)) == plus_c


@given(st.integers(0, 10_000), st.integers(1, 500), st.sampled_from("+-"), st.data())
def test_anchor_round_trip(start, length, strand, data):
    a = GenomeAnchor("asm", "chrZ", start, start + length, strand)
    r = data.draw(st.integers(0, length - 1))
    g = a.genome_of(r)
    assert a.start <= g < a.end
    assert a.ref_of(g) == r
    # the first base of the record is at the start of the interval on '+', at its end on '-'
    assert a.genome_of(0) == (a.start if strand == "+" else a.end - 1)


@given(st.integers(0, 50), st.integers(2, 200), st.sampled_from(list(Strand)), st.data())
def test_frame_round_trip(start, length, strand, data):
    f = Frame(strand, start, start + length)
    t = data.draw(st.integers(0, length - 1))
    r = f.ref_of(t)
    assert f.start <= r < f.end
    assert f.target_of(r) == t
    assert f.genome_of(r) is None and f.genome_strand is None and f.genome_span() is None


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ACGT", min_size=30, max_size=120), st.sampled_from(list(Strand)), st.sampled_from("+-"),
       st.integers(0, 1_000_000))
def test_assayed_c_on_either_strand_and_genome_strand(seq, strand, gstrand, gstart):
    """For every CpG: the target letter at target_pos is C, its reference index is the C (top) or the G
    (bottom) of the FASTA's CG, and the genome base there, read on the reported genome strand, is a C."""
    anchor = GenomeAnchor("asm", "chrZ", gstart, gstart + len(seq), gstrand)
    amp = build_amplicon("r", seq, strand=strand, anchor=anchor)
    plus = seq if gstrand == "+" else revcomp(seq)  # the genome's plus strand over the interval
    for c in amp.cpgs:
        assert amp.target[c.target_pos] == "C"
        assert amp.frame.ref_of(c.target_pos) == (c.ref_pos if strand is Strand.TOP else c.ref_pos + 1)
        base = plus[c.genome_pos - gstart]
        shown = base if amp.frame.genome_strand == "+" else COMP[base]
        assert shown == "C"
    assert [c.ref_pos for c in amp.cpgs] == cpg_sites(seq)


def test_allele_on_target_and_complement():
    top, bottom = Frame(Strand.TOP, 0, 10), Frame(Strand.BOTTOM, 0, 10)
    assert top.allele_on_target("A") == "A" and bottom.allele_on_target("A") == "T"
    assert complement("ACGTN") == "TGCAN" and revcomp("AACG") == "CGTT"


@pytest.mark.parametrize("orientation", "+-")
def test_read_index(orientation):
    n = 7
    idx = [read_index(q, orientation, n) for q in range(n)]
    assert idx == (list(range(n)) if orientation == "+" else list(range(n - 1, -1, -1)))


def test_one_based_is_the_only_shift():
    assert one_based(0) == 1 and one_based(None) is None and from_one_based(1) == 0


@pytest.mark.parametrize("text,expected", [
    ("hg19:chr7:45960822-45961163:-", GenomeAnchor("hg19", "chr7", 45960821, 45961163, "-")),
    ("hg19:chr7:45,960,822-45,961,163:-", GenomeAnchor("hg19", "chr7", 45960821, 45961163, "-")),
    ("mm10:chrX:1-100", GenomeAnchor("mm10", "chrX", 0, 100, "+")),
])
def test_parse_anchor(text, expected):
    assert parse_anchor(text) == expected


@pytest.mark.parametrize("text", ["chr7:1-100", "hg19:chr7:0-100", "hg19:chr7:100-50", "hg19:chr7:1-100:x"])
def test_parse_anchor_refuses(text):
    with pytest.raises(ValueError, match="genome anchor"):
        parse_anchor(text)


def test_anchor_of_the_wrong_length_is_refused():
    from bsmeth.errors import PrimerError

    seq = load_amplicon().reference
    with pytest.raises(PrimerError, match="spans 100 bp"):
        build_amplicon("r", seq, anchor=GenomeAnchor("hg19", "chr7", 0, 100, "+"))
    assert DEFAULT_ANCHOR.length == len(seq)


def test_converted_primers_give_the_same_cpg_genome_positions_on_both_strands():
    """One region amplified from either converted strand: the same CpG dinucleotides, the assayed C one base
    apart on the genome (the C of CG on one strand, the C of the other strand's CG opposite the G)."""
    seq = load_amplicon().reference
    top = build_amplicon("t", seq, convert(seq[40:64]), revcomp(convert(seq[230:254])), anchor=DEFAULT_ANCHOR)
    bseq = revcomp(seq)
    bottom = build_amplicon("b", seq, convert(bseq[88:112]), revcomp(convert(bseq[278:302])), anchor=DEFAULT_ANCHOR)
    assert (top.strand, bottom.strand) == (Strand.TOP, Strand.BOTTOM)
    assert top.frame.genome_strand == "-" and bottom.frame.genome_strand == "+"
    both = {c.ref_pos for c in top.cpgs} & {c.ref_pos for c in bottom.cpgs}
    assert len(both) > 10
    t = {c.ref_pos: c.genome_pos for c in top.cpgs}
    b = {c.ref_pos: c.genome_pos for c in bottom.cpgs}
    for r in both:
        assert t[r] - b[r] == 1  # minus-strand C (FASTA C) is one base right of the plus-strand C (FASTA G)
