"""The clone-pattern rows of `bsmeth compare` (bsmeth.clonal): stats.tsv rows, heterogeneity.tsv, determinism,
independence from the existing rows, panels (an `amplicon` column), and the simulator's allele-linked and
pattern-structured designs."""

import math
import random
from pathlib import Path

import pytest
from callfixtures import random_clones, write_call_dir, write_panel_call_dir

from bsmeth import clonal
from bsmeth import heterogeneity as H
from bsmeth import patterns as P
from bsmeth import stats as S
from bsmeth.reference import load_amplicon
from bsmeth.simulate import Condition, Design
from bsmeth.simulate.calls import write_call_folder
from bsmeth.tables import load_call_dir

AMP = load_amplicon()
FAST = S.CompareConfig(permutations=199, resamples=100, bootstrap_reps=200)


def _tsv(path):
    lines = path.read_text().rstrip("\n").split("\n")
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def _snp_clones(rng, n, p, n_cpg=10, snp=6):
    """Random clones; about half carry the SNP allele (s) at CpG ``snp``."""
    out = []
    for c in random_clones(rng, n, p, n_cpg):
        out.append(c[:snp - 1] + ("s" if rng.random() < 0.5 else c[snp - 1]) + c[snp:])
    return out


@pytest.fixture(scope="module")
def dose_dir(tmp_path_factory):
    rng = random.Random(3)
    samples = [{"sample": f"{line}_d{dose}", "cell_line": line, "dose": str(dose), "clones": _snp_clones(rng, 10, p)}
               for line, ps in (("BT474", (0.1, 0.1, 0.1)), ("rBT474", (0.2, 0.5, 0.8)))
               for dose, p in zip((0, 1, 10), ps)]
    return write_call_dir(tmp_path_factory.mktemp("dose") / "c", samples, snp_cpg=6, under_primer=(1,))


def test_compare_writes_the_clone_pattern_rows_and_heterogeneity_table(dose_dir):
    S.run_compare(dose_dir, FAST)
    _, rows = _tsv(dose_dir / "stats.tsv")
    tests = {r["test"] for r in rows}
    for t in ("snp_scan", "asm_perm_clones", "asm_perm_stratified", "asm_trend_jt_clones", "asm_interaction_ols_hc3",
              "epipolymorphism_perm", "entropy_perm", "pdr_perm", "mhl_perm", "epipolymorphism_trend_perm",
              "mhl_trend_perm", "pattern_mmd_perm"):
        assert t in tests, t
    asm = [r for r in rows if r["test"] == "asm_perm_clones"]
    assert [r["scope"] for r in asm] == [f"sample={s}" for s in ("BT474_d0", "BT474_d1", "BT474_d10", "rBT474_d0",
                                                                 "rBT474_d1", "rBT474_d10")]
    assert all(r["groups"] == "rs2854744=A - rs2854744=C" and "CpG 6 (rs2854744) left out" in r["note"] for r in asm)
    assert {r["scope"] for r in rows if r["test"] == "asm_perm_stratified"} == {"all", "cell_line=BT474",
                                                                                 "cell_line=rBT474"}
    trend = [r for r in rows if r["test"] == "asm_trend_jt_clones" and r["scope"] == "cell_line=rBT474"]
    assert sorted(r["groups"].split(":")[0] for r in trend) == ["rs2854744=A", "rs2854744=C"]
    assert all(float(r["p"]) < 0.05 for r in trend)  # rising on both alleles
    het_perm = {r["scope"] for r in rows if r["test"] == "epipolymorphism_perm"}
    assert het_perm == {"dose=0", "dose=1", "dose=10", "all"}
    for r in rows:
        if r["p"]:
            assert 0 < float(r["p"]) <= 1 and 0 < float(r["p_adj"]) <= 1

    header, het = _tsv(dose_dir / "heterogeneity.tsv")
    assert header == ["amplicon", "sample", "cell_line", "dose", "metric", "value", "ci_low", "ci_high", "clones",
                      "units", "rarefied", "rarefied_clones", "rarefaction"]
    assert len(het) == 6 * 4
    data = load_call_dir(dose_dir)
    sets = {s.sample: s for s in P.clone_sets(data)}
    for r in het:
        want = H.metrics(sets[r["sample"]].calls)[r["metric"]]
        assert float(r["value"]) == pytest.approx(want, rel=1e-5, abs=1e-9)
        assert int(r["clones"]) == sets[r["sample"]].n
    common = min(s.n for s in sets.values())
    assert {r["rarefied_clones"] for r in het} == {str(common)}


def test_clone_pattern_rows_leave_the_existing_rows_unchanged(dose_dir, monkeypatch):
    full = S.compare_rows(load_call_dir(dose_dir), FAST)
    monkeypatch.setattr(clonal, "clonal_results", lambda data, roles, config: ([], []))
    alone = S.compare_rows(load_call_dir(dose_dir), FAST)
    assert S.rows_to_tsv(full[:len(alone)]) == S.rows_to_tsv(alone)
    assert all(r["test"] not in {a["test"] for a in alone} for r in full[len(alone):])


def test_compare_is_deterministic_and_seeded(dose_dir):
    data = load_call_dir(dose_dir)
    a = S.rows_to_tsv(S.compare_rows(data, FAST))
    b = S.rows_to_tsv(S.compare_rows(data, FAST))
    assert a == b
    c = S.compare_rows(data, S.CompareConfig(permutations=199, resamples=100, bootstrap_reps=200, seed=2))
    mc = [r for r in c if r["test"] == "pattern_mmd_perm"]
    first = [r for r in S.compare_rows(data, FAST) if r["test"] == "pattern_mmd_perm"]
    assert [r["p"] for r in mc] != [r["p"] for r in first]


def test_groups_without_dose_compare_alleles_between_groups(tmp_path):
    rng = random.Random(2)
    samples = [{"sample": s, "group": g, "clones": _snp_clones(rng, 12, p)} for s, g, p in
               (("c1", "ctrl", 0.2), ("t1", "treated", 0.7))]
    d = write_call_dir(tmp_path / "c", samples, sheet_columns=("group",), snp_cpg=6)
    rows = S.compare_rows(load_call_dir(d), FAST)
    mw = [r for r in rows if r["test"] == "asm_mannwhitney_clones"]
    assert [r["groups"] for r in mw] == ["rs2854744=C: group=treated - group=ctrl",
                                        "rs2854744=A: group=treated - group=ctrl"]
    assert all(r["effect"] > 20 for r in mw)


def test_panel_rows_carry_the_amplicon(tmp_path):
    rng = random.Random(1)
    samples = [{"sample": s, "cell_line": s, "dose": "0", "clones": random_clones(rng, 8, p, 10)}
               for s, p in (("a", 0.2), ("b", 0.7))]
    d = write_panel_call_dir(tmp_path / "c", {"A1": samples, "A2": samples})
    panel = load_call_dir(d)
    rows, het = S.compare_results(panel, FAST)
    pdr = [(r["amplicon"], r["scope"]) for r in rows if r["test"] == "pdr_perm"]
    assert pdr == [("A1", "dose=0"), ("A2", "dose=0")]
    assert [h["amplicon"] for h in het] == ["A1"] * 8 + ["A2"] * 8
    assert clonal.heterogeneity_columns(panel)[0] == "amplicon"


def test_asm_is_found_on_an_allele_linked_design_and_not_on_a_null_one(tmp_path):
    design = Design((Condition("linked", {"cell_line": "x"}, 12, 0.8, snp_alt_fraction=0.5, methylation_alt=0.2),
                     Condition("null", {"cell_line": "y"}, 12, 0.5)))
    data = load_call_dir(write_call_folder(design, AMP, tmp_path / "c", seed=4, undetermined=0.02))
    rows = S.compare_rows(data, FAST)
    asm = {r["scope"]: r for r in rows if r["test"] == "asm_perm_clones"}
    assert asm["sample=linked"]["p"] < 0.01 and asm["sample=linked"]["effect"] == pytest.approx(-60, abs=15)
    assert asm["sample=null"]["p"] > 0.05


def test_random_patterns_and_two_epialleles_at_the_same_average_are_told_apart(tmp_path):
    design = Design((Condition("rand", {"cell_line": "rand"}, 12, 0.5),
                     Condition("epi", {"cell_line": "epi"}, 12, 0.5, pattern="concordant")))
    data = load_call_dir(write_call_folder(design, AMP, tmp_path / "c", seed=2, undetermined=0.02))
    rows, het = S.compare_results(data, FAST)
    p = {r["test"]: r["p"] for r in rows if r["test"].endswith("_perm")}
    assert p["epipolymorphism_perm"] < 0.01 and p["entropy_perm"] < 0.01 and p["pdr_perm"] < 0.01
    assert p["pattern_mmd_perm"] < 0.05  # 199 permutations here: p >= 0.005 (benchmarks/asm.py: 999)
    mw = next(r for r in rows if r["test"] == "mannwhitney_clones")
    assert mw["p"] > 0.01 or math.isnan(mw["p"])  # the averages do not tell them apart
    vals = {(h["sample"], h["metric"]): h["value"] for h in het}
    assert vals[("rand", "pdr")] > 0.9 and vals[("epi", "pdr")] < 0.1
    assert vals[("rand", "epipolymorphism")] > vals[("epi", "epipolymorphism")] + 0.2


def test_simulated_calls_are_the_truth(tmp_path):
    design = Design((Condition("s", {}, 8, 0.5, methylation_alt=0.0, pattern="concordant"),))
    d = write_call_folder(design, AMP, tmp_path / "c", seed=1, undetermined=0.0)
    data = load_call_dir(d)
    _, truth_rows = _tsv(d / "truth_cpgs.tsv")
    truth = {(r["read"], int(r["cpg"])): r["truth"] for r in truth_rows}
    for r, c, call, why in zip(data.cpg_calls["read"], data.cpg_calls["cpg"], data.cpg_calls["call"],
                               data.cpg_calls["why"]):
        t = truth[(r, int(c))]
        if why == "under_primer":
            assert call == "-"
        else:
            assert call == (t if t in "MU" else "-") and (why == "snp") == (t == "A")
    for rid, gt in zip(data.reads["read"], data.reads["genotype"]):
        states = {t for (r, _), t in truth.items() if r == rid and t in "MU"}
        assert len(states) == 1  # concordant with equal probabilities: all M or all U
        if gt == "rs2854744:A":
            assert states == {"U"}  # methylation_alt = 0


def test_report_shows_the_allele_split_and_heterogeneity(dose_dir, tmp_path):
    from bsmeth.report import build_report
    from bsmeth.report.clonal import sections

    data = load_call_dir(dose_dir)
    alleles, het = sections(data, FAST)
    (split,) = [t for t in alleles.tables if t.table_id == "alleles-rs2854744"]
    assert [r[0] for r in split.rows] == [s.sample for s in P.clone_sets(data)]
    assert "rs2854744=C clones" in split.headers and "rs2854744=A mean %" in split.headers
    assert any("no heterozygous site found" in n for n in alleles.notes)
    (table,) = [t for t in het.tables if t.table_id == "heterogeneity"]
    assert len(table.rows) == 6 and "epipolymorphism (95 % CI)" in table.headers
    html = build_report(data, compare_config=FAST, traces="")
    assert html.index('id="stats-h"') < html.index('id="alleles"') < html.index('id="heterogeneity"')
    assert 'id="heterogeneity-tests"' in html


def test_calibration_benchmark_smoke_run(capsys):
    """benchmarks/asm.py --smoke, the CI-sized run of the calibration (its figures are not a calibration)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "asm.py"
    spec = importlib.util.spec_from_file_location("asm_benchmark", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for part in ("A. allele-specific methylation", "B. null designs", "C. 50% methylated", "pattern_mmd_perm"):
        assert part in out, part


# ---------------------------------------------------------------------------------------------------------------
# pinned outputs: stats.tsv and heterogeneity.tsv of one design, written by the code before the scaling rewrite
# (d9468ee; tests/data/compare_pinned/SOURCE.md); every row must stay the same to the last printed digit

PINNED = Path(__file__).resolve().parent / "data" / "compare_pinned"
PINNED_CONFIGS = {
    "by_sample": S.CompareConfig(by="sample", within=None, permutations=199, resamples=100, bootstrap_reps=200),
    "default": S.CompareConfig(permutations=199, resamples=100, bootstrap_reps=200),
}


def _pinned_design(directory):
    """25 samples: 24 of 2-5 clones (cell lines A/B, doses 0-2, a SNP on CpG 6, CpG 1 under a primer, about half
    the clones of the SNP allele) and one of 30 clones; small groups and one large one in the same comparison."""
    rng = random.Random(21)
    samples = [{"sample": f"S{i:02d}", "cell_line": "AB"[i % 2], "dose": str((i // 2) % 3),
                "clones": _snp_clones(rng, 2 + i % 4, 0.2 + 0.025 * i)} for i in range(24)]
    samples.append({"sample": "BIG", "cell_line": "B", "dose": "1",
                    "clones": _snp_clones(rng, 30, 0.5) + ["MMMMMMMMMM"] * 4 + ["UUUUUUUUUU"] * 4})
    return write_call_dir(directory, samples, snp_cpg=6, under_primer=(1,))


def _pinned_outputs(directory) -> dict:
    data = load_call_dir(_pinned_design(directory))
    out = {}
    for name, config in PINNED_CONFIGS.items():
        rows, het = S.compare_results(data, config)
        out[f"{name}.stats.tsv"] = S.rows_to_tsv(rows)
        out[f"{name}.heterogeneity.tsv"] = S.rows_to_tsv(het, clonal.heterogeneity_columns(data))
    return out


def write_pinned(folder) -> None:
    """Write the pinned outputs into ``folder`` (run with the code that defines them; see SOURCE.md there)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in _pinned_outputs(Path(tmp) / "c").items():
            (Path(folder) / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def pinned_now(tmp_path_factory):
    return _pinned_outputs(tmp_path_factory.mktemp("pinned") / "c")


@pytest.mark.parametrize("name", sorted(f"{c}.{t}.tsv" for c in PINNED_CONFIGS for t in ("stats", "heterogeneity")))
def test_outputs_are_pinned(name, pinned_now):
    got = pinned_now[name].splitlines()
    want = (PINNED / name).read_text(encoding="utf-8").splitlines()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w
