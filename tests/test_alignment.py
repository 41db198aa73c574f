"""Tests of bsmeth.alignment: orientation, vector trimming, partial reads, read positions and qualities."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readfixtures import clone

from bsmeth.alignment import align, clean_read
from bsmeth.models import Call, Strand, Why
from bsmeth.reference import build_amplicon, convert, load_amplicon, revcomp

DATA = Path(__file__).parent / "data"
COMP = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


def fasta_records(path: Path) -> dict[str, str]:
    """A minimal FASTA reader for the test data (record id -> sequence as written)."""
    out: dict[str, list[str]] = {}
    name = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            name = line[1:].split()[0]
            out[name] = []
        elif line and name is not None:
            out[name].append(line)
    return {k: "".join(v) for k, v in out.items()}


def bs_identity(amp, aln) -> float:
    """Bisulfite-aware identity over the covered part (gaps and insertions count, N does not),
    computed here independently of qc."""
    ok, n = 0, aln.insertions
    for t in range(aln.target_start, aln.target_end):
        b, g = aln.bases[t], amp.target[t]
        if b == "N":
            continue
        n += 1
        ok += b == g or (g == "C" and b == "T")
    return ok / n if n else 0.0


def check_insert_found(aln, amp, given: str, orientation: str, left: str, insert: str) -> None:
    """A clone ``insert`` between vector (``left`` before it in the oriented read) aligned over the whole
    amplicon, every base recovered, no gap, read positions right."""
    assert aln.orientation == orientation
    assert (aln.target_start, aln.target_end) == (0, amp.length)
    # read_start/read_end are in the oriented read (= construct): the vector is outside
    assert (aln.read_start, aln.read_end) == (len(left), len(left) + len(insert))
    assert "".join(aln.bases) == insert
    assert aln.insertions == 0
    check_read_pos(given, aln)


def check_read_pos(seq: str, aln) -> None:
    """For every aligned t, the read base at read_pos[t] (complemented for '-') is bases[t]."""
    s = clean_read(seq)
    for t in range(len(aln.bases)):
        b = aln.bases[t]
        p = int(aln.read_pos[t])
        if b in (" ", "-"):
            assert p == -1
            continue
        assert 0 <= p < len(s)
        assert (s[p] if aln.orientation == "+" else COMP[s[p]]) == b


@pytest.fixture(scope="module")
def igfbp3():
    return load_amplicon()


@pytest.fixture(scope="module")
def biq_amp():
    return load_amplicon(DATA / "biq_demo/Master_Sequence.txt")


@pytest.fixture(scope="module")
def biq_reads():
    return fasta_records(DATA / "biq_demo/multiFASTA.fasta")


@pytest.fixture(scope="module")
def vector():
    """Real pCR4-TOPO flanks around the TA-cloning site, from the A07 clone read (insert removed)."""
    read = fasta_records(DATA / "pcr4topo/456484801_1_1_M13F_A07.seq.fasta")["456484801_1_1_M13F_A07.seq"]
    left = read[: read.index("GAATTCGCCCTT") + len("GAATTCGCCCTT")]
    right = read[read.index("AAGGGCGAATTCGTTTAAACC"):]
    assert 40 < len(left) < 60 and len(right) > 700
    return left, right


# --------------------------------------------------------------------------- orientation

@pytest.mark.parametrize("rid", ["seq_B", "seq_C", "seq_E", "seq_G", "seq_H", "seq_I"])
def test_orientation_of_biq_reads_and_their_reverse_complements(biq_amp, biq_reads, rid):
    seq = biq_reads[rid]
    fwd = align(biq_amp, seq, None)
    rev = align(biq_amp, revcomp(seq), None)
    expected = "-" if rid == "seq_C" else "+"  # seq_C is the reverse complement of the converted strand
    assert fwd.orientation == expected
    assert rev.orientation == {"+": "-", "-": "+"}[expected]
    assert (fwd.target_start, fwd.target_end) == (0, biq_amp.length) == (rev.target_start, rev.target_end)
    assert list(fwd.bases) == list(rev.bases)
    assert fwd.score == rev.score
    check_read_pos(seq, fwd)
    check_read_pos(revcomp(seq), rev)


def test_orientation_is_not_swayed_by_methylation(igfbp3):
    """Fully methylated and fully unmethylated clones are found in both orientations."""
    for meth in (True, False):
        read = clone(igfbp3, [meth] * len(igfbp3.cpgs))
        assert align(igfbp3, read, None).orientation == "+"
        assert align(igfbp3, revcomp(read), None).orientation == "-"


def test_bottom_strand_amplicon_reads(igfbp3, tmp_path):
    """With a reverse-complemented FASTA the amplified strand, hence the alignment, is unchanged."""
    seq = revcomp(igfbp3.reference)
    amp = build_amplicon("rc", seq, igfbp3.forward, igfbp3.reverse)
    assert amp.strand is Strand.BOTTOM
    read = clone(amp, [True, False] * 14)
    aln = align(amp, read, None)
    assert aln.orientation == "+"
    assert "".join(aln.bases) == read


# --------------------------------------------------------------------------- vector trimming

@pytest.mark.parametrize("orientation", ["+", "-"])
def test_vector_flanks_are_trimmed(igfbp3, vector, orientation):
    left, right = vector
    insert = clone(igfbp3, [i % 3 == 0 for i in range(len(igfbp3.cpgs))])
    construct = left + insert + right
    given = construct if orientation == "+" else revcomp(construct)
    aln = align(igfbp3, given, None)
    check_insert_found(aln, igfbp3, given, orientation, left, insert)
    if orientation == "+":
        assert aln.read_pos[0] == len(left) and aln.read_pos[-1] == len(left) + len(insert) - 1
    else:
        assert aln.read_pos[0] == len(right) + len(insert) - 1 and aln.read_pos[-1] == len(right)


def test_vector_only_read_does_not_align_well(igfbp3, vector):
    left, right = vector
    aln = align(igfbp3, left + right, None)
    perfect = align(igfbp3, convert(igfbp3.target), None)
    assert aln is None or (aln.score < 0.5 * perfect.score and bs_identity(igfbp3, aln) < 0.7)


# --------------------------------------------------------------------------- partial reads

def test_partial_read_is_aligned_over_what_it_covers(igfbp3):
    full = clone(igfbp3, [True] * len(igfbp3.cpgs))
    part = full[60:170]
    aln = align(igfbp3, part, None)
    assert (aln.target_start, aln.target_end) == (60, 170)
    assert (aln.read_start, aln.read_end) == (0, 110)
    assert "".join(aln.bases[60:170]) == part
    assert set(aln.bases[:60]) == {" "} and set(aln.bases[170:]) == {" "}
    assert (aln.read_pos[:60] == -1).all() and (aln.read_pos[170:] == -1).all()
    assert (aln.quals[:60] == 0).all()
    check_read_pos(part, aln)


def test_deletion_in_read_gives_gap(igfbp3):
    full = clone(igfbp3, [False] * len(igfbp3.cpgs))
    read = full[:100] + full[103:]  # three bases deleted
    aln = align(igfbp3, read, None)
    assert (aln.target_start, aln.target_end) == (0, igfbp3.length)
    gaps = [t for t in range(igfbp3.length) if aln.bases[t] == "-"]
    assert len(gaps) == 3 and gaps[-1] - gaps[0] == 2
    assert aln.insertions == 0
    check_read_pos(read, aln)


def test_insertion_in_read_is_counted(igfbp3):
    full = clone(igfbp3, [False] * len(igfbp3.cpgs))
    read = full[:120] + "GGAG" + full[120:]
    aln = align(igfbp3, read, None)
    assert aln.insertions == 4
    assert "".join(aln.bases) == full
    assert "-" in aln.lines[0]  # the target line shows the inserted read bases against gaps
    check_read_pos(read, aln)


# --------------------------------------------------------------------------- qualities, IUPAC, case

def test_qualities_follow_the_orientation(igfbp3):
    read = clone(igfbp3, [True, False] * 14)
    qual = (np.arange(len(read)) % 50 + 5).astype(np.uint8)
    fwd = align(igfbp3, read, qual)
    rev = align(igfbp3, revcomp(read), qual[::-1].copy())
    assert fwd.orientation == "+" and rev.orientation == "-"
    assert (fwd.quals == qual).all()
    assert (rev.quals == fwd.quals).all()
    for aln, q in ((fwd, qual), (rev, qual[::-1])):
        for t in range(igfbp3.length):
            assert aln.quals[t] == q[aln.read_pos[t]]


def test_sequence_without_qualities_gets_99(igfbp3):
    aln = align(igfbp3, convert(igfbp3.target), None)
    assert (aln.quals == 99).all()


def test_iupac_letters_become_n_and_case_is_ignored(igfbp3):
    read = list(clone(igfbp3, [True] * len(igfbp3.cpgs)).lower())
    for i, code in ((40, "r"), (90, "Y"), (150, "k"), (151, "S")):
        read[i] = code
    read = "".join(read)
    aln = align(igfbp3, read, None)
    assert (aln.target_start, aln.target_end) == (0, igfbp3.length)
    assert [t for t in range(igfbp3.length) if aln.bases[t] == "N"] == [40, 90, 150, 151]
    assert set("".join(aln.bases)) <= set("ACGTN")
    check_read_pos(read, aln)


def test_clean_read():
    assert clean_read("acgtRYKMSWBDHVUn") == "ACGT" + "N" * 12


def test_alignment_lines_and_marks(igfbp3):
    target = igfbp3.target
    read = clone(igfbp3, [True] * len(igfbp3.cpgs))
    i = next(t for t in range(30, 200) if target[t] == "C" and target[t + 1] != "G")
    read = read[:i] + "C" + read[i + 1:]  # one unconverted non-CpG C
    aln = align(igfbp3, read, None)
    tline, marks, rline = aln.lines
    assert tline == target and rline == read
    assert len(marks) == len(tline) and marks[i] == "!"
    for t, (g, m, r) in enumerate(zip(tline, marks, rline)):
        if g == "C" and t + 1 < len(tline) and tline[t + 1] == "G":
            assert m == "*"
        elif g == "C":
            assert m == ("." if r == "T" else "!")
        else:
            assert m == "|"


# --------------------------------------------------------------------------- random reads

@pytest.mark.parametrize("seed", range(5))
def test_random_read_gives_a_poor_or_no_alignment(igfbp3, seed):
    rng = random.Random(seed)
    perfect = align(igfbp3, convert(igfbp3.target), None)
    for alphabet in ("ACGT", "AGTTT"):  # uniform, and T-rich like converted sequence
        seq = "".join(rng.choice(alphabet) for _ in range(400))
        aln = align(igfbp3, seq, None)
        assert aln is None or (aln.score < 0.5 * perfect.score and bs_identity(igfbp3, aln) < 0.7)


# --------------------------------------------------------------------------- properties

AMPLICONS = {}


def _amp(name):
    if name not in AMPLICONS:
        AMPLICONS[name] = load_amplicon() if name == "igfbp3" else load_amplicon(DATA / "biq_demo/Master_Sequence.txt")
    return AMPLICONS[name]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_simulated_clones_are_recovered_exactly(data):
    """A converted clone with random methylation, in random orientation, between random lengths of real
    vector, aligns over the whole amplicon with every base recovered and no gap."""
    amp = _amp(data.draw(st.sampled_from(["igfbp3", "biq"]), label="amplicon"))
    meth = data.draw(st.lists(st.booleans(), min_size=len(amp.cpgs), max_size=len(amp.cpgs)), label="methylation")
    orientation = data.draw(st.sampled_from("+-"), label="orientation")
    left_full = fasta_records(DATA / "pcr4topo/456484801_1_1_M13F_A07.seq.fasta")["456484801_1_1_M13F_A07.seq"]
    cut = left_full.index("GAATTCGCCCTT") + 12
    n_left = data.draw(st.integers(0, 40), label="left flank")
    n_right = data.draw(st.integers(0, 300), label="right flank")
    left = left_full[cut - n_left:cut]
    right = left_full[left_full.index("AAGGGCGAATTCGTTTAAACC"):][:n_right]
    insert = clone(amp, meth)
    construct = left + insert + right
    given_seq = construct if orientation == "+" else revcomp(construct)
    qual = (np.arange(len(given_seq)) * 7 % 61).astype(np.uint8)
    aln = align(amp, given_seq, qual)
    check_insert_found(aln, amp, given_seq, orientation, left, insert)
    for t in range(amp.length):
        assert aln.quals[t] == qual[aln.read_pos[t]]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_read_pos_maps_back_for_noisy_partial_reads(data):
    """Property: whatever the alignment does with a mutated partial read, read_pos points at the read
    base shown in ``bases`` (complemented for '-')."""
    amp = _amp("igfbp3")
    meth = [data.draw(st.booleans()) for _ in amp.cpgs]
    read = list(clone(amp, meth))
    a = data.draw(st.integers(0, 80), label="start")
    b = data.draw(st.integers(a + 100, amp.length), label="end")
    read = read[a:b]
    for _ in range(data.draw(st.integers(0, 6), label="n edits")):
        i = data.draw(st.integers(0, len(read) - 1))
        op = data.draw(st.sampled_from(["sub", "del", "ins", "N"]))
        if op == "sub":
            read[i] = data.draw(st.sampled_from("ACGT"))
        elif op == "del" and len(read) > 90:
            del read[i]
        elif op == "ins":
            read.insert(i, data.draw(st.sampled_from("ACGT")))
        else:
            read[i] = "N"
    seq = "".join(read)
    if data.draw(st.booleans(), label="reverse"):
        seq = revcomp(seq)
    aln = align(amp, seq, None)
    assert aln is not None
    check_read_pos(seq, aln)
    assert aln.target_start >= a - 3 and aln.target_end <= b + 3


# --------------------------------------------------------------------------- indels next to CpGs

MAPIT = DATA / "mapit454"


@pytest.fixture(scope="module")
def mapit_calls():
    """The real 454 reads (GpC-methylase treated, no primers) through the per-read path."""
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import fit_to_amplicon, process_file

    amp = load_amplicon(MAPIT / "reference.fa")
    results = process_file(MAPIT / "reads.fasta", "mapit", amp, fit_to_amplicon(CallConfig(nome=True), amp))
    return amp, results, fasta_records(MAPIT / "reads.fasta")


def _unique(hay: str, needle: str) -> int:
    i = hay.find(needle)
    return i if i >= 0 and hay.find(needle, i + 1) < 0 else -1


def indel_sites(amp, oriented: str, flank: int = 12):
    """(CpG target position, the read's base next to the CpG's G) for every CpG where the read has an indel
    in the three bases before the C or at it, or in the three bases after the G.

    Found without the aligner: exact, unique 3-letter anchors (C read as T) of ``flank`` bases either side of
    a four-base window; the read between the anchors is longer or shorter than the target there.  Only CpGs
    whose read base next to the G is in the C's run (C or T) count: where that base is A or G the C itself
    is missing, which is a real deletion, not a homopolymer length error.
    """
    tt, q3 = amp.target.upper().replace("C", "T"), oriented.upper().replace("C", "T")
    out = []
    for cpg in amp.cpgs:
        t = cpg.target_pos
        if t - 3 - flank < 0 or t + 5 + flank > len(tt):
            continue
        # before: anchors end at t-3 and start at the G
        e, g = _unique(q3, tt[t - 3 - flank:t - 3]), _unique(q3, tt[t + 1:t + 1 + flank])
        while g > 0 and q3[g - 1] == "G":
            g -= 1  # the first G of the read's G run is the CpG's G
        if 0 <= e < g and g - e - flank != 4 and g - e - flank < 10 and q3[g - 1] == "T":
            out.append((t, oriented[g - 1]))
            continue
        # after: an anchor ending at the C (the read's next base a G), one starting three bases after the G
        e, h = _unique(q3, tt[t + 1 - flank:t + 1]), _unique(q3, tt[t + 5:t + 5 + flank])
        c = e + flank - 1
        if 0 <= e < h and h - c - 1 != 4 and h - c - 1 < 10 and q3[c + 1] == "G":
            out.append((t, oriented[c]))
    return out


def test_cpg_next_to_a_454_indel_is_called_from_the_base_next_to_its_g(mapit_calls):
    amp, results, seqs = mapit_calls
    checked = reads = 0
    for r in results:
        if r.aligned is None or not r.calls:
            continue
        oriented = seqs[r.read_id] if r.aligned.orientation == "+" else revcomp(seqs[r.read_id])
        by_t = {c.cpg.target_pos: c for c in r.calls}
        sites = indel_sites(amp, oriented)
        reads += bool(sites)
        for t, base in sites:
            c = by_t[t]
            if c.why is Why.NOT_COVERED:
                continue
            checked += 1
            assert c.base == base, (r.read_id, c.cpg.number, c.base, base)
            if c.why is None:
                assert c.call is (Call.METHYLATED if base == "C" else Call.UNMETHYLATED)
            assert c.why is not Why.GAP
    assert checked > 500 and reads > 100  # the data hold hundreds of such sites: the test cannot pass empty


@pytest.mark.parametrize("orientation", ["+", "-"])
@pytest.mark.parametrize("edit", ["del", "ins"])
def test_homopolymer_error_before_a_cpg_is_read_from_the_base_next_to_the_g(orientation, edit):
    """Synthetic: one T more or less in the T run before each CpG's G of a clone, one CpG at a time; the C
    call is the read's base next to the G, whatever the aligner's tie-breaking."""
    amp = load_amplicon(DATA / "quma_gm9/sample_genome_fasta.txt")
    tt = convert(amp.target)
    tested = 0
    for k, cpg in enumerate(amp.cpgs):
        t = cpg.target_pos
        if tt[t - 1] != "T" or t < 40 or t > amp.length - 40:
            continue  # a run of at least two letters before the G
        meth = [i % 2 == 0 for i in range(len(amp.cpgs))]
        read = clone(amp, meth)
        read = read[:t - 1] + read[t:] if edit == "del" else read[:t] + "T" + read[t:]
        given = read if orientation == "+" else revcomp(read)
        aln = align(amp, given, None)
        from bsmeth.calling import call_read
        from bsmeth.models import CallConfig

        c = call_read(amp, aln, CallConfig())[k]
        assert c.base == ("C" if meth[k] else "T"), (cpg.number, c.base, c.why)
        tested += 1
    assert tested >= 5


def test_normalise_gaps_moves_a_gap_off_a_cpg_c():
    """A deletion that the aligner placed at a CpG C (a tie in score) is moved to the start of the run."""
    from bsmeth.alignment import normalise_gaps

    tcode = "AATTCZGAA"  # a T run 'TTCZ' (C non-CpG, Z the CpG C) before the G
    q = "AATTTGAA"  # the read has one T less in that run
    blocks = [[0, 5, 0, 5], [6, 9, 5, 8]]  # the gap at the Z (target 5)
    out = normalise_gaps([b[:] for b in blocks], tcode, q)
    assert out == [[0, 2, 0, 2], [3, 9, 2, 8]]  # the gap at the first T of the run; Z paired with read 4
    # a read C is not moved off a genomic C onto a T where that would score worse: the G itself is missing
    out = normalise_gaps([[0, 4, 0, 4], [6, 9, 4, 7]], "AGAZGTTAA", "AGACTAA")
    assert out == [[0, 4, 0, 4], [6, 9, 4, 7]]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ACGTN", max_size=60))
def test_kmer_codes_are_the_base3_codes_of_the_3_letter_kmers(seq):
    """The doubling computation of the k-mer codes against their definition: C read as T, each k-mer's
    letters as base-3 digits (A 0, G 1, T 2), and one code past every real k-mer for k-mers holding an N."""
    from bsmeth.alignment import _NO_KMER, K, _kmer_codes

    digit = {"A": 0, "G": 1, "T": 2, "C": 2}
    want = []
    for i in range(len(seq) - K + 1):
        kmer = seq[i:i + K]
        want.append(_NO_KMER if "N" in kmer else sum(digit[b] * 3 ** (K - 1 - j) for j, b in enumerate(kmer)))
    assert _kmer_codes(seq).tolist() == want


def _mutated(data, amp, letters="ACGTN"):
    """A stretch of a converted clone of ``amp`` with random substitutions, indels and Ns, either orientation."""
    read = list(clone(amp, [data.draw(st.booleans()) for _ in amp.cpgs]))
    a = data.draw(st.integers(0, amp.length // 2), label="start")
    read = read[a:data.draw(st.integers(a + 20, amp.length), label="end")]
    for _ in range(data.draw(st.integers(0, 12), label="n edits")):
        i = data.draw(st.integers(0, len(read) - 1))
        op = data.draw(st.sampled_from(["sub", "del", "ins"]))
        if op == "sub":
            read[i] = data.draw(st.sampled_from(letters))
        elif op == "del" and len(read) > 15:
            del read[i]
        elif op == "ins":
            read.insert(i, data.draw(st.sampled_from(letters)))
    seq = "".join(read)
    return revcomp(seq) if data.draw(st.booleans(), label="reverse") else seq


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_kmer_hits_are_the_read_kmers_found_in_the_target(data):
    """The vote's table lookup (both orientations in one correlation) against its definition: the k-mers of the
    read and of its reverse complement, C read as T, without N, that occur in the target."""
    from bsmeth.alignment import K, kmer_hits

    amp = _amp(data.draw(st.sampled_from(["igfbp3", "biq"]), label="amplicon"))
    seq = _mutated(data, amp) + data.draw(st.text(alphabet="ACGTN", max_size=30), label="tail")
    target_kmers = {amp.target[i:i + K].replace("C", "T") for i in range(amp.length - K + 1)}

    def hits(s):
        kmers = [s[i:i + K] for i in range(len(s) - K + 1)]
        return [i for i, k in enumerate(kmers) if "N" not in k and k.replace("C", "T") in target_kmers]

    fwd, rev = kmer_hits(amp, seq)
    assert fwd.tolist() == hits(seq)
    assert rev.tolist() == hits(revcomp(seq))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_aligned_blocks_are_parasails_cigar(data):
    """The gap-free blocks read straight from the C library's CIGAR against parasail's own Python API (the
    CIGAR as text), on reads with indels: the same alignment, the same blocks."""
    import re

    import parasail

    from bsmeth.alignment import GAP_EXTEND, GAP_OPEN, _local, _matrix, _tables

    amp = _amp(data.draw(st.sampled_from(["igfbp3", "biq"]), label="amplicon"))
    q = _mutated(data, amp)
    lo = data.draw(st.integers(0, 50), label="window start")
    tab = _tables(amp)
    res = parasail.sw_trace_scan_profile_16(parasail.profile_create_16(tab.tcode, _matrix()), q, GAP_OPEN, GAP_EXTEND)
    score, blocks = _local(tab, q, lo)
    assert score == res.score
    if score <= 0:
        assert blocks == []
        return
    cigar = res.cigar
    t, r = cigar.beg_query, cigar.beg_ref + lo
    want, cur = [], None
    for n, op in re.findall(r"(\d+)([=XMID])", cigar.decode.decode()):
        n = int(n)
        if op in "ID":
            cur = None
            t, r = (t + n, r) if op == "I" else (t, r + n)
            continue
        if cur is None:
            cur = [t, t, r, r]
            want.append(cur)
        t, r = t + n, r + n
        cur[1], cur[3] = t, r
    assert blocks == want


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_marks_follow_the_rule_column_by_column(data):
    """The mark line (one table lookup per alignment) against the rule per column: ' ' for a read N (and in
    gaps), '*' at a CpG C, '.' and '!' for T and C at another C, '|' for a match, 'x' otherwise."""
    amp = _amp(data.draw(st.sampled_from(["igfbp3", "biq"]), label="amplicon"))
    aln = align(amp, _mutated(data, amp, "ACGTN"), None)
    if aln is None:
        return
    tline, marks, rline = aln.lines
    assert len(tline) == len(marks) == len(rline)
    t = aln.target_start
    for g, m, r in zip(tline, marks, rline):
        if g == "-" or r == "-":  # an insertion, a deletion
            assert m == " "
            t += g != "-"
            continue
        if r == "N":
            want = " "
        elif g == "C":
            want = "*" if amp.target[t:t + 2] == "CG" else "." if r == "T" else "!" if r == "C" else "x"
        else:
            want = "|" if r == g else "x"
        assert m == want, (t, g, r, m)
        t += 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet="ACGTNRYKMSWBDHVUacgtnrykmswbdhvu-*? \x00", max_size=80))
def test_clean_read_of_ascii_is_the_rule_letter_by_letter(seq):
    """``clean_read``'s bytes table (ASCII reads) against its rule, str.upper then IUPAC codes to N."""
    from bsmeth.alignment import _READ_MAP

    assert clean_read(seq) == seq.upper().translate(_READ_MAP)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2000), max_size=60, unique=True), st.integers(1, 600), st.integers(0, 2100))
def test_window_is_the_densest_run_of_hits(positions, n_target, extra):
    """``window``'s short cut (every hit within one amplicon length of the first: the run ending at the last hit
    holds them all) against the rule written out: the first hit whose run of one amplicon length back holds most
    hits ends the run."""
    from bsmeth.alignment import K, window

    hits = np.array(sorted(positions), dtype=np.int64)
    n_read = (int(hits[-1]) if len(hits) else 0) + K + extra
    if len(hits) == 0:
        assert window(n_read, hits, n_target) == (0, n_read)
        return
    runs = [sum(1 for g in positions if h - n_target <= g < h) for h in hits.tolist()]
    end = int(hits[runs.index(max(runs))]) + K
    margin = n_target // 10 + 30
    assert window(n_read, hits, n_target) == (max(0, end - n_target - K - margin), min(n_read, end + margin))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_alignment_lines_are_the_aligned_part_with_its_gaps(data):
    """The three lines (cut from one row of read letters, ``_project``) against the alignment they show: the
    target line without '-' is the aligned target, the read line without '-' is the aligned read (inserted letters
    in lower case against '-' in the target line), marks are blank in every gap column, and ``bases`` is the read
    line without its insertions."""
    amp = _amp(data.draw(st.sampled_from(["igfbp3", "biq"]), label="amplicon"))
    seq = _mutated(data, amp, "ACGTN")
    aln = align(amp, seq, None)
    if aln is None:
        return
    tline, marks, rline = aln.lines
    q = clean_read(seq) if aln.orientation == "+" else revcomp(clean_read(seq))
    assert tline.replace("-", "") == amp.target[aln.target_start:aln.target_end]
    assert rline.replace("-", "").upper() == q[aln.read_start:aln.read_end]
    assert sum(c.islower() for c in rline) == aln.insertions
    assert all(m == " " for g, m, r in zip(tline, marks, rline) if g == "-" or r == "-")
    assert "".join(r for g, r in zip(tline, rline) if g != "-") == "".join(aln.bases[aln.target_start:aln.target_end])


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_best_hits_of_a_panel_are_each_amplicons_vote(data):
    """The panel vote (the read's k-mers coded once, looked up in each amplicon's table) against each amplicon's
    own orientation vote: the hits of ``orient``'s first orientation, for reads of either amplicon, as given
    (lower case, IUPAC) or cleaned, and for reads shorter than a k-mer."""
    from bsmeth.alignment import best_hits, orient

    amps = [_amp("igfbp3"), _amp("biq")]
    seq = _mutated(data, data.draw(st.sampled_from(amps), label="from"), "ACGTNacgtRY")
    seq = seq[:data.draw(st.integers(0, len(seq)), label="length")]
    for s in (seq, clean_read(seq)):
        assert best_hits(amps, s) == [len(orient(amp, s)[0][2]) for amp in amps]
