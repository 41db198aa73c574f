"""Tests of bsmeth.calling: M/U/- per CpG with the reason, genotypes, and the real BiQ Analyzer demo."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.calling import call_cpg, call_read, genotype, snp_target
from bsmeth.cli import cli
from bsmeth.evidence import Signals, is_mixed
from bsmeth.models import SNP, AlignedRead, Call, CallConfig, Reason, Status, Strand, Why
from bsmeth.pipeline import run_call
from bsmeth.reference import build_amplicon, convert, load_amplicon, read_reference, revcomp

DATA = Path(__file__).parent / "data"
BIQ = DATA / "biq_demo"

# A toy whole-reference amplicon: CpGs at 3 (in GCG), 8, 13 and 19 (in GCG)
TOY = "AAGCGTTACGTTTCGATTGCGA"


def aligned(amp, bases: str, quals=None) -> AlignedRead:
    """A hand-made alignment: ``bases`` has one letter per target position (' ' not covered, '-' gap)."""
    assert len(bases) == amp.length
    covered = [t for t, b in enumerate(bases) if b != " "]
    read_pos = np.full(amp.length, -1, dtype=np.int32)
    k = 0
    for t in covered:
        if bases[t] != "-":
            read_pos[t] = k
            k += 1
    if quals is None:
        q = np.array([0 if b in " -" else 99 for b in bases], dtype=np.uint8)
    else:
        q = np.asarray(quals, dtype=np.uint8)
    return AlignedRead(
        orientation="+", score=5.0 * len(covered), target_start=covered[0], target_end=covered[-1] + 1,
        read_start=0, read_end=k, bases=np.array(list(bases), dtype="U1"), quals=q, read_pos=read_pos,
        insertions=0, lines=("", "", ""),
    )


def put(seq: str, t: int, b: str) -> str:
    return seq[:t] + b + seq[t + 1:]


@pytest.fixture(scope="module")
def toy():
    amp = build_amplicon("toy", TOY)
    assert [c.target_pos for c in amp.cpgs] == [3, 8, 13, 19]
    return amp


@pytest.fixture(scope="module")
def igfbp3():
    return load_amplicon()


CFG = CallConfig()


# --------------------------------------------------------------------------- M, U and every reason

def test_c_is_methylated_t_is_unmethylated(toy):
    read = convert(TOY, methylated_cpg=True)  # C at every CpG
    read = put(read, 8, "T")
    calls = call_read(toy, aligned(toy, read), CFG)
    assert [c.call for c in calls] == [Call.METHYLATED, Call.UNMETHYLATED, Call.METHYLATED, Call.METHYLATED]
    assert [c.why for c in calls] == [None] * 4
    assert [c.base for c in calls] == ["C", "T", "C", "C"]
    assert all(c.qual is None for c in calls)  # sequence without qualities
    assert [c.cpg.number for c in calls] == [1, 2, 3, 4]


@pytest.mark.parametrize("base,why,shown", [
    ("-", Why.GAP, "-"),
    ("A", Why.OTHER_BASE, "A"),
    ("G", Why.OTHER_BASE, "G"),
    ("N", Why.AMBIGUOUS, "N"),
    (" ", Why.NOT_COVERED, ""),
])
def test_reasons_for_not_determined(toy, base, why, shown):
    calls = call_read(toy, aligned(toy, put(convert(TOY), 13, base)), CFG)
    assert (calls[2].call, calls[2].why, calls[2].base) == (Call.NOT_DETERMINED, why, shown)
    assert [c.call for i, c in enumerate(calls) if i != 2] == [Call.UNMETHYLATED] * 3  # the others untouched


def test_not_covered_ends_of_a_partial_read(toy):
    read = " " * 6 + convert(TOY)[6:15] + " " * 7
    calls = call_read(toy, aligned(toy, read), CFG)
    assert [c.why for c in calls] == [Why.NOT_COVERED, None, None, Why.NOT_COVERED]
    assert [c.base for c in calls] == ["", "T", "T", ""]


def test_low_quality(toy):
    read = convert(TOY, methylated_cpg=True)
    quals = [40] * toy.length
    quals[8], quals[13] = CFG.min_qual - 1, CFG.min_qual
    calls = call_read(toy, aligned(toy, read, quals), CFG)
    assert (calls[1].call, calls[1].why, calls[1].base, calls[1].qual) == (Call.NOT_DETERMINED, Why.LOW_QUALITY,
                                                                           "C", CFG.min_qual - 1)
    assert (calls[2].call, calls[2].qual) == (Call.METHYLATED, CFG.min_qual)  # the threshold itself is enough
    assert calls[0].qual == 40
    # a lower threshold calls it
    assert call_read(toy, aligned(toy, read, quals), CallConfig(min_qual=10))[1].call is Call.METHYLATED


def test_under_primer(igfbp3):
    read = convert(igfbp3.target, methylated_cpg=True)
    calls = call_read(igfbp3, aligned(igfbp3, read), CFG)
    assert [c.cpg.number for c in calls if c.why is Why.UNDER_PRIMER] == [1, 27]
    assert all(c.call is Call.NOT_DETERMINED for c in calls if c.cpg.under_primer)
    assert sum(c.call is Call.METHYLATED for c in calls) == 25
    assert calls[0].base == "C"  # the base is still shown
    # under_primer wins even where the read does not cover the site
    assert call_read(igfbp3, aligned(igfbp3, " " + read[1:]), CFG)[0].why is Why.UNDER_PRIMER


def test_snp_allele_is_a_genotype_not_a_methylation_state(igfbp3):
    cpg = next(c for c in igfbp3.cpgs if c.snp is not None)
    assert cpg.ref_pos == 88
    t = cpg.target_pos
    assert snp_target(igfbp3, cpg.snp) == (t, "A")
    base = convert(igfbp3.target, methylated_cpg=True)
    for b, call, why, geno in (("A", Call.NOT_DETERMINED, Why.SNP, "rs2854744:A"),
                               ("C", Call.METHYLATED, None, "rs2854744:C"),
                               ("T", Call.UNMETHYLATED, None, "rs2854744:C")):
        aln = aligned(igfbp3, put(base, t, b))
        c = call_cpg(igfbp3, cpg, aln, CFG)
        assert (c.call, c.why, c.base) == (call, why, b)
        assert genotype(igfbp3, aln) == geno
    # not covered, gap or N: no genotype
    assert genotype(igfbp3, aligned(igfbp3, put(base, t, " "))) == ""
    assert genotype(igfbp3, aligned(igfbp3, put(base, t, "-"))) == ""
    assert genotype(igfbp3, aligned(igfbp3, put(base, t, "N"))) == ""
    # a base that is neither allele: other_base and no genotype
    aln = aligned(igfbp3, put(base, t, "G"))
    assert call_cpg(igfbp3, cpg, aln, CFG).why is Why.OTHER_BASE
    assert genotype(igfbp3, aln) == ""


def test_snp_on_a_bottom_strand_amplicon(igfbp3):
    seq = read_reference()[1]
    n = len(seq)
    snp = SNP(pos=n - 1 - 88, ref="G", alt="T", name="rs2854744")  # the same SNP in the reverse-complemented FASTA
    amp = build_amplicon("rc", revcomp(seq), igfbp3.forward, igfbp3.reverse, snps=[snp])
    assert amp.strand is Strand.BOTTOM
    cpg = next(c for c in amp.cpgs if c.snp is not None)
    t = cpg.target_pos
    assert snp_target(amp, snp) == (t, "A")  # the amplified strand reads the complement of T
    base = convert(amp.target)
    aln = aligned(amp, put(base, t, "A"))
    assert call_cpg(amp, cpg, aln, CFG).why is Why.SNP
    assert genotype(amp, aln) == "rs2854744:T"
    assert genotype(amp, aligned(amp, base)) == "rs2854744:G"


def test_snp_without_name_is_reported_by_position():
    amp = build_amplicon("toy", TOY, snps=[SNP(pos=8, ref="C", alt="A")])
    aln = aligned(amp, put(convert(TOY), 8, "A"))
    assert genotype(amp, aln) == "9:A"


def test_gcg_with_nome(toy):
    read = convert(TOY, methylated_cpg=True)
    nome = call_read(toy, aligned(toy, read), CallConfig(nome=True))
    assert [c.why for c in nome] == [Why.GCG, None, None, Why.GCG]  # CpGs 1 and 4 sit in GCG
    assert [c.call for c in nome] == [Call.NOT_DETERMINED, Call.METHYLATED, Call.METHYLATED, Call.NOT_DETERMINED]
    plain = call_read(toy, aligned(toy, read), CFG)
    assert all(c.call is Call.METHYLATED for c in plain)


def test_genotype_without_snps_is_empty(toy):
    assert genotype(toy, aligned(toy, convert(TOY))) == ""


# --------------------------------------------------------------------------- the real BiQ Analyzer demo

def methvisual() -> dict[str, str]:
    """methVisual's stored result: clone -> '0'/'1' string over the 35 CpGs, and the CpG positions."""
    rows = [ln for ln in (BIQ / "methVisual_methData.tsv").read_text().splitlines() if ln and not ln.startswith("#")]
    header = rows[0].split("\t")
    out = {"positions": [int(p) for p in header[1:]]}
    for ln in rows[1:]:
        f = ln.split("\t")
        out[f[0].replace("QC_", "").replace(".fasta", "")] = "".join(f[1:])
    return out


def quma_pconv() -> dict[str, float]:
    rows = [ln for ln in (BIQ / "QUMA_rerun_BiQdemo.tsv").read_text().splitlines() if ln and not ln.startswith("#")]
    header = rows[0].split("\t")
    i_name, i_pconv = header.index("name"), header.index("pconv")
    return {ln.split("\t")[i_name].strip(): float(ln.split("\t")[i_pconv]) for ln in rows[1:]}


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


PASSING = ["seq_B", "seq_C", "seq_E", "seq_G", "seq_H", "seq_I"]
AMBIGUOUS_CELL = ("seq_E", 69)  # SOURCE.md: the call depends on where the aligner puts a 1-nt insertion


@pytest.fixture(scope="module")
def biq_keep(tmp_path_factory):
    """The demo through the CLI: --reference Master_Sequence.txt --keep-duplicates."""
    out = tmp_path_factory.mktemp("biq_keep")
    res = CliRunner().invoke(cli, ["call", str(BIQ / "multiFASTA.fasta"), "--reference",
                                   str(BIQ / "Master_Sequence.txt"), "--keep-duplicates", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def biq_default(tmp_path_factory):
    amp = load_amplicon(BIQ / "Master_Sequence.txt")
    return run_call([str(BIQ / "multiFASTA.fasta")], amp, tmp_path_factory.mktemp("biq"), CallConfig())


def test_biq_amplicon_matches_methvisual_positions():
    amp = load_amplicon(BIQ / "Master_Sequence.txt")
    assert amp.length == 233
    assert [c.ref_pos + 1 for c in amp.cpgs] == methvisual()["positions"]


def test_biq_demo_passing_reads_and_calls_equal_methvisual(biq_keep):
    expected = methvisual()
    positions = expected["positions"]
    reads = read_tsv(biq_keep / "reads.tsv")
    assert sorted(r["read"] for r in reads if r["status"] == "pass") == PASSING
    calls = read_tsv(biq_keep / "cpg_calls.tsv")
    for rid in PASSING:
        got = {int(c["pos"]): c["call"] for c in calls if c["read"] == rid}
        assert sorted(got) == positions
        for pos, bit in zip(positions, expected[rid]):
            want = "M" if bit == "1" else "U"
            if (rid, pos) == AMBIGUOUS_CELL:
                assert got[pos] in ("M", "U")
            else:
                assert got[pos] == want, (rid, pos)
    orient = {r["read"]: r["orientation"] for r in reads}
    assert orient["seq_C"] == "-" and all(orient[r] == "+" for r in PASSING if r != "seq_C")
    dup = {r["read"]: r["duplicate_of"] for r in reads}
    assert dup["seq_G"] == "seq_B"  # still reported with --keep-duplicates


def test_biq_demo_duplicate_and_failing_reads(biq_default):
    by_id = {r.read_id: r for r in biq_default.results}
    assert len(by_id) == 10
    g = by_id["seq_G"]
    assert (g.status, g.reason, g.duplicate_of) == (Status.FAIL, Reason.DUPLICATE, "seq_B")
    assert sorted(r.read_id for r in biq_default.results if r.status is Status.PASS) == \
        ["seq_B", "seq_C", "seq_E", "seq_H", "seq_I"]
    expected = {"seqA": Reason.LOW_IDENTITY, "seq_J": Reason.LOW_IDENTITY,
                "seq_D": Reason.LOW_CONVERSION, "seq_F": Reason.LOW_CONVERSION}
    for rid, reason in expected.items():
        assert (by_id[rid].status, by_id[rid].reason) == (Status.FAIL, reason), (rid, by_id[rid].detail)


def test_biq_demo_conversion_equals_quma(biq_default):
    pconv = quma_pconv()
    by_id = {r.read_id: r for r in biq_default.results}
    assert sorted(pconv) == sorted(by_id)
    for rid, expected in pconv.items():
        conv = by_id[rid].qc.conversion
        assert abs(100 * conv - expected) <= 0.1, (rid, 100 * conv, expected)


# --------------------------------------------------------------------------- call_read against the rules, CpG by CpG

_IGFBP3 = load_amplicon()

def _call_by_hand(amp, cpg, aln, config, c, t, ref):
    """(call letter, Why, base, qual, c, t, contradicted) of one CpG, the documented precedence written out."""
    b, q = str(aln.bases[cpg.target_pos]), int(aln.quals[cpg.target_pos])
    shown = b not in " -"
    snp = False
    if cpg.snp is not None:
        ts, alt = snp_target(amp, cpg.snp)
        snp = 0 <= ts < amp.length and str(aln.bases[ts]) == alt
    mixed = c is not None and bool(is_mixed(c, t, ref)) and b in "CTN"
    gcg = config.nome and cpg.target_pos > 0 and amp.target[cpg.target_pos - 1] == "G"
    low = shown and q != 99 and q < config.min_qual
    why = None
    for applies, reason in ((cpg.under_primer, Why.UNDER_PRIMER), (b == " ", Why.NOT_COVERED), (b == "-", Why.GAP),
                            (snp, Why.SNP), (mixed, Why.MIXED), (low, Why.LOW_QUALITY), (gcg, Why.GCG),
                            (b not in "CTN", Why.OTHER_BASE), (b == "N", Why.AMBIGUOUS)):
        if applies:
            code, why = "-", reason
            break
    else:
        code = "M" if b == "C" else "U"
    kept = c is not None and c == c and why not in (Why.NOT_COVERED, Why.GAP)
    f = c / (c + t) if kept and c + t > 0 else None
    contra = f is not None and ((code == "M" and f < 0.5) or (code == "U" and f > 0.5))
    return (code, why, b.strip(), q if shown and q != 99 else None, round(c, 1) if kept else None,
            round(t, 1) if kept else None, contra)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_call_read_equals_the_rules_cpg_by_cpg(data):
    amp = _IGFBP3  # with a known SNP that destroys a CpG
    n = amp.length
    t0 = data.draw(st.integers(0, n // 2))
    t1 = data.draw(st.integers(t0 + 1, n))
    bases = np.full(n, " ", dtype="U1")
    bases[t0:t1] = data.draw(st.lists(st.sampled_from("CCTTANGR-"), min_size=t1 - t0, max_size=t1 - t0))
    quals = np.zeros(n, dtype=np.uint8)
    quals[t0:t1] = data.draw(st.lists(st.sampled_from([0, 12, 19, 20, 30, 99]), min_size=t1 - t0, max_size=t1 - t0))
    aln = AlignedRead("+", 100.0, t0, t1, 0, t1 - t0, bases, quals, np.arange(n, dtype=np.int32), 0, ("", "", ""))
    config = CallConfig(min_qual=data.draw(st.sampled_from([13, 20, 31])), nome=data.draw(st.booleans()))
    pos = np.array([c.target_pos for c in amp.cpgs])
    traced = np.array(data.draw(st.lists(st.booleans(), min_size=len(pos), max_size=len(pos))), dtype=bool)
    m = int(traced.sum())
    values = st.sampled_from([0.0, 35.0, 100.0, 250.0, np.nan])
    heights = np.array(data.draw(st.lists(values, min_size=2 * m, max_size=2 * m))).reshape(2, m)
    heights[:, np.isnan(heights).any(axis=0)] = np.nan  # no signal: neither channel
    ref = np.array(data.draw(st.lists(st.sampled_from([0.0, 300.0, 2000.0]), min_size=m, max_size=m)))
    signals = Signals(pos[traced].astype(np.int64), heights, ref) if m and data.draw(st.booleans()) else None
    got = call_read(amp, aln, config, signals)
    for k, cpg in enumerate(amp.cpgs):
        if signals is not None and traced[k]:
            i = int(np.searchsorted(signals.targets, cpg.target_pos))
            c, t, r = float(signals.c[i]), float(signals.t[i]), float(signals.ref[i])
        else:
            c = t = r = None
        g = got[k]
        assert (g.call.value, g.why, g.base, g.qual, g.c_signal, g.t_signal, g.contradicted) == \
            _call_by_hand(amp, cpg, aln, config, c, t, r)
