"""Calls against simulated truth: a fresh ``bsmeth simulate`` design through ``bsmeth call``."""

import csv

import pytest
from click.testing import CliRunner

from bsmeth.cli import cli


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module", params=[7, 11])
def simulated(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"sim{request.param}")
    r = CliRunner().invoke(cli, ["simulate", "--out", str(d / "reads"), "--seed", str(request.param)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["call", str(d / "reads"), "--samples", str(d / "reads" / "samples.csv"),
                                 "--out", str(d / "out")])
    assert r.exit_code == 0, r.output
    return d


def test_calls_on_passing_clones_match_truth(simulated):
    truth = {(t["read"], t["cpg"]): t for t in rows(simulated / "reads" / "truth_cpgs.tsv")}
    right = wrong = covered = called = 0
    snp_ok = snp_total = 0
    for c in rows(simulated / "out" / "cpg_calls.tsv"):
        t = truth[(c["read"], c["cpg"])]
        if c["status"] != "pass" or t["under_primer"] == "yes":
            continue
        if t["truth"] == "A":  # the SNP allele: a genotype, never a methylation call
            snp_total += 1
            snp_ok += c["call"] == "-" and c["why"] == "snp"
            continue
        if c["why"] == "not_covered":
            continue
        covered += 1
        if c["call"] in "MU":
            called += 1
            right += c["call"] == t["truth"]
            wrong += c["call"] != t["truth"]
    assert called > 1500
    assert right / called >= 0.995, (right, wrong)
    assert called / covered >= 0.97, (called, covered)
    assert snp_total > 0 and snp_ok == snp_total


def test_every_planted_fault_gets_its_reason(simulated):
    got = {r["read"]: r for r in rows(simulated / "out" / "reads.tsv")}
    truth = rows(simulated / "reads" / "truth_reads.tsv")
    assert len(got) == len(truth)  # nothing dropped
    faults = [t for t in truth if t["fault"]]
    assert {t["fault"] for t in faults} == {"poor_conversion", "empty_vector", "failed_read", "duplicate"}
    swapped = set()
    for t in faults:
        if t["fault"] == "duplicate":
            # one molecule read twice: either read may be the one kept (the one with more CpGs called)
            dup, src = got[t["read"]], got[t["duplicate_of"]]
            assert (dup["reason"] == "duplicate" and dup["duplicate_of"] == src["read"]) or (
                src["reason"] == "duplicate" and src["duplicate_of"] == dup["read"]), (t["read"], t["duplicate_of"])
            if src["reason"] == "duplicate":
                swapped.add(src["read"])
            continue
        assert got[t["read"]]["reason"] == t["expected_reason"], (t["read"], t["fault"], got[t["read"]]["detail"])
    # clean clones: all as expected, but for the measured chance of calling two distinct clones duplicates
    # (benchmarks/duplicates.py: 2 of 13,738 pairs over 30 designs)
    off = [(t["read"], got[t["read"]]["reason"]) for t in truth if not t["fault"] and t["read"] not in swapped
           and got[t["read"]]["reason"] != t["expected_reason"]]
    assert len(off) <= 1 and all(reason == "duplicate" for _, reason in off), off


def test_orientation_matches_truth(simulated):
    got = {r["read"]: r for r in rows(simulated / "out" / "reads.tsv")}
    for t in rows(simulated / "reads" / "truth_reads.tsv"):
        if not t["fault"] and got[t["read"]]["orientation"]:
            assert got[t["read"]]["orientation"] == t["orientation"]
