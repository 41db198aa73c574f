"""Statistics of `bsmeth compare` (bsmeth.stats): against scipy, hand computations and synthetic data."""

import itertools
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as ss
from callfixtures import dose_design, random_clones, write_call_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth import stats as S
from bsmeth.errors import InputError
from bsmeth.tables import clone_table, load_call_dir


def _read_stats(path: Path) -> list[dict]:
    lines = path.read_text().rstrip("\n").split("\n")
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


# the per-clone methylation tests of this module; the clone-pattern rows (bsmeth.clonal) follow them and have
# their own tests (test_clonal.py)
METHYLATION_TESTS = {"fisher_cpg", "fisher_pooled", "mannwhitney_clones", "kruskal_clones", "trend_jt_clones",
                     "trend_cochran_armitage_pooled", "interaction_ols_hc3"}


def _methylation_rows(path: Path) -> list[dict]:
    return [r for r in _read_stats(path) if r["test"] in METHYLATION_TESTS]


# --- building blocks vs scipy --------------------------------------------------------------------


@pytest.mark.parametrize("table", [(3, 9, 11, 1), (0, 10, 5, 5), (7, 7, 7, 7), (1, 30, 12, 20), (0, 0, 3, 4)])
def test_fisher_matches_scipy(table):
    m1, u1, m2, u2 = table
    orr, p = S.fisher_2x2(m1, u1, m2, u2)
    ref = ss.fisher_exact([[m2, u2], [m1, u1]], alternative="two-sided")
    assert abs(p - ref.pvalue) < 1e-9
    assert orr == pytest.approx(ref.statistic, nan_ok=True) or (math.isinf(orr) and math.isinf(ref.statistic))


def test_fisher_two_sided_definition_is_sum_of_less_likely_tables():
    # the definition documented in docs/statistics.md: sum of hypergeometric probabilities <= observed
    m1, u1, m2, u2 = 2, 8, 7, 3
    n_meth, n1, total = m1 + m2, m1 + u1, m1 + u1 + m2 + u2
    dist = ss.hypergeom(total, n_meth, n1)
    p_obs = dist.pmf(m1)
    p = sum(dist.pmf(k) for k in range(0, min(n_meth, n1) + 1) if dist.pmf(k) <= p_obs * (1 + 1e-7))
    assert abs(S.fisher_2x2(m1, u1, m2, u2)[1] - p) < 1e-9


def _fisher_by_binomials(m1, u1, m2, u2):
    """The two-sided p as fisher_2x2 computed it before the recurrence: every weight from two binomials."""
    a, b, c, d = m2, u2, m1, u1
    if min(a + b, c + d, a + c, b + d) == 0:
        return 1.0
    row1, row2, col1 = a + b, c + d, a + c
    weights = [math.comb(row1, x) * math.comb(row2, col1 - x) for x in range(max(0, col1 - row2), min(row1, col1) + 1)]
    observed = math.comb(row1, a) * math.comb(row2, col1 - a)
    return min(1.0, sum(w for w in weights if w * 10 ** 14 <= observed * (10 ** 14 + 1)) / math.comb(row1 + row2, col1))


@settings(max_examples=200, deadline=None)
@given(st.tuples(*[st.integers(0, 400)] * 4) | st.tuples(*[st.integers(0, 12)] * 4))
def test_fisher_recurrence_gives_the_binomials_p_exactly(table):
    """The weights by their integer recurrence are the binomial products, so p is the same float, not just close
    (pooled tables of thousands of calls were what made compare slow)."""
    assert S.fisher_2x2(*table)[1] == _fisher_by_binomials(*table)


def test_fisher_on_a_pooled_table_of_two_thousand_calls():
    m1, u1, m2, u2 = 255, 745, 281, 719
    p = S.fisher_2x2(m1, u1, m2, u2)[1]
    assert p == _fisher_by_binomials(m1, u1, m2, u2)
    assert abs(p - ss.fisher_exact([[m2, u2], [m1, u1]]).pvalue) < 1e-9


def test_trend_bootstrap_from_level_sums_is_the_slope_of_each_resample():
    """_trend_rows' CI: the slope of every resample from the levels' sums equals the least-squares slope of the
    resampled clones themselves (the reps x clones computation it replaces)."""
    import pandas as pd

    rng = np.random.default_rng(4)
    n = 60
    df = pd.DataFrame({"dose": rng.choice(["0", "1", "3", "10"], n), "fraction": np.round(rng.random(n), 2),
                       "m": rng.integers(0, 9, n), "n": np.full(n, 10)})
    row = S._trend_rows(df, "dose", "all", np.random.default_rng(1), 300)[0]
    # the same resamples, drawn level by level as _trend_rows draws them
    draw = np.random.default_rng(1)
    s = df["dose"].astype(float).to_numpy()
    y = 100 * df["fraction"].to_numpy()
    levels = sorted(set(s))
    pick = np.concatenate([np.flatnonzero(s == lv)[draw.integers(0, (s == lv).sum(), size=(300, (s == lv).sum()))]
                           for lv in levels], axis=1)
    xs, ys = s[pick], y[pick]
    xc = xs - xs.mean(axis=1, keepdims=True)
    slopes = (xc * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1) / (xc ** 2).sum(axis=1)
    lo, hi = np.nanquantile(slopes, [0.025, 0.975])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-9)


def test_mann_whitney_and_kruskal_match_scipy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 11, 14) / 10  # per-clone fractions: many ties
    y = rng.integers(2, 11, 9) / 10
    z = rng.integers(5, 11, 11) / 10
    u, p = S.mann_whitney(x, y)
    ref = ss.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    assert abs(u - ref.statistic) < 1e-9 and abs(p - ref.pvalue) < 1e-9
    h, p = S.kruskal([x, y, z])
    ref = ss.kruskal(x, y, z)
    assert abs(h - ref.statistic) < 1e-9 and abs(p - ref.pvalue) < 1e-9


# fisher_2x2, mann_whitney and kruskal are computed without scipy.stats (its import is slow): held to it here
_counts = st.integers(0, 60) | st.integers(0, 600)


@settings(max_examples=300, deadline=None)
@given(_counts, _counts, _counts, _counts)
def test_fisher_matches_scipy_on_any_table(m1, u1, m2, u2):
    orr, p = S.fisher_2x2(m1, u1, m2, u2)
    ref = ss.fisher_exact([[m2, u2], [m1, u1]], alternative="two-sided")
    assert abs(p - ref.pvalue) < 1e-9
    assert (math.isnan(orr) and math.isnan(ref.statistic)) or orr == pytest.approx(ref.statistic, rel=1e-12)


_fractions = st.lists(st.integers(0, 10).map(lambda k: k / 10), min_size=1, max_size=25)  # per-clone: ties
_distinct = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12, unique=True)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(_fractions, _fractions),
                 _distinct.flatmap(lambda v: st.integers(0, len(v)).map(lambda k: (v[:k], v[k:])))))
def test_mann_whitney_matches_scipy(xy):
    x, y = xy
    u, p = S.mann_whitney(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ss.mannwhitneyu(x, y, alternative="two-sided", method="auto") if x and y else None
    if ref is None:
        assert math.isnan(u) and math.isnan(p)
        return
    assert abs(u - ref.statistic) < 1e-9
    assert (math.isnan(p) and math.isnan(ref.pvalue)) or abs(p - ref.pvalue) < 1e-9


def test_mann_whitney_exact_branch_on_small_distinct_samples():
    x, y = [0.11, 0.52, 0.33], [0.91, 0.74, 0.66, 0.85]
    u, p = S.mann_whitney(x, y)
    assert (u, p) == (0.0, pytest.approx(2 / math.comb(7, 3), abs=1e-15))  # the single most extreme split, twice


@settings(max_examples=200, deadline=None)
@given(st.lists(_fractions, min_size=2, max_size=5))
def test_kruskal_matches_scipy(groups):
    h, p = S.kruskal(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ss.kruskal(*groups)
    if math.isnan(ref.statistic):
        assert math.isnan(h) and math.isnan(p)
    else:
        assert h == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12) and abs(p - ref.pvalue) < 1e-9


@given(st.lists(st.integers(0, 5), max_size=30))
def test_average_ranks_match_scipy(values):
    assert np.allclose(S.rank_average(values), ss.rankdata(values), rtol=0, atol=1e-12)


def test_bh_against_hand_computation():
    p = [0.01, 0.04, None, 0.03, 0.005, 0.2]
    # ranks of the five real p: 0.005(1) 0.01(2) 0.03(3) 0.04(4) 0.2(5), m = 5
    # p*m/rank: 0.025 0.025 0.05 0.05 0.2 ; cumulative minimum from the top: same here
    expected = [0.025, 0.05, None, 0.05, 0.025, 0.2]
    got = S.bh_adjust(p)
    for g, e in zip(got, expected):
        assert (g is None and e is None) or abs(g - e) < 1e-12
    # monotonicity step: 0.04*3/2 = 0.06 > 0.045*3/3: the smaller rank inherits 0.045
    assert S.bh_adjust([0.01, 0.04, 0.045]) == pytest.approx([0.03, 0.045, 0.045])
    assert S.bh_adjust([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert S.bh_adjust([]) == []


def test_wilson_and_newcombe():
    lo, hi = S.wilson_ci(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = S.wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    # Newcombe (1998), Stat Med 17:873, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    d, lo, hi = S.newcombe_diff_ci(48, 80, 56, 70)
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_bootstrap_ci_is_seeded_and_covers_difference():
    x, y = [0.1, 0.2, 0.3, 0.2, 0.1], [0.6, 0.7, 0.8, 0.9, 0.5, 0.7]
    a = S.bootstrap_mean_diff_ci(x, y, np.random.default_rng(7))
    b = S.bootstrap_mean_diff_ci(x, y, np.random.default_rng(7))
    assert a == b
    d, lo, hi = a
    assert d == pytest.approx(np.mean(y) - np.mean(x))
    assert lo < d < hi


# --- trend tests ---------------------------------------------------------------------------------


def test_cochran_armitage_worked_example():
    """Agresti, Categorical Data Analysis (2002), infant malformation by maternal alcohol consumption
    (drinks/day 0, <1, 1-2, 3-5, >=6 scored 0, 0.5, 1.5, 4, 7).  Agresti reports the linear-trend
    statistic M^2 = (N - 1) r^2 = 6.57 (P = 0.01); Cochran-Armitage's z^2 = N r^2."""
    present = [48, 38, 5, 1, 1]
    absent = [17066, 14464, 788, 126, 37]
    scores = [0, 0.5, 1.5, 4.0, 7.0]
    n = [a + b for a, b in zip(present, absent)]
    # by hand
    N = sum(n)
    p_bar = sum(present) / N
    s_bar = sum(ni * si for ni, si in zip(n, scores)) / N
    T = sum(xi * (si - s_bar) for xi, si in zip(present, scores))
    var = p_bar * (1 - p_bar) * sum(ni * (si - s_bar) ** 2 for ni, si in zip(n, scores))
    z_hand = T / math.sqrt(var)
    z, p, slope = S.cochran_armitage(present, n, scores)
    assert z == pytest.approx(z_hand, rel=1e-12)
    assert z * z * (N - 1) / N == pytest.approx(6.57, abs=0.005)  # Agresti's M^2
    assert p == pytest.approx(2 * ss.norm.sf(z_hand), rel=1e-12)
    assert p == pytest.approx(0.0104, abs=0.0002)
    assert slope > 0


def test_jonckheere_statistic_is_sum_of_pairwise_u():
    rng = np.random.default_rng(11)
    vals = rng.integers(0, 6, 20) / 5
    groups = np.repeat([0.0, 1.0, 3.0, 10.0], 5)
    jt, z, p = S.jonckheere_terpstra(vals, groups)
    u = 0.0
    for a, b in itertools.combinations([0.0, 1.0, 3.0, 10.0], 2):
        u += ss.mannwhitneyu(vals[groups == b], vals[groups == a]).statistic  # U of the higher dose
    assert jt == pytest.approx(u)
    assert p == pytest.approx(2 * ss.norm.sf(abs(z)))


def test_jonckheere_variance_is_exact_permutation_variance_with_ties():
    vals = np.array([0.1, 0.1, 0.3, 0.5, 0.5, 0.5, 0.9, 0.2])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2], float)
    jt0, z0, _ = S.jonckheere_terpstra(vals, groups)
    # every distinct assignment of the group labels is equally likely under H0: enumerate them all
    stats = []
    for perm in set(itertools.permutations(groups.tolist())):
        stats.append(S.jonckheere_terpstra(vals, np.array(perm))[0])
    stats = np.array(stats)
    mean, sd = stats.mean(), stats.std()
    assert z0 == pytest.approx((jt0 - mean) / sd, rel=1e-9)


def _trend_dir(tmp_path, effect_hct, effect_dko, seed=2):
    eff = {}
    for dose, (a, b) in zip([0, 1, 3, 10], zip(effect_hct, effect_dko)):
        eff[("HCT116", dose)] = a
        eff[("DKO", dose)] = b
    return dose_design(tmp_path / "call", eff, n_clones=10, seed=seed)


def _rows(path, test, scope=None):
    return [r for r in _read_stats(path) if r["test"] == test and (scope is None or r["scope"] == scope)]


def test_trend_and_interaction_with_obvious_effect(tmp_path):
    d = _trend_dir(tmp_path, [0.85, 0.65, 0.4, 0.1], [0.3, 0.3, 0.3, 0.3])
    out = S.run_compare(d, S.CompareConfig(seed=5))
    jt = _rows(out, "trend_jt_clones", "cell_line=HCT116")[0]
    assert float(jt["p"]) < 1e-4 and float(jt["effect"]) < 0
    assert float(jt["ci_low"]) < float(jt["effect"]) < float(jt["ci_high"]) < 0
    ca = _rows(out, "trend_cochran_armitage_pooled", "cell_line=HCT116")[0]
    assert float(ca["statistic"]) < 0 and float(ca["p"]) < 1e-4
    inter = _rows(out, "interaction_ols_hc3")[0]
    assert inter["groups"] == "slope cell_line=DKO - slope cell_line=HCT116"
    assert float(inter["p"]) < 1e-4 and float(inter["effect"]) > 0  # DKO's slope is flatter (less negative)
    assert float(inter["ci_low"]) > 0


def test_trend_and_interaction_without_effect(tmp_path):
    d = _trend_dir(tmp_path, [0.4] * 4, [0.4] * 4, seed=4)
    out = S.run_compare(d, S.CompareConfig(seed=5))
    for scope in ("cell_line=HCT116", "cell_line=DKO"):
        jt = _rows(out, "trend_jt_clones", scope)[0]
        assert float(jt["p"]) > 0.05
        assert float(jt["ci_low"]) < 0 < float(jt["ci_high"])
    inter = _rows(out, "interaction_ols_hc3")[0]
    assert float(inter["p"]) > 0.05
    assert float(inter["ci_low"]) < 0 < float(inter["ci_high"])


def test_ols_hc3_against_explicit_sandwich():
    rng = np.random.default_rng(0)
    n = 30
    dose = rng.choice([0.0, 1.0, 3.0, 10.0], n)
    line = rng.integers(0, 2, n)
    y = 50 - 2 * dose + 10 * line + 1.5 * dose * line + rng.normal(0, 5 + line * 5, n)
    X, inter = S.interaction_design(dose, line, 2)
    res = S.ols_hc3(X, y)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    assert res.coef == pytest.approx(beta, rel=1e-9)
    bread = np.linalg.inv(X.T @ X)
    meat = np.zeros((X.shape[1], X.shape[1]))
    for i in range(n):
        h = X[i] @ bread @ X[i]
        e = y[i] - X[i] @ beta
        meat += np.outer(X[i], X[i]) * e * e / (1 - h) ** 2
    assert res.cov == pytest.approx(bread @ meat @ bread, rel=1e-9)
    assert inter == [3]
    f, p = S.wald_test(res, inter)
    t = res.coef[3] / math.sqrt(res.cov[3, 3])
    assert f == pytest.approx(t * t) and p == pytest.approx(2 * ss.t.sf(abs(t), n - 4))


# --- the compare stage ---------------------------------------------------------------------------


def _two_group_dir(tmp_path, snp=False):
    rng = random.Random(9)
    samples = [
        {"sample": "ctrl", "group": "ctrl", "clones": random_clones(rng, 9, 0.2, 10),
         "failed": [("low_conversion", "c")]},
        {"sample": "aza", "group": "aza", "clones": random_clones(rng, 11, 0.7, 10)},
    ]
    return write_call_dir(tmp_path / "two", samples, sheet_columns=("group",), under_primer=(1,),
                          snp_cpg=5 if snp else None)


def test_two_groups_agree_with_scipy_on_counts(tmp_path):
    d = _two_group_dir(tmp_path)
    out = S.run_compare(d, S.CompareConfig(seed=1))
    assert out == d / "stats.tsv"
    header = out.read_text().split("\n")[0].split("\t")
    assert header == ["amplicon", "test", "scope", "groups", "cpg", "statistic", "p", "p_adj", "effect", "ci_low",
                      "ci_high", "n", "note"]
    rows = _read_stats(out)
    data = load_call_dir(d)
    calls = data.cpg_calls[data.cpg_calls["status"] == "pass"]
    fisher = [r for r in rows if r["test"] == "fisher_cpg"]
    assert [r["cpg"] for r in fisher] == [str(i) for i in range(2, 11)]  # CpG 1 is under a primer
    ps = []
    for r in fisher:
        at = calls[calls["cpg"] == int(r["cpg"])]
        cnt = {g: ((at["sample"] == g) & (at["call"] == "M")).sum() for g in ("ctrl", "aza")}
        un = {g: ((at["sample"] == g) & (at["call"] == "U")).sum() for g in ("ctrl", "aza")}
        ref = ss.fisher_exact([[cnt["aza"], un["aza"]], [cnt["ctrl"], un["ctrl"]]])
        assert abs(float(r["p"]) - ref.pvalue) < 1e-6 * max(1.0, ref.pvalue)  # 6 significant digits written
        ps.append(ref.pvalue)
        assert r["groups"] == "group=aza - group=ctrl" and r["scope"] == "all"
    adj = S.bh_adjust(ps)
    for r, a in zip(fisher, adj):
        assert float(r["p_adj"]) == pytest.approx(a, rel=1e-5)
    clones = clone_table(data)
    x = clones[clones["group"] == "ctrl"]["fraction"]
    y = clones[clones["group"] == "aza"]["fraction"]
    assert len(x) == 9  # the failed read is not a clone
    mw = [r for r in rows if r["test"] == "mannwhitney_clones"][0]
    ref = ss.mannwhitneyu(y, x, alternative="two-sided")
    assert float(mw["statistic"]) == pytest.approx(ref.statistic)
    assert float(mw["p"]) == pytest.approx(ref.pvalue, rel=1e-5)
    assert float(mw["effect"]) == pytest.approx(100 * (y.mean() - x.mean()), rel=1e-5)
    assert mw["n"] == "20"
    pooled = [r for r in rows if r["test"] == "fisher_pooled"][0]
    assert "reference only" in pooled["note"]
    # no dose column: no trend rows
    assert not [r for r in rows if r["test"].startswith("trend")]


def test_compare_is_deterministic(tmp_path):
    d = _two_group_dir(tmp_path)
    a = S.run_compare(d, S.CompareConfig(seed=3)).read_bytes()
    b = S.run_compare(d, S.CompareConfig(seed=3)).read_bytes()
    assert a == b
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_more_than_two_groups_uses_kruskal(tmp_path):
    rng = random.Random(1)
    samples = [{"sample": f"s{i}", "cond": c, "clones": random_clones(rng, 8, p, 6)}
               for i, (c, p) in enumerate([("a", 0.2), ("b", 0.5), ("c", 0.8)])]
    d = write_call_dir(tmp_path / "three", samples, positions=(5, 9, 20, 31, 40, 52), sheet_columns=("cond",))
    rows = _methylation_rows(S.run_compare(d, S.CompareConfig()))
    assert [r["test"] for r in rows] == ["kruskal_clones"]
    clones = clone_table(load_call_dir(d))
    ref = ss.kruskal(*[clones[clones["cond"] == g]["fraction"] for g in "abc"])
    assert float(rows[0]["statistic"]) == pytest.approx(ref.statistic, rel=1e-5)
    assert rows[0]["groups"] == "cond=a vs cond=b vs cond=c"


def test_one_group_is_skipped_with_a_note(tmp_path):
    rng = random.Random(1)
    d = write_call_dir(tmp_path / "one", [{"sample": "only", "clones": random_clones(rng, 4, 0.5, 10)}],
                       sheet_columns=())
    rows = _methylation_rows(S.run_compare(d, S.CompareConfig()))
    assert len(rows) == 1 and rows[0]["note"].startswith("skipped") and rows[0]["p"] == ""


def test_within_scopes_and_bh_families(tmp_path):
    d = _trend_dir(tmp_path, [0.8, 0.6, 0.4, 0.2], [0.3, 0.3, 0.3, 0.3])
    rows = _read_stats(S.run_compare(d, S.CompareConfig()))
    scopes = list(dict.fromkeys(r["scope"] for r in rows if r["test"] == "fisher_cpg"))
    assert scopes == ["dose=0", "dose=1", "dose=3", "dose=10"]  # numeric order
    for scope in scopes:
        fam = [r for r in rows if r["test"] == "fisher_cpg" and r["scope"] == scope and r["p"]]
        adj = S.bh_adjust([float(r["p"]) for r in fam])
        assert [float(r["p_adj"]) for r in fam] == pytest.approx(adj, rel=1e-5)


def test_roles_and_bad_column(tmp_path):
    assert (S.resolve_roles(["cell_line", "dose"], S.CompareConfig())
            == S.Roles("cell_line", "dose", "dose", "cell_line"))
    assert S.resolve_roles([], S.CompareConfig()) == S.Roles("sample", None, None, None)
    assert S.resolve_roles(["dose"], S.CompareConfig()).by == "dose"
    with pytest.raises(InputError, match="available: sample, cell_line"):
        S.resolve_roles(["cell_line"], S.CompareConfig(by="treatment"))


def test_cochran_armitage_is_anti_conservative_with_correlated_cpgs():
    """No dose effect, but CpGs of a clone share its state (a clone is methylated at 80 % or 20 % of its
    CpGs): CpG-level CA rejects far too often, the clone-level JT keeps its level."""
    rng = np.random.default_rng(12)
    doses = np.repeat([0.0, 1.0, 3.0, 10.0], 8)
    n_cpg, reps = 12, 400
    ca_rej = jt_rej = 0
    for _ in range(reps):
        p_clone = np.where(rng.random(len(doses)) < 0.5, 0.8, 0.2)
        m = rng.binomial(n_cpg, p_clone)
        frac = m / n_cpg
        _, p_jt = S.jonckheere_terpstra(frac, doses)[1:]
        levels = [0.0, 1.0, 3.0, 10.0]
        x = [int(m[doses == d].sum()) for d in levels]
        n = [int((doses == d).sum()) * n_cpg for d in levels]
        _, p_ca, _ = S.cochran_armitage(x, n, levels)
        ca_rej += p_ca < 0.05
        jt_rej += p_jt < 0.05
    assert jt_rej / reps < 0.09
    assert ca_rej / reps > 0.25


def test_partial_clones_are_left_out_of_clone_level_tests_only(tmp_path):
    """A read over 1 of 10 CpGs is a 0 % or 100 % 'clone': with --min-clone-coverage 50 % it does not enter
    the per-clone tests (nor the dose-response clone points), while summary.tsv still counts its call."""
    import json

    from bsmeth.tables import clone_table

    full = ["MMUUMMUUMM"] * 5
    samples = [{"sample": "a", "cell_line": "x", "dose": "0", "clones": full + [".........M", "....MMMMMM"]},
               {"sample": "b", "cell_line": "y", "dose": "0", "clones": ["UUUUUUUUUU"] * 6}]
    d = write_call_dir(tmp_path / "c", samples)
    run = json.loads((d / "run.json").read_text())
    assert "min_clone_coverage_pct" not in run["parameters"]
    assert len(clone_table(load_call_dir(d))) == 13  # a folder of bsmeth 0.1: no coverage rule
    run["parameters"]["min_clone_coverage_pct"] = 50
    (d / "run.json").write_text(json.dumps(run))
    data = load_call_dir(d)
    clones = clone_table(data)
    assert len(clones) == 12 and clones.attrs["partial"] == 1  # 6 of 10 called: kept; 1 of 10: left out
    assert len(clone_table(data, all_clones=True)) == 13
    rows = S.compare_rows(data, S.CompareConfig(seed=1, bootstrap_reps=100))
    mw = next(r for r in rows if r["test"] == "mannwhitney_clones")
    assert mw["n"] == 12 and "1 clone(s) with fewer than 50 % of the assessable CpGs called left out" in mw["note"]
    fisher = [r for r in rows if r["test"] == "fisher_cpg" and r["cpg"] == 10]
    assert fisher and fisher[0]["n"] == 13  # per-CpG counts keep the partial clone's call
