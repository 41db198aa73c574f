"""Heterogeneity metrics (bsmeth.heterogeneity) against direct computations from their published definitions.

Each reference function below works on clones written as strings ('M', 'U', '-' = undetermined), one character
per assessable CpG, with plain loops and counters: a second, independent implementation of
* epipolymorphism, Landan et al. 2012 (Nat Genet 44:1207): 1 - sum of squared frequencies of the 16 patterns
  of 4 consecutive CpGs, over the reads that call all four;
* methylation entropy, Xie et al. 2011 (NAR 39:4099): (1/b) sum -(n_i/N) log2(n_i/N) over the patterns of
  b = 4 consecutive CpGs;
* PDR, Landau et al. 2014 (Cancer Cell 26:813): share of reads with both methylated and unmethylated CpGs among
  reads with at least 4 CpGs called;
* MHL, Guo et al. 2017 (Nat Genet 49:635): sum_i w_i MH_i / sum_i w_i, w_i = i, MH_i = share of fully
  methylated haplotypes among the haplotypes (i-mers) of i consecutive CpGs, i = 1..L, L the longest.
"""

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth import heterogeneity as H

# ---------------------------------------------------------------------------------------------------------------
# reference implementations (strings, loops)


def _windows(clones, b=4):
    """For each window of b consecutive CpGs: the patterns of the clones calling all b (None if < 2 such clones)."""
    n_cpg = len(clones[0])
    out = []
    for start in range(n_cpg - b + 1):
        pats = [c[start:start + b] for c in clones if "-" not in c[start:start + b]]
        out.append(pats if len(pats) >= 2 else None)
    return out


def ref_epipolymorphism(clones):
    vals = []
    for pats in _windows(clones):
        if pats is None:
            continue
        n = len(pats)
        vals.append(1 - sum((k / n) ** 2 for k in Counter(pats).values()))
    return sum(vals) / len(vals) if vals else math.nan


def ref_entropy(clones, b=4):
    vals = []
    for pats in _windows(clones, b):
        if pats is None:
            continue
        n = len(pats)
        vals.append(sum(-(k / n) * math.log2(k / n) for k in Counter(pats).values()) / b)
    return sum(vals) / len(vals) if vals else math.nan


def ref_pdr(clones):
    eligible = [c for c in clones if sum(ch != "-" for ch in c) >= 4]
    if not eligible:
        return math.nan
    return sum(("M" in c) and ("U" in c) for c in eligible) / len(eligible)


def ref_mhl(clones):
    n_cpg = len(clones[0])
    mh = {}
    for i in range(1, n_cpg + 1):
        mers = [c[k:k + i] for c in clones for k in range(n_cpg - i + 1) if "-" not in c[k:k + i]]
        if mers:
            mh[i] = sum(m == "M" * i for m in mers) / len(mers)
    if not mh:
        return math.nan
    big_l = max(mh)
    return sum(i * mh[i] for i in range(1, big_l + 1)) / sum(range(1, big_l + 1))


REFERENCE = {"epipolymorphism": ref_epipolymorphism, "entropy": ref_entropy, "pdr": ref_pdr, "mhl": ref_mhl}


def matrix(clones):
    return np.array([[1.0 if ch == "M" else 0.0 if ch == "U" else np.nan for ch in c] for c in clones])


def check(clones):
    got = H.metrics(matrix(clones))
    for name, ref in REFERENCE.items():
        want = ref(clones)
        if math.isnan(want):
            assert math.isnan(got[name]), (name, clones)
        else:
            assert got[name] == pytest.approx(want, abs=1e-12), (name, clones)


# ---------------------------------------------------------------------------------------------------------------
# hand-made clone sets

HAND = {
    "all different patterns": ["MMMM", "UUUU", "MUMU", "UMUM"],
    "two epialleles": ["MMMMMM"] * 3 + ["UUUUUU"] * 3,
    "random-looking": ["MUUMUM", "UMMUMU", "MMUUMM", "UUMMUU", "MUMUMU"],
    "undetermined CpGs": ["MM-MMU", "MMMMMU", "U-UUUM", "MMMM-M", "UUU-UU", "M-M-M-"],
    "windows lost to undetermined": ["MM-MM", "M-MMM", "MMM-M", "MMMMU", "UUUUU"],
    "one clone": ["MUMUMU"],
    "short clones (< 4 CpGs called)": ["MU--", "-M-U", "MMUU"],
    "fully methylated": ["MMMMMMMM"] * 4,
    "mixed lengths of runs": ["MMMUMMMM", "MMMMMMMM", "UMMMMMMU", "MM-MMMMM", "UUUUMMMM"],
}


@pytest.mark.parametrize("name", list(HAND))
def test_metrics_match_published_definitions_on_hand_made_sets(name):
    check(HAND[name])


def test_hand_values():
    """A few values worked by hand."""
    # four distinct 4-CpG patterns, one window: 1 - 4 (1/4)^2 = 0.75; entropy log2(4) / 4 = 0.5
    m = H.metrics(matrix(HAND["all different patterns"]))
    assert m["epipolymorphism"] == pytest.approx(0.75, abs=1e-12)
    assert m["entropy"] == pytest.approx(0.5, abs=1e-12)
    assert m["pdr"] == pytest.approx(0.5, abs=1e-12)  # MUMU and UMUM are discordant
    # half fully methylated, half fully unmethylated, 6 CpGs: every window 1 - 2 (1/2)^2 = 0.5, entropy 1/4,
    # no discordant read, MH_i = 1/2 for every i: MHL = 1/2
    m = H.metrics(matrix(HAND["two epialleles"]))
    assert (m["epipolymorphism"], m["entropy"], m["pdr"], m["mhl"]) == pytest.approx((0.5, 0.25, 0.0, 0.5), abs=1e-12)
    # MMMM, MMMU, UUUU (3 reads, 4 CpGs), by hand:
    # MH_1 = 7/12, MH_2 = 5/9, MH_3 = 3/6, MH_4 = 1/3: MHL = (7/12 + 2*5/9 + 3/2 + 4/3) / 10
    m = H.metrics(matrix(["MMMM", "MMMU", "UUUU"]))
    assert m["mhl"] == pytest.approx((7 / 12 + 10 / 9 + 1.5 + 4 / 3) / 10, abs=1e-12)
    # too few clones in every window: undefined, not 0
    assert math.isnan(H.metrics(matrix(["MUMUMU"]))["epipolymorphism"])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 9), st.integers(1, 10), st.floats(0, 1), st.floats(0, 0.4), st.integers(0, 10 ** 6))
def test_metrics_match_definitions_on_random_sets(n, n_cpg, p, p_nd, seed):
    rng = random.Random(seed)
    clones = ["".join("-" if rng.random() < p_nd else ("M" if rng.random() < p else "U") for _ in range(n_cpg))
              for _ in range(n)]
    check(clones)


def test_weighted_sets_equal_repeated_clones():
    """Weights are multiplicities: weight 2 = the clone twice (what bootstrap resamples rely on)."""
    clones = HAND["undetermined CpGs"]
    f = H.features(matrix(clones))
    w = np.array([[2, 0, 1, 3, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]], float)
    got = H.metrics_weighted(f, w)
    for r, row in enumerate(w):
        repeated = [c for c, k in zip(clones, row) for _ in range(int(k))]
        for name, ref in REFERENCE.items():
            want = ref(repeated)
            assert (math.isnan(got[name][r]) and math.isnan(want)) or got[name][r] == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError):
        H.metrics_weighted(f, np.full((1, 6), 0.5))


def test_rarefaction_is_the_mean_over_every_subset():
    clones = HAND["random-looking"] + ["MMMMMM", "UUUUUU"]
    x = matrix(clones)
    rows = H.sample_heterogeneity(x, 5, np.random.default_rng(1), smallest="s0")
    import itertools

    for r in rows:
        vals = [REFERENCE[r.metric]([clones[i] for i in sub]) for sub in itertools.combinations(range(7), 5)]
        assert r.rarefied == pytest.approx(float(np.nanmean(vals)), abs=1e-12)
        assert r.rarefied_clones == 5 and "every subset (21)" in r.rarefaction and "s0" in r.rarefaction
        assert r.clones == 7 and r.value == pytest.approx(REFERENCE[r.metric](clones), abs=1e-12)


def test_rarefaction_random_subsets_and_small_samples():
    x = matrix(["MUMUMU", "UMUMUM", "MMMUUU", "UUUMMM", "MMUUMM", "UUMMUU"] * 4)  # 24 clones
    rows = H.sample_heterogeneity(x, 10, np.random.default_rng(1))
    assert all("mean of 500 random subsets" in r.rarefaction for r in rows)
    small = H.sample_heterogeneity(matrix(["MUMU", "UMUM", "MMMM"]), 10, np.random.default_rng(1))
    assert all(math.isnan(r.rarefied) and r.rarefied_clones is None and "3 clones < the common count 10"
               in r.rarefaction for r in small)
    assert H.common_count([12, 3, 9, 11]) == 9  # 3 < RAREFY_MIN does not set it
    assert H.common_count([2, 3]) is None


def test_bootstrap_interval_is_seeded_and_covers_the_estimate():
    rng = random.Random(4)
    clones = ["".join(rng.choice("MU") for _ in range(12)) for _ in range(12)]
    x = matrix(clones)
    a = H.sample_heterogeneity(x, None, np.random.default_rng(1), H.bootstrap_metrics(x, 500, np.random.default_rng(7)))
    b = H.sample_heterogeneity(x, None, np.random.default_rng(1), H.bootstrap_metrics(x, 500, np.random.default_rng(7)))
    assert all(math.isnan(r.ci[0]) for r in H.sample_heterogeneity(x, None, np.random.default_rng(1)))
    assert [r.ci for r in a] == [r.ci for r in b]
    for r in a:
        if r.metric in ("epipolymorphism", "entropy", "mhl"):
            assert r.ci[0] < r.value < r.ci[1], r
        assert 0.0 <= r.ci[0] <= r.ci[1] <= 1.0


def test_shifted_percentile_interval():
    boot = np.array([0.1, 0.2, 0.3, 0.4, 0.5] * 20)
    lo, hi = H.shifted_percentile_ci(boot, 0.5)
    raw = np.quantile(boot, [0.025, 0.975])
    assert (lo, hi) == pytest.approx((raw[0] + 0.2, raw[1] + 0.2))
    assert H.shifted_percentile_ci(boot, 0.95, bounds=(0.0, 1.0))[1] == 1.0
    assert all(math.isnan(v) for v in H.shifted_percentile_ci(np.array([0.3]), 0.3))


def test_group_statistic_two_groups_and_trend():
    a = ["MMMMMM"] * 3 + ["UUUUUU"] * 3
    b = HAND["random-looking"]
    x = matrix(a + b)
    lab = np.array([0] * 6 + [1] * 5)
    f = H.features(x)
    got = H.group_statistic(f, lab[None, :], np.zeros(11, int), "two")
    for m, ref in REFERENCE.items():
        assert got[m][0] == pytest.approx(ref(b) - ref(a), abs=1e-12)
    c = ["MUUUUU", "UMUUUU", "UUMUUU", "UUUUUM"]
    x3 = matrix(a + b + c)
    lab3 = np.array([0] * 6 + [1] * 5 + [2] * 4)
    scores = {0: 0.0, 1: 1.0, 2: 3.0}
    got = H.group_statistic(H.features(x3), lab3[None, :], np.zeros(15, int), "trend", scores)
    for m, ref in REFERENCE.items():
        ys = np.array([ref(a), ref(b), ref(c)])
        xs = np.array([0.0, 1.0, 3.0])
        slope = ((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()
        assert got[m][0] == pytest.approx(slope, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# the two ways of summing a group (pairs of clones for small groups, a matrix product for large ones), and the
# batched computations: the same numbers as the plain ones


def _random_matrix(rng, n, n_cpg, p_nd=0.1):
    x = (rng.random((n, n_cpg)) < rng.random()).astype(float)
    x[rng.random((n, n_cpg)) < p_nd] = np.nan
    return x[~np.isnan(x).all(axis=1)]


def _brute_group_statistic(x, draws, strata, kind, scores=None):
    """group_statistic from the definitions: every metric of every group of every draw from its own clones."""
    out = {m: [] for m in H.METRICS}
    for d in draws:
        acc = {m: [] for m in H.METRICS}
        for s in np.unique(strata):
            idx = strata == s
            present = np.unique(d[idx])
            vals = {g: H.metrics(x[idx & (d == g)]) for g in present}
            ns = {g: float((idx & (d == g)).sum()) for g in present}
            for m in H.METRICS:
                v = np.array([vals[g][m] for g in present])
                if kind == "two":
                    acc[m].append(v[1] - v[0])
                elif kind == "k":
                    w = np.array([ns[g] for g in present])
                    acc[m].append((w * (v - (v * w).sum() / w.sum()) ** 2).sum() / w.sum())
                else:
                    xs = np.array([scores[g] for g in present])
                    xc = xs - xs.mean()
                    acc[m].append((xc * (v - v.mean())).sum() / (xc ** 2).sum())
        for m in H.METRICS:
            out[m].append(np.mean(acc[m]))
    return {m: np.array(v) for m, v in out.items()}


@pytest.mark.parametrize("kind", ["two", "k", "trend"])
@pytest.mark.parametrize("cost", [0.0, math.inf, H.PAIR_COST])
def test_group_statistic_by_pairs_and_by_matrix_products(kind, cost, monkeypatch):
    """Both paths (forced with PAIR_COST 0 and infinity, and the default mix) give the statistic computed from
    each group's clones directly, groups of 1 to 13 clones, two strata, undetermined CpGs."""
    from bsmeth.patterns import label_draws

    monkeypatch.setattr(H, "PAIR_COST", cost)
    rng = np.random.default_rng(11)
    x = _random_matrix(rng, 70, 9)
    n = len(x)
    strata = (np.arange(n) >= n // 2).astype(int)
    k = 2 if kind == "two" else 9
    labels = np.concatenate([rng.permutation(np.arange(n // 2) % k), rng.permutation(np.arange(n - n // 2) % k)])
    labels[:3] = k - 1 if kind != "two" else labels[:3]  # unequal group sizes
    draws, _ = label_draws(labels, strata, rng, 6)
    scores = {g: float(g) ** 1.3 for g in range(k)}
    got = H.group_statistic(H.features(x), draws, strata, kind, scores)
    want = _brute_group_statistic(x, draws, strata, kind, scores)
    for m in H.METRICS:
        assert np.allclose(got[m], want[m], rtol=0, atol=1e-12, equal_nan=True), m


def test_group_statistic_needs_permuted_draws():
    f = H.features(matrix(["MMMM", "UUUU", "MUMU", "UMUM"]))
    with pytest.raises(ValueError, match="permute"):
        H.group_statistic(f, np.array([[0, 0, 1, 1], [0, 1, 1, 1]]), np.zeros(4, int), "two")


def test_metrics_many_is_metrics_from_sums_item_by_item():
    """Bit for bit: the batched computation does each item's arithmetic in the same order; rows repeat sets."""
    rng = np.random.default_rng(3)
    items, want = [], []
    for k in range(12):
        x = _random_matrix(rng, int(rng.integers(1, 12)), 10 if k % 3 else 5)
        f = H.features(x)
        w = H.bootstrap_weights(len(x), 40, rng)
        sums = w @ f.table
        rows = rng.integers(0, len(sums), 40) if k % 2 else None
        items.append((f, sums, rows))
        want.append(H.metrics_from_sums(f, sums if rows is None else sums[rows]))
    for got, ref in zip(H.metrics_many(items), want):
        for m in H.METRICS:
            assert np.array_equal(got[m], ref[m], equal_nan=True), m


def test_batched_samples_equal_one_sample_at_a_time():
    rng = np.random.default_rng(5)
    xs = [_random_matrix(rng, n, 8) for n in (1, 2, 3, 5, 9, 14)]
    boots = H.bootstrap_many(xs, 300, [np.random.default_rng(k) for k in range(len(xs))])
    for k, x in enumerate(xs):
        one = H.bootstrap_metrics(x, 300, np.random.default_rng(k))
        assert (one is None) == (boots[k] is None)
        if one is not None:  # small samples: each distinct resample computed once, then spread
            plain = H.metrics_weighted(H.features(x), H.bootstrap_weights(len(x), 300, np.random.default_rng(k)))
            assert all(np.array_equal(one[m], boots[k][m], equal_nan=True) for m in H.METRICS)
            assert all(np.array_equal(one[m], plain[m], equal_nan=True) for m in H.METRICS)
    rows = H.samples_heterogeneity(xs, 3, [np.random.default_rng(k) for k in range(len(xs))], boots, "s")
    for k, x in enumerate(xs):
        assert repr(rows[k]) == repr(H.sample_heterogeneity(x, 3, np.random.default_rng(k), boots[k], "s"))
