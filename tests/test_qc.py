"""Tests of bsmeth.qc: conversion/identity figures, the verdict order, clonal duplicates, and real QUMA data."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readfixtures import clone

from bsmeth.alignment import align
from bsmeth.calling import call_read, sites
from bsmeth.cli import cli
from bsmeth.evidence import Signals
from bsmeth.models import AlignedRead, CallConfig, Read, ReadQC, ReadResult, Reason, Status
from bsmeth.pipeline import run_call
from bsmeth.qc import c_positions, chance_match, hq_bases, mark_duplicates, measure, verdict
from bsmeth.reference import build_amplicon, convert, load_amplicon, revcomp

DATA = Path(__file__).parent / "data"
CFG = CallConfig()

# A small amplicon with primers.  Top strand = F + M + R.
F = "GATCAGGATTGGAATCTAAG"  # forward site: non-CpG C at 3 and 15 (primer = converted form)
M = "TTCAACGATTGCATCCAT"  # middle: C2 HCH, C5 CpG, C11 GpC, C14 and C15 HCH
R = "GTTAGCAAGGATCTTGGAGA"  # reverse site: C at 5 and 12
OFF = len(F)


def aligned(amp, bases: str, quals=None, insertions: int = 0, score: float | None = None) -> AlignedRead:
    """A hand-made alignment: one letter per target position (' ' not covered, '-' deletion)."""
    assert len(bases) == amp.length
    covered = [t for t, b in enumerate(bases) if b != " "]
    q = np.array([0 if b in " -" else 99 for b in bases] if quals is None else quals, dtype=np.uint8)
    return AlignedRead(
        orientation="+", score=5.0 * len(covered) if score is None else score,
        target_start=covered[0], target_end=covered[-1] + 1, read_start=0, read_end=len(covered),
        bases=np.array(list(bases), dtype="U1"), quals=q, read_pos=np.arange(amp.length, dtype=np.int32),
        insertions=insertions, lines=("", "", ""),
    )


def put(seq: str, changes: dict[int, str]) -> str:
    s = list(seq)
    for i, b in changes.items():
        s[i] = b
    return "".join(s)


@pytest.fixture(scope="module")
def small():
    amp = build_amplicon("small", F + M + R, convert(F), revcomp(convert(R)))
    assert (amp.start, amp.end, amp.length) == (0, 58, 58)
    assert amp.forward_span == (0, 20) and amp.reverse_span == (38, 58)
    assert [c.target_pos for c in amp.cpgs] == [OFF + 5]
    return amp


# --------------------------------------------------------------------------- measure

def test_conversion_counts_only_high_quality_non_cpg_c_outside_primers(small):
    read = put(convert(small.target), {
        3: "C", OFF + len(M) + 5: "C",  # unconverted-looking C inside the primer sites: ignored
        OFF + 2: "T",  # converted HCH
        OFF + 5: "C",  # methylated CpG: not a conversion site
        OFF + 11: "C",  # unconverted C at GpC
        OFF + 14: "C",  # unconverted, but low quality: ignored
        OFF + 15: "T",  # converted
    })
    quals = [40] * small.length
    quals[OFF + 14] = CFG.min_qual - 1
    aln = aligned(small, read, quals)
    qc = measure(small, aln, Read("r", "f", read, np.array(quals, dtype=np.uint8)), CFG)
    assert (qc.converted, qc.unconverted) == (2, 1)
    assert qc.conversion == pytest.approx(2 / 3)
    assert qc.aligned_bases == len(M)  # primers excluded
    assert (qc.identity, qc.mismatches) == (1.0, 0)
    # nome: the GpC C is skipped
    nome = measure(small, aln, Read("r", "f", read, np.array(quals, dtype=np.uint8)), CallConfig(nome=True))
    assert (nome.converted, nome.unconverted) == (2, 0)


def test_conversion_none_without_informative_c(small):
    read = put(convert(small.target), {OFF + i: "N" for i in (2, 11, 14, 15)})
    qc = measure(small, aligned(small, read), Read("r", "f", read), CFG)
    assert (qc.converted, qc.unconverted, qc.conversion) == (0, 0, None)


def test_identity_counts_gaps_and_insertions_not_n(small):
    read = put(convert(small.target), {OFF + 7: "-", OFF + 8: "N", OFF + 9: "G"})
    qc = measure(small, aligned(small, read, insertions=2), Read("r", "f", read.replace("-", "")), CFG)
    # 18 middle positions: 1 gap, 1 N (ignored), 1 substitution, plus 2 inserted read bases
    assert qc.mismatches == 1 + 1 + 2
    assert qc.identity == pytest.approx(15 / 19)
    assert qc.aligned_bases == len(M)


def test_bisulfite_aware_identity(small):
    """T at a non-CpG C, C or T at a CpG are matches; A/G at a C is a mismatch."""
    for cpg_base in "CT":
        read = put(convert(small.target), {OFF + 5: cpg_base})
        assert measure(small, aligned(small, read), Read("r", "f", read), CFG).identity == 1.0
    read = put(convert(small.target), {OFF + 5: "A", OFF + 2: "G"})
    qc = measure(small, aligned(small, read), Read("r", "f", read), CFG)
    assert qc.mismatches == 2


def test_measure_covers_only_the_aligned_part(small):
    read = " " * (OFF + 4) + convert(small.target)[OFF + 4:OFF + 16] + " " * (small.length - OFF - 16)
    qc = measure(small, aligned(small, read), Read("r", "f", read.strip()), CFG)
    assert qc.aligned_bases == 12
    assert (qc.converted, qc.unconverted) == (3, 0)  # C11, C14, C15; C2 is not covered


def test_hq_bases():
    assert hq_bases(Read("r", "f", "ACGTNNAC"), CFG) == 6
    q = np.array([10, 20, 30, 19, 40], dtype=np.uint8)
    assert hq_bases(Read("r", "f", "ACGTA", q), CFG) == 3


# --------------------------------------------------------------------------- verdict

def _aln(n=200, score=None):
    return AlignedRead("+", 5.0 * n if score is None else score, 0, n, 0, n, np.full(n, "T"), np.zeros(n, np.uint8),
                       np.arange(n, dtype=np.int32), 0, ("", "", ""))


def _qc(**kw):
    base = dict(aligned_bases=200, identity=0.99, mismatches=2, converted=60, unconverted=0, hq_bases=300)
    return ReadQC(**{**base, **kw})


def test_verdict_passes_a_good_read():
    assert verdict(_aln(), _qc(), 300, CFG) == (None, "")


def test_verdict_order_of_precedence():
    """Each step fixes the first failing check: the reason moves down the documented order."""
    cfg = CallConfig(max_mismatches=10, max_unconverted=5)
    worst = _qc(identity=0.8, mismatches=30, converted=0, unconverted=0)
    steps = [
        (_aln(), worst, 10, Reason.LOW_QUALITY),
        (None, worst, 300, Reason.NO_AMPLICON),
        (_aln(n=cfg.min_aligned - 1), worst, 300, Reason.NO_AMPLICON),
        (_aln(score=3 * cfg.min_aligned - 1), worst, 300, Reason.NO_AMPLICON),
        # README: < 65 %
        (_aln(), _qc(identity=0.64, mismatches=30, converted=0, unconverted=0), 300, Reason.NO_AMPLICON),
        (_aln(), worst, 300, Reason.LOW_IDENTITY),
        (_aln(), _qc(mismatches=30, converted=0, unconverted=0), 300, Reason.TOO_MANY_MISMATCHES),
        (_aln(), _qc(converted=0, unconverted=0), 300, Reason.NO_CPH),
        (_aln(), _qc(converted=90, unconverted=10), 300, Reason.LOW_CONVERSION),
        (_aln(), _qc(converted=300, unconverted=6), 300, Reason.LOW_CONVERSION),  # 98 % but > max_unconverted
        (_aln(), _qc(converted=300, unconverted=5), 300, None),
    ]
    for aln, qc, hq, reason in steps:
        got, detail = verdict(aln, qc, hq, cfg)
        assert got is reason, (reason, got, detail)
        assert bool(detail) == (reason is not None)


def test_verdict_details_are_readable():
    assert verdict(_aln(), _qc(), 10, CFG)[1] == "10 high-quality bases < 40"
    assert verdict(_aln(), _qc(identity=0.8), 300, CFG)[1].startswith("identity 80.0% < 90.0%")
    assert "conversion 90.0% < 95.0%" in verdict(_aln(), _qc(converted=90, unconverted=10), 300, CFG)[1]


def test_thresholds_off_by_default():
    assert verdict(_aln(), _qc(mismatches=50, converted=1000, unconverted=20), 300, CFG) == (None, "")


# --------------------------------------------------------------------------- chance_match

def test_chance_match_agreeing_vectors():
    a = np.array([1, 0, -1, 1, 0], dtype=np.int8)
    b = np.array([1, 0, 1, -1, -1], dtype=np.int8)
    # per-site counts over the OTHER reads (the pair left out); the prior is worth two reads
    ones = np.array([1, 0, 2, 2, 2])
    known = np.array([2, 2, 4, 4, 4])
    prior = np.array([0.5, 0.1, 0.5, 0.5, 0.5])
    agree, log_p, n = chance_match(a, b, ones, known, prior=prior)
    assert agree and n == 2
    # site 0: (1 + 2 * .5) / (2 + 2) = .5 for C; site 1: P(T) = 1 - (0 + 2 * .1) / (2 + 2) = .95
    assert log_p == pytest.approx(math.log10(0.5) + math.log10(0.95))


def test_chance_match_disagreement_and_no_overlap():
    ones, known = np.full(3, 2), np.full(3, 4)
    a, b = np.array([1, 0, 1], dtype=np.int8), np.array([1, 1, 1], dtype=np.int8)
    assert chance_match(a, b, ones, known) == (False, 0.0, 3)
    agree, log_p, n = chance_match(a, b, ones, known, max_diff=1)  # one base-call error tolerated
    assert agree and n == 3 and log_p < 0
    assert chance_match(np.array([1, -1, -1]), np.array([-1, 0, -1]), ones, known) == (False, 0.0, 0)


def test_chance_match_counts_a_disagreement_against_the_pair_and_floors_rates():
    """Hand-computed: freq = (ones + 2 prior) / (known + 2) = (2 + 1) / (4 + 2) = .5 at every site.  Two
    agreeing sites give 2 log10(.5); the disagreement (b reads 1 where a reads 0) is a base-call error (1 %)
    if one molecule, b's state by chance (.5) if not: it costs log10(.01 / .5).  A floor of .8 at site 0
    makes a's C there likelier by chance (.8 instead of .5)."""
    ones, known, prior = np.full(3, 2), np.full(3, 4), np.full(3, 0.5)
    a, b = np.array([1, 0, 1], dtype=np.int8), np.array([1, 1, 1], dtype=np.int8)
    _, log_p, _ = chance_match(a, b, ones, known, 1, prior, error_rate=0.01)
    assert log_p == pytest.approx(2 * math.log10(0.5) - math.log10(0.01 / 0.5))
    _, floored, _ = chance_match(a, b, ones, known, 1, prior, floor=np.array([0.8, 0, 0]), error_rate=0.01)
    assert floored == pytest.approx(math.log10(0.8) + math.log10(0.5) - math.log10(0.01 / 0.5))


# --------------------------------------------------------------------------- mark_duplicates

@pytest.fixture(scope="module")
def biq_amp():
    return load_amplicon(DATA / "biq_demo/Master_Sequence.txt")


def result(amp, rid, seq, sample="s", qual=None, config=CFG) -> ReadResult:
    """One read through alignment, calling and measure (what the pipeline does before duplicates)."""
    read = Read(rid, f"{rid}.fa", seq, qual)
    aln = align(amp, seq, qual)
    qc = measure(amp, aln, read, config)
    assert verdict(aln, qc, hq_bases(read, config), config)[0] is None
    return ReadResult(rid, read.file, sample, Status.PASS, aligned=aln, qc=qc, calls=call_read(amp, aln, config))


def background(amp, n=6, seed=3):
    rng = random.Random(seed)
    return [clone(amp, [rng.random() < 0.5 for _ in amp.cpgs]) for _ in range(n)]


def _status(results):
    return {r.read_id: (r.status, r.reason, r.duplicate_of) for r in results}


def test_identical_clones_are_grouped_and_the_best_called_is_kept(biq_amp):
    x = clone(biq_amp, [i % 3 == 0 for i in range(len(biq_amp.cpgs))])
    with_n = put(x, {c.target_pos: "N" for c in biq_amp.cpgs[:4]})  # fewer CpGs called, first in input order
    rs = [result(biq_amp, f"bg{i}", s) for i, s in enumerate(background(biq_amp))]
    rs = [result(biq_amp, "x_n", with_n)] + rs + [result(biq_amp, "x", x)]
    out = _status(mark_duplicates(biq_amp, rs, CFG))
    assert out["x"] == (Status.PASS, None, "")
    assert out["x_n"] == (Status.FAIL, Reason.DUPLICATE, "x")
    assert all(out[f"bg{i}"] == (Status.PASS, None, "") for i in range(6))


def test_n_and_low_quality_are_wildcards(biq_amp):
    x = clone(biq_amp, [i % 2 == 0 for i in range(len(biq_amp.cpgs))])
    t0 = biq_amp.cpgs[0].target_pos
    assert x[t0] == "C"
    flipped = put(x, {t0: "T"})  # disagrees at CpG 1 ...
    qual = np.full(len(x), 40, dtype=np.uint8)
    qual[t0] = 5  # ... but there the base is low quality
    rs = [result(biq_amp, f"bg{i}", s) for i, s in enumerate(background(biq_amp))]
    rs += [result(biq_amp, "x", x), result(biq_amp, "x_lowq", flipped, qual=qual)]
    out = _status(mark_duplicates(biq_amp, rs, CFG))
    assert out["x_lowq"][1:] == (Reason.DUPLICATE, "x")
    # with high quality, more differences than the tolerated base-call errors mean two clones
    max_diff = getattr(CFG, "duplicate_max_diff", 0)
    other = put(x, {c.target_pos: ("T" if x[c.target_pos] == "C" else "C") for c in biq_amp.cpgs[:max_diff + 1]})
    rs[-1] = result(biq_amp, "x_other", other)
    out = _status(mark_duplicates(biq_amp, rs, CFG))
    assert out["x_other"] == (Status.PASS, None, "")


def test_duplicates_kept_with_keep_duplicates(biq_amp):
    x = clone(biq_amp, [i % 3 == 1 for i in range(len(biq_amp.cpgs))])
    rs = [result(biq_amp, f"bg{i}", s) for i, s in enumerate(background(biq_amp))]
    rs += [result(biq_amp, "x", x), result(biq_amp, "x2", x)]
    out = _status(mark_duplicates(biq_amp, rs, CallConfig(keep_duplicates=True)))
    assert out["x"] == (Status.PASS, None, "")
    assert out["x2"] == (Status.PASS, None, "x")


def test_duplicates_only_within_a_sample_and_among_passing_reads(biq_amp):
    x = clone(biq_amp, [i % 3 == 1 for i in range(len(biq_amp.cpgs))])
    bg = background(biq_amp)
    rs = ([result(biq_amp, f"a{i}", s, "A") for i, s in enumerate(bg)]
          + [result(biq_amp, f"b{i}", s, "B") for i, s in enumerate(bg)])
    rs += [result(biq_amp, "xa", x, "A"), result(biq_amp, "xb", x, "B")]
    out = mark_duplicates(biq_amp, rs, CFG)
    assert all(r.status is Status.PASS and not r.duplicate_of for r in out)
    failed = ReadResult("xa_fail", "f", "A", Status.FAIL, Reason.LOW_CONVERSION, aligned=rs[-2].aligned, qc=rs[-2].qc,
                        calls=rs[-2].calls)
    out = mark_duplicates(biq_amp, rs + [failed], CFG)
    assert out[-1].reason is Reason.LOW_CONVERSION and not out[-1].duplicate_of


@pytest.mark.parametrize("n_unmeth,n_background", [(2, 0), (3, 0), (5, 0), (2, 4)])
def test_identical_unmethylated_fully_converted_reads_are_not_duplicates(biq_amp, n_unmeth, n_background):
    """README: identical, fully converted, unmethylated clones carry no evidence of being one molecule and are
    never called duplicates."""
    u = clone(biq_amp, [False] * len(biq_amp.cpgs))
    rs = [result(biq_amp, f"bg{i}", s) for i, s in enumerate(background(biq_amp, n_background, seed=1))]
    rs += [result(biq_amp, f"u{i}", u) for i in range(n_unmeth)]
    out = mark_duplicates(biq_amp, rs, CFG)
    assert [r.read_id for r in out if r.duplicate_of] == []


def test_many_identical_unmethylated_reads_are_not_duplicates(biq_amp):
    u = clone(biq_amp, [False] * len(biq_amp.cpgs))
    out = mark_duplicates(biq_amp, [result(biq_amp, f"u{i}", u) for i in range(12)], CFG)
    assert [r.read_id for r in out if r.duplicate_of] == []


# --------------------------------------------------------------------------- real data: QUMA Gm9 sample

GARBAGE = {"Gm9_J1_seq_06", "Gm9_J1_seq_09", "Gm9_16aabb_seq_03", "Gm9_16aabb_seq_08", "Gm9_16aabb_seq_13",
           "Gm9_16aabb_seq_15"}


@pytest.fixture(scope="module")
def gm9_run(tmp_path_factory):
    d = DATA / "quma_gm9"
    amp = load_amplicon(d / "sample_genome_fasta.txt")  # whole-reference mode
    run = run_call([str(d / "Gm9_J1_multi_fasta.txt"), str(d / "Gm9_16aabb_multi_fasta.txt")], amp,
                   tmp_path_factory.mktemp("gm9"), CallConfig())
    reads = {}
    for f in ("Gm9_J1_multi_fasta.txt", "Gm9_16aabb_multi_fasta.txt"):
        name = None
        for line in (d / f).read_text().splitlines():
            if line.startswith(">"):
                name = line[1:].split()[0]
                reads[name] = ""
            elif name:
                reads[name] += line.strip().upper()
    return amp, {r.read_id: r for r in run.results}, reads


def test_gm9_amplicon(gm9_run):
    amp, _, _ = gm9_run
    assert amp.length == 453
    assert [c.ref_pos + 1 for c in amp.cpgs] == [26, 42, 49, 54, 78, 88, 90, 118, 134, 156, 198, 212, 218, 242, 246,
                                                  264, 338, 343, 375]


def test_gm9_reads_are_oriented_and_vector_trimmed(gm9_run):
    amp, results, reads = gm9_run
    assert len(results) == 32
    aligned = [r for r in results.values() if r.aligned is not None]
    assert len(aligned) >= 20
    assert {r.read_id for r in results.values() if r.status is Status.PASS} <= {r.read_id for r in aligned}
    for r in aligned:
        aln = r.aligned
        assert aln.orientation == ("-" if r.read_id == "Gm9_16aabb_seq_16" else "+"), r.read_id
        # the pGEM-T-Easy-type vector before the insert is not aligned...
        assert aln.read_start > 20, r.read_id
        oriented = reads[r.read_id] if aln.orientation == "+" else revcomp(reads[r.read_id])
        # ...nor the vector after it: the aligned read spans the covered amplicon (give or take indels)
        assert abs((aln.read_end - aln.read_start) - (aln.target_end - aln.target_start)) <= 10, r.read_id
        assert "GAATTC" in oriented[aln.read_end:aln.read_end + 25], r.read_id  # EcoRI site of the 3' flank
        # the long read-through into the vector (3' end of the read as given) is outside the alignment too
        assert (len(oriented) - aln.read_end if aln.orientation == "+" else aln.read_start) > 300, r.read_id


def test_gm9_low_conversion_and_wrong_products(gm9_run):
    _, results, _ = gm9_run
    j15 = results["Gm9_J1_seq_15"]
    assert (j15.status, j15.reason) == (Status.FAIL, Reason.LOW_CONVERSION)
    assert j15.qc.conversion < 0.6
    for rid in GARBAGE:
        # README: an identity below 65 % is what unrelated sequence reaches by chance: a wrong product
        assert (results[rid].status, results[rid].reason) == (Status.FAIL, Reason.NO_AMPLICON), (
            rid, results[rid].detail)
    # every other read passes, or fails only as a clonal duplicate of a passing read
    for rid in set(results) - GARBAGE - {"Gm9_J1_seq_15", SHORT_INSERT}:
        r = results[rid]
        assert r.status is Status.PASS or (r.reason is Reason.DUPLICATE
                                           and results[r.duplicate_of].status is Status.PASS)


SHORT_INSERT = "Gm9_16aabb_seq_14"  # 105 bp of the 453-bp region between vector (its SOURCE.md)


def test_gm9_short_insert_is_no_amplicon(gm9_run):
    """A clone whose insert is a 105-bp piece of the region, vector on both sides: not a partial read of the
    amplicon, which would enter the clone-level tests as a clone called over one CpG."""
    _, results, _ = gm9_run
    r = results[SHORT_INSERT]
    assert (r.status, r.reason) == (Status.FAIL, Reason.NO_AMPLICON)
    assert r.detail.startswith("short insert of 105 bp between non-amplicon sequence")
    assert "primer dimer or truncated product" in r.detail


def test_gm9_methylation_wild_type_vs_dnmt3a_3b_knockout(gm9_run):
    _, results, _ = gm9_run

    def methylation(prefix):
        rs = [r for rid, r in results.items() if rid.startswith(prefix) and r.status is Status.PASS]
        pooled = sum(c.call.value == "M" for r in rs for c in r.calls) / sum(r.n_called for r in rs)
        per_read = sum(r.methylation for r in rs) / len(rs)
        return pooled, per_read

    assert min(methylation("Gm9_J1_")) > 0.60
    assert max(methylation("Gm9_16aabb_")) < 0.35


# --------------------------------------------------------------------------- the QUMA toy example (20-bp reference)

QUMA_EASY = {"bisulfite1": "UM", "bisulfite2": "UM", "bisulfite3": "UM", "bisulfite4": "MM", "bisulfite5": "UU",
             "bisulfite6": "UU", "bisulfite7": "MU"}  # QUMA_rerun_easy_example.tsv: 01 01 01 11 00 00 10


def _toy_run(tmp_path, config):
    d = DATA / "quma_toy"
    amp = load_amplicon(d / "easy_example_reference.fasta")
    assert [c.ref_pos + 1 for c in amp.cpgs] == [9, 14]
    return run_call([str(d / "easy_example_bisulfite.fasta")], amp, tmp_path, config).results


def test_quma_easy_example_with_default_thresholds_matches_quma(tmp_path):
    """A 20-bp region: the read-length thresholds (40 high-quality bases, 30 aligned) are scaled to half of it
    (pipeline.fit_to_amplicon), so QUMA's answer is reproduced with the defaults."""
    results = _toy_run(tmp_path, CallConfig())
    assert {r.read_id: "".join(c.call.value for c in r.calls) for r in results} == QUMA_EASY
    assert all(r.status is Status.PASS for r in results)


def test_quma_easy_example_cli_warns_and_calls(tmp_path):
    from click.testing import CliRunner

    d = DATA / "quma_toy"
    res = CliRunner().invoke(cli, ["call", str(d / "easy_example_bisulfite.fasta"), "--reference",
                                   str(d / "easy_example_reference.fasta"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "thresholds are scaled" in res.output
    rows = (tmp_path / "out" / "reads.tsv").read_text().splitlines()[1:]
    assert len(rows) == 7 and all("\tpass\t" in row for row in rows)


def test_quma_easy_example_matches_quma_with_thresholds_for_20_bp(tmp_path):
    results = _toy_run(tmp_path, CallConfig(min_hq_bases=10, min_aligned=10))
    assert {r.read_id: "".join(c.call.value for c in r.calls) for r in results} == QUMA_EASY
    assert all(r.status is Status.PASS for r in results)
    assert all(r.qc.conversion == 1.0 and r.qc.converted == 4 for r in results)
    # reads 2, 3 and 5 have one mismatch (the G of CpG 9 reads A): 95 % identity as in QUMA
    assert {r.read_id: round(100 * r.qc.identity, 1) for r in results} == {
        rid: (95.0 if rid in ("bisulfite2", "bisulfite3", "bisulfite5") else 100.0) for rid in QUMA_EASY}


@pytest.mark.parametrize("table", [(5, 14, 1, 34), (13, 27, 1, 89), (0, 10, 0, 20), (3, 3, 0, 40), (7, 0, 2, 1)])
def test_gpc_enrichment_p_equals_scipy_one_sided_fisher(table):
    from scipy.stats import fisher_exact

    from bsmeth.qc import gpc_enrichment_p

    a, b, c, d = table
    expected = fisher_exact([[a, b], [c, d]], alternative="greater")[1]
    assert gpc_enrichment_p(a, b, c, d) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_poorly_converted_clone_is_not_taken_for_nome(tmp_path):
    """A randomly poorly converted clone of a GC-rich amplicon keeps C mostly at GpC by chance (most C are
    there): no NOMe hint for it, unlike the NOMe-treated Oct4 reads (test_pipeline)."""
    root = DATA.parent.parent
    sheet = root / "example_reads" / "samples.csv"
    run = run_call([str(root / "example_reads")], load_amplicon(), tmp_path / "o", CallConfig(), sheet_path=str(sheet))
    low = [r for r in run.results if r.reason is Reason.LOW_CONVERSION]
    assert low and not any("NOMe" in r.detail for r in low)


# --------------------------------------------------------------------------- short products

MAPIT = DATA / "mapit454"


@pytest.fixture(scope="module")
def mapit_results():
    from bsmeth.pipeline import fit_to_amplicon, process_file

    amp = load_amplicon(MAPIT / "reference.fa")
    return {r.read_id: r for r in process_file(MAPIT / "reads.fasta", "m", amp,
                                                 fit_to_amplicon(CallConfig(nome=True), amp))}


def test_every_454_read_under_100_nt_is_no_amplicon(mapit_results):
    """The primer dimers (MID + primer + primer + MID, 70-80 nt) and other short products of the 454 set:
    their best alignments (66-72 % over 31-65 bases) are what unrelated sequence reaches by chance."""
    short = [r for r in mapit_results.values() if r.length < 100]
    assert len(short) == 138
    for r in short:
        assert (r.status, r.reason) == (Status.FAIL, Reason.NO_AMPLICON), (r.read_id, r.detail)
        assert "by chance" in r.detail or "no alignment" in r.detail
    # the longer reads keep their decisions: the only partial one (230 nt, 185 bp of the amplicon, the read
    # ends there) is a partial read, not a short product
    partial = mapit_results["H4XQCM208JETG1"]
    assert partial.status is Status.PASS and partial.aligned.target_end - partial.aligned.target_start == 185
    assert sum(r.reason is Reason.NO_AMPLICON for r in mapit_results.values() if r.length >= 100) == 3


@pytest.mark.parametrize("orientation", ["+", "-"])
@pytest.mark.parametrize("case", ["vector both sides", "read ends", "quality collapses", "full insert"])
def test_short_insert_between_vector_fails_but_a_partial_read_does_not(orientation, case):
    amp = load_amplicon(DATA / "quma_gm9/sample_genome_fasta.txt")
    rng = random.Random(5)
    # real pCR4-TOPO vector either side of the cloning site (the A07 clone's read, its insert left out)
    a07 = "".join(ln.strip() for ln in (DATA / "pcr4topo/456484801_1_1_M13F_A07.seq.fasta").read_text().splitlines()
                  if not ln.startswith(">")).upper()
    left = a07[:a07.index("GAATTCGCCCTT") + 12][-60:]
    vector_right = a07[a07.index("AAGGGCGAATTCGTTTAAACC"):][:200]
    insert = clone(amp, [True] * len(amp.cpgs))
    piece = insert if case == "full insert" else insert[300:420]
    right = {"vector both sides": vector_right, "read ends": "", "full insert": vector_right,
             "quality collapses": "".join(rng.choice("ACGT") for _ in range(200))}[case]
    seq = left + piece + right
    qual = np.full(len(seq), 40, dtype=np.uint8)
    if case == "quality collapses":
        qual[len(left) + len(piece):] = 5  # the tail past the insert: base-caller noise
    if orientation == "-":
        seq, qual = revcomp(seq), qual[::-1].copy()
    from bsmeth.pipeline import process_read

    r = process_read(Read("r", "r.ab1", seq, qual), "s", amp, CFG)
    if case == "vector both sides":
        assert (r.status, r.reason) == (Status.FAIL, Reason.NO_AMPLICON)
        # the 120-bp piece, give or take a few vector bases the local alignment takes along by chance
        bp = int(r.detail.split()[3])
        assert r.detail.startswith("short insert of ") and 120 <= bp < 160, r.detail
    else:
        assert r.status is Status.PASS, r.detail
        assert r.aligned.orientation == orientation


# --------------------------------------------------------------------------- duplicates at scale

def test_pair_evidence_equals_chance_match_pair_by_pair():
    """The vectorised evidence of every pair equals chance_match with the counts over the other reads
    (the pair left out; CpGs only from reads within SIMILAR_LEVEL of the pair's methylation)."""
    from bsmeth.qc import SIMILAR_LEVEL, candidate_pairs, pair_evidence

    rng = np.random.default_rng(4)
    n, sites = 40, 30
    cpg = np.arange(sites) < 12
    mat = np.where(rng.random((n, sites)) < 0.15, -1, (rng.random((n, sites)) < np.where(cpg, 0.4, 0.03)))
    mat = mat.astype(np.int8)
    mat[7], mat[8] = mat[3], mat[3]  # two exact copies
    m_cpg = np.count_nonzero((mat == 1) & cpg, axis=1)
    n_cpg = np.count_nonzero((mat >= 0) & cpg, axis=1)
    level = np.where(n_cpg > 0, m_cpg / np.maximum(n_cpg, 1), 0.5)
    rate = 0.03
    i, j = np.triu_indices(n, 1)
    agree, log_p = pair_evidence(mat, level, cpg, rate, i, j, 1)
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        pl = (level[a] + level[b]) / 2
        others = [m for m in range(n) if m not in (a, b)]
        sim = [m for m in others if pl - SIMILAR_LEVEL - 1e-12 <= level[m] <= pl + SIMILAR_LEVEL + 1e-12]
        ones = np.where(cpg, (mat[sim] == 1).sum(0), (mat[others] == 1).sum(0))
        known = np.where(cpg, (mat[sim] >= 0).sum(0), (mat[others] >= 0).sum(0))
        prior = np.where(cpg, min(max(pl, 0.01), 0.99), rate)
        # non-CpG C: never below the pair's own non-conversion rate
        unconv = np.count_nonzero((mat[[a, b]] == 1) & ~cpg)
        seen = np.count_nonzero((mat[[a, b]] >= 0) & ~cpg)
        floor = np.where(cpg, 0.0, (unconv + 0.5) / (seen + 1.0))
        ok, lp, _ = chance_match(mat[a], mat[b], ones, known, 1, prior, floor, error_rate=0.01)
        assert ok == agree[k]
        if ok:
            assert log_p[k] == pytest.approx(lp, abs=1e-9)
    # the candidate pairs are exactly the agreeing ones
    ci, cj = candidate_pairs(mat, 1)
    assert set(zip(ci.tolist(), cj.tolist())) == {(a, b) for a, b, ok in zip(i.tolist(), j.tolist(), agree) if ok}
    assert (3, 7) in set(zip(ci.tolist(), cj.tolist()))


def test_duplicate_threshold_is_corrected_for_the_comparisons_per_clone():
    from bsmeth.qc import evidence_needed

    base = CFG.duplicate_min_evidence
    assert evidence_needed(2, CFG) == evidence_needed(12, CFG) == base  # as calibrated
    assert evidence_needed(50, CFG) == pytest.approx(base + math.log10(49 / 11))
    assert evidence_needed(250, CFG) == pytest.approx(base + math.log10(249 / 11))
    assert (evidence_needed(250, CallConfig(duplicate_min_evidence=base + 1))
            == pytest.approx(evidence_needed(250, CFG) + 1))


def test_state_matrix_is_the_same_for_calls_given_as_cpgcall_objects(biq_amp):
    """The C/T states duplicate grouping compares: from the calls' strings (the pipeline's CpGCalls) and from
    any sequence of CpGCall objects alike."""
    from dataclasses import replace

    from bsmeth.qc import _state_matrix

    rs = [result(biq_amp, f"bg{i}", s) for i, s in enumerate(background(biq_amp))]
    as_objects = [replace(r, calls=tuple(r.calls)) for r in rs]
    fast = _state_matrix(biq_amp, rs, CFG)
    assert (fast == 1).any() and (fast == 0).any()
    assert np.array_equal(_state_matrix(biq_amp, as_objects, CFG), fast)


# --------------------------------------------------------------------------- measure against its definitions

def _measure_by_masks(amp, aln, config):
    """measure's figures from the definitions, one mask each (the formulation before the one-bincount form)."""
    st_ = sites(amp)
    t0, t1 = aln.target_start, aln.target_end
    b = aln.bases[t0:t1]
    tgt = np.array(list(amp.target[t0:t1]))
    is_c, cpg, gpc = st_.is_c[t0:t1], st_.cpg[t0:t1], st_.gpc[t0:t1]
    span = ~st_.primer[t0:t1]
    gap = span & (b == "-")
    known = span & ~gap & (b != "N") & ~st_.snp[t0:t1]
    match = known & ((is_c & ((b == "C") | (b == "T"))) | (~is_c & (b == tgt)))
    matches = int(match.sum())
    mism = int(gap.sum()) + int(known.sum()) - matches + aln.insertions
    hq = known & (aln.quals[t0:t1] >= config.min_qual) & is_c & ~cpg
    hch = hq & ~gpc
    counted = hch if config.nome else hq
    total = matches + mism
    return (int(span.sum()), matches / total if total else 0.0, mism, int((counted & (b == "T")).sum()),
            int((counted & (b == "C")).sum()), int((hch & (b == "T")).sum()), int((hch & (b == "C")).sum()))


def _mixed_by_median(amp, aln, signals, config):
    """The mixed-site counts with the local quality as the median of the 11 qualities around each site."""
    t0, t1 = aln.target_start, aln.target_end
    j = np.clip(signals.targets[:, None] + np.arange(-5, 6), t0, t1 - 1)
    good = np.median(aln.quals[j].astype(float), axis=1) >= config.mixed_min_local_qual
    mixed = signals.mixed & good
    is_cpg = sites(amp).cpg[signals.targets]
    return (int((mixed & is_cpg).sum()), int((good & is_cpg).sum()), int((mixed & ~is_cpg).sum()),
            int((good & ~is_cpg).sum()))


_IGFBP3 = load_amplicon()  # has a known SNP
# no primers, and letters in the target that a loaded reference cannot hold (IUPAC codes): measure looks the
# read's letter up by the target letters of the amplicon (qc._tables), which must not assume A, C, G, T, N
_ODD = build_amplicon("odd", "TTCGNNRACGCAYGCGTACNNGCTAGCRCGATCCATGGTTAACCGGTTCAGCAGCATGCCNACGTT")


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_measure_equals_its_definitions_on_random_alignments(data):
    amp = data.draw(st.sampled_from([_IGFBP3, _ODD]))
    n = amp.length
    t0 = data.draw(st.integers(0, n - 12))
    t1 = data.draw(st.integers(t0 + 11, n))
    bases = np.full(n, " ", dtype="U1")
    # read letters: bases, IUPAC codes (some in _ODD's target), and code points past 255 (looked up as 255)
    bases[t0:t1] = data.draw(st.lists(st.sampled_from("ACGTTCN-RYÿĀ"), min_size=t1 - t0, max_size=t1 - t0))
    quals = np.zeros(n, dtype=np.uint8)
    quals[t0:t1] = data.draw(st.lists(st.sampled_from([0, 5, 19, 20, 29, 30, 40, 99]), min_size=t1 - t0,
                                      max_size=t1 - t0))
    aln = AlignedRead("+", 100.0, t0, t1, 0, t1 - t0, bases, quals, np.arange(n, dtype=np.int32),
                      data.draw(st.integers(0, 3)), ("", "", ""))
    config = CallConfig(min_qual=data.draw(st.sampled_from([10, 20, 30])), nome=data.draw(st.booleans()),
                        mixed_min_local_qual=data.draw(st.sampled_from([20, 30])))
    # trace evidence at some of the C, their reference heights given
    cs = c_positions(amp, aln)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(cs), max_size=len(cs))), dtype=bool)
    tg = cs[keep] if keep.any() else cs[:1]
    m = len(tg)
    heights = np.array(data.draw(st.lists(st.sampled_from([0.0, 40.0, 100.0, 300.0, np.nan]), min_size=2 * m,
                                          max_size=2 * m))).reshape(2, m)
    ref = np.array(data.draw(st.lists(st.sampled_from([0.0, 200.0, 1000.0]), min_size=m, max_size=m)))
    signals = Signals(tg, heights, ref) if m else {}
    qc = measure(amp, aln, Read("r", "r", "A"), config, signals, n_hq=7)
    assert (qc.aligned_bases, qc.identity, qc.mismatches, qc.converted, qc.unconverted, qc.hch_converted,
            qc.hch_unconverted) == _measure_by_masks(amp, aln, config)
    if m:
        assert (qc.mixed_cpgs, qc.traced_cpgs, qc.mixed_cph, qc.traced_cph) == _mixed_by_median(amp, aln, signals,
                                                                                                 config)
