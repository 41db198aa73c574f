"""The simulator: traces read back, the truth tables agree with the traces, faults are there."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
from Bio import SeqIO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsmeth.models import SNP, Strand
from bsmeth.reference import build_amplicon, load_amplicon, revcomp
from bsmeth.simulate import Condition, Design, ReadModel, seed_study_design, simulate
from bsmeth.simulate.clones import FAULT_KINDS, M13F_FLANK, M13R_FLANK

AMP = load_amplicon()


def _tsv(path, delimiter="\t"):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def _near(needle: str, hay: str, max_mm: int = 2) -> bool:
    """``needle`` occurs in ``hay`` with at most ``max_mm`` substitutions (reads carry base-call errors)."""
    n = len(needle)
    return any(sum(a != b for a, b in zip(needle, hay[i:i + n])) <= max_mm for i in range(len(hay) - n + 1))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = simulate(seed_study_design(), AMP, out, seed=7)
    reads = {r["read"]: r for r in _tsv(out / "truth_reads.tsv")}
    cpgs = _tsv(out / "truth_cpgs.tsv")
    return out, result, reads, cpgs


def test_every_trace_reads_back_with_biopython(study):
    out, result, reads, _ = study
    assert result.n_reads == len(result.traces) == len(reads) == 96
    for path in result.traces:
        rec = SeqIO.read(path, "abi")
        raw = rec.annotations["abif_raw"]
        assert len(rec.seq) == len(rec.letter_annotations["phred_quality"]) == len(raw["PLOC2"])
        assert raw["FWO_1"] == b"GATC"
        assert len({len(raw[f"DATA{i}"]) for i in (9, 10, 11, 12)}) == 1
        assert 0 <= min(raw["PLOC2"]) and max(raw["PLOC2"]) < len(raw["DATA9"])
        assert np.all(np.diff(raw["PLOC2"]) > 0)
        assert min(min(raw[f"DATA{i}"]) for i in (9, 10, 11, 12)) >= 0
        assert b"simulated by bsmeth" in raw["CMNT1"]
        assert 5_000 < path.stat().st_size < 90_000


def test_sample_sheet_and_readme(study):
    out, result, reads, _ = study
    sheet = _tsv(out / "samples.csv", ",")
    assert list(sheet[0]) == ["file", "sample", "cell_line", "dose"]
    assert [r["file"] for r in sheet] == [r["file"] for r in reads.values()]
    assert all((out / r["file"]).is_file() for r in sheet)
    assert {r["sample"] for r in sheet} == {f"{c}_d{d}" for c in ("BT474", "rBT474") for d in (0, 1, 3, 10)}
    assert "SIMULATED" in result.readme.read_text()
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_faults_are_present_and_counted(study):
    _, result, reads, _ = study
    assert result.faults == {k: 2 for k in FAULT_KINDS} and result.skipped == ()
    rows = list(reads.values())
    for kind, reason in [("poor_conversion", "low_conversion"), ("empty_vector", "no_amplicon"),
                         ("failed_read", "low_quality"), ("duplicate", "duplicate")]:
        hit = [r for r in rows if r["fault"] == kind]
        assert len(hit) == 2 and all(r["expected_reason"] == reason for r in hit)
    # a clean clone is expected to fail only when its own conversion is below bsmeth's 95 % by chance
    for r in (r for r in rows if r["fault"] == ""):
        assert r["expected_reason"] == ("" if float(r["conversion"]) >= 0.95 else "low_conversion")
    assert len({r["sample"] for r in rows if r["fault"]}) == 8  # spread over the conditions


def test_empty_vector_reads_have_no_insert(study):
    out, _, reads, cpgs = study
    for r in (r for r in reads.values() if r["fault"] == "empty_vector"):
        assert r["molecule"] == r["insert_start"] == r["orientation"] == ""
        seq = str(SeqIO.read(out / r["file"], "abi").seq)
        assert _near(M13R_FLANK[-12:] + M13F_FLANK[:12], seq)
        assert not any(c["read"] == r["read"] for c in cpgs)


def test_clean_reads_carry_the_converted_primers(study):
    out, _, reads, _ = study
    clean = [r for r in reads.values() if r["fault"] == ""]
    assert {r["orientation"] for r in clean} == {"+", "-"}
    for r in clean:
        seq = str(SeqIO.read(out / r["file"], "abi").seq)
        insert = seq[int(r["insert_start"]) - 1: int(r["insert_end"])]
        as_target = insert if r["orientation"] == "+" else revcomp(insert)
        assert _near(AMP.forward, as_target[:30]) and _near(revcomp(AMP.reverse), as_target[-30:])
        assert r["molecule"].startswith(AMP.forward) and r["molecule"].endswith(revcomp(AMP.reverse))
        # flanking vector, TOPO sites included, right around the insert
        assert _near("GAATTCGCCCTT", seq[int(r["insert_start"]) - 13: int(r["insert_start"]) - 1])
        assert _near("AAGGGCGAATTC", seq[int(r["insert_end"]): int(r["insert_end"]) + 12])


def _check_molecules(amp, reads, cpgs):
    """Truth states agree with the error-free molecule at each CpG's C."""
    by_number = {c.number: c for c in amp.cpgs}
    molecules = {r["read"]: r["molecule"] for r in reads.values()}
    for row in cpgs:
        cpg = by_number[int(row["cpg"])]
        assert row["pos"] == str(cpg.ref_pos + 1)
        assert row["under_primer"] == ("yes" if cpg.under_primer else "no")
        if cpg.under_primer:
            continue
        mol = molecules[row["read"]]
        if row["truth"] == "A":
            snp = cpg.snp
            top = amp.strand is Strand.TOP
            t = snp.pos - amp.start if top else amp.end - 1 - snp.pos
            assert mol[t] == (snp.alt if top else revcomp(snp.alt))
        else:
            assert mol[cpg.target_pos] == {"M": "C", "U": "T"}[row["truth"]]
            assert mol[cpg.target_pos + 1] == "G"


def test_truth_cpgs_match_the_molecules(study):
    _, _, reads, cpgs = study
    _check_molecules(AMP, reads, cpgs)
    states = {row["truth"] for row in cpgs}
    assert states == {"M", "U", "A"}
    snp_reads = {r["read"] for r in reads.values() if r["snp_allele"].endswith(":A")}
    assert {row["read"] for row in cpgs if row["truth"] == "A"} == snp_reads


def test_methylation_levels_follow_the_design(study):
    _, _, _, cpgs = study
    level = {}
    for sample in {row["sample"] for row in cpgs}:
        calls = [row["truth"] for row in cpgs if row["sample"] == sample and row["truth"] in "MU"]
        level[sample] = calls.count("M") / len(calls)
    assert all(level[f"BT474_d{d}"] < 0.2 for d in (0, 1, 3, 10))
    assert level["rBT474_d0"] < level["rBT474_d3"] < level["rBT474_d10"]


def test_duplicates_copy_a_detectable_molecule(study):
    _, _, reads, cpgs = study
    states = {}
    for row in cpgs:
        states.setdefault(row["read"], []).append(row["truth"])
    target_c = np.array(list(AMP.target)) == "C"
    cph = target_c.copy()
    cph[[c.target_pos for c in AMP.cpgs]] = False
    cph[: AMP.forward_span[1]] = cph[AMP.reverse_span[0]:] = False
    for r in (r for r in reads.values() if r["fault"] == "duplicate"):
        src = reads[r["duplicate_of"]]
        assert src["fault"] == "" and src["sample"] == r["sample"] and src["read"] < r["read"]
        assert r["molecule"] == src["molecule"] and states[r["read"]] == states[src["read"]]
        under = [c.under_primer for c in AMP.cpgs]
        marks = sum(s == "M" and not u for s, u in zip(states[r["read"]], under))
        marks += sum(b == "C" for b in np.array(list(r["molecule"]))[cph])
        assert marks >= 3


def test_conversion_is_the_molecules_own(study):
    out, _, reads, _ = study
    cph = [i for i, b in enumerate(AMP.target) if b == "C" and AMP.target[i + 1: i + 2] != "G"
           and not AMP.in_primer(i)]
    for r in reads.values():
        if r["molecule"]:
            kept = sum(r["molecule"][i] == "C" for i in cph) / len(cph)
            assert float(r["conversion"]) == pytest.approx(1 - kept, abs=1e-4)
            assert (0.6 < 1 - kept < 0.95) if r["fault"] == "poor_conversion" else (1 - kept > 0.9)


def test_failed_reads(study):
    out, _, reads, _ = study
    for r in reads.values():
        if r["fault"] == "failed_read":
            rec = SeqIO.read(out / r["file"], "abi")
            assert max(rec.letter_annotations["phred_quality"]) < 10
            assert len(rec.seq) <= 200 and rec.seq.count("N") > 0.15 * len(rec.seq)


def test_quality_profile_of_clean_reads(study):
    out, _, reads, _ = study
    for r in list(reads.values())[:20]:
        if r["fault"]:
            continue
        q = np.array(SeqIO.read(out / r["file"], "abi").letter_annotations["phred_quality"])
        assert 450 <= len(q) <= 660
        assert q[:12].mean() < 15 and 30 < np.median(q[100:300]) <= 55 and q[-20:].mean() < 20


def _small_design(**kw) -> Design:
    return Design((Condition("a", {"group": "x"}, 3, 0.5), Condition("b", {"group": "y"}, 2, 0.2)),
                  {"duplicate": 1, "empty_vector": 1}, **kw)


def test_same_seed_same_bytes(tmp_path):
    a, b, c = (simulate(_small_design(), AMP, tmp_path / d, seed=s) for d, s in (("a", 3), ("b", 3), ("c", 4)))
    files = sorted(p.relative_to(a.out_dir) for p in a.paths)
    assert files == sorted(p.relative_to(b.out_dir) for p in b.paths)
    assert all((a.out_dir / f).read_bytes() == (b.out_dir / f).read_bytes() for f in files)
    assert (a.out_dir / "truth_reads.tsv").read_bytes() != (c.out_dir / "truth_reads.tsv").read_bytes()


def test_badly_converted_clean_clones_are_expected_to_fail(tmp_path):
    result = simulate(Design((Condition("bad", {}, 3, 0.5, conversion=0.6),), {"duplicate": 1}), AMP, tmp_path, 2)
    rows = _tsv(result.truth_reads)
    assert {r["expected_reason"] for r in rows} == {"low_conversion"}
    assert result.faults["duplicate"] == 0  # the duplicate of an excluded read would not be detectable


def test_duplicate_without_a_marked_clone_is_skipped(tmp_path):
    design = Design((Condition("flat", {}, 4, 0.0, conversion=1.0),), {"duplicate": 1})
    result = simulate(design, AMP, tmp_path, seed=1)
    assert result.faults["duplicate"] == 0 and result.n_reads == 4
    assert len(result.skipped) == 1 and "flat" in result.skipped[0]
    assert "Skipped" in result.readme.read_text()


def test_design_json_round_trip():
    design = seed_study_design()
    text = json.dumps(design.to_dict())
    again = Design.from_dict(json.loads(text))
    assert again.to_dict() == design.to_dict()
    assert again.conditions[0].columns == {"cell_line": "BT474", "dose": 0}
    assert Design.from_dict({"conditions": [{"sample": "s", "methylation": 0.3}]}).reads == ReadModel()
    with pytest.raises(ValueError, match="unknown key"):
        Design.from_dict({"conditions": [], "fautls": {}})
    with pytest.raises(ValueError, match="unknown key"):
        Design.from_dict({"conditions": [{"sample": "s", "meth": 0.3}]})


def test_seed_study_design_shape():
    design = seed_study_design()
    assert [c.sample for c in design.conditions][:4] == ["BT474_d0", "BT474_d1", "BT474_d3", "BT474_d10"]
    assert all(c.n_clones == 11 and len(c.methylation) == len(AMP.cpgs) for c in design.conditions)
    means = [float(np.mean(c.methylation)) for c in design.conditions]
    assert all(0.04 < m < 0.11 for m in means[:4])
    assert means[4:] == pytest.approx([0.30, 0.45, 0.60, 0.75], abs=0.01)
    # the same CpGs are high in every condition
    ranks = {tuple(np.argsort(c.methylation)[-3:]) for c in design.conditions}
    assert len(ranks) == 1
    assert design.faults == {k: 2 for k in FAULT_KINDS}
    assert design.fault_plan() == [(k, i) for i, k in enumerate(k for k in FAULT_KINDS for _ in range(2))]


@pytest.mark.parametrize("bad", [
    dict(sample="a/b"), dict(sample="s", methylation=1.5), dict(sample="s", columns={"read": 1}),
    dict(sample="s", conversion=2.0),
])
def test_invalid_conditions(bad):
    with pytest.raises(ValueError):
        Condition(**bad)


def test_probabilities_must_match_the_amplicon(tmp_path):
    with pytest.raises(ValueError, match="27 CpGs"):
        simulate(Design((Condition("s", {}, 1, (0.5, 0.5)),)), AMP, tmp_path, seed=1)


_counter = itertools.count()


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), p=st.floats(0, 1), alt=st.floats(0, 1),
       strand=st.sampled_from([Strand.TOP, Strand.BOTTOM]))
def test_truth_is_consistent_for_any_seed_and_strand(tmp_path, seed, p, alt, strand):
    # whole-reference mode, either strand, with a SNP on a CpG: exercises the coordinate mapping
    seq = AMP.reference[AMP.start: AMP.end]
    amp = build_amplicon("t", seq, strand=strand, snps=(SNP(pos=52, ref="C", alt="A", name="s1"),))
    design = Design((Condition("s", {}, 3, p, snp_alt_fraction=alt),), {"poor_conversion": 1},
                    ReadModel(read_length=(300, 400)))
    out = tmp_path / str(next(_counter))
    result = simulate(design, amp, out, seed=seed)
    reads = {r["read"]: r for r in _tsv(out / "truth_reads.tsv")}
    _check_molecules(amp, reads, _tsv(out / "truth_cpgs.tsv"))
    for r in reads.values():
        rec = SeqIO.read(out / r["file"], "abi")
        assert len(rec.seq) == int(r["length"]) and len(rec.seq) >= 290  # template 300-400, minus rare deletions
        mol = r["molecule"] if r["orientation"] == "+" else revcomp(r["molecule"])
        insert = str(rec.seq)[int(r["insert_start"]) - 1: int(r["insert_end"])]
        assert abs(len(insert) - len(mol)) <= 10
    assert result.n_reads == 4


# ---------------------------------------------------------------------------------------------- mixed clones


@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory):
    from bsmeth.simulate.clones import TRACE_FAULT_KINDS  # noqa: F401  (the kind exists)

    out = tmp_path_factory.mktemp("mixed")
    design = Design((Condition("m50", {"group": "x"}, 6, 0.5), Condition("m20", {"group": "y"}, 6, 0.2)),
                    {"mixed_clone": 6, "duplicate": 1})
    result = simulate(design, AMP, out, seed=3)
    reads = {r["read"]: r for r in _tsv(out / "truth_reads.tsv")}
    mixed = {r["read"]: r for r in _tsv(out / "truth_mixed.tsv")}
    return out, result, reads, mixed


def test_mixed_clones_are_planted_with_their_truth(mixed_study):
    from bsmeth.simulate import mixed_differences
    from bsmeth.simulate.clones import MIXED_FRACTION, MIXED_MIN_DIFF

    out, result, reads, mixed = mixed_study
    assert result.faults == {**{k: 0 for k in FAULT_KINDS}, "duplicate": 1, "mixed_clone": 6}
    assert result.truth_mixed == out / "truth_mixed.tsv" and result.truth_mixed in result.paths
    planted = [r for r in reads.values() if r["fault"] == "mixed_clone"]
    assert len(planted) == 6 == len(mixed) and {r["read"] for r in planted} == set(mixed)
    assert all(r["expected_reason"] == "mixed_trace" for r in planted)
    for r in planted:
        m = mixed[r["read"]]
        assert MIXED_FRACTION[0] <= float(m["minor_fraction"]) <= 0.5  # the minor molecule, by definition
        assert r["molecule"] == m["major_molecule"] != m["minor_molecule"]
        cpgs, cph = mixed_differences(AMP, m["major_molecule"], m["minor_molecule"])
        assert len(cpgs) + cph >= MIXED_MIN_DIFF
        assert m["differing_cpgs"] == " ".join(map(str, cpgs)) and int(m["differing_cph"]) == cph
    assert "truth_mixed.tsv" in result.readme.read_text()


def test_mixed_clone_traces_carry_both_molecules(mixed_study):
    """At the CpGs where the two molecules differ the trace has two strong peaks, elsewhere one."""
    from bsmeth.alignment import align
    from bsmeth.evidence import signals_at
    from bsmeth.reads import read_file

    out, _, reads, mixed = mixed_study
    by_number = {c.number: c for c in AMP.cpgs}
    for rid, m in mixed.items():
        read = read_file(out / reads[rid]["file"])[0]
        aln = align(AMP, read.seq, read.qual)
        assert aln is not None and aln.orientation == reads[rid]["orientation"]
        differ = {int(x) for x in m["differing_cpgs"].split()}
        sig = signals_at(read, aln, [c.target_pos for c in AMP.cpgs if not c.under_primer])
        frac = float(m["minor_fraction"])
        for number, c in by_number.items():
            s = sig.get(c.target_pos)
            if s is None or c.snp is not None:
                continue
            ratio = min(s.c, s.t) / max(s.c, s.t)
            if number in differ:
                assert ratio == pytest.approx(frac / (1 - frac), abs=0.25), (rid, number)
                q = int(aln.quals[c.target_pos])
                assert q <= 22  # the base caller's quality drops where the peaks mix
            else:
                assert ratio < 0.2, (rid, number)


def test_mixed_clones_are_excluded_by_call(mixed_study):
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import process_file

    out, _, reads, mixed = mixed_study
    for r in reads.values():
        if r["fault"] not in ("", "mixed_clone"):
            continue
        (res,) = process_file(out / r["file"], r["sample"], AMP, CallConfig())
        got = res.reason.value if res.reason else ""
        assert got == r["expected_reason"], (r["read"], r["fault"], res.detail)


def test_old_designs_unchanged_by_the_new_fault_kind(tmp_path):
    """Designs without mixed clones draw the same numbers and write the same files as before the kind existed."""
    design = _small_design()
    assert all(kind != "mixed_clone" for kind, _ in design.fault_plan())
    result = simulate(design, AMP, tmp_path, seed=3)
    assert result.truth_mixed is None and not (tmp_path / "truth_mixed.tsv").exists()
    assert set(result.faults) == set(FAULT_KINDS)
    with pytest.raises(ValueError, match="mixed_clone"):
        Design((Condition("s"),), {"mixed_clones": 1})


def test_mixed_clone_impossible_without_differences(tmp_path):
    design = Design((Condition("flat", {}, 2, 0.0, conversion=1.0),), {"mixed_clone": 1})
    result = simulate(design, AMP, tmp_path, seed=1)
    assert result.faults["mixed_clone"] == 0 and len(result.skipped) == 1 and "identical" in result.skipped[0]


def test_design_json_with_mixed_clones_round_trips(tmp_path):
    design = Design((Condition("s", {}, 2, 0.5),), {"mixed_clone": 2})
    assert Design.from_dict(json.loads(json.dumps(design.to_dict()))).faults == {"mixed_clone": 2}


# --- allele-linked and pattern-structured methylation ---------------------------------------------------------


def test_new_design_options_round_trip_and_stay_out_of_the_seed_study():
    assert all(k not in c for c in seed_study_design().to_dict()["conditions"] for k in ("methylation_alt", "pattern"))
    design = Design((Condition("a", {}, 4, 0.9, methylation_alt=0.1), Condition("b", {}, 4, 0.5, pattern="concordant"),
                     Condition("c", {}, 4, tuple([0.5] * len(AMP.cpgs)), methylation_alt=tuple([0.2] * len(AMP.cpgs)))))
    d = json.loads(json.dumps(design.to_dict()))
    assert d["conditions"][0]["methylation_alt"] == 0.1 and "pattern" not in d["conditions"][0]
    assert d["conditions"][1]["pattern"] == "concordant" and "methylation_alt" not in d["conditions"][1]
    assert Design.from_dict(d).to_dict() == design.to_dict()
    with pytest.raises(ValueError, match="pattern"):
        Condition("s", pattern="clustered")
    with pytest.raises(ValueError):
        Condition("s", methylation_alt=1.5)


def test_allele_linked_methylation_follows_the_allele_in_the_traces(tmp_path):
    """One allele methylated, the other not: the truth of every clone follows its SNP allele."""
    design = Design((Condition("asm", {}, 8, 1.0, methylation_alt=0.0),))
    simulate(design, AMP, tmp_path, seed=3)
    reads = {r["read"]: r for r in _tsv(tmp_path / "truth_reads.tsv")}
    alleles = {r["snp_allele"] for r in reads.values()}
    assert alleles == {"rs2854744:C", "rs2854744:A"}
    for row in _tsv(tmp_path / "truth_cpgs.tsv"):
        if row["truth"] != "A":
            assert row["truth"] == ("M" if reads[row["read"]]["snp_allele"] == "rs2854744:C" else "U")
    assert "Allele-linked methylation in asm" in (tmp_path / "README.md").read_text()


def test_concordant_patterns_keep_the_per_cpg_probabilities():
    from bsmeth.simulate import clean_molecules

    probs = tuple(float(p) for p in np.linspace(0.1, 0.9, len(AMP.cpgs)))
    design = Design((Condition("c", {}, 2000, probs, pattern="concordant"),))
    states = np.array([[s == "M" for s in m.states] for _, m in clean_molecules(design, AMP, seed=2)])
    live = [i for i, c in enumerate(AMP.cpgs) if c.snp is None]
    assert states[:, live].mean(axis=0) == pytest.approx(np.array(probs)[live], abs=0.04)
    # nested: a clone methylated at a CpG is methylated at every CpG of higher probability
    order = np.argsort(np.array(probs)[live])
    s = states[:, live][:, order]
    assert (np.diff(s.astype(int), axis=1) >= 0).all()
    equal = Design((Condition("e", {}, 200, 0.4, pattern="concordant"),))
    rows = np.array([[s for i, s in enumerate(m.states) if i in live] for _, m in clean_molecules(equal, AMP, 1)])
    full = (rows == "M").all(axis=1) | (rows == "U").all(axis=1)
    assert full.all() and 0.3 < (rows[:, 0] == "M").mean() < 0.5


def test_clean_molecules_are_the_molecules_simulate_draws(tmp_path):
    from bsmeth.simulate import clean_molecules

    design = Design((Condition("a", {}, 5, 0.5), Condition("b", {}, 4, 0.7, methylation_alt=0.1)))
    result = simulate(design, AMP, tmp_path, seed=9)
    truth = {r["read"]: r["molecule"] for r in _tsv(result.truth_reads)}
    assert sorted(truth.values()) == sorted(m.seq for _, m in clean_molecules(design, AMP, seed=9))


def test_methylation_alt_needs_a_snp():
    from bsmeth.simulate import clean_molecules

    bare = build_amplicon(AMP.name, AMP.reference, AMP.forward, AMP.reverse, snps=())
    with pytest.raises(ValueError, match="needs a SNP"):
        clean_molecules(Design((Condition("a", {}, 2, 0.5, methylation_alt=0.1),)), bare)
