"""Clone patterns (bsmeth.patterns): matrices from a call folder, the distance, clustering and dendrogram
coordinates for the figures, the permutation machinery and the pattern (MMD) test."""

import itertools
import math
import random

import numpy as np
import pytest
from callfixtures import random_clones, write_call_dir, write_panel_call_dir

from bsmeth import patterns as P
from bsmeth.tables import load_call_dir


def matrix(clones):
    return np.array([[1.0 if ch == "M" else 0.0 if ch == "U" else np.nan for ch in c] for c in clones])


def test_clone_sets_leave_out_primer_and_snp_cpgs(tmp_path):
    samples = [{"sample": "a", "cell_line": "x", "dose": "0", "clones": ["MMsMU", "U-UUM", ".....", "MUMUU"],
                "failed": [("low_conversion", "c")]},
               {"sample": "b", "cell_line": "y", "dose": "0", "clones": ["UUMUU", "MMsMM"]}]
    d = write_call_dir(tmp_path / "c", samples, positions=(10, 20, 30, 40, 50), under_primer=(5,), snp_cpg=3)
    sets = P.clone_sets(load_call_dir(d))
    assert [(s.amplicon, s.sample, s.n) for s in sets] == [("IGFBP3_promoter", "a", 3), ("IGFBP3_promoter", "b", 2)]
    a = sets[0]
    assert a.cpgs == (1, 2, 4)  # CpG 3 (SNP) and 5 (primer) left out of every pattern
    assert dict(a.excluded) == {3: "snp:rs2854744", 5: "under_primer"}
    assert a.reads == ("a_r01", "a_r02", "a_r04")  # the uncovered clone and the failed read are not clones
    np.testing.assert_array_equal(a.calls, matrix(["MMM", "U-U", "MUU"]))
    assert a.fractions() == pytest.approx([1.0, 0.0, 1 / 3])


def test_clone_sets_group_by_amplicon_when_the_column_exists(tmp_path):
    d = write_panel_call_dir(tmp_path / "c", {
        "A1": [{"sample": "a", "cell_line": "x", "dose": "0", "clones": ["MMU", "UUM"]}],
        "A2": [{"sample": "a", "cell_line": "x", "dose": "0", "clones": ["MUU", "UUM", "M-U"]}],
    }, positions=(10, 20, 30))
    sets = P.clone_sets(load_call_dir(d))
    assert [(s.amplicon, s.sample, s.n) for s in sets] == [("A1", "a", 2), ("A2", "a", 3)]


def test_pattern_distance_over_shared_calls():
    x = matrix(["MMUU", "MUUU", "--MM", "UU--"])
    d, undefined = P.pattern_distance(x)
    assert d[0, 1] == pytest.approx(1 / 4)
    assert d[0, 2] == pytest.approx(2 / 2)  # shared: CpGs 3, 4
    assert d[1, 3] == pytest.approx(1 / 2)
    # clones 3 and 4 share no call: the mean of the five defined distances
    defined = [d[0, 1], d[0, 2], d[0, 3], d[1, 2], d[1, 3]]
    assert undefined == 1 and d[2, 3] == pytest.approx(np.mean(defined))
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)


def test_clustering_puts_similar_clones_together_and_dendrogram_matches_linkage():
    clones = ["MMMMMM", "UUUUUU", "MMMMMU", "UUUUUM", "MMMMUM", "UUUMUU"]
    cl = P.cluster_clones(matrix(clones))
    order = [clones[i] for i in cl.order]
    first = {c[0] for c in order[:3]}
    assert first in ({"M"}, {"U"}) and len({c[0] for c in order[3:]}) == 1
    assert P.cluster_clones(matrix(clones)).order == cl.order  # deterministic
    seg = P.dendrogram_segments(cl.linkage, cl.order, first_row=2)
    assert len(seg) == 3 * (len(clones) - 1)
    heights = [seg[k][1] for k in range(2, len(seg), 3)]  # each merge's bar sits at its height
    assert heights == pytest.approx(list(cl.linkage[:, 2]))
    assert all(seg[k][1] == seg[k][3] for k in range(2, len(seg), 3))
    # every leaf's vertical line starts at height 0 in its own row
    leaf_rows = sorted(s[0] for s in seg if s[1] == 0.0)
    assert leaf_rows == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert max(max(s[1], s[3]) for s in seg) == pytest.approx(cl.linkage[-1, 2])


def test_clone_layout_groups_by_allele_then_clusters():
    reads = tuple(f"r{i}" for i in range(7))
    x = matrix(["MMMM", "UUUU", "MMMU", "UUUM", "MMUM", "UMUU", "MUMU"])
    cs = P.CloneSet("", "s", reads, (1, 2, 3, 4), x, ())
    groups = {"r0": "rs=C", "r2": "rs=C", "r4": "rs=C", "r1": "rs=A", "r3": "rs=A"}  # r5, r6 without allele
    lay = P.clone_layout(cs, groups)
    assert lay.groups == (("rs=C", 0, 3), ("rs=A", 3, 5), ("", 5, 7))
    assert set(lay.reads[:3]) == {"r0", "r2", "r4"} and set(lay.reads[3:5]) == {"r1", "r3"}
    assert sorted(lay.reads) == sorted(reads)
    rows = {s[0] for s in lay.segments} | {s[2] for s in lay.segments}
    assert min(rows) >= 0 and max(rows) <= 6
    assert lay.max_height == pytest.approx(max(max(s[1], s[3]) for s in lay.segments))
    plain = P.clone_layout(cs, cluster=False)
    assert plain.reads == reads and plain.segments == () and plain.groups == (("", 0, 7),)


def test_exact_permutation_p_matches_enumeration():
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.7, 0.05])
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    draws, exact = P.label_draws(labels, None, np.random.default_rng(0))
    assert exact and len(draws) == 1 + math.comb(7, 3)
    stats = np.array([values[d == 1].mean() - values[d == 0].mean() for d in draws])
    obs = stats[0]
    brute = []
    for chosen in itertools.combinations(range(7), 3):
        m = np.zeros(7, bool)
        m[list(chosen)] = True
        brute.append(values[m].mean() - values[~m].mean())
    want = np.mean(np.abs(brute) >= abs(obs) - 1e-12)
    assert P.permutation_p(stats, exact) == pytest.approx(want)


def test_monte_carlo_draws_permute_within_strata():
    labels = np.array([0, 1, 1, 0, 0, 1, 1, 1])
    strata = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    draws, exact = P.label_draws(labels, strata, np.random.default_rng(3), reps=200)
    assert not exact and draws.shape == (201, 8)
    assert (draws[:, :4].sum(axis=1) == 2).all() and (draws[:, 4:].sum(axis=1) == 3).all()
    p = P.permutation_p(np.r_[5.0, np.zeros(200)], exact)
    assert p == pytest.approx(1 / 201)
    assert P.permutation_p(np.r_[1.0, np.nan, 0.5], False) == pytest.approx(2 / 3)  # NaN counts as extreme


def test_kernel_dispersion_is_scaled_mmd():
    rng = np.random.default_rng(2)
    x = (rng.random((9, 6)) < 0.5).astype(float)
    k, scale, undefined = P.kernel_matrix(x)
    lab = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    a, b = lab == 0, lab == 1
    mmd2 = k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean()
    got = P.kernel_dispersion(k, lab[None, :])[0]
    assert got == pytest.approx(4 * 5 / 81 * mmd2, abs=1e-12)
    d, _ = P.pattern_distance(x)
    assert scale == pytest.approx(P.KERNEL_FRACTION * np.median(d[~np.eye(9, dtype=bool)]))
    assert np.allclose(k, np.exp(-d / scale))


def test_pattern_test_tells_random_patterns_from_two_epialleles():
    rng = random.Random(5)
    random_pat = random_clones(rng, 12, 0.5, 20, p_nd=0.03)
    epialleles = ["M" * 20] * 6 + ["U" * 20] * 6
    x = matrix(random_pat + epialleles)
    t = P.pattern_test(x, [0] * 12 + [1] * 12, rng=np.random.default_rng(1))
    assert t.p < 0.01 and not t.exact
    same = P.pattern_test(matrix(random_pat + random_clones(rng, 12, 0.5, 20, p_nd=0.03)), [0] * 12 + [1] * 12,
                          rng=np.random.default_rng(1))
    assert same.p > 0.01


def test_clone_layouts_of_a_call_folder_group_by_the_snp_allele(tmp_path):
    from bsmeth.alleles import clone_layouts

    rng = random.Random(3)
    clones = [c[:2] + ("s" if k % 2 else c[2]) + c[3:] for k, c in enumerate(random_clones(rng, 9, 0.5, 6))]
    d = write_call_dir(tmp_path / "c", [{"sample": "a", "cell_line": "x", "dose": "0", "clones": clones}],
                       positions=(10, 20, 30, 40, 50, 60), snp_cpg=3)
    (key, lay), = clone_layouts(load_call_dir(d)).items()
    assert key == ("IGFBP3_promoter", "a")
    assert [g[0] for g in lay.groups] == ["rs2854744=C", "rs2854744=A"]
    first, second = lay.reads[:lay.groups[0][2]], lay.reads[lay.groups[1][1]:]
    assert all(int(r[-2:]) % 2 == 1 for r in first) and all(int(r[-2:]) % 2 == 0 for r in second)
    assert lay.segments and lay.max_height > 0


def _brute_dispersion(k, draws, strata):
    """sum over strata of (sum_g 1'K_g 1 / n_g - 1'K 1 / N) / N, straight from the clone kernel."""
    out = []
    for d in draws:
        t = 0.0
        for s in np.unique(strata):
            idx = strata == s
            big_n = idx.sum()
            acc = -k[np.ix_(idx, idx)].sum() / big_n
            for g in np.unique(d[idx]):
                m = idx & (d == g)
                acc += k[np.ix_(m, m)].sum() / m.sum()
            t += acc / big_n
        out.append(t)
    return np.array(out)


@pytest.mark.parametrize("cost", [0.0, math.inf, P.PAIR_COST])
@pytest.mark.parametrize("groups", [2, 3, 25])
def test_kernel_dispersion_by_pairs_and_by_pattern_counts(cost, groups, monkeypatch):
    """Small groups summed over their pairs of clones, large ones as c'Kc over pattern counts (forced with
    PAIR_COST 0 and infinity, and the default mix): the definition, with repeated patterns, clones without a
    shared call and two strata."""
    monkeypatch.setattr(P, "PAIR_COST", cost)
    rng = np.random.default_rng(groups)
    x = (rng.random((60, 7)) < 0.4).astype(float)
    x[rng.random((60, 7)) < 0.1] = np.nan
    x[:12] = x[12:24]  # repeated patterns
    x[30] = [np.nan] * 6 + [1.0]
    x[31] = [1.0] + [np.nan] * 6  # shares no call with clone 30
    strata = (np.arange(60) % 5 == 0).astype(int)
    labels = np.arange(60) % groups
    draws, _ = P.label_draws(labels, strata, rng, 8)
    k_u, index, scale, undefined = P.pattern_kernel(x)
    assert undefined >= 1 and len(k_u) < 60
    k, scale2, _ = P.kernel_matrix(x)
    assert np.array_equal(k, k_u[np.ix_(index, index)]) and scale == scale2
    want = _brute_dispersion(k, draws, strata)
    assert np.allclose(P.kernel_dispersion(k_u, draws, strata, index), want, rtol=1e-12, atol=1e-15)
    assert np.allclose(P.kernel_dispersion(k, draws, strata), want, rtol=1e-12, atol=1e-15)


def test_pattern_kernel_is_the_clone_kernel_of_the_distances():
    """Bandwidth and the distance of pairs without a shared call (the mean of the defined ones) over every pair
    of clones, as pattern_distance gives them, with repeated patterns."""
    rng = np.random.default_rng(8)
    x = (rng.random((40, 6)) < 0.5).astype(float)
    x[rng.random((40, 6)) < 0.3] = np.nan
    x = x[~np.isnan(x).all(axis=1)]
    x = np.concatenate([x, x[:15]])
    d, undefined = P.pattern_distance(x)
    k, scale, undefined2 = P.kernel_matrix(x)
    assert undefined == undefined2 > 0
    assert scale == pytest.approx(P.KERNEL_FRACTION * np.median(d[~np.eye(len(x), dtype=bool)]), rel=1e-14)
    assert np.allclose(k, np.exp(-d / scale), rtol=1e-13, atol=0)


def test_kernel_dispersion_needs_permuted_draws():
    k = np.eye(4)
    with pytest.raises(ValueError, match="permute"):
        P.kernel_dispersion(k, np.array([[0, 0, 1, 1], [0, 0, 0, 1]]))
