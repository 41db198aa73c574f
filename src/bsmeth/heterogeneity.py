"""Epiallele heterogeneity of a set of clones: epipolymorphism, methylation entropy, PDR and MHL.

Pipeline position: part of ``compare`` (called through ``clonal``); works on ``patterns.CloneSet`` matrices
(clones x assessable CpGs, 1 = M, 0 = U, NaN = undetermined).  Plain numpy.

Definitions (docs/statistics.md gives them with their sources; the tests check each against a direct
computation from the published definition):

* windows: every run of ``WINDOW`` (4) consecutive assessable CpGs (CpGs under a primer and SNP CpGs are not
  in the list, so a window steps over them).  In a window a clone counts only when all four CpGs are called;
  a window is used when at least ``WINDOW_MIN_CLONES`` clones count.
* epipolymorphism (Landan et al. 2012): per window 1 - sum_i p_i^2 over the 16 patterns' frequencies; the
  mean over the windows used.
* methylation entropy (Xie et al. 2011): per window (1 / b) sum_i -p_i log2 p_i with b = 4 CpGs; the mean
  over the windows used.  0 = one pattern, 1 = all 16 equally frequent.
* PDR, proportion of discordant reads (Landau et al. 2014): among clones with at least ``PDR_MIN_CPGS`` (4)
  CpGs called, the share with both M and U calls.
* MHL, methylation haplotype load (Guo et al. 2017): MHL = sum_{i=1..L} i MH_i / sum_{i=1..L} i, MH_i the
  share of fully methylated ones among all i-mers (runs of i consecutive assessable CpGs) that are fully
  called in some clone, L the longest fully called run in the clone set.

Every metric is a function of sums over clones of per-clone pieces (window pattern indicators, i-mer counts,
PDR indicators), so a weighted set of clones (a bootstrap resample, a rarefied subset, a permuted group) is a
matrix product: ``metrics_weighted``.  That is what makes thousands of resamples cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

WINDOW = 4  # CpGs per window (Landan 2012 and Xie 2011 both use 4)
WINDOW_MIN_CLONES = 2  # a window needs this many fully called clones to count
PDR_MIN_CPGS = 4  # PDR counts clones with at least this many CpGs called (Landau 2014)
METRICS = ("epipolymorphism", "entropy", "pdr", "mhl")
RAREFY_MIN = 4  # samples with fewer clones are not rarefied (and do not set the common count)
RAREFY_DRAWS = 500  # random subsets when there are more subsets than this (else every subset, exactly)
# Group comparisons: one (clone pair, window) of the pair path of a small group costs about as much as this many
# multiply-adds of the matrix product of a large group (measured: benchmarks/bench_compare.py --tune)
PAIR_COST = 20.0


@dataclass(frozen=True, eq=False)
class Features:
    """Per-clone pieces, additive over clones."""

    patterns: np.ndarray  # clones x columns: 1 where the clone shows that window's pattern (all 4 CpGs called);
    #                       one column per (window, pattern) present in some clone, grouped by window
    starts: np.ndarray  # first column of each window that has a column (np.add.reduceat offsets)
    n_windows: int  # windows of the CpG list (whether any clone is fully called in them or not)
    mer_called: np.ndarray  # clones x L: fully called i-mers, i = 1..L (L = number of assessable CpGs)
    mer_meth: np.ndarray  # clones x L: of those, fully methylated
    pdr_eligible: np.ndarray  # clones: >= PDR_MIN_CPGS called
    pdr_discordant: np.ndarray  # clones: eligible and both M and U
    table: np.ndarray  # clones x (patterns | eligible, discordant | i-mers called | i-mers methylated): every
    #                    sum a metric needs comes from one matrix product with it


def features(x: np.ndarray) -> Features:
    """The additive pieces of every metric for each clone (row) of ``x``."""
    x = np.asarray(x, float)
    n, j = x.shape
    called = ~np.isnan(x)
    meth = np.nan_to_num(x) > 0.5
    n_win = max(0, j - WINDOW + 1)
    pat, starts = np.zeros((n, 0)), np.zeros(0, np.intp)
    if n_win and n:
        ok = called[:, :n_win].copy()  # clones x windows: all WINDOW CpGs called
        code = meth[:, :n_win].astype(np.intp)  # the window's pattern, CpG k of the window = bit k
        for k in range(1, WINDOW):
            ok &= called[:, k:k + n_win]
            code += meth[:, k:k + n_win].astype(np.intp) << k
        key = np.where(ok, np.arange(n_win)[None, :] * 2 ** WINDOW + code, -1)
        present = np.unique(key[ok])  # one column per (window, pattern) seen: window after window, codes sorted
        window = present // 2 ** WINDOW
        pat = (key[:, window] == present[None, :]).astype(float)
        starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]]) if len(present) else starts
    mer_called = np.zeros((n, j))
    mer_meth = np.zeros((n, j))
    # an i-mer ending at CpG k is fully called when the called run ending there is >= i long: count the run
    # lengths per clone, then i-mers of length i = positions with run >= i (a reversed cumulative sum)
    if j:
        at = np.arange(j)
        for state, out in ((called, mer_called), (called & meth, mer_meth)):
            run = at - np.maximum.accumulate(np.where(state, -1, at), axis=1)  # length of the run ending at k
            hist = np.bincount((np.arange(n)[:, None] * (j + 1) + run).ravel(), minlength=n * (j + 1))
            out[:] = np.cumsum(hist.reshape(n, j + 1)[:, ::-1], axis=1)[:, ::-1][:, 1:]
    n_called = called.sum(axis=1)
    n_meth = (called & meth).sum(axis=1)
    eligible = n_called >= PDR_MIN_CPGS
    discordant = eligible & (n_meth > 0) & (n_meth < n_called)
    elig, disc = eligible.astype(float), discordant.astype(float)
    table = np.ascontiguousarray(np.column_stack([pat, elig, disc, mer_called, mer_meth]))
    return Features(pat, np.asarray(starts, np.intp), n_win, mer_called, mer_meth, elig, disc, table)


def subset(f: Features, idx: np.ndarray) -> Features:
    """The features of the clones ``idx``."""
    return Features(f.patterns[idx], f.starts, f.n_windows, f.mer_called[idx], f.mer_meth[idx], f.pdr_eligible[idx],
                    f.pdr_discordant[idx], f.table[idx])


def metrics_weighted(f: Features, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of clone weights ``w`` (sets x clones, whole numbers: 0/1 for subsets and
    permuted groups, multiplicities for bootstrap resamples).  NaN where a metric is not defined (no window
    used, no eligible clone, no called CpG)."""
    w = np.atleast_2d(np.asarray(w, float))
    if not np.array_equal(w, np.rint(w)):
        raise ValueError("clone weights must be whole numbers")
    return metrics_from_sums(f, w @ f.table)


def metrics_from_sums(f: Features, sums: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric from weighted sums of ``f.table`` (sets x columns, whole numbers)."""
    return metrics_many([(f, sums)])[0]


def metrics_many(items: Sequence[tuple]) -> list[dict[str, np.ndarray]]:
    """``metrics_from_sums`` of each (features, sums) pair, computed together: each item's numbers go through
    the same operations as alone (the same sums in the same order), but the items share the calls, whose
    overhead is most of the cost for small sets of clones (one sample's bootstrap resamples).  An item may be
    (features, sums, rows): its sets are ``sums[rows]`` (distinct sets computed once)."""
    out: list[dict] = [{} for _ in items]
    groups: dict = {}  # items with the same shapes share the arithmetic
    for k, item in enumerate(items):
        f, sums = item[0], item[1]
        n_out = len(item[2]) if len(item) > 2 and item[2] is not None else len(sums)
        if len(f.starts):
            groups.setdefault(("windows", len(sums), len(f.starts), n_out), []).append(k)
        else:
            nan = np.full(n_out, np.nan)
            out[k].update(epipolymorphism=nan, entropy=nan.copy())
        groups.setdefault(("runs", len(sums), sums.shape[1] - f.patterns.shape[1], n_out), []).append(k)
    for (part, n_sets, width, _n_out), ks in groups.items():
        rows = None
        if any(len(items[k]) > 2 and items[k][2] is not None for k in ks):
            rows = np.stack([items[k][2] if len(items[k]) > 2 and items[k][2] is not None else np.arange(n_sets)
                             for k in ks])  # items x sets out: the row of each
        if part == "windows":
            n_pat = [items[k][0].patterns.shape[1] for k in ks]
            counts = np.concatenate([items[k][1][:, :m] for k, m in zip(ks, n_pat)], axis=1)
            starts = np.concatenate([items[k][0].starts + o for k, o in zip(ks, np.cumsum([0] + n_pat[:-1]))])
            # counts are whole numbers (the weights are), held exactly: c^2 as it is, c log2 c (0 at c = 0) by
            # table lookup at the counts as integers (truncation is exact here; np.rint took a quarter of the time)
            ci = counts.astype(np.intp)

            def per_window(values: np.ndarray, starts=starts, shape=(n_sets, len(ks), width)) -> np.ndarray:
                # items x sets x windows
                return np.ascontiguousarray(np.add.reduceat(values, starts, axis=1).reshape(shape).transpose(1, 0, 2))

            got = _window_metrics(per_window(counts), per_window(counts * counts),
                                  per_window(_clogc(int(ci.max(initial=0)))[ci]))
            if rows is not None:
                got = {m: np.take_along_axis(v, rows, axis=1) for m, v in got.items()}
        else:
            got = _run_metrics(np.stack([items[k][1][:, items[k][0].patterns.shape[1]:] for k in ks]), rows)
        for j, k in enumerate(ks):
            out[k].update({m: v[j] for m, v in got.items()})
    return [{m: o[m] for m in METRICS} for o in out]


def _clogc(top: int) -> np.ndarray:
    """c log2 c for c = 0..top (0 at c = 0)."""
    c = np.arange(top + 1, dtype=float)
    return c * np.log2(np.maximum(c, 1.0))


def _window_metrics(total: np.ndarray, sumsq: np.ndarray, clogc: np.ndarray) -> dict[str, np.ndarray]:
    """Epipolymorphism and entropy from per-window sums (... x windows): the clones fully called in the window
    (N), sum of c^2 and of c log2 c over its patterns (c = clones showing the pattern)."""
    out: dict[str, np.ndarray] = {}
    used = total >= WINDOW_MIN_CLONES
    safe = np.where(used, total, 1.0)
    n_used = used.sum(axis=-1)
    # 1 - sum p^2 and sum -p log2 p = log2 N - sum c log2 c / N, averaged over the windows used
    epi = np.where(used, 1.0 - sumsq / (safe * safe), 0.0).sum(axis=-1)
    ent = np.where(used, np.log2(safe) - clogc / safe, 0.0).sum(axis=-1) / WINDOW
    with np.errstate(invalid="ignore", divide="ignore"):
        out["epipolymorphism"] = np.where(n_used > 0, epi / n_used, np.nan)
        out["entropy"] = np.where(n_used > 0, ent / n_used, np.nan)
    return out


def _run_metrics(sums: np.ndarray, rows: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """PDR and MHL from the sums of the table's last columns (... x (eligible, discordant, i-mers called (L),
    i-mers methylated (L))); ``rows`` (items x sets out, with ``sums`` items x sets x columns): each set's row of
    ``sums``.  MHL's sum over i is a matrix-vector product, whose rounding depends on the matrix's shape: it runs
    on the sets out, as it would without ``rows``."""
    out: dict[str, np.ndarray] = {}

    def spread(v: np.ndarray) -> np.ndarray:
        return v if rows is None else np.take_along_axis(v, rows, axis=-1)

    elig, disc = sums[..., 0], sums[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["pdr"] = spread(np.where(elig > 0, disc / np.where(elig > 0, elig, 1), np.nan))
    big_l = (sums.shape[-1] - 2) // 2
    if big_l:
        called, meth = sums[..., 2:2 + big_l], sums[..., 2 + big_l:]
        has = called > 0
        length = np.where(has.any(axis=-1), big_l - np.argmax(has[..., ::-1], axis=-1), 0)  # longest i
        i = np.arange(1, big_l + 1, dtype=float)
        inside = i <= length[..., None]
        mh = meth / np.where(has, called, 1.0)
        terms = mh * inside
        if rows is not None:
            terms = np.ascontiguousarray(np.take_along_axis(terms, rows[..., None], axis=-2))
        num = terms @ i
        den = spread(length * (length + 1) / 2.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mhl"] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    else:
        out["mhl"] = spread(np.full(sums.shape[:-1], np.nan))
    return out


def metrics(x: np.ndarray) -> dict[str, float]:
    """Every metric of the clones (rows) of ``x``."""
    x = np.asarray(x, float)
    return {k: float(v[0]) for k, v in metrics_weighted(features(x), np.ones((1, len(x)))).items()}


def units(f: Features) -> dict[str, str]:
    """What each metric of the clones of ``f`` was computed over, as text for the ``units`` column."""
    total = np.add.reduceat(f.patterns.sum(axis=0), f.starts) if len(f.starts) else np.zeros(0)
    used = int((total >= WINDOW_MIN_CLONES).sum())
    win = f"{used} of {f.n_windows} windows of {WINDOW} CpGs"
    called = f.mer_called.sum(axis=0)
    longest = int(np.flatnonzero(called > 0).max() + 1) if (called > 0).any() else 0
    return {"epipolymorphism": win, "entropy": win,
            "pdr": f"{int(f.pdr_eligible.sum())} clones with >= {PDR_MIN_CPGS} CpGs called",
            "mhl": f"i-mers up to L = {longest} CpGs"}


# =============================================================================================
# intervals and rarefaction


def bootstrap_weights(n: int, reps: int, rng: np.random.Generator, groups: Optional[Sequence] = None) -> np.ndarray:
    """Resample multiplicities (reps x n): clones drawn with replacement, within each group when given."""
    groups = np.zeros(n, int) if groups is None else np.asarray(groups)
    w = np.zeros(reps * n)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        picks = idx[rng.integers(0, len(idx), size=(reps, len(idx)))]
        w += np.bincount((np.arange(reps)[:, None] * n + picks).ravel(), minlength=reps * n)
    return w.reshape(reps, n)


def shifted_percentile_ci(values: np.ndarray, observed: float, level: float = 0.95,
                          bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """Percentile bootstrap interval shifted by the bootstrap bias, observed - mean(resampled), and clipped to
    ``bounds``.

    A resample repeats clones, so it shows fewer distinct patterns than a sample of as many distinct clones:
    epipolymorphism and entropy of resamples sit below the estimate (with 12 nearly all-different clones every
    resample can lie below it, and the plain or the bias-corrected (BCa-style) percentile interval then
    excludes the estimate or collapses).  Shifting the percentiles by the bias keeps the spread of the resamples
    and centres it on the estimate: an interval for the metric as defined (plug-in) at this clone count."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) < 2 or math.isnan(observed):
        return (math.nan, math.nan)
    return _shifted_rows(v[None, :], np.array([observed]), level, bounds)[0]


def _shifted_rows(v: np.ndarray, observed: np.ndarray, level: float,
                  bounds: tuple[float, float]) -> list[tuple[float, float]]:
    """``shifted_percentile_ci`` of each row of ``v`` (resampled values, no NaN, at least 2 a row)."""
    a = (1 - level) / 2
    shift = observed - v.mean(axis=1)
    q = np.quantile(v, [a, 1 - a], axis=1).T + shift[:, None]
    return [(float(min(max(lo, bounds[0]), bounds[1])), float(min(max(hi, bounds[0]), bounds[1]))) for lo, hi in q]


def shifted_percentile_cis(values: Sequence[np.ndarray], observed: Sequence[float], level: float = 0.95,
                           bounds: tuple[float, float] = (-math.inf, math.inf)) -> list[tuple[float, float]]:
    """``shifted_percentile_ci`` of several sets of resampled values: those of one length without NaN in one
    call, the others one by one."""
    out: list = [None] * len(observed)
    plain = [k for k, (v, o) in enumerate(zip(values, observed))
             if len(v) >= 2 and not math.isnan(o) and not np.isnan(v).any()]
    if plain and len({len(values[k]) for k in plain}) == 1:
        rows = _shifted_rows(np.stack([np.asarray(values[k], float) for k in plain]),
                             np.array([observed[k] for k in plain], dtype=float), level, bounds)
        for k, ci in zip(plain, rows):
            out[k] = ci
    return [o if o is not None else shifted_percentile_ci(v, ob, level, bounds)
            for o, v, ob in zip(out, values, observed)]


def subset_weights(n: int, k: int, rng: np.random.Generator, draws: int = RAREFY_DRAWS) -> tuple[np.ndarray, bool]:
    """0/1 weights of subsets of ``k`` of ``n`` clones: every subset when there are at most ``draws`` of them
    (exact expectation), else ``draws`` random subsets.  Returns (weights, exact)."""
    from itertools import combinations

    if math.comb(n, k) <= draws:
        w = np.zeros((math.comb(n, k), n))
        for r, chosen in enumerate(combinations(range(n), k)):
            w[r, list(chosen)] = 1.0
        return w, True
    keys = rng.random((draws, n))
    w = np.zeros((draws, n))
    np.put_along_axis(w, np.argsort(keys, axis=1)[:, :k], 1.0, axis=1)
    return w, False


@dataclass(frozen=True)
class SampleHeterogeneity:
    """One metric of one sample: value, bootstrap interval, value rarefied to the common clone count."""

    metric: str
    value: float
    ci: tuple[float, float]
    clones: int
    units: str
    rarefied: float
    rarefied_clones: Optional[int]
    rarefaction: str


def common_count(sizes: Sequence[int]) -> Optional[int]:
    """The clone count every sample is rarefied to: the smallest sample with at least RAREFY_MIN clones."""
    ok = [n for n in sizes if n >= RAREFY_MIN]
    return min(ok) if ok else None


def bootstrap_metrics(x: np.ndarray, reps: int, rng: np.random.Generator,
                      f: Optional[Features] = None) -> Optional[dict[str, np.ndarray]]:
    """Every metric of ``reps`` bootstrap resamples of the clones (rows) of ``x`` (``f``: their features, when
    known); None with fewer than 2."""
    return bootstrap_many([x], reps, [rng], [f])[0]


def bootstrap_many(xs: Sequence[np.ndarray], reps: int, rngs: Sequence[np.random.Generator],
                   fs: Optional[Sequence[Optional[Features]]] = None) -> list[Optional[dict[str, np.ndarray]]]:
    """``bootstrap_metrics`` of several clone sets, each resampled from its own generator, computed together."""
    xs = [np.asarray(x, float) for x in xs]
    fs = list(fs) if fs is not None else [None] * len(xs)
    out: list = [None] * len(xs)
    todo = [k for k, x in enumerate(xs) if len(x) >= 2]
    for chunk in _chunks(todo, [reps * (fs[k].table.shape[1] if fs[k] is not None else 64) for k in todo]):
        items = []
        for k in chunk:
            f = features(xs[k]) if fs[k] is None else fs[k]
            w = bootstrap_weights(len(xs[k]), reps, rngs[k])
            rows = None
            n = len(xs[k])
            if 4 * math.comb(2 * n - 1, n) <= reps:  # few distinct resamples (n <= 6): each computed once
                code = w.astype(np.int64) @ (n + 1) ** np.arange(n, dtype=np.int64)  # multiplicities in base n + 1
                _, first, rows = np.unique(code, return_index=True, return_inverse=True)
                w, rows = w[first], rows.reshape(-1)
            items.append((f, w @ f.table, rows))
        for k, got in zip(chunk, metrics_many(items)):
            out[k] = got
    return out


def _chunks(keys: list, sizes: list, budget: int = 1 << 22) -> list[list]:
    """``keys`` in consecutive runs whose ``sizes`` add up to about ``budget`` (bounded temporary arrays)."""
    out, run, total = [], [], 0
    for k, size in zip(keys, sizes):
        if run and total + size > budget:
            out.append(run)
            run, total = [], 0
        run.append(k)
        total += size
    return out + ([run] if run else [])


def sample_heterogeneity(x: np.ndarray, common: Optional[int], rng: np.random.Generator,
                         boot: Optional[dict] = None, smallest: str = "",
                         f: Optional[Features] = None) -> list[SampleHeterogeneity]:
    """Each metric of one sample's clones ``x`` with a bootstrap interval from ``boot`` (``bootstrap_metrics``
    of ``x``; percentiles shifted by the bootstrap bias, ``shifted_percentile_ci``) and its mean over subsets
    of ``common`` clones drawn from ``rng`` (rarefaction); ``f``: the features of ``x``, when known."""
    return samples_heterogeneity([x], common, [rng], [boot], smallest, [f])[0]


def samples_heterogeneity(xs: Sequence[np.ndarray], common: Optional[int], rngs: Sequence[np.random.Generator],
                          boots: Sequence[Optional[dict]], smallest: str = "",
                          fs: Optional[Sequence[Optional[Features]]] = None) -> list[list[SampleHeterogeneity]]:
    """``sample_heterogeneity`` of several samples (each rarefied with its own generator), computed together."""
    xs = [np.asarray(x, float) for x in xs]
    fs = [features(x) if f is None else f for x, f in zip(xs, fs if fs is not None else [None] * len(xs))]
    point = metrics_many([(f, np.ones((1, len(x))) @ f.table) for x, f in zip(xs, fs)])
    rare: list[dict] = [{} for _ in xs]
    what = []
    rarefy = []  # (sample, subset weights)
    for k, x in enumerate(xs):
        n = len(x)
        if common is not None and n >= common:
            w, exact = subset_weights(n, common, rngs[k])
            rarefy.append((k, w))
            how = (f"every subset ({len(w)})" if exact else f"mean of {len(w)} random subsets")
            what.append(f"clones subsampled without replacement to {common}"
                        f"{' (' + smallest + ')' if smallest else ''}; {how}" if n > common
                        else f"all {n} clones (the common count)")
        elif common is not None:
            what.append(f"not rarefied: {n} clones < the common count {common}")
        else:
            what.append(f"not rarefied: no sample has >= {RAREFY_MIN} clones")
    for chunk in _chunks(rarefy, [len(w) * fs[k].table.shape[1] for k, w in rarefy]):
        for (k, _), vals in zip(chunk, metrics_many([(fs[k], w @ fs[k].table) for k, w in chunk])):
            rare[k] = {m: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for m, v in vals.items()}
    with_boot = [k for k, b in enumerate(boots) if b is not None]
    flat = shifted_percentile_cis([boots[k][m] for k in with_boot for m in METRICS],
                                  [float(point[k][m][0]) for k in with_boot for m in METRICS], bounds=(0.0, 1.0))
    cis = {k: flat[j * len(METRICS):(j + 1) * len(METRICS)] for j, k in enumerate(with_boot)}
    out = []
    for k, x in enumerate(xs):
        n = len(x)
        text = units(fs[k]) if n else {m: "" for m in METRICS}
        ci = cis.get(k, [(math.nan, math.nan)] * len(METRICS))
        out.append([SampleHeterogeneity(m, float(point[k][m][0]), ci[j], n, text[m], rare[k].get(m, math.nan),
                                        common if rare[k] else None, what[k]) for j, m in enumerate(METRICS)])
    return out


# =============================================================================================
# group comparisons (clone = unit, permutation)


def group_statistic(f: Features, draws: np.ndarray, strata: np.ndarray, kind: str,
                    scores: Optional[dict] = None) -> dict[str, np.ndarray]:
    """The comparison statistic of every metric for each row of ``draws`` (group labels per clone; every row
    permutes the labels of the first within each stratum, as ``patterns.label_draws`` draws them).

    ``two``: metric(label 1) - metric(label 0), averaged over strata that have both labels.
    ``k``: the spread of the groups' metric values, sum_g n_g (m_g - m_bar)^2 / N with m_bar the n-weighted
    mean, averaged over strata.  ``trend``: the least-squares slope of the groups' metric values on
    ``scores[label]`` (one point per group, groups equally weighted), averaged over strata.
    """
    draws = np.atleast_2d(draws)
    acc: dict = {m: [] for m in METRICS}
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        per = _group_metrics(subset(f, idx), draws[:, idx])
        present = list(per)
        for m in METRICS:
            if kind == "two":
                if len(present) < 2:
                    continue
                acc[m].append(per[present[1]][0][m] - per[present[0]][0][m])
            elif kind == "k":
                vals = np.stack([per[g][0][m] for g in present])
                ns = np.stack([per[g][1] for g in present])
                mbar = (vals * ns).sum(axis=0) / ns.sum(axis=0)
                acc[m].append((ns * (vals - mbar) ** 2).sum(axis=0) / ns.sum(axis=0))
            else:
                xs = np.array([scores[g] for g in present], float)
                vals = np.stack([per[g][0][m] for g in present])
                xc = xs - xs.mean()
                ss = float((xc ** 2).sum())
                acc[m].append((xc[:, None] * (vals - vals.mean(axis=0))).sum(axis=0) / ss if ss > 0
                              else np.full(len(draws), np.nan))
    return {m: (np.mean(np.stack(v), axis=0) if v else np.full(len(draws), np.nan)) for m, v in acc.items()}


def _group_metrics(fs: Features, lab: np.ndarray) -> dict:
    """{label: (metrics of the label's clones in each draw, clone count in each draw)}, labels in order.

    Large groups: their sums of ``fs.table`` from one matrix product per group (O(clones x columns) per draw).
    Small groups: the counts of each window's patterns from the pairs of the group's clones (O(n_g^2 x
    windows) per draw, however many columns the pooled clones' patterns make), so many small groups (e.g. one
    per sample) cost O(clones) per draw instead of O(groups x clones).  Both give the same whole-number sums."""
    from .patterns import group_blocks

    n_draws, n = lab.shape
    blocks = group_blocks(lab, with_order=False)
    sizes = blocks.sizes
    n_win = len(fs.starts)
    small = PAIR_COST * sizes * sizes * max(1, n_win) < n * fs.table.shape[1]
    if small.any():
        blocks = group_blocks(lab)
    values: dict = {}
    if small.any():
        values.update(_small_group_metrics(fs, blocks, np.flatnonzero(small)))
    large = np.flatnonzero(~small)
    if len(large):
        # one matrix product per group; when every group is large, the last is the stratum's total minus the rest
        ind = [(lab == blocks.labels[g]).astype(float) for g in large]
        direct = large if small.any() else large[:-1]
        sums = {g: i @ fs.table for g, i in zip(direct, ind)}
        if not small.any():
            total = fs.table.sum(axis=0)
            rest = [sums[g] for g in direct]
            sums[large[-1]] = total - sum(rest) if rest else np.broadcast_to(total, (n_draws, len(total)))
        for g in large:
            values[g] = metrics_from_sums(fs, sums[g])
    return {blocks.labels[g]: (values[g], np.full(n_draws, float(sizes[g]))) for g in range(len(sizes))}


def _small_group_metrics(fs: Features, blocks, groups: np.ndarray) -> dict:
    """{group: metrics in each draw} for the ``groups`` of ``blocks`` (``patterns.GroupBlocks``), from the pairs
    of their clones: in each window, a clone's pattern count c is the number of the group's clones showing the
    same pattern (itself included), so N = clones fully called, sum c^2 = sum over clones of c, and
    sum c log2 c = sum over the first clone of each pattern of c log2 c."""
    from .patterns import _CHUNK

    n_pat = fs.patterns.shape[1]
    n_win = len(fs.starts)
    extra = fs.table[:, n_pat:]
    if n_win:  # each clone's pattern in each window (its column there, counted from the window's first), -1: none
        at = np.arange(n_pat, dtype=float) - np.repeat(fs.starts, np.diff(np.r_[fs.starts, n_pat]))
        called = np.add.reduceat(fs.patterns, fs.starts, axis=1) > 0
        local = np.rint(np.add.reduceat(fs.patterns * at, fs.starts, axis=1))
        code = np.where(called, local, -1).astype(np.int8 if 2 ** WINDOW < 127 else np.int32)
    n_draws = len(blocks.order)
    out: dict = {}
    for size in np.unique(blocks.sizes[groups]):
        size = int(size)
        which = groups[blocks.sizes[groups] == size]
        pos = blocks.starts[which][:, None] + np.arange(size)[None, :]  # groups x clones: positions in a draw
        table = _clogc(size)
        per_row = len(which) * size * (3 * max(1, n_win) + extra.shape[1])
        step = max(1, _CHUNK // max(1, per_row))
        parts: dict = {m: [] for m in METRICS}
        for r0 in range(0, n_draws, step):
            clones = blocks.order[r0:r0 + step][:, pos]  # rows x groups x clones
            rows = len(clones)
            flat = rows * len(which)
            if n_win:
                c = code[clones]  # rows x groups x clones x windows
                ok = c >= 0
                count = np.zeros(c.shape, np.int32)  # clones showing each clone's pattern (0: not fully called)
                seen = np.zeros(c.shape, bool)  # an earlier clone shows the same pattern
                for b in range(size):
                    same = (c == c[:, :, b:b + 1, :]) & ok
                    count += same
                    seen[:, :, b + 1:, :] |= same[:, :, b + 1:, :]
                first = ok & ~seen
                total = ok[:, :, 0, :].astype(np.int32)
                sumsq = count[:, :, 0, :].copy()
                clogc = np.where(first[:, :, 0, :], table[count[:, :, 0, :]], 0.0)
                for a in range(1, size):
                    total += ok[:, :, a, :]
                    sumsq += count[:, :, a, :]
                    clogc += np.where(first[:, :, a, :], table[count[:, :, a, :]], 0.0)
                got = _window_metrics(total.reshape(flat, n_win).astype(float),
                                      sumsq.reshape(flat, n_win).astype(float), clogc.reshape(flat, n_win))
            else:
                nan = np.full(flat, np.nan)
                got = {"epipolymorphism": nan, "entropy": nan.copy()}
            sums = extra[clones[:, :, 0]]
            for a in range(1, size):
                sums += extra[clones[:, :, a]]
            got.update(_run_metrics(sums.reshape(flat, extra.shape[1])))
            for m in METRICS:
                parts[m].append(got[m].reshape(rows, len(which)))
        joined = {m: np.concatenate(parts[m]) for m in METRICS}
        for k, g in enumerate(which):
            out[int(g)] = {m: joined[m][:, k] for m in METRICS}
    return out
