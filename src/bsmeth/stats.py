"""The ``compare`` stage: condition comparisons with the clone as the unit of analysis.

Pipeline position: after ``call``; reads only the call directory (through
``tables``) and writes ``stats.tsv`` into it.  See docs/statistics.md for
which test answers which question and why.

CpGs of one clone come from one DNA molecule and are not independent
(methylation is spatially correlated), so the primary tests work on per-clone
methylation fractions; tests on pooled CpG counts are reported for reference
and for comparison with QUMA/BiQ Analyzer.  The first half of this module is
plain numerical functions (numpy/scipy) tested against scipy and hand
computations; the second half builds the tidy table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .patterns import PERMUTATIONS, RESAMPLES

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
AUTO = "auto"
STATS_COLUMNS = ("amplicon", "test", "scope", "groups", "cpg", "statistic", "p", "p_adj", "effect", "ci_low",
                 "ci_high", "n", "note")
BOOTSTRAP_REPS = 4000


# =============================================================================================
# numerical building blocks (no pandas)


def bh_adjust(pvalues: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1); None/NaN entries stay None
    and do not count towards the number of tests."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out: list[Optional[float]] = [None] * len(pvalues)
    m = len(idx)
    if not m:
        return out
    order = sorted(idx, key=lambda i: pvalues[i])
    running = 1.0
    # walk from the largest p down: adj_(k) = min_{j>=k} p_(j) * m / j
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        out[i] = min(1.0, running)
    return out


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (fractions); (nan, nan) when n == 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_diff_ci(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference p2 - p1 with Newcombe's hybrid score interval (method 10, from two Wilson intervals)."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (d, max(-1.0, low), min(1.0, high))


# The tests below are written on scipy.special (0.3 s to import) instead of calling scipy.stats, whose import
# alone took 1.2 s, the largest single cost of `compare`.  tests/test_stats.py holds each of them to scipy.stats
# within 1e-9 (Hypothesis over random tables and samples, ties included).


def fisher_2x2(m1: int, u1: int, m2: int, u2: int) -> tuple[float, float]:
    """scipy's Fisher exact test on [[m2, u2], [m1, u1]]: (sample odds ratio of group 2 vs 1, two-sided p).

    Two-sided = scipy's definition: the sum of the probabilities of all tables (same margins) that are
    no more likely than the observed one (within a relative 1e-14, as scipy).  QUMA doubles/sums tails
    differently, so its p differs.  Computed in exact integers: the hypergeometric probabilities share one
    denominator, so only numerators C(row1, x) C(row2, col1 - x) are compared and summed.
    """
    a, b, c, d = m2, u2, m1, u1
    if min(a + b, c + d, a + c, b + d) == 0:
        return (math.nan, 1.0)
    odds = a * d / (b * c) if b > 0 and c > 0 else math.inf
    row1, row2, col1 = a + b, c + d, a + c
    lo, hi = max(0, col1 - row2), min(row1, col1)
    observed = math.comb(row1, a) * math.comb(row2, col1 - a)
    # weight <= observed * (1 + 1e-14), in integers; the weights C(row1, x) C(row2, col1 - x) by their exact
    # recurrence (one multiplication and one division by small numbers per table instead of two binomials:
    # pooled tables of thousands of calls took seconds)
    limit = observed * (10 ** 14 + 1)
    w = math.comb(row1, lo) * math.comb(row2, col1 - lo)
    tail = 0
    for x in range(lo, hi + 1):
        if w * 10 ** 14 <= limit:
            tail += w
        if x < hi:
            w = w * (row1 - x) * (col1 - x) // ((x + 1) * (row2 - col1 + x + 1))
    return (odds, min(1.0, tail / math.comb(row1 + row2, col1)))


def rank_average(values) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy's rankdata 'average')."""
    a = np.asarray(values, float)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    starts = np.r_[True, s[1:] != s[:-1]]
    dense = np.cumsum(starts)
    bounds = np.r_[np.nonzero(starts)[0], len(s)]
    ranks = np.empty(len(a))
    ranks[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks


def _tie_sizes(values) -> np.ndarray:
    return np.unique(np.asarray(values, float), return_counts=True)[1].astype(float)


def _mwu_exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) under the null, no ties: U's counts are the coefficients of the Gaussian binomial
    [n1 + n2 choose n1]_q, built as prod (1 - q^(n2+i)) / (1 - q^i) in exact integers."""
    size = n1 * n2 + 1
    poly = [1] + [0] * (size - 1)
    for i in range(1, n1 + 1):
        step = n2 + i
        for k in range(size - 1, step - 1, -1):  # times (1 - q^(n2+i))
            poly[k] -= poly[k - step]
        for k in range(i, size):  # divided by (1 - q^i): a running sum with stride i
            poly[k] += poly[k - i]
    return sum(poly[u:]) / math.comb(n1 + n2, n1)


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U as scipy's ``mannwhitneyu`` with method 'auto': (U of x, p).

    Exact null distribution when a sample has at most 8 values and there are no ties; otherwise the normal
    approximation with tie correction and continuity correction.
    """
    from scipy.special import ndtr

    x, y = np.asarray(x, float), np.asarray(y, float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan)
    both = np.concatenate([x, y])
    ranks = rank_average(both)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u = max(u1, n1 * n2 - u1)
    ties = _tie_sizes(both)
    if (n1 > 8 and n2 > 8) or (ties > 1).any():
        n = n1 + n2
        sd = np.sqrt(n1 * n2 / 12 * ((n + 1) - float((ties ** 3 - ties).sum()) / (n * (n - 1))))
        with np.errstate(divide="ignore", invalid="ignore"):  # all values tied: sd 0, z -inf and p 1 (as scipy)
            p = 2 * float(ndtr(-np.float64(u - n1 * n2 / 2 - 0.5) / sd))
    else:
        p = 2 * _mwu_exact_sf(int(round(u)), n1, n2)
    return (u1, min(1.0, max(0.0, p)) if not math.isnan(p) else p)


def kruskal(groups: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Kruskal-Wallis H, tie-corrected, chi-square reference, as scipy's ``kruskal``: (H, p).  All values
    equal: (nan, nan)."""
    from scipy.special import chdtrc

    arrays = [np.asarray(g, float) for g in groups]
    allv = np.concatenate(arrays)
    n = len(allv)
    ranks = rank_average(allv)
    h, start = 0.0, 0
    for g in arrays:
        h += float(ranks[start:start + len(g)].sum()) ** 2 / len(g)
        start += len(g)
    h = 12.0 / (n * (n + 1)) * h - 3 * (n + 1)
    ties = _tie_sizes(allv)
    correction = 1.0 - float((ties ** 3 - ties).sum()) / (n ** 3 - n)
    if correction == 0:
        return (math.nan, math.nan)
    h /= correction
    return (h, float(chdtrc(len(arrays) - 1, h)))


def bootstrap_mean_diff_ci(x: Sequence[float], y: Sequence[float], rng: np.random.Generator,
                           reps: int = BOOTSTRAP_REPS, level: float = 0.95) -> tuple[float, float, float]:
    """mean(y) - mean(x) with a percentile bootstrap CI, resampling clones within each group."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = float(y.mean() - x.mean())
    if len(x) < 2 or len(y) < 2:
        return (d, math.nan, math.nan)
    bx = x[rng.integers(0, len(x), size=(reps, len(x)))].mean(axis=1)
    by = y[rng.integers(0, len(y), size=(reps, len(y)))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(by - bx, [a, 1 - a])
    return (d, float(lo), float(hi))


def _jt_normal(jt: float, n, ni: np.ndarray, tj: np.ndarray) -> tuple[float, float, float]:
    """(J, z, two-sided p) of the Jonckheere-Terpstra statistic ``jt`` by its normal approximation with the
    tie-corrected variance (Hollander & Wolfe): ``n`` observations, ``ni`` per group, ``tj`` per tied value."""
    from scipy.special import ndtr

    mean = (n * n - (ni ** 2).sum()) / 4.0
    var = (n * (n - 1) * (2 * n + 5) - (ni * (ni - 1) * (2 * ni + 5)).sum()
           - (tj * (tj - 1) * (2 * tj + 5)).sum()) / 72.0
    if n > 2:
        var += (ni * (ni - 1) * (ni - 2)).sum() * (tj * (tj - 1) * (tj - 2)).sum() / (36.0 * n * (n - 1) * (n - 2))
    if n > 1:
        var += (ni * (ni - 1)).sum() * (tj * (tj - 1)).sum() / (8.0 * n * (n - 1))
    if var <= 0:
        return (jt, math.nan, math.nan)
    z = (jt - mean) / math.sqrt(var)
    return (jt, z, float(2 * ndtr(-abs(z))))


def jonckheere_terpstra(values: Sequence[float], groups: Sequence[float]) -> tuple[float, float, float]:
    """Jonckheere-Terpstra test for an ordered alternative (groups ordered by their number, e.g. dose).

    JT = sum over group pairs i < j of #(x_i < x_j) + 0.5 #(x_i == x_j): the sum of the pairwise
    Mann-Whitney U statistics.  Normal approximation with the exact permutation variance given ties
    (Hollander & Wolfe).  Returns (JT, z, two-sided p).
    """

    v = np.asarray(values, float)
    g = np.asarray(groups, float)
    levels = np.unique(g)
    jt = 0.0
    for a in range(len(levels)):
        xa = v[g == levels[a]]
        for b in range(a + 1, len(levels)):
            xb = v[g == levels[b]]
            diff = xb[None, :] - xa[:, None]
            jt += float((diff > 0).sum() + 0.5 * (diff == 0).sum())
    n = len(v)
    ni = np.array([(g == lv).sum() for lv in levels], float)
    _, tj = np.unique(v, return_counts=True)
    tj = tj.astype(float)
    return _jt_normal(jt, n, ni, tj)


def cochran_armitage(successes: Sequence[int], totals: Sequence[int],
                     scores: Sequence[float]) -> tuple[float, float, float]:
    """Cochran-Armitage test for a linear trend in proportions: (z, two-sided p, slope).

    T = sum x_i (s_i - s_bar), Var = p_bar (1 - p_bar) sum n_i (s_i - s_bar)^2 with s_bar the
    n-weighted mean score (the N, not N - 1, version; z^2 = N r^2).  ``slope`` is the least-squares
    slope of the proportion on the score (fraction per score unit).
    """
    from scipy.special import ndtr

    x = np.asarray(successes, float)
    n = np.asarray(totals, float)
    s = np.asarray(scores, float)
    big_n = n.sum()
    if big_n <= 0:
        return (math.nan, math.nan, math.nan)
    p_bar = x.sum() / big_n
    s_bar = (n * s).sum() / big_n
    ss = (n * (s - s_bar) ** 2).sum()
    t = (x * (s - s_bar)).sum()
    var = p_bar * (1 - p_bar) * ss
    slope = t / ss if ss > 0 else math.nan
    if var <= 0:
        return (math.nan, math.nan, slope)
    z = t / math.sqrt(var)
    return (z, float(2 * ndtr(-abs(z))), slope)


@dataclass(frozen=True)
class OLSResult:
    coef: np.ndarray
    cov: np.ndarray  # HC3 covariance
    df_resid: int
    n: int
    leverage_one: int  # observations with leverage 1 (their HC3 term is set to 0)


def ols_hc3(X: np.ndarray, y: np.ndarray) -> OLSResult:
    """Least squares with the HC3 heteroscedasticity-consistent covariance (MacKinnon & White 1985):
    (X'X)^-1 X' diag(e_i^2 / (1 - h_ii)^2) X (X'X)^-1.  Robust to unequal variances between groups,
    which per-clone fractions have (binomial variance depends on the level and on the CpG count)."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, k = X.shape
    xtx_inv = np.linalg.pinv(X.T @ X)
    coef = xtx_inv @ X.T @ y
    e = y - X @ coef
    h = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    one = h > 1 - 1e-10
    w = np.where(one, 0.0, e ** 2 / np.where(one, 1.0, 1 - h) ** 2)
    meat = (X * w[:, None]).T @ X
    cov = xtx_inv @ meat @ xtx_inv
    return OLSResult(coef, cov, n - k, n, int(one.sum()))


def wald_test(res: OLSResult, idx: Sequence[int]) -> tuple[float, float]:
    """Wald F (joint test that coef[idx] == 0) with an F(q, n - k) reference: (F, p)."""
    from scipy.special import fdtrc

    b = res.coef[list(idx)]
    v = res.cov[np.ix_(list(idx), list(idx))]
    q = len(idx)
    try:
        stat = float(b @ np.linalg.solve(v, b)) / q
    except np.linalg.LinAlgError:
        return (math.nan, math.nan)
    if res.df_resid <= 0 or not math.isfinite(stat):
        return (math.nan, math.nan)
    return (stat, float(fdtrc(q, res.df_resid, stat)))


def interaction_design(dose: Sequence[float], line_index: Sequence[int], n_lines: int) -> tuple[np.ndarray, list[int]]:
    """Design matrix [1, dose, line_2..line_K, dose*line_2..dose*line_K]; returns it and the interaction columns."""
    d = np.asarray(dose, float)
    li = np.asarray(line_index, int)
    cols = [np.ones_like(d), d]
    ind = [(li == k).astype(float) for k in range(1, n_lines)]
    cols += ind
    cols += [d * c for c in ind]
    X = np.column_stack(cols)
    return X, list(range(2 + len(ind), 2 + 2 * len(ind)))


# ---------------------------------------------------------------------------------------------
# weighted forms: molecules held as (value, count) -- deep sequencing.  Each gives exactly what the plain
# test gives on the expanded data (every molecule a row), without expanding it: ranks are taken over the distinct
# values with their total weights (tests/test_stats.py checks each against the expanded computation).


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(distinct values, their average rank among all molecules, total weight per value, n)."""
    u, inv = np.unique(np.asarray(values, float), return_inverse=True)
    t = np.bincount(inv.ravel(), weights=np.asarray(weights, float), minlength=len(u))
    before = np.cumsum(t) - t
    return u, before + (t + 1) / 2, t, int(round(t.sum()))


def mann_whitney_weighted(x, wx, y, wy) -> tuple[float, float]:
    """``mann_whitney`` of x repeated wx times against y repeated wy times: (U of x, two-sided p)."""
    from scipy.special import ndtr

    x, y = np.asarray(x, float), np.asarray(y, float)
    wx, wy = np.asarray(wx, float), np.asarray(wy, float)
    n1, n2 = float(wx.sum()), float(wy.sum())
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan)
    if n1 <= 8 or n2 <= 8:  # small: scipy's exact branch may apply; expand
        return mann_whitney(np.repeat(x, wx.astype(int)), np.repeat(y, wy.astype(int)))
    u, rank, t, n = _weighted_ranks(np.r_[x, y], np.r_[wx, wy])
    r_of = dict(zip(u.tolist(), rank.tolist()))
    r1 = float(sum(w * r_of[v] for v, w in zip(x.tolist(), wx.tolist())))
    u1 = r1 - n1 * (n1 + 1) / 2
    uu = max(u1, n1 * n2 - u1)
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - float((t ** 3 - t).sum()) / (n * (n - 1))))
    if sd == 0:
        return (u1, 1.0)
    p = 2 * float(ndtr(-(uu - n1 * n2 / 2 - 0.5) / sd))
    return (u1, min(1.0, max(0.0, p)))


def kruskal_weighted(groups: Sequence[tuple]) -> tuple[float, float]:
    """``kruskal`` over groups given as (values, weights)."""
    from scipy.special import chdtrc

    vals = np.concatenate([np.asarray(g[0], float) for g in groups])
    ws = np.concatenate([np.asarray(g[1], float) for g in groups])
    u, rank, t, n = _weighted_ranks(vals, ws)
    r_of = np.searchsorted(u, vals)
    h, start = 0.0, 0
    for g in groups:
        k = len(g[0])
        w = ws[start:start + k]
        h += float((w * rank[r_of[start:start + k]]).sum()) ** 2 / w.sum()
        start += k
    h = 12.0 / (n * (n + 1)) * h - 3 * (n + 1)
    corr = 1.0 - float((t ** 3 - t).sum()) / (n ** 3 - n)
    if corr == 0:
        return (math.nan, math.nan)
    h /= corr
    return (h, float(chdtrc(len(groups) - 1, h)))


def jonckheere_weighted(values, weights, groups) -> tuple[float, float, float]:
    """``jonckheere_terpstra`` of values repeated by weights: (JT, z, two-sided p)."""

    v, w, g = np.asarray(values, float), np.asarray(weights, float), np.asarray(groups, float)
    levels = np.unique(g)
    u, inv = np.unique(v, return_inverse=True)
    per = np.zeros((len(levels), len(u)))  # weight per level and distinct value
    np.add.at(per, (np.searchsorted(levels, g), inv.ravel()), w)
    below = np.cumsum(per, axis=1) - per  # weight of the level's values below each distinct value
    jt = 0.0
    for a in range(len(levels)):
        for b in range(a + 1, len(levels)):
            jt += float((per[b] * (below[a] + 0.5 * per[a])).sum())
    ni = per.sum(axis=1)
    tj = per.sum(axis=0)
    n = float(ni.sum())
    return _jt_normal(jt, n, ni, tj)


def fisher_2x2_large(m1: int, u1: int, m2: int, u2: int) -> tuple[float, float]:
    """``fisher_2x2`` for tables of thousands of molecules: the same sum (probabilities no larger than the
    observed one's, within a relative 1e-7) in log space over every table of the margins, vectorised."""
    from scipy.special import gammaln

    a, b, c, d = m2, u2, m1, u1
    if min(a + b, c + d, a + c, b + d) == 0:
        return (math.nan, 1.0)
    if a + b + c + d <= 2000:
        return fisher_2x2(m1, u1, m2, u2)
    odds = a * d / (b * c) if b > 0 and c > 0 else math.inf
    row1, row2, col1 = a + b, c + d, a + c
    xs = np.arange(max(0, col1 - row2), min(row1, col1) + 1, dtype=float)

    def logp(x):
        return (gammaln(row1 + 1) - gammaln(x + 1) - gammaln(row1 - x + 1) + gammaln(row2 + 1)
                - gammaln(col1 - x + 1) - gammaln(row2 - col1 + x + 1) - gammaln(row1 + row2 + 1)
                + gammaln(col1 + 1) + gammaln(row1 + row2 - col1 + 1))

    lp = logp(xs)
    obs = logp(float(a))
    keep = lp <= obs + 1e-7
    p = float(np.exp(lp[keep] - lp.max()).sum() * math.exp(lp.max()))
    return (odds, min(1.0, p))


def welch_t(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float, tuple[float, float]]:
    """Welch's t-test of mean(y) - mean(x): (t, two-sided p, difference, 95 % CI); nan with < 2 per group."""
    from scipy.special import stdtr, stdtrit

    x, y = np.asarray(x, float), np.asarray(y, float)
    d = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return (math.nan, math.nan, d, (math.nan, math.nan))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return (math.nan, math.nan, d, (d, d))
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    t = d / se
    q = float(stdtrit(df, 0.975))
    return (t, float(2 * stdtr(df, -abs(t))), d, (d - q * se, d + q * se))


# =============================================================================================
# the compare stage


@dataclass(frozen=True)
class CompareConfig:
    """Options of ``bsmeth compare``.  ``"auto"``: ``by`` = cell_line if the sheet has it (else the first sheet
    column, else sample); ``within`` = dose when it exists and is not ``by``; ``dose``/``cell_line`` = the
    columns of that name when present.  ``None`` switches a role off."""

    by: Optional[str] = AUTO
    within: Optional[str] = AUTO
    dose: Optional[str] = AUTO
    cell_line: Optional[str] = AUTO
    seed: int = 1
    bootstrap_reps: int = BOOTSTRAP_REPS
    permutations: int = PERMUTATIONS  # Monte-Carlo permutations of the clone-pattern tests (clonal.py)
    resamples: int = RESAMPLES  # bootstrap resamples of their intervals


@dataclass(frozen=True)
class Roles:
    by: Optional[str]
    within: Optional[str]
    dose: Optional[str]
    cell_line: Optional[str]


def resolve_roles(columns: Sequence[str], config: CompareConfig) -> Roles:
    """Turn 'auto' into column names (or None) and check that named columns exist."""
    from .errors import InputError

    cols = ["sample", *columns]

    def check(value, option):
        if value is not None and value not in cols:
            raise InputError(f"{option} {value!r}: no such sample column; available: {', '.join(cols)}")
        return value

    dose = ("dose" if "dose" in cols else None) if config.dose == AUTO else check(config.dose, "--dose")
    line = (("cell_line" if "cell_line" in cols else None) if config.cell_line == AUTO
            else check(config.cell_line, "--cell-line"))
    if config.by == AUTO:
        others = [c for c in columns if c != dose]
        by = line or (others[0] if others else (dose or "sample"))
    else:
        by = check(config.by, "--by")
    if config.within == AUTO:
        within = dose if dose and dose != by else None
    else:
        within = check(config.within, "--within")
    if by is None:
        raise InputError("--by: a grouping column is needed")
    return Roles(by, within, dose, line)


def fisher_cpg_row(scope, label, cpg: int, note: str, counts: tuple[int, int, int, int], fisher=fisher_2x2,
                   unit: str = "") -> dict:
    """The ``fisher_cpg`` row of one CpG from (methylated, unmethylated) of group 1 and group 2: odds ratio and
    p by ``fisher``, the difference in percent with Newcombe's interval; ``unit`` is added to the note."""
    m1, u1, m2, u2 = counts
    if m1 + u1 == 0 or m2 + u2 == 0:
        return _row("fisher_cpg", scope, label, cpg, n=m1 + u1 + m2 + u2,
                    note="; ".join(x for x in (note, "no calls in one group") if x))
    orr, p = fisher(m1, u1, m2, u2)
    d, lo, hi = newcombe_diff_ci(m1, m1 + u1, m2, m2 + u2)
    return _row("fisher_cpg", scope, label, cpg, orr, p, _pct(d), (_pct(lo), _pct(hi)), m1 + u1 + m2 + u2,
                "; ".join(x for x in (note, f"{m2}/{m2 + u2} vs {m1}/{m1 + u1}{unit}") if x))


def _row(test, scope, groups="", cpg="all", statistic=None, p=None, effect=None, ci=(None, None), n=None, note=""):
    return {"test": test, "scope": scope, "groups": groups, "cpg": cpg, "statistic": statistic, "p": p,
            "p_adj": None, "effect": effect, "ci_low": ci[0], "ci_high": ci[1], "n": n, "note": note}


def _pct(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else 100.0 * x


def _two_group_rows(clones, every, calls, cpgs, by, scope, levels, rng, reps) -> list[dict]:
    """Fisher per CpG and pooled (over ``every`` clone's calls), Mann-Whitney on the fractions of ``clones``
    (those covering enough CpGs), with effects group2 - group1."""
    g1, g2 = levels
    label = f"{by}={g2} - {by}={g1}"
    c1, c2 = clones[clones[by] == g1], clones[clones[by] == g2]
    e1, e2 = every[every[by] == g1], every[every[by] == g2]
    rows = []
    k1, n1, k2, n2 = int(e1["m"].sum()), int(e1["n"].sum()), int(e2["m"].sum()), int(e2["n"].sum())
    group_of = {**{r: 0 for r in e1["read"].tolist()}, **{r: 1 for r in e2["read"].tolist()}}
    # one pass over the calls instead of a pandas selection per CpG (that was most of `compare`'s time)
    mu: dict = {}  # (cpg, group) -> [M, U]
    for read, cpg, call in zip(calls["read"].tolist(), calls["cpg"].tolist(), calls["call"].tolist()):
        grp = group_of.get(read)
        if grp is not None and call in ("M", "U"):
            mu.setdefault((int(cpg), grp), [0, 0])[call == "U"] += 1
    for number, note in zip(cpgs["cpg"], cpgs["note"]):
        if note == "under_primer":
            continue  # never assessable: the primer sequence is copied into the product
        (m1, u1), (m2, u2) = mu.get((int(number), 0), (0, 0)), mu.get((int(number), 1), (0, 0))
        rows.append(fisher_cpg_row(scope, label, int(number), note, (m1, u1, m2, u2)))
    orr, p = fisher_2x2(k1, n1 - k1, k2, n2 - k2)
    d, lo, hi = newcombe_diff_ci(k1, n1, k2, n2)
    rows.append(_row("fisher_pooled", scope, label, "all", orr, p, _pct(d), (_pct(lo), _pct(hi)), n1 + n2,
                     f"CpG calls {k2}/{n2} vs {k1}/{n1}; reference only: treats CpGs of a clone as independent"))
    x, y = c1["fraction"].to_numpy(), c2["fraction"].to_numpy()
    u, p = mann_whitney(y, x)
    d, lo, hi = bootstrap_mean_diff_ci(x, y, rng, reps)
    rows.append(_row("mannwhitney_clones", scope, label, "all", u, p, _pct(d), (_pct(lo), _pct(hi)), len(x) + len(y),
                     f"clones {len(y)} vs {len(x)}; U of {by}={g2}; effect = difference of mean per-clone %, "
                     f"bootstrap CI ({reps} resamples of clones)"))
    return rows


def _trend_rows(clones, dose, scope, rng, reps) -> list[dict]:
    from .tables import is_numeric_levels, order_levels

    levels = order_levels(clones[dose])
    if len(levels) < 2:
        return [_row("trend_jt_clones", scope, note=f"skipped: needs at least two {dose} levels, found {len(levels)}")]
    numeric = is_numeric_levels(levels)
    score = {lv: (float(lv) if numeric else float(i)) for i, lv in enumerate(levels)}
    s = clones[dose].map(score).to_numpy(float)
    f = clones["fraction"].to_numpy(float)
    groups = " < ".join(f"{dose}={lv}" for lv in levels)
    scale = "" if numeric else f"; {dose} is not numeric: levels scored 0..{len(levels) - 1} in order"
    jt, z, p = jonckheere_terpstra(f, s)
    # effect: OLS slope of per-clone % on dose, CI by resampling clones within dose levels
    slope = _slope(s, 100 * f)
    idx_by = [np.flatnonzero(s == score[lv]) for lv in levels]
    # clones resampled within their dose level, so each level keeps its clone count and its dose: the resampled
    # slope needs only each level's sum of per-clone % (sum_l (s_l - mean s) (S_l - n_l mean y) / sum_l n_l
    # (s_l - mean s)^2), not the reps x clones matrices of doses and centred values
    sums = np.stack([(100 * f[ix])[rng.integers(0, len(ix), size=(reps, len(ix)))].sum(axis=1) for ix in idx_by])
    n_l = np.array([len(ix) for ix in idx_by], float)
    s_l = np.array([score[lv] for lv in levels], float)
    xc = s_l - (n_l * s_l).sum() / n_l.sum()
    ss = float((n_l * xc ** 2).sum())
    y_bar = sums.sum(axis=0) / n_l.sum()
    boot = ((xc[:, None] * (sums - n_l[:, None] * y_bar[None, :])).sum(axis=0) / ss if ss > 0
            else np.full(reps, np.nan))
    lo, hi = (np.nanquantile(boot, [0.025, 0.975]) if len(f) > 2 and not np.isnan(boot).all()
              else (math.nan, math.nan))
    rows = [_row("trend_jt_clones", scope, groups, "all", jt, p, slope, (float(lo), float(hi)), len(f),
                 f"z = {z:.4g}; clones per level {', '.join(str(len(ix)) for ix in idx_by)}; effect = OLS slope of "
                 f"per-clone % per {dose} unit, bootstrap CI{scale}")]
    x = clones.groupby(clones[dose].map(score))["m"].sum()
    n = clones.groupby(clones[dose].map(score))["n"].sum()
    zc, pc, sl = cochran_armitage(x.to_numpy(), n.to_numpy(), x.index.to_numpy(float))
    rows.append(_row("trend_cochran_armitage_pooled", scope, groups, "all", zc, pc, _pct(sl), n=int(n.sum()),
                     note="reference only: anti-conservative, CpGs within a clone are correlated; statistic = z; "
                          f"effect = slope of pooled % per {dose} unit{scale}"))
    return rows


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    ss = float((xc ** 2).sum())
    return float((xc * (y - y.mean())).sum() / ss) if ss > 0 else math.nan


def _interaction_rows(clones, dose, line) -> list[dict]:
    from scipy.special import stdtr, stdtrit

    from .tables import is_numeric_levels, order_levels

    lines = order_levels(clones[line])
    doses = order_levels(clones[dose])
    test = "interaction_ols_hc3"
    if len(lines) < 2:
        return [_row(test, "all", note=f"skipped: needs at least two {line} levels, found {len(lines)}")]
    if len(doses) < 2:
        return [_row(test, "all", note=f"skipped: needs at least two {dose} levels, found {len(doses)}")]
    numeric = is_numeric_levels(doses)
    score = {lv: (float(lv) if numeric else float(i)) for i, lv in enumerate(doses)}
    d = clones[dose].map(score).to_numpy(float)
    li = clones[line].map({lv: i for i, lv in enumerate(lines)}).to_numpy(int)
    X, inter = interaction_design(d, li, len(lines))
    y = 100 * clones["fraction"].to_numpy(float)
    res = ols_hc3(X, y)
    if res.df_resid <= 0:
        return [_row(test, "all", note="skipped: too few clones for the model")]
    note = (f"model: per-clone % ~ {dose} * {line} (OLS, HC3 SE); effect = difference of slopes (% per {dose} unit)")
    if res.leverage_one:
        note += f"; {res.leverage_one} clone(s) with leverage 1 (alone in their cell)"
    if not numeric:
        note += f"; {dose} not numeric: scored 0..{len(doses) - 1}"
    if len(inter) == 1:
        b = float(res.coef[inter[0]])
        se = math.sqrt(max(0.0, float(res.cov[inter[0], inter[0]])))
        if se == 0:
            return [_row(test, "all", note="skipped: zero standard error (no variation)")]
        t = b / se
        p = float(2 * stdtr(res.df_resid, -abs(t)))
        q = float(stdtrit(res.df_resid, 0.975))
        label = f"slope {line}={lines[1]} - slope {line}={lines[0]}"
        return [_row(test, "all", label, "all", t, p, b, (b - q * se, b + q * se), res.n, note + "; statistic = t")]
    fstat, p = wald_test(res, inter)
    label = " vs ".join(f"{line}={lv}" for lv in lines)
    return [_row(test, "all", label, "all", fstat, p, n=res.n, note=note + "; statistic = Wald F (joint)")]


def compare_rows(data, config: CompareConfig) -> list[dict]:
    """Every comparison of the call directory as tidy rows (STATS_COLUMNS), amplicon by amplicon."""
    return compare_results(data, config)[0]


def compare_results(data, config: CompareConfig) -> tuple[list[dict], list[dict]]:
    """(stats.tsv rows, heterogeneity.tsv rows) of every amplicon of the call folder, in panel order."""
    rows: list[dict] = []
    heterogeneity: list[dict] = []
    for name, sub in data.by_amplicon():
        r, h = amplicon_results(sub, config)
        rows += [{"amplicon": name, **x} for x in r]
        heterogeneity += h
    return rows, heterogeneity


def amplicon_rows(data, config: CompareConfig) -> list[dict]:
    """The stats rows of one amplicon's tables (``CallData.subset``)."""
    return amplicon_results(data, config)[0]


def amplicon_results(data, config: CompareConfig) -> tuple[list[dict], list[dict]]:
    """(stats rows, heterogeneity rows) of one amplicon: the per-clone methylation tests below, then the
    clone-pattern analyses of ``clonal`` (allele split, heterogeneity, pattern tests), BH-adjusted per
    (test, scope)."""
    from .clonal import clonal_results
    from .tables import clone_table, cpg_table, order_levels

    roles = resolve_roles(data.sample_columns, config)
    if data.weighted:
        from .stats_molecules import molecule_results

        return molecule_results(data, roles, config)
    rng = np.random.default_rng(config.seed)
    reps = config.bootstrap_reps
    clones = clone_table(data)
    every = clone_table(data, all_clones=True)  # per-CpG and pooled counts: partial clones' calls count too
    calls = data.cpg_calls[data.cpg_calls["status"] == "pass"]
    cpgs = cpg_table(data)
    rows: list[dict] = []
    by = roles.by
    scopes = [("all", clones, every)]
    if roles.within:
        scopes = [(f"{roles.within}={lv}", clones[clones[roles.within] == lv], every[every[roles.within] == lv])
                  for lv in order_levels(clones[roles.within])]
        if not scopes:
            scopes = [("all", clones, every)]
    for scope, sub, sub_every in scopes:
        sub = sub[sub[by] != ""]
        levels = order_levels(sub[by])
        if len(levels) == 2:
            rows += _two_group_rows(sub, sub_every, calls, cpgs, by, scope, levels, rng, reps)
        elif len(levels) > 2:
            member: dict = {lv: [] for lv in levels}  # one pass (a selection per level: O(levels x clones))
            for i, lv in enumerate(sub[by].tolist()):
                member[lv].append(i)
            fraction = sub["fraction"].to_numpy()
            groups = [fraction[member[lv]] for lv in levels]
            h, p = kruskal(groups)
            rows.append(_row("kruskal_clones", scope, " vs ".join(f"{by}={lv}" for lv in levels), "all", h, p,
                             n=len(sub), note=f"clones per group {', '.join(str(len(g)) for g in groups)}; "
                                              "two-group tests need exactly two groups"))
        else:
            rows.append(_row("mannwhitney_clones", scope, note=f"skipped: needs two {by} groups, found {len(levels)}"))
    if roles.dose:
        if roles.cell_line and roles.cell_line != roles.dose:
            for lv in order_levels(clones[roles.cell_line]):
                rows += _trend_rows(clones[clones[roles.cell_line] == lv], roles.dose, f"{roles.cell_line}={lv}",
                                    rng, reps)
            rows += _interaction_rows(clones, roles.dose, roles.cell_line)
        else:
            rows += _trend_rows(clones, roles.dose, "all", rng, reps)
    partial = clones.attrs.get("partial", 0)
    if partial:  # say on every clone-level row that partial clones were left out, and how many
        from .tables import min_clone_coverage

        said = (f"{partial} clone(s) with fewer than {100 * min_clone_coverage(data):g} % of the assessable CpGs "
                "called left out (--min-clone-coverage)")
        for r in rows:
            if r["test"].endswith("_clones"):
                r["note"] = f"{r['note']}; {said}" if r["note"] else said
    # after every row above (their bootstrap draws come from ``rng`` in this order); clonal seeds its own
    extra, heterogeneity = clonal_results(data, roles, config)
    rows += extra
    # BH families: one per (test, scope), e.g. the per-CpG Fisher tests of one dose
    families: dict = {}
    for i, r in enumerate(rows):
        families.setdefault((r["test"], r["scope"]), []).append(i)
    for idx in families.values():
        adj = bh_adjust([rows[i]["p"] for i in idx])
        for i, a in zip(idx, adj):
            rows[i]["p_adj"] = a
    return rows, heterogeneity


def format_value(x) -> str:
    """One value as written in stats.tsv (6 significant digits, empty for missing)."""
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return ""
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.6g}"
    return str(x)


def rows_to_tsv(rows: list[dict], columns: Sequence[str] = STATS_COLUMNS) -> str:
    """A table of rows: numbers as ``format_value`` writes them, text through the table writer (quoting,
    formula-safe)."""
    from .tsv import table_text, text_cell

    def cell(x) -> str:
        return text_cell(x) if isinstance(x, str) else format_value(x)

    return table_text(columns, ["\t".join(cell(r[c]) for c in columns) for r in rows])


def write_stats(data, config: CompareConfig = CompareConfig()) -> "os.PathLike":
    """Write ``stats.tsv`` and ``heterogeneity.tsv`` into the loaded call directory ``data``; return the path
    of stats.tsv."""
    from .atomic import write_text as write_text_atomic
    from .clonal import HETEROGENEITY_FILE, heterogeneity_columns

    rows, heterogeneity = compare_results(data, config)
    write_text_atomic(data.directory / HETEROGENEITY_FILE, rows_to_tsv(heterogeneity, heterogeneity_columns(data)))
    return write_text_atomic(data.directory / "stats.tsv", rows_to_tsv(rows))


def run_compare(call_dir: str | os.PathLike, config: CompareConfig = CompareConfig()) -> "os.PathLike":
    """Entry point of ``bsmeth compare``: read the call directory, write ``<call_dir>/stats.tsv``, return its path."""
    from .tables import load_call_dir

    return write_stats(load_call_dir(call_dir), config)
