"""Allele-specific methylation (bsmeth.alleles): alleles of a known SNP, sites found from the clones, the split
and its permutation test."""

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from callfixtures import write_call_dir

from bsmeth import alleles as A
from bsmeth import patterns as P
from bsmeth.models import CallConfig
from bsmeth.pipeline import run_call
from bsmeth.reference import DEFAULT_FORWARD, DEFAULT_REVERSE, DEFAULT_SNPS, build_amplicon, read_reference
from bsmeth.tables import load_call_dir

ROOT = Path(__file__).resolve().parents[1]


def test_known_site_from_genotype(tmp_path):
    clones = ["MMsMM", "MMMMM", "UUsUU", "UUUUU", "MMsMU"]
    d = write_call_dir(tmp_path / "c", [{"sample": "a", "cell_line": "x", "dose": "0", "clones": clones}],
                       positions=(10, 20, 30, 40, 50), snp_cpg=3)
    (site,) = A.known_sites(load_call_dir(d))
    assert (site.name, site.ref, site.alt, site.pos, site.cpgs, site.source, site.confounded) == \
        ("rs2854744", "C", "A", 30, (3,), "known", "")
    assert site.alleles == {"a_r01": "A", "a_r02": "C", "a_r03": "A", "a_r04": "C", "a_r05": "A"}
    (cs,) = P.clone_sets(load_call_dir(d))
    sp = A.split(site, cs)
    assert list(sp.labels) == [1, 0, 1, 0, 1] and sp.count(1) == 3
    assert sp.mean(1) == pytest.approx((1 + 0 + 0.75) / 3)  # CpG 3 left out: MM.MM, UU.UU, MM.MU
    assert sp.pooled(0) == (4, 8)
    assert A.read_alleles(site)["a_r02"] == "rs2854744=C"


@pytest.mark.parametrize("strand,ref,alt,flagged", [("top", "C", "T", True), ("top", "G", "A", False),
                                                    ("bottom", "G", "A", True), ("top", "C", "A", False)])
def test_known_ct_snp_on_the_assayed_strand_is_flagged(tmp_path, strand, ref, alt, flagged):
    d = write_call_dir(tmp_path / "c", [{"sample": "a", "cell_line": "x", "dose": "0", "clones": ["MsM", "MMM"]}],
                       positions=(10, 20, 30), snp_cpg=2)
    data = load_call_dir(d)
    data.run["amplicon"]["strand"] = strand
    data.run["amplicon"]["snps"][0].update(ref=ref, alt=alt)
    data.reads["genotype"] = [f"rs2854744:{alt}", f"rs2854744:{ref}"]
    (site,) = A.known_sites(data)
    assert bool(site.confounded) is flagged
    if flagged:
        assert "C/T on the assayed strand" in site.confounded


def _alignments(reads):
    """alignments.txt text for (read, status, start (1-based), target, read letters)."""
    out = ["# bsmeth alignments (test)", ""]
    for rid, status, start, target, letters in reads:
        out.append(f">{rid} sample=s status={status} orientation=+ identity=99.0% conversion=99.0% file=x")
        for i in range(0, len(target), 60):
            label = f"{start + i:>5} "
            out += [label + target[i:i + 60], "      " + "|" * len(target[i:i + 60]),
                    "      " + letters[i:i + 60], "      ", ""]
    return "\n".join(out) + "\n"


def _scan_data(tmp_path, reads, meta):
    p = tmp_path / "alignments.txt"
    p.write_text(_alignments(reads))
    return SimpleNamespace(alignments_path=p, run={"amplicon": meta}, cpg_calls=pd.DataFrame({"read": []}))


def _target():
    """A 70-letter amplified strand: primers of 5 letters at each end; CpGs with their C at 10 and 40 (0-based);
    a T at 20 and a G at 25."""
    t = list("ATTAG" + "TGATAGTATG" * 6 + "GTAGT")
    t[10], t[11], t[40], t[41], t[20], t[25] = "C", "G", "C", "G", "T", "G"
    return "".join(t)


TARGET = _target()
CPGS = [{"cpg": 1, "pos": 101 + 10, "under_primer": False}, {"cpg": 2, "pos": 101 + 40, "under_primer": False}]


def _reads(n=20, het=None, ct=None, noise=()):
    """``n`` reads of TARGET (converted: every C read T, CpG C kept), with substitutions."""
    base = list(TARGET.replace("C", "T"))
    base[10] = "C"  # CpG 1 methylated, CpG 2 not
    out = []
    for i in range(n):
        r = base.copy()
        if het and i % 2 == 0:
            r[het[0]] = het[1]
        if ct and i < ct[1]:
            r[ct[0]] = "C"
        for (k, pos, letter) in noise:
            if k == i:
                r[pos] = letter
        out.append((f"r{i:02d}", "pass", 1, TARGET, "".join(r)))
    out.append(("bad", "fail", 1, TARGET, "A" * len(TARGET)))  # failed reads are not scanned
    return out


META = {"strand": "top", "start": 101, "end": 170, "length": 70, "forward": "ATTAG", "reverse": "GTAGT",
        "cpgs": CPGS, "snps": []}


def test_parse_alignments_places_letters_and_drops_insertions(tmp_path):
    text = _alignments([("r1", "pass", 3, "AC-GT", "AT-GA")]).replace("AC-GT", "AC-GT").replace("AT-GA", "ATTGA")
    (a,) = A.parse_alignments(text)
    assert (a.read, a.status, a.start, a.target, a.bases) == ("r1", "pass", 2, "ACGT", "ATGA")


def test_scan_finds_a_heterozygous_site_and_its_cpg(tmp_path):
    # G of CpG 1 (position 11) reads A in half the clones: a G>A SNP destroying CpG 1
    reads = _reads(20, het=(11, "A"), noise=[(3, 30, "C"), (7, 50, "G")])
    (scan,) = A.scan_sites(_scan_data(tmp_path, reads, META))
    assert scan.reads == 20 and len(scan.sites) == 1
    (site,) = scan.sites
    assert (site.name, site.ref, site.alt, site.pos, site.cpgs, site.source, site.confounded) == \
        ("112:G>A", "G", "A", 112, (1,), "found", "")
    assert sorted(r for r, a in site.alleles.items() if a == "A") == [f"r{i:02d}" for i in range(0, 20, 2)]
    assert len(site.alleles) == 20 and "10/20 clones read A" in site.evidence
    assert A.found_cpgs([scan]) == {"": {1: "snp:112:G>A"}}


def test_a_scan_is_made_once_per_content_of_the_file(tmp_path, monkeypatch):
    """The lollipop and the report scan the same folder in one process: the second scan is the first one; a
    rewritten alignments.txt (even of the same size, within the file system's time resolution) is scanned
    again."""
    made = []
    real = A._scan_amplicon
    monkeypatch.setattr(A, "_scan_amplicon", lambda *a: made.append(a[0]) or real(*a))
    reads = _reads(20, het=(11, "A"))
    first = A.scan_sites(_scan_data(tmp_path, reads, META))
    again = A.scan_sites(_scan_data(tmp_path, reads, META))
    assert again[0] is first[0] and len(made) == 1
    other = [(r, st, s, t, b.replace("A", "G", 1) if r == "r01" else b) for r, st, s, t, b in reads]
    changed = A.scan_sites(_scan_data(tmp_path, other, META))
    assert len(made) == 2 and changed[0] is not first[0]
    assert (tmp_path / "alignments.txt").stat().st_size == len(_alignments(reads))  # the same size


def test_scan_on_the_bottom_strand_names_the_site_in_top_strand_letters(tmp_path):
    meta = {**META, "strand": "bottom"}
    (scan,) = A.scan_sites(_scan_data(tmp_path, _reads(20, het=(25, "C")), meta))
    (site,) = scan.sites
    # target G at 25 reads C; top strand: position end - t = 170 - 25 = 145, letters complemented
    assert site.name == "145:C>G" and (site.ref, site.alt) == ("C", "G")


def test_scan_flags_ct_sites_and_ignores_noise_primers_and_known_snps(tmp_path):
    # T at 20 read as C in 8 of 20 clones (ref T, alt C: unseen where converted)
    reads = _reads(20, ct=(20, 8), noise=[(1, 33, "A"), (2, 33, "A")])
    (scan,) = A.scan_sites(_scan_data(tmp_path, reads, META))
    (site,) = scan.sites
    assert site.confounded.startswith("C/T on the assayed strand") and site.alleles == {}
    # a site in a primer, or at a known SNP, is not reported
    primer = _reads(20, het=(2, "C"))
    assert A.scan_sites(_scan_data(tmp_path, primer, META))[0].sites == ()
    known = A.Site("", "rs1", "G", "A", 112, (1,), "known")
    assert A.scan_sites(_scan_data(tmp_path, _reads(20, het=(11, "A")), META), [known])[0].sites == ()


def test_no_alignments_no_scan(tmp_path):
    data = SimpleNamespace(alignments_path=None, run={}, cpg_calls=pd.DataFrame({"read": []}))
    (scan,) = A.scan_sites(data)
    assert scan.sites == () and "alignments.txt not found" in scan.note


def test_allele_test_exact_p_is_the_share_of_splits():
    f = np.array([0.9, 0.8, 0.85, 0.1, 0.2, 0.15, 0.3])
    lab = np.array([1, 1, 1, 0, 0, 0, 0])
    t = A.allele_test(f, lab, np.zeros(7, int), np.random.default_rng(1), boot=500)
    obs = f[lab == 1].mean() - f[lab == 0].mean()
    splits = [f[list(c)].mean() - np.delete(f, list(c)).mean() for c in itertools.combinations(range(7), 3)]
    assert t.exact and t.draws == 35
    assert t.statistic == pytest.approx(obs)
    assert t.p == pytest.approx(np.mean(np.abs(splits) >= abs(obs) - 1e-12))
    assert t.ci[0] < obs < t.ci[1]


def test_stratified_allele_test_weights_samples():
    f = np.array([0.9, 0.7, 0.1, 0.3, 0.6, 0.5, 0.4, 0.5, 0.45])
    lab = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0])
    st = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    t = A.allele_test(f, lab, st, np.random.default_rng(1), reps=300, boot=300)
    d0, w0 = 0.8 - 0.2, 2 * 2 / 4
    d1, w1 = 0.6 - np.mean([0.5, 0.4, 0.5, 0.45]), 1 * 4 / 5
    assert t.statistic == pytest.approx((w0 * d0 + w1 * d1) / (w0 + w1))
    assert not t.exact and t.draws == 300 and t.strata == 2 and 1 / 301 <= t.p <= 1


def test_allele_bootstrap_is_the_weighted_difference_of_resampled_clones():
    """The interval from each (sample, allele) cell's resampled means equals the weighted difference computed on
    the whole resampled matrix (clones drawn within cells in first-appearance order, from the same generator),
    bit for bit: many samples made the matrix and the per-sample selections of it slow."""
    rng = np.random.default_rng(6)
    f, lab, st = rng.random(90), rng.integers(0, 2, 90), rng.integers(0, 12, 90)
    t = A.allele_test(f, lab, st, np.random.default_rng(2), reps=50, boot=400)
    draw = np.random.default_rng(2)
    P.label_draws(lab, st, draw, 50)  # the permutations come first
    cells = list(dict.fromkeys(zip(st.tolist(), lab.tolist())))
    idx = [np.flatnonzero((st == s) & (lab == a)) for s, a in cells]
    order = np.concatenate(idx)
    values = f[np.concatenate([i[draw.integers(0, len(i), size=(400, len(i)))] for i in idx], axis=1)]
    num, den = np.zeros(400), 0.0
    for s in np.unique(st):
        in_s = st[order] == s
        alt = lab[order][in_s] == 1
        n1, n0 = int(alt.sum()), int((~alt).sum())
        if n1 and n0:
            v = values[:, in_s]
            w = n1 * n0 / (n1 + n0)
            num += w * (v[:, alt].mean(axis=1) - v[:, ~alt].mean(axis=1))
            den += w
    assert t.ci == tuple(float(q) for q in np.nanquantile(num / den, [0.025, 0.975]))


def test_scan_on_example_reads_finds_rs2854744_when_it_is_not_given(tmp_path):
    """Real traces (two samples of the example reads) called without the known SNP: the scan finds it, at
    CpG 6, and splits the clones as the known SNP's genotype does."""
    name, seq, source = read_reference()
    bare = build_amplicon(name, seq, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=())
    inputs = [str(ROOT / "example_reads" / s) for s in ("BT474_d0", "rBT474_d10")]
    run_call(inputs, bare, tmp_path / "bare", CallConfig(threads=1))
    (scan,) = A.scan_sites(load_call_dir(tmp_path / "bare"))
    (site,) = scan.sites
    assert (site.name, site.cpgs, site.confounded) == ("89:C>A", (6,), "")
    known = build_amplicon(name, seq, DEFAULT_FORWARD, DEFAULT_REVERSE, snps=DEFAULT_SNPS)
    run_call(inputs, known, tmp_path / "known", CallConfig(threads=1))
    (ks,) = A.known_sites(load_call_dir(tmp_path / "known"))
    assert ks.alleles == site.alleles and len(site.alleles) >= 20
    assert not math.isnan(scan.mismatch_rate) and scan.mismatch_rate < 0.01
