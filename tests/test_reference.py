"""Tests of bsmeth.reference: the reference FASTA, in-silico conversion, primers and the amplicon.

Documented facts of the embedded default come from reference/SOURCE.md.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bsmeth.errors import BsmethError, PrimerError, ReferenceFileError
from bsmeth.models import SNP, Strand
from bsmeth.reference import (
    DEFAULT_FORWARD,
    DEFAULT_REVERSE,
    build_amplicon,
    convert,
    converted_strands,
    cpg_sites,
    load_amplicon,
    parse_snp,
    read_reference,
    revcomp,
)

COMP = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


def write_fasta(path, seq, header=">ref", width=60):
    lines = [header] if header is not None else []
    lines += [seq[i:i + width] for i in range(0, len(seq), width)] if width else [seq]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def default():
    return load_amplicon()


@pytest.fixture(scope="module")
def default_seq():
    return read_reference()[1]


# --------------------------------------------------------------------------- the embedded default amplicon

def test_default_amplicon_span_and_strand(default, default_seq):
    assert len(default_seq) == 342
    assert default.strand is Strand.TOP
    assert (default.start, default.end) == (36, 262)
    assert default.length == 226
    assert default.target == default_seq[36:262]
    assert default.forward == DEFAULT_FORWARD and default.reverse == DEFAULT_REVERSE
    assert default.forward_span == (0, len(DEFAULT_FORWARD))
    assert default.reverse_span == (226 - len(DEFAULT_REVERSE), 226)
    assert not any("mismatch" in w for w in default.warnings), default.warnings


def test_default_primers_are_the_converted_ends_of_the_target(default):
    """The published primers are copied from the bisulfite-converted gene-sense strand."""
    conv = convert(default.target)
    assert conv.startswith(DEFAULT_FORWARD)
    # the reverse primer site holds the CpG at index 255: the primer carries its methylated (C) form
    site = revcomp(DEFAULT_REVERSE)
    assert len(site) == len(conv[-len(site):])
    for primer_base, t in zip(site, range(default.length - len(site), default.length)):
        g = default.target[t]
        if g == "C":
            assert primer_base in "CT"
        else:
            assert primer_base == g


def test_default_cpgs(default, default_seq):
    cpgs = default.cpgs
    assert len(cpgs) == 27
    assert sum(not c.under_primer for c in cpgs) == 25
    assert [c.number for c in cpgs] == list(range(1, 28))
    assert [c.ref_pos for c in cpgs] == sorted(c.ref_pos for c in cpgs)
    for c in cpgs:
        assert default_seq[c.ref_pos:c.ref_pos + 2] == "CG"
        assert default.target[c.target_pos] == "C"
        assert default.frame.ref_of(c.target_pos) == c.ref_pos
    by_pos = {c.ref_pos: c for c in cpgs}
    assert by_pos[36].under_primer and by_pos[36].target_pos == 0  # under the forward primer's 5' base
    assert by_pos[255].under_primer  # inside the reverse primer site
    assert {c.ref_pos for c in cpgs if c.under_primer} == {36, 255}
    # 238: the C is between the primers, its G is the reverse primer's 3'-terminal base
    c238 = by_pos[238]
    assert not c238.under_primer
    assert default.in_primer(c238.target_pos + 1)
    assert c238.target_pos + 1 == default.reverse_span[0]


def test_default_snp(default):
    (snp,) = default.snps
    assert (snp.pos, snp.ref, snp.alt, snp.name) == (88, "C", "A", "rs2854744")
    with_snp = [c for c in default.cpgs if c.snp is not None]
    assert len(with_snp) == 1
    assert with_snp[0].ref_pos == 88 and with_snp[0].snp == snp
    assert not with_snp[0].under_primer


def test_default_primers_given_explicitly_equal_default(default):
    amp = load_amplicon(None, DEFAULT_FORWARD, DEFAULT_REVERSE)
    assert (amp.start, amp.end, amp.strand, amp.cpgs) == (default.start, default.end, default.strand, default.cpgs)


# --------------------------------------------------------------------------- bottom-strand amplicons

def test_bottom_strand_amplicon_from_reverse_complemented_fasta(tmp_path, default, default_seq):
    n = len(default_seq)
    rc = revcomp(default_seq)
    snp = SNP(pos=n - 1 - 88, ref="G", alt="T", name="rs2854744")  # same SNP, written on the rc FASTA
    amp = load_amplicon(write_fasta(tmp_path / "rc.fa", rc), DEFAULT_FORWARD, DEFAULT_REVERSE, snps=[snp])
    assert amp.strand is Strand.BOTTOM
    assert (amp.start, amp.end) == (n - default.end, n - default.start)
    assert amp.target == default.target  # the amplified molecule is the same
    assert amp.forward_span == default.forward_span and amp.reverse_span == default.reverse_span
    assert len(amp.cpgs) == 27
    # numbered in FASTA order of the rc file: the order along the target is reversed
    assert [c.number for c in amp.cpgs] == list(range(1, 28))
    assert [c.ref_pos for c in amp.cpgs] == sorted(c.ref_pos for c in amp.cpgs)
    for c in amp.cpgs:
        # pos is the C of the top-strand CG of the FASTA as written
        assert rc[c.ref_pos:c.ref_pos + 2] == "CG"
        # the amplified strand reads that CpG's C at the complement of the G
        assert amp.frame.ref_of(c.target_pos) == c.ref_pos + 1
        assert amp.target[c.target_pos] == "C"
    top = {c.target_pos: c for c in default.cpgs}
    bottom = {c.target_pos: c for c in amp.cpgs}
    assert top.keys() == bottom.keys()
    for t, c in bottom.items():
        assert c.ref_pos == n - 2 - top[t].ref_pos
        assert c.under_primer == top[t].under_primer
    assert [c.target_pos for c in amp.cpgs if c.snp] == [top_c.target_pos for top_c in default.cpgs if top_c.snp]


def test_strand_option_restricts_the_search(tmp_path, default_seq):
    path = write_fasta(tmp_path / "ref.fa", default_seq)
    assert load_amplicon(path, DEFAULT_FORWARD, DEFAULT_REVERSE, Strand.TOP).strand is Strand.TOP
    with pytest.raises(PrimerError):
        load_amplicon(path, DEFAULT_FORWARD, DEFAULT_REVERSE, Strand.BOTTOM)


# --------------------------------------------------------------------------- primers

def test_swapped_primers_warn_and_give_the_same_amplicon(default):
    amp = load_amplicon(None, DEFAULT_REVERSE, DEFAULT_FORWARD)
    assert (amp.start, amp.end, amp.strand) == (default.start, default.end, default.strand)
    assert amp.forward == DEFAULT_FORWARD and amp.reverse == DEFAULT_REVERSE
    assert amp.cpgs == default.cpgs
    assert any("swapped" in w for w in amp.warnings)


def test_primer_that_does_not_bind(tmp_path, default_seq):
    path = write_fasta(tmp_path / "ref.fa", default_seq)
    # the message quotes what the user typed and says which of the two binds, and where
    with pytest.raises(PrimerError, match=r"forward primer 'GATGATGATGATGATGATGATGAT': binds in no reading.*"
                                          r"reverse primer 'AAAACCAAAATAACCCAAAACAC': as given .* binds the "
                                          r"converted top strand"):
        load_amplicon(path, "GATGATGATGATGATGATGATGAT", DEFAULT_REVERSE)
    with pytest.raises(PrimerError, match=r"reverse primer 'CATCATCATCATCATCATCATCA': binds in no reading"):
        load_amplicon(path, DEFAULT_FORWARD, "CATCATCATCATCATCATCATCA")


@pytest.mark.parametrize("forward,reverse,note", [
    (DEFAULT_FORWARD, revcomp(DEFAULT_REVERSE), "as written on the reference"),
    # the primers' genomic (unconverted) sequences, as a user may copy them from the reference
    ("CGGGCACACCTTGGTTCTTGTAGA", DEFAULT_REVERSE, "forward primer 'CGGGCACACCTTGGTTCTTGTAGA' read as genomic"),
    (revcomp(DEFAULT_REVERSE), DEFAULT_FORWARD, "other order"),
])
def test_primers_typed_other_ways_bind_with_a_note(default, forward, reverse, note):
    amp = build_amplicon("r", default.reference, forward, reverse)
    assert (amp.start, amp.end, amp.strand, amp.target) == (default.start, default.end, default.strand,
                                                            default.target)
    assert (amp.forward, amp.reverse) == (DEFAULT_FORWARD, DEFAULT_REVERSE)
    assert any(note in w for w in amp.warnings), amp.warnings


def test_oct4_reverse_primer_in_both_orientations(data):
    """methylcircleplot's example: the reverse primer as the real primer, or as it reads on the reference."""
    ref = data / "oct4" / "reference_as_published.fa"
    real = load_amplicon(ref, "TGGGTTGAAATATTGGGTTTATTT", "CTAAAACCAAATATCCAACCATA")
    typed = load_amplicon(ref, "TGGGTTGAAATATTGGGTTTATTT", "TATGGTTGGATATTTGGTTTTAG")
    assert (real.start, real.end, real.target) == (typed.start, typed.end, typed.target)
    assert typed.reverse == "CTAAAACCAAATATCCAACCATA"
    assert not [w for w in real.warnings if "read as" in w]
    assert [w for w in typed.warnings if "reverse primer 'TATGGTTGGATATTTGGTTTTAG' read as written" in w]


def test_primer_that_binds_twice(tmp_path, default_seq):
    seq = default_seq + "AAAA" + default_seq[30:70]  # a second copy of the forward primer site
    path = write_fasta(tmp_path / "twice.fa", seq)
    with pytest.raises(PrimerError, match="more than once") as e:
        load_amplicon(path, DEFAULT_FORWARD, DEFAULT_REVERSE)
    assert "forward" in str(e.value)


@pytest.mark.parametrize("fwd,rev", [(DEFAULT_FORWARD, None), (None, DEFAULT_REVERSE)])
def test_only_one_primer(fwd, rev):
    with pytest.raises(PrimerError, match="both --forward and --reverse"):
        load_amplicon(None, fwd, rev)


@pytest.mark.parametrize("bad", ["", "   ", "TGGGTATAXTTTGG"])
def test_primer_not_dna(bad):
    with pytest.raises(PrimerError, match="forward primer"):
        load_amplicon(None, bad, DEFAULT_REVERSE)


def test_primer_with_a_mismatch_warns(default):
    fwd = "A" + DEFAULT_FORWARD[1:]  # T -> A at the 5' base
    amp = load_amplicon(None, fwd, DEFAULT_REVERSE)
    assert (amp.start, amp.end) == (default.start, default.end)
    assert any("forward primer binds with 1 mismatch" in w for w in amp.warnings)


def test_lower_case_primers_and_u(default):
    amp = load_amplicon(None, DEFAULT_FORWARD.lower().replace("t", "u"), DEFAULT_REVERSE.lower())
    assert (amp.start, amp.end, amp.cpgs) == (default.start, default.end, default.cpgs)


# --------------------------------------------------------------------------- reference files

def test_non_dna_reference(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">r\nACGTACGTAC\nACGJACGT\n")
    with pytest.raises(ReferenceFileError, match=r"non-DNA letter 'J' at position 14"):
        read_reference(path)


@pytest.mark.parametrize("content", [b"", b">only a header\n", b"\n\n"])
def test_empty_reference(tmp_path, content):
    path = tmp_path / "empty.fa"
    path.write_bytes(content)
    with pytest.raises(ReferenceFileError, match="no sequence"):
        read_reference(path)


def test_missing_and_binary_reference(tmp_path):
    with pytest.raises(ReferenceFileError, match="cannot read"):
        read_reference(tmp_path / "missing.fa")
    path = tmp_path / "bin.fa"
    path.write_bytes(b"\xff\xfe\x00\x81ACGT")
    with pytest.raises(ReferenceFileError, match="not a text FASTA"):
        read_reference(path)


def test_reference_errors_are_bsmeth_errors_with_exit_code_3():
    assert issubclass(ReferenceFileError, BsmethError) and ReferenceFileError.exit_code == 3
    assert issubclass(PrimerError, BsmethError) and PrimerError.exit_code == 3


@pytest.mark.parametrize("width", [7, 60, 80, None])
def test_lower_case_any_line_length(tmp_path, default, default_seq, width):
    path = write_fasta(tmp_path / "lower.fa", default_seq.lower(), width=width)
    amp = load_amplicon(path, DEFAULT_FORWARD, DEFAULT_REVERSE)
    assert amp.reference == default_seq
    assert (amp.start, amp.end, amp.target) == (default.start, default.end, default.target)
    # a reference given as a file carries no default SNP nor genome anchor; everything else about the CpGs is the same
    assert amp.cpgs == tuple(replace(c, snp=None, genome_pos=None) for c in default.cpgs)


def test_header_less_reference_and_crlf(tmp_path, default_seq):
    path = tmp_path / "plain_ref.txt"
    path.write_bytes(("\r\n".join(default_seq[i:i + 50] for i in range(0, 342, 50)) + "\r\n").encode())
    name, seq, source = read_reference(path)
    assert (name, seq, source) == ("plain_ref", default_seq, str(path))
    assert load_amplicon(path, DEFAULT_FORWARD, DEFAULT_REVERSE).length == 226


def test_numbers_and_spaces_in_sequence_lines_are_ignored(tmp_path, default_seq):
    path = tmp_path / "genbank_like.txt"
    path.write_text(">r\n" + "\n".join(f"{i + 1:>9} {default_seq[i:i + 10]} {default_seq[i + 10:i + 20]}"
                                        for i in range(0, 342, 20)) + "\n")
    assert read_reference(path)[1] == default_seq


def test_first_record_is_used(tmp_path):
    path = tmp_path / "two.fa"
    path.write_text(">first desc\nACGTTGCA\n>second\nGGGG\n")
    assert read_reference(path)[:2] == ("first", "ACGTTGCA")


def test_already_converted_reference_warns(tmp_path, default_seq):
    amp = build_amplicon("conv", convert(default_seq))
    assert any("already bisulfite-converted" in w for w in amp.warnings)
    assert not any("already" in w for w in build_amplicon("gen", default_seq).warnings)


@pytest.mark.parametrize("strand", [Strand.TOP, Strand.BOTTOM])
def test_converted_reference_is_flagged_and_genomic_is_not(default_seq, strand):
    """A reference given converted (CpGs kept as CG, every other C as T) is flagged whichever strand is
    amplified; the genomic sequence of every real amplicon we hold is not."""
    seq = default_seq if strand is Strand.TOP else revcomp(default_seq)
    conv = convert(seq, methylated_cpg=True)
    if strand is Strand.BOTTOM:
        conv = revcomp(conv)  # the bottom strand converted, written as the top strand
    amp = build_amplicon("conv", conv, strand=strand)
    assert amp.converted_reference
    assert len(amp.cpgs) == len(build_amplicon("gen", default_seq, strand=strand).cpgs)
    assert any("conversion cannot be checked" in w for w in amp.warnings)
    assert not build_amplicon("gen", default_seq, strand=strand).converted_reference


def test_real_genomic_references_are_not_converted(data):
    for path in [data / "panel" / "IGFBP3_promoter_hg19.fa", data / "panel" / "EPM2AIP1_promoter_methylscaper.fa",
                 data / "oct4" / "reference_genomic_partial_from_nomeplot.fa"]:
        amp = load_amplicon(path)
        assert not amp.converted_reference, path
        assert not any("already" in w for w in amp.warnings), path


def test_oct4_published_reference_is_flagged_converted(data):
    amp = load_amplicon(data / "oct4" / "reference_as_published.fa", "TGGGTTGAAATATTGGGTTTATTT",
                        "CTAAAACCAAATATCCAACCATA")
    assert amp.converted_reference and len(amp.cpgs) == 16
    assert [w for w in amp.warnings if "already" in w] == [next(w for w in amp.warnings if "conversion cannot" in w)]


def test_no_cpg_warns():
    seq = "ACTGGTCCATGAGCATTGCCAGTTCAGGACTTGAGCCATGGTAC" * 3
    assert "CG" not in seq
    amp = build_amplicon("nocg", seq)
    assert amp.cpgs == ()
    assert any("no CpG" in w for w in amp.warnings)
    assert not any("already" in w for w in amp.warnings)


def test_short_target_warns():
    amp = build_amplicon("tiny", "ACGTTACG")
    assert any("too short" in w for w in amp.warnings)


# --------------------------------------------------------------------------- whole-reference mode

def test_whole_reference_mode_calls_all_cpgs(tmp_path, default_seq):
    amp = load_amplicon(write_fasta(tmp_path / "r.fa", default_seq))  # a path and no primers: QUMA's mode
    assert (amp.start, amp.end, amp.strand) == (0, 342, Strand.TOP)
    assert amp.target == default_seq
    assert amp.forward is None and amp.reverse is None
    assert [c.ref_pos for c in amp.cpgs] == cpg_sites(default_seq)
    assert not any(c.under_primer for c in amp.cpgs)
    assert not any(c.snp for c in amp.cpgs)  # the default SNP belongs to the default reference only


def test_whole_reference_mode_bottom_strand(default_seq):
    amp = build_amplicon("r", default_seq, strand=Strand.BOTTOM)
    assert amp.target == revcomp(default_seq)
    assert [c.ref_pos for c in amp.cpgs] == cpg_sites(default_seq)
    for c in amp.cpgs:
        assert amp.target[c.target_pos] == "C"
        assert amp.frame.ref_of(c.target_pos) == c.ref_pos + 1


def test_snps_outside_the_amplicon_are_dropped(default_seq):
    inside, outside = SNP(88, "C", "A", "in"), SNP(5, "G", "A", "out")
    amp = build_amplicon("r", default_seq, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=[inside, outside])
    assert amp.snps == (inside,)


def test_snp_on_the_g_of_a_cpg_marks_that_cpg(default_seq):
    amp = build_amplicon("r", default_seq, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=[SNP(89, "G", "A", "g")])
    assert [c.ref_pos for c in amp.cpgs if c.snp] == [88]


# --------------------------------------------------------------------------- parse_snp

@pytest.mark.parametrize("text,expected", [
    ("89:C>A", SNP(88, "C", "A", "89:C>A")),
    ("89:c>a", SNP(88, "C", "A", "89:C>A")),
    (" 1 : G > T ", SNP(0, "G", "T", "1:G>T")),
])
def test_parse_snp(text, expected):
    assert parse_snp(text) == expected


@pytest.mark.parametrize("text", ["", "89", "C>A", "89:C", "89:CA", "89:C>N", "-3:C>A", "x:C>A", "89;C>A"])
def test_parse_snp_rejects(text):
    with pytest.raises(BsmethError, match=re.escape("POS:REF>ALT")):
        parse_snp(text)


def test_parse_snp_rejects_position_zero():
    with pytest.raises(BsmethError):
        parse_snp("0:C>A")


# --------------------------------------------------------------------------- properties

IUPAC_SEQ = st.text(alphabet="ACGTNRYKMSWBDHVacgtn", max_size=200)
DNA = st.text(alphabet="ACGT", max_size=200)


@given(IUPAC_SEQ)
def test_revcomp_is_an_involution_and_keeps_length(seq):
    assert len(revcomp(seq)) == len(seq)
    assert revcomp(revcomp(seq)) == seq


@given(DNA)
def test_revcomp_complements(seq):
    assert revcomp(seq) == "".join(COMP[b] for b in reversed(seq))


@given(DNA)
def test_convert_unmethylated_has_no_c(seq):
    out = convert(seq)
    assert len(out) == len(seq)
    assert "C" not in out
    assert all(o == s or (s == "C" and o == "T") for s, o in zip(seq, out))


@given(DNA)
def test_convert_methylated_keeps_c_only_at_cpg(seq):
    out = convert(seq, methylated_cpg=True)
    assert len(out) == len(seq)
    for i, (s, o) in enumerate(zip(seq, out)):
        if s == "C":
            assert o == ("C" if seq[i + 1:i + 2] == "G" else "T")
        else:
            assert o == s
    assert [i for i, b in enumerate(out) if b == "C"] == cpg_sites(seq)


@given(DNA)
def test_converted_strands_relations(seq):
    s = converted_strands(seq)
    assert s["OT"] == convert(seq)
    assert s["OB"] == convert(revcomp(seq))
    assert s["CTOT"] == revcomp(s["OT"])
    assert s["CTOB"] == revcomp(s["OB"])
    assert all(len(v) == len(seq) for v in s.values())
    assert "C" not in s["OT"] + s["OB"] and "G" not in s["CTOT"] + s["CTOB"]


def _check_to_ref(amp):
    ref = amp.reference
    for t in range(amp.length):
        r = amp.frame.ref_of(t)
        assert 0 <= r < len(ref)
        expected = ref[r] if amp.strand is Strand.TOP else COMP[ref[r]]
        assert amp.target[t] == expected
    for c in amp.cpgs:
        assert ref[c.ref_pos:c.ref_pos + 2] == "CG"
        assert amp.target[c.target_pos] == "C"
        assert amp.frame.ref_of(c.target_pos) == c.ref_pos + (0 if amp.strand is Strand.TOP else 1)


@given(st.text(alphabet="ACGT", min_size=1, max_size=150), st.sampled_from([Strand.TOP, Strand.BOTTOM]))
def test_to_ref_whole_reference(seq, strand):
    amp = build_amplicon("r", seq, strand=strand)
    assert amp.length == len(seq)
    _check_to_ref(amp)
    assert [c.ref_pos for c in amp.cpgs] == cpg_sites(seq)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_to_ref_random_amplicons_with_primers(data):
    """Primers made from the converted ends of a random region give back exactly that region."""
    seq = data.draw(st.text(alphabet="ACGT", min_size=80, max_size=220), label="reference")
    strand = data.draw(st.sampled_from([Strand.TOP, Strand.BOTTOM]), label="strand")
    n, plen = len(seq), 20
    a = data.draw(st.integers(0, n - 2 * plen - 10), label="start")
    b = data.draw(st.integers(a + 2 * plen + 10, n), label="end")
    strand_seq = seq if strand is Strand.TOP else revcomp(seq)
    fwd = convert(strand_seq[a:a + plen])
    rev = revcomp(convert(strand_seq[b - plen:b]))
    try:
        amp = build_amplicon("r", seq, fwd, rev)
    except PrimerError:
        assume(False)  # the random primer happens to bind more than once
    assume(not any("swapped" in w for w in amp.warnings))
    assert amp.strand is strand
    assert amp.target == strand_seq[a:b]
    assert (amp.start, amp.end) == ((a, b) if strand is Strand.TOP else (n - b, n - a))
    _check_to_ref(amp)
    for c in amp.cpgs:
        assert c.under_primer == (c.target_pos < plen or c.target_pos >= amp.length - plen)


def test_genbank_and_embl_references_read_as_the_fasta(data, tmp_path):
    """QUMA's Gm9 reference as NCBI's GenBank record gives the FASTA's sequence; the same record written as EMBL
    (by Biopython) too; the name is the accession with version, as in NCBI's FASTA header."""
    from Bio import SeqIO

    gm9 = data / "quma_gm9"
    _, fasta_seq, _ = read_reference(gm9 / "sample_genome_fasta.txt")
    name, seq, _ = read_reference(gm9 / "sample_genome_gb.txt")
    assert (name, seq) == ("NT_111909.2", fasta_seq) and len(seq) == 453
    embl = tmp_path / "gm9.embl"
    rec = next(SeqIO.parse(gm9 / "sample_genome_gb.txt", "genbank"))
    SeqIO.write([rec], embl, "embl")
    assert read_reference(embl)[1] == fasta_seq
    assert len(load_amplicon(gm9 / "sample_genome_gb.txt").cpgs) == 19


def test_broken_genbank_reference_says_where(data, tmp_path):
    text = (data / "quma_gm9" / "sample_genome_gb.txt").read_text()
    bad = tmp_path / "cut.gb"
    bad.write_text(text[: text.index("ORIGIN")])  # no sequence, no terminator
    with pytest.raises(ReferenceFileError, match=r"reference .*cut\.gb: .*GenBank"):
        read_reference(bad)
