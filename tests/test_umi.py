"""UMIs of the NGS engine (``bsmeth call --umi``): UMIs from read names, families and their consensus, the
funnel, independence of chunks, processes and the memory bound; the spilling store (``ngs.spill``) that keeps
patterns and families flat in memory; the simulator's UMI families against their truth."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ngs import PANEL, fastq, molecule

from bsmeth.cli import cli
from bsmeth.coords import revcomp
from bsmeth.errors import InputError
from bsmeth.models import CallConfig
from bsmeth.ngs import engine as E
from bsmeth.ngs import umi as UMI
from bsmeth.ngs.aggregate import Tally
from bsmeth.ngs.fastq import parse_chunk
from bsmeth.ngs.run import NgsConfig, run_ngs
from bsmeth.ngs.simulate import default_design, simulate_ngs
from bsmeth.ngs.spill import FAN_IN, Store
from bsmeth.panel import load_panel
from bsmeth.tsv import read_table

TABLES = ("summary.tsv", "samples.tsv", "patterns.tsv", "funnel.tsv", "cpg_strands.tsv")


@pytest.fixture(scope="module")
def panel():
    return load_panel(PANEL)


def rows_of(path: Path) -> list[dict]:
    h, rows = read_table(path)
    return [dict(zip(h, r)) for r in rows]


# --------------------------------------------------------------------------- UMIs from read names


def names_chunk(names) -> bytes:
    return "".join(f"@{n}\nACGT\n+\nIIII\n" for n in names).encode()


@pytest.mark.parametrize("convention,name,expected", [
    ("illumina", "M01:1:FC:1:1101:1000:2000:ACGTACGT 1:N:0:1", "ACGTACGT"),
    ("illumina", "M01:1:FC:1:1101:1000:2000:ACGTACGT+GGCATTCA 2:N:0:1", "ACGTACGT+GGCATTCA"),  # dual
    ("illumina", "M01:1:FC:1:1101:1000:2000:NCGTACGT\tx", "NCGTACGT"),
    ("illumina", "M01:1:FC:1:1101:1000:2000 1:N:0:1", None),  # the y coordinate: no UMI
    ("illumina", "read1_ACGTACGT", None),
    ("illumina", "M01:1:FC:1:1101:1000:2000:+ACGT", None),
    ("illumina", "M01:1:FC:1:1101:1000:2000:AC++GT", None),
    ("illumina", "M01:1:FC:1:1101:1000:2000:acgtacgt", None),  # upper case only
    ("illumina", "M01:1:FC:1:1101:1000:2000:" + "A" * 33, None),  # longer than UMI_BYTES
    ("umi_tools", "read1_ACGTACGT", "ACGTACGT"),
    ("umi_tools", "SRR1.1_GGCA_ACGTACGT extra words", "ACGTACGT"),
    ("umi_tools", "M01:1:FC:1:1101:1000:2000:ACGTACGT", None),
    ("re:UMI=(?P<umi>[A-Z]+)", "read7;UMI=TTAGGC;x", "TTAGGC"),
    ("re:UMI=([A-Z]+)", "read7;UMI=TTAGGC", "TTAGGC"),
    ("re:UMI=([A-Z]+)", "read7", None),
])
def test_umi_from_the_read_name(convention, name, expected):
    rec = parse_chunk(names_chunk(["other:read:AAAA", name]))
    u, ok = UMI.parse(rec, convention)
    got = UMI.umi_text(u)[1] if ok[1] else None
    assert got == expected


def test_mates_must_carry_the_same_umi():
    rec1 = parse_chunk(names_chunk(["a:ACGT", "b:ACGT", "c", "d:ACGT", "e"]))
    rec2 = parse_chunk(names_chunk(["a:ACGT", "b:ACGA", "c:ACGT", "d", "e"]))
    u, none, differ = UMI.pair_umis(*UMI.parse(rec1, "illumina"), *UMI.parse(rec2, "illumina"))
    assert none.tolist() == [False, False, False, False, True]
    assert differ.tolist() == [False, True, True, True, False]
    u, none, differ = UMI.pair_umis(*UMI.parse(rec1, "illumina"), None, None)  # single-end
    assert none.tolist() == [False, False, True, False, True] and not differ.any()


def test_detect_the_convention_per_file(tmp_path):
    ill = tmp_path / "ill.fq"
    ill.write_bytes(names_chunk([f"M01:1:FC:1:1101:{i}:2000:ACGTAC{i % 10} 1:N:0:1" for i in range(5)]
                                + [f"M01:1:FC:1:1101:{i}:2000:ACGTACGT 1:N:0:1" for i in range(5)]))
    tools = tmp_path / "tools.fq.gz"
    with gzip.open(tools, "wb") as fh:
        fh.write(names_chunk([f"r{i}_ACGTACGT" for i in range(10)]))
    none = tmp_path / "none.fq"
    none.write_bytes(names_chunk([f"M01:1:FC:1:1101:{i}:2000 1:N:0:1" for i in range(10)]))
    assert UMI.detect(ill) == "illumina" and UMI.detect(tools) == "umi_tools"
    assert UMI.detect(none, r":(\d+)$") == r"re::(\d+)$"
    with pytest.raises(InputError, match="no UMI in the first 10 read names"):
        UMI.detect(none)
    with pytest.raises(InputError, match="finds no UMI"):
        UMI.detect(none, "UMI=(.*)")
    with pytest.raises(InputError, match="not a regular expression"):
        UMI.detect(ill, "(")


# --------------------------------------------------------------------------- consensus of hand-made families


def pairs_of(calls, strand=None, amplicon=None, reason=None):
    calls = np.array(calls, np.int8)
    n = len(calls)
    return SimpleNamespace(calls=calls, reason=np.zeros(n, np.int8) if reason is None else np.array(reason, np.int8),
                           amplicon=np.zeros(n, np.int32) if amplicon is None else np.array(amplicon, np.int32),
                           strand=np.zeros(n, np.int8) if strand is None else np.array(strand, np.int8))


def umis_of(texts):
    out = np.zeros((len(texts), UMI.UMI_BYTES), np.uint8)
    for i, t in enumerate(texts):
        out[i, :len(t)] = np.frombuffer(t.encode(), np.uint8)
    return out


@pytest.mark.parametrize("chunked", [False, True])
def test_family_consensus_majority_ties_and_undetermined(chunked, tmp_path):
    M, U, NC, LQ, MC = E.M, E.U, E.NOTCOV, E.LOWQ, E.CONFLICT
    calls = [
        [M, U, NC, LQ], [M, U, NC, NC], [U, U, NC, NC],  # family A: M 2:1, U, never covered, low quality
        [M, U, M, MC], [U, U, M, M],  # family B: a tie at CpG 1; CpG 4 M (mate_conflict is no vote)
        [M, NC, NC, NC], [U, NC, NC, NC],  # family C: a tie at its only called CpG -> no call: low_quality
        [U, M, U, M],  # family D: one pair, read from the other end (CTOT): the same molecule as an OT pair
        [M, M, M, M],  # family D, OT
        [M, M, M, M],  # another UMI: family E
    ]
    names = ["AAAA", "AAAA", "AAAA", "CCCC", "CCCC", "GGGG", "GGGG", "TTTT", "TTTT", "TTTA"]
    strand = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    p = pairs_of(calls, strand=strand)
    t = Tally((4,), bound_bytes=1 if chunked else None, folder=tmp_path, umi=True)
    if chunked:  # the same pairs in three chunks, in another order, with a spill after each
        for rows in ([9, 0, 4], [1, 7, 5, 6], [2, 3, 8]):
            part = Tally((4,), umi=True)
            part.add(0, pairs_of([calls[i] for i in rows], strand=[strand[i] for i in rows]),
                     umis_of([names[i] for i in rows]))
            t.merge(part)
        assert t.families.spills >= 2
    else:
        t.add(0, p, umis_of(names))
    t.finish()
    pats = {}
    for block in t.patterns.sorted_blocks():
        for key, n in zip(block["key"], block["n"]):
            pats[bytes(np.ascontiguousarray(key[1:].astype(">u8")).view(np.uint8)[:4])] = int(n)
    # the molecules: A M U - -, B - U M M (a tie at CpG 1), D (U M U M vs M M M M: ties at CpGs 1, 3), E M M M M
    assert pats == {b"MU--": 1, b"-UMM": 1, b"-M-M": 1, b"MMMM": 1}
    codes = t.codes[(0, 0)]  # strand x CpG x code, OT only: the CTOT pair joined its OT family
    assert codes[1:].sum() == 0
    assert codes[0, 0, E.UMICONF] == 2 and codes[0, 2, E.UMICONF] == 1 and codes[0, 3, E.CONFLICT] == 0
    assert codes[0, 2, E.NOTCOV] == 1 and codes[0, 3, E.LOWQ] == 1  # family A: never covered; low quality
    reasons = {E.REASON_CODES[c - 1].value if c else "pass": n for (_s, _a, c), n in t.reasons.items() if n}
    assert reasons == {"pass": 4, "duplicate": 5, "low_quality": 1}
    assert t.family_sizes == {(0, 0): {3: 1, 2: 3, 1: 1}}
    assert t.funnel[0][4] == 4


def test_consensus_codes():
    M, U, NC, LQ, UC = E.M, E.U, E.NOTCOV, E.LOWQ, E.UMICONF
    diff = np.array([[2, -1, 0, 0, 0]])
    low = np.array([[M, M, M, NC, LQ]], np.uint8)
    assert UMI.consensus(diff, low).tolist() == [[M, U, UC, NC, LQ]]


# --------------------------------------------------------------------------- hand-made FASTQ, end to end


def write_pairs(folder: Path, pairs) -> Path:
    """R1/R2 FASTQ of (name1, name2, r1, r2) and a sheet."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x_R1.fq").write_bytes(fastq([(n1, r1) for n1, _n2, r1, _r2 in pairs]))
    (folder / "x_R2.fq").write_bytes(fastq([(n2, r2) for _n1, n2, _r1, r2 in pairs]))
    sheet = folder / "s.csv"
    sheet.write_text("file,file2,sample\nx_R1.fq,x_R2.fq,x\n")
    return sheet


def test_umi_run_end_to_end_on_hand_made_families(panel, tmp_path):
    amp = panel.amplicons[0]
    n = len(amp.cpgs)
    k = next(j for j, c in enumerate(amp.cpgs) if not c.under_primer and 60 <= c.target_pos <= 90)

    def pat(at_k: str, fill: str = "U") -> str:
        p = [fill] * n
        p[k] = at_k
        return "".join(p)

    def ot(p, name, name2=None):
        mol = molecule(amp, p, "OT")
        return (f"M01:1:FC:1:1:{name}", f"M01:1:FC:1:1:{name2 or name}", mol[:150], revcomp(mol)[:150])

    def ctot(p, name):
        mol = molecule(amp, p, "CTOT")
        return (f"M01:1:FC:1:1:{name}", f"M01:1:FC:1:1:{name}", mol[:150], revcomp(mol)[:150])

    dimer = amp.forward + revcomp(amp.reverse) + "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC" + "A" * 100
    pairs = [ot(pat("M"), "1:AAAACCCC"), ot(pat("M"), "2:AAAACCCC"), ctot(pat("U"), "3:AAAACCCC"),  # A: M wins
             ot(pat("M"), "4:GGGGTTTT"), ot(pat("U"), "5:GGGGTTTT"),  # B: a tie at CpG k
             ot("M" * n, "6:ACGT+TTTT"),  # C: a dual UMI
             ot(pat("M"), "7:AAAACCCC+"),  # no UMI (a trailing '+'): no_umi
             ot(pat("M"), "8:CCCCAAAA", "8:CCCCAAAT"),  # umi_mismatch
             ("M01:1:FC:1:1:9:AAAACCCC", "M01:1:FC:1:1:9:AAAACCCC", dimer[:150], (revcomp(dimer) + "A" * 150)[:150])]
    sheet = write_pairs(tmp_path / "in", pairs)
    out = tmp_path / "res"
    run_ngs([], panel, out, CallConfig(threads=1), str(sheet), ngs=NgsConfig(umi=True, per_read=True))
    f = rows_of(out / "funnel.tsv")[0]
    got = {c: f[c] for c in ("pairs", "used", "duplicate", "no_umi", "umi_mismatch", "no_amplicon", "families",
                             "family_size_median", "family_size_max", "single_pair_families")}
    assert got == {"pairs": "9", "used": "3", "duplicate": "3", "no_umi": "1", "umi_mismatch": "1",
                   "no_amplicon": "1", "families": "3", "family_size_median": "2", "family_size_max": "3",
                   "single_pair_families": "1"}
    shown = {r["pattern"].lstrip("'"): int(r["count"]) for r in rows_of(out / "patterns.tsv") if r["sample"] == "x"}
    primer = [c.under_primer for c in amp.cpgs]

    def masked(p):
        return "".join("-" if pr else ch for ch, pr in zip(p, primer))

    tie = list(pat("U"))
    tie[k] = "-"
    assert shown == {masked(pat("M")): 1, masked("".join(tie)): 1, masked("M" * n): 1}
    strands = [r for r in rows_of(out / "cpg_strands.tsv") if r["amplicon"] == amp.name]
    assert {r["strand"] for r in strands} == {"OT"}  # the CTOT pair is a copy of family A's OT molecule
    assert [int(r["umi_conflict"]) for r in strands] == [1 if j == k else 0 for j in range(n)]
    fam = rows_of(out / "umi_families.tsv")
    assert [(r["family_size"], r["families"], r["pairs"]) for r in fam] == [("1", "1", "1"), ("2", "1", "2"),
                                                                             ("3", "1", "3")]
    reads = rows_of(out / "reads.tsv")
    assert [r["umi"] for r in reads][:7] == ["AAAACCCC"] * 3 + ["GGGGTTTT"] * 2 + ["ACGT+TTTT", ""]
    assert [r["reason"] for r in reads][6:] == ["no_umi", "umi_mismatch", "no_amplicon"]
    meta = json.loads((out / "run.json").read_text())
    assert set(meta["parameters"]["umi"]["conventions"].values()) == {"illumina"}
    assert "umi_families.tsv" in meta["outputs"] and meta["counts"]["by_reason"]["duplicate"] == 3
    # without --umi every pair that passes counts (8: all but the dimer)
    run_ngs([], panel, tmp_path / "plain", CallConfig(threads=1), str(sheet))
    f = rows_of(tmp_path / "plain" / "funnel.tsv")[0]
    assert (f["used"], f["duplicate"], f["no_umi"]) == ("8", "0", "0") and "families" not in f
    assert not (tmp_path / "plain" / "umi_families.tsv").exists()


def test_umi_on_clone_reads_is_a_usage_error(tmp_path):
    reads = tmp_path / "reads"
    reads.mkdir()
    (reads / "a.fasta").write_text(">a\n" + "ACGT" * 100 + "\n")
    r = CliRunner().invoke(cli, ["call", str(reads), "--out", str(tmp_path / "o"), "--umi"])
    assert r.exit_code == 2 and "--umi" in r.output and "clone reads" in r.output


def test_umi_without_umis_in_the_names_exits_3(tmp_path):
    sheet = write_pairs(tmp_path / "in", [("r1", "r1", "ACGT" * 30, "ACGT" * 30)])
    r = CliRunner().invoke(cli, ["call", "--samples", str(sheet), "--out", str(tmp_path / "o"), "--umi"])
    assert r.exit_code == 3 and "no UMI in the first 1 read names" in r.output


# --------------------------------------------------------------------------- simulated UMI families


@pytest.fixture(scope="module")
def umisim(tmp_path_factory, panel):
    d = default_design(panel, pairs=1500, replicates=1)
    d = replace(d, conditions=(d.conditions[1], d.conditions[6]), umi_length=8, family_mean=8.0, family_sigma=1.5)
    return simulate_ngs(d, panel, tmp_path_factory.mktemp("umisim") / "sim", seed=11)


def test_simulated_families_dedup_recovers_the_molecules(umisim, panel, tmp_path):
    runs = {}
    for umi in (False, True):
        out = tmp_path / f"umi{umi}"
        runs[umi] = run_ngs([], panel, out, CallConfig(threads=1), str(umisim.sample_sheet), ngs=NgsConfig(umi=umi))
    truth = {(r["sample"], r["amplicon"], r["cpg"]): r for r in csv.DictReader(open(umisim.truth_cpgs),
                                                                                  delimiter="\t")}
    err = {}
    for umi in (False, True):
        called = {(r["sample"], r["amplicon"], r["cpg"]): r for r in rows_of(tmp_path / f"umi{umi}" / "summary.tsv")}
        err[umi] = [abs(float(called[k]["percent"]) - float(t["percent"])) for k, t in truth.items()
                    if t["percent"] and called[k]["percent"]]
    # PCR jackpots (log-normal family sizes, sigma 1.5) pull the per-pair percent away from the molecules'
    assert np.mean(err[True]) < 0.3 and max(err[True]) < 3
    assert np.mean(err[False]) > 3 * np.mean(err[True])
    # each molecule counts once, with its own pattern
    molecules, true_patterns = defaultdict(set), Counter()
    with gzip.open(umisim.truth_pairs, "rt") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            if r["kind"] in ("ok", "indel") and not r["expected_reason"]:
                if r["molecule"] not in molecules[(r["sample"], r["amplicon"])]:
                    true_patterns[(r["sample"], r["amplicon"], r["pattern"])] += 1
                molecules[(r["sample"], r["amplicon"])].add(r["molecule"])
    counted, shown = Counter(), Counter()
    for r in rows_of(tmp_path / "umiTrue" / "patterns.tsv"):
        counted[(r["sample"], r["amplicon"])] += int(r["count"])
        shown[(r["sample"], r["amplicon"], r["pattern"].lstrip("'"))] += int(r["count"])
    for key, mols in molecules.items():  # a single-pair molecule may fail QC on a sequencing error
        assert len(mols) - 2 <= counted[key] <= len(mols), key
    total = sum(true_patterns.values())
    assert sum(min(c, shown[k]) for k, c in true_patterns.items()) >= 0.98 * total
    assert runs[True].n_pass == sum(counted.values()) < runs[False].n_pass / 4
    fam = rows_of(tmp_path / "umiTrue" / "umi_families.tsv")
    assert max(int(r["family_size"]) for r in fam) > 40  # jackpots


def test_umi_tables_do_not_depend_on_chunks_processes_or_the_memory_bound(umisim, panel, tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    run_ngs([], panel, a, CallConfig(threads=1), str(umisim.sample_sheet), ngs=NgsConfig(umi=True))
    rb = run_ngs([], panel, b, CallConfig(threads=2), str(umisim.sample_sheet),
                 ngs=NgsConfig(umi=True, chunk_bytes=20_000, spill_bytes=4_000))
    assert rb.tally.families.spills > FAN_IN and rb.tally.patterns.spills > 1  # merged in several passes
    for name in (*TABLES, "umi_families.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not list(tmp_path.rglob("*.run"))  # the spilled runs are gone


# --------------------------------------------------------------------------- patterns spilled to disk


def test_patterns_identical_with_a_tiny_memory_bound(umisim, panel, tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    ra = run_ngs([], panel, a, CallConfig(threads=1), str(umisim.sample_sheet))
    rb = run_ngs([], panel, b, CallConfig(threads=1), str(umisim.sample_sheet),
                 ngs=NgsConfig(chunk_bytes=50_000, spill_bytes=1_000))
    assert ra.tally.patterns.spills == 0 and rb.tally.patterns.spills > FAN_IN
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not list(tmp_path.rglob("*.run"))


_records = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(1, 9), st.integers(0, 250)),
                    max_size=300)


@settings(max_examples=60, deadline=None)
@given(recs=_records, bound=st.sampled_from([None, 2, 5, 40, 10_000]), cut=st.integers(1, 50))
def test_store_gives_every_key_once_with_exact_sums_and_minima(tmp_path_factory, recs, bound, cut):
    dt = np.dtype([("key", np.uint64, (2,)), ("n", np.int64), ("low", np.uint8)])
    store = Store(dt, {"n": "sum", "low": "min"}, bound, tmp_path_factory.mktemp("spill"))
    expect: dict = {}
    for i in range(0, len(recs), cut):
        part = recs[i:i + cut]
        a = np.zeros(len(part), dt)
        for j, (k0, k1, n, low) in enumerate(part):
            a[j] = ((k0, k1), n, low)
            got = expect.get((k0, k1), (0, 255))
            expect[(k0, k1)] = (got[0] + n, min(got[1], low))
        store.add(a)
    blocks = list(store.sorted_blocks())
    out = np.concatenate(blocks) if blocks else np.zeros(0, dt)
    assert [tuple(k) for k in out["key"].tolist()] == sorted(expect)
    assert [(int(n), int(low)) for n, low in zip(out["n"], out["low"])] == [expect[k] for k in sorted(expect)]
    assert not list(Path(store.folder).glob("*.run"))
