"""Clone methylation patterns: the clone x CpG matrix, a distance that handles undetermined CpGs, hierarchical
clustering (clone order and dendrogram coordinates for the figures) and a permutation test of whether the
pattern distributions of groups differ.

Pipeline position: the base of the clone-pattern analyses of ``compare`` (``alleles`` and ``heterogeneity``
build on ``clone_sets``); reads only the loaded call folder (``tables.CallData``).  Plain numpy; scipy's
``cluster.hierarchy`` only inside the clustering functions (the statistics never need it).

A pattern is one clone's calls at the amplicon's *assessable* CpGs: CpGs under a primer and CpGs destroyed by
a SNP allele (a genotype, not a methylation state) are left out of every pattern, in every clone.  Calls are
1 (M), 0 (U) or NaN (undetermined: ``-`` whatever the reason).  Clones with no call at an assessable CpG
carry no pattern and are left out.  Only ``pass`` reads count.

Distance between two clones: the share of CpGs called in *both* whose states differ (a Hamming distance over
the shared calls).  Two clones without a shared call have no distance; they get the mean of the defined
distances (no information either way) and ``undefined_pairs`` counts them.

Pattern test (docs/statistics.md, ``pattern_mmd_perm``): kernel k(a, b) = exp(-d(a, b) / l), l a quarter of the
median pairwise distance of the pooled clones (``KERNEL_FRACTION``), and the between-group kernel dispersion
T = sum_g (n_g / N) ||mu_g - mu||^2 (mu_g the group's mean embedding; for two groups T = (n1 n2 / N^2) MMD^2,
the maximum mean discrepancy, Gretton et al. 2012), p from permutations of the group labels of the clones
(within strata when strata are given).  A mean distance (or PERMANOVA on Hamming distances) cannot tell 50 %
random patterns from half fully methylated + half unmethylated clones: both have mean distances of 0.5 within
and between groups.  The exponential kernel on the Hamming distance is a product of per-CpG strictly positive
definite kernels, so the MMD is zero only for equal pattern distributions (complete data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

AMPLICON = "amplicon"  # the column that names the amplicon of a panel (absent: one amplicon)
EXACT_LIMIT = 20000  # enumerate every split of the clones when there are at most this many
PERMUTATIONS = 999  # Monte-Carlo permutations otherwise (p = (1 + #extreme) / (1 + PERMUTATIONS))
RESAMPLES = 1000  # bootstrap resamples of the clone-pattern intervals (heterogeneity, allele split)
# Kernel bandwidth of the pattern test, as a fraction of the median pairwise distance.  A quarter: two clones at
# the typical distance weigh e^-4 = 0.02, so the statistic looks mostly at (nearly) shared patterns, i.e.
# epialleles; shifts of the average methylation are what the per-clone tests of stats.py are for.  Random
# patterns against fully methylated + unmethylated clones: benchmarks/asm.py (C) prints its power next to the
# median itself as bandwidth (the usual heuristic).
KERNEL_FRACTION = 0.25
_REL_TOL = 1e-9  # a permuted statistic within this (relative) of the observed one counts as as extreme


# =============================================================================================
# clone x CpG matrices


@dataclass(frozen=True, eq=False)
class CloneSet:
    """The pass clones of one sample (of one amplicon) with at least one call at an assessable CpG."""

    amplicon: str  # '' when the call folder has no amplicon column
    sample: str
    reads: tuple[str, ...]  # reads.tsv order
    cpgs: tuple[int, ...]  # assessable CpG numbers, in order (the columns of ``calls``)
    calls: np.ndarray  # clones x cpgs: 1.0 = M, 0.0 = U, NaN = undetermined
    excluded: tuple[tuple[int, str], ...]  # CpGs of the amplicon left out and why (under_primer, snp:<name>)

    @property
    def n(self) -> int:
        return len(self.reads)

    def fractions(self) -> np.ndarray:
        """Per-clone methylated fraction over the assessable CpGs called."""
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.calls, axis=1) if self.n else np.zeros(0)


def has_amplicon(df) -> bool:
    return AMPLICON in df.columns


def excluded_cpgs(data, extra: Optional[dict] = None) -> dict:
    """{amplicon: {cpg: reason}}: CpGs never in a pattern (under a primer, or on a SNP), from summary.tsv's note
    and the calls' ``why``; ``extra`` adds more (e.g. CpGs on a heterozygous site found by ``alleles``)."""
    out: dict = {}
    s = data.summary
    amp_col = s[AMPLICON].tolist() if has_amplicon(s) else [""] * len(s)
    for a, c, note in zip(amp_col, s["cpg"].tolist(), s["note"].tolist()):
        if note == "under_primer" or note.startswith("snp:"):
            out.setdefault(a, {})[int(c)] = note
    calls = data.cpg_calls
    mask = calls["why"].isin(("under_primer", "snp"))
    sub = calls[mask]
    amp_col = sub[AMPLICON].tolist() if has_amplicon(sub) else [""] * len(sub)
    for a, c, why in zip(amp_col, sub["cpg"].tolist(), sub["why"].tolist()):
        out.setdefault(a, {}).setdefault(int(c), why if why == "under_primer" else "snp")
    for a, cpgs in (extra or {}).items():
        for c, why in cpgs.items():
            out.setdefault(a, {}).setdefault(int(c), why)
    return out


def clone_sets(data, extra_excluded: Optional[dict] = None) -> list[CloneSet]:
    """One ``CloneSet`` per (amplicon, sample), amplicons in first-appearance order, samples in samples.tsv order.

    Every set of one amplicon has the same columns (the amplicon's assessable CpGs), so sets can be pooled.
    """
    calls = data.cpg_calls
    amp_of_call = calls[AMPLICON] if has_amplicon(calls) else None
    excluded = excluded_cpgs(data, extra_excluded)
    amplicons = list(dict.fromkeys(amp_of_call.tolist())) if amp_of_call is not None else [""]
    reads = data.reads[data.reads["status"] == "pass"]
    order = data.sample_order()
    out: list[CloneSet] = []
    order_set = set(order)
    for amp in amplicons:
        c_amp = calls if amp_of_call is None else calls[amp_of_call == amp]
        skip = excluded.get(amp, {})
        all_cpgs = sorted({int(c) for c in c_amp["cpg"].unique().tolist()})
        cpgs = [c for c in all_cpgs if c not in skip]
        col = {c: j for j, c in enumerate(cpgs)}
        p = c_amp[c_amp["status"] == "pass"]
        p = p[p["call"].isin(("M", "U"))]
        r_amp = reads if amp_of_call is None or not has_amplicon(reads) else reads[reads[AMPLICON] == amp]
        read_ids, read_samples = r_amp["read"].tolist(), r_amp["sample"].tolist()
        present = set(read_samples)
        samples = [s for s in order if s in present] + \
            [s for s in dict.fromkeys(read_samples) if s not in order_set]
        rows_of: dict = {s: [] for s in samples}
        for rid, s in zip(read_ids, read_samples):
            rows_of[s].append(rid)
        index = {rid: (s, i) for s, rids in rows_of.items() for i, rid in enumerate(rids)}
        mats = {s: np.full((len(rids), len(cpgs)), np.nan) for s, rids in rows_of.items()}
        for rid, cpg, call in zip(p["read"].tolist(), p["cpg"].tolist(), p["call"].tolist()):
            j = col.get(int(cpg))
            where = index.get(rid)
            if j is not None and where is not None:
                mats[where[0]][where[1], j] = 1.0 if call == "M" else 0.0
        for s in samples:
            x, rids = mats[s], rows_of[s]
            keep = ~np.isnan(x).all(axis=1) if len(cpgs) else np.zeros(len(rids), bool)
            out.append(CloneSet(amp, s, tuple(r for r, k in zip(rids, keep) if k), tuple(cpgs), x[keep],
                                tuple(sorted(skip.items()))))
    return out


# =============================================================================================
# distance and clustering


def pattern_distance(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(n x n distances, number of pairs without a shared call).  d = differing / shared called CpGs;
    pairs with nothing shared get the mean of the defined distances (0.5 when none is defined)."""
    x = np.asarray(x, float)
    n = len(x)
    called = (~np.isnan(x)).astype(float)
    m = np.nan_to_num(x)
    u = called - m
    shared = called @ called.T
    differ = m @ u.T + u @ m.T
    off = ~np.eye(n, dtype=bool)
    defined = (shared > 0) & off
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(shared > 0, differ / np.where(shared > 0, shared, 1), np.nan)
    fill = float(d[defined].mean()) if defined.any() else 0.5
    undefined = int(((shared == 0) & off).sum() // 2)
    d = np.where(np.isnan(d), fill, d)
    np.fill_diagonal(d, 0.0)
    return d, undefined


def unique_patterns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the distinct rows of ``x`` (NaN = NaN), index of each row's distinct row, multiplicity of each)."""
    x = np.asarray(x, float)
    if len(x) == 0 or x.shape[1] == 0:
        return x[:min(len(x), 1)], np.zeros(len(x), np.intp), np.array([len(x)] if len(x) else [], np.intp)
    code = np.where(np.isnan(x), 2, x).astype(np.int32)
    blank = np.isnan(x).all(axis=1)  # a row without a call is not the same pattern as another such row
    code = np.column_stack([code, np.where(blank, np.arange(1, len(x) + 1), 0)])
    _, first, inverse, counts = np.unique(code, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    return x[first], inverse.reshape(-1).astype(np.intp), counts


@dataclass(frozen=True)
class Clustering:
    """Average-linkage (UPGMA) clustering of clones, leaves in optimal order (Bar-Joseph et al. 2001)."""

    order: tuple[int, ...]  # clone indices, top row first
    linkage: np.ndarray  # scipy linkage matrix ((n - 1) x 4), empty for n < 2
    undefined_pairs: int


def cluster_clones(x: np.ndarray) -> Clustering:
    """Hierarchical clustering of the clones (rows of ``x``) on ``pattern_distance``; deterministic."""
    n = len(x)
    d, undefined = pattern_distance(x)
    if n < 3:
        return Clustering(tuple(range(n)), np.zeros((max(n - 1, 0), 4)), undefined)
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    condensed = squareform(d, checks=False)
    z = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return Clustering(tuple(int(i) for i in leaves_list(z)), z, undefined)


def dendrogram_segments(z: np.ndarray, order: Sequence[int], first_row: float = 0.0
                        ) -> list[tuple[float, float, float, float]]:
    """Lines of the dendrogram of linkage ``z`` as (row0, height0, row1, height1), leaf ``order[k]`` at row
    ``first_row + k`` (rows as in the lollipop: top row 0), height = the merge distance (0 at the leaves).

    Each merge gives three lines: up from each child's (row, height) to the merge height, and the bar joining
    them at that height.  A child's row is the mean of its two children's rows (a leaf: its own row).
    """
    n = len(order)
    if n < 2 or len(z) == 0:
        return []
    row = {int(leaf): first_row + k for k, leaf in enumerate(order)}
    pos: dict = {i: (row[i], 0.0) for i in range(n)}
    out = []
    for k, (a, b, h, _) in enumerate(np.asarray(z, float)):
        (ra, ha), (rb, hb) = pos[int(a)], pos[int(b)]
        out += [(ra, ha, ra, float(h)), (rb, hb, rb, float(h)), (ra, float(h), rb, float(h))]
        pos[n + k] = ((ra + rb) / 2, float(h))
    return out


@dataclass(frozen=True)
class CloneLayout:
    """Rows of one sample's lollipop panel grouped (e.g. by allele) and ordered by cluster within each group."""

    reads: tuple[str, ...]  # top row first
    groups: tuple[tuple[str, int, int], ...]  # (label, first row, end row exclusive)
    segments: tuple[tuple[float, float, float, float], ...]  # dendrogram lines, see dendrogram_segments
    max_height: float  # highest merge (0 without a dendrogram): to scale the dendrogram's axis


def clone_layout(clones: CloneSet, groups: Optional[dict] = None, cluster: bool = True) -> CloneLayout:
    """The clone order for a lollipop panel: clones grouped by ``groups`` (read -> label, e.g. the allele from
    ``alleles.read_alleles``; groups in first-seen order, unlabelled clones last under ''), within a group
    ordered by hierarchical clustering (or kept in reads.tsv order), with one dendrogram per group."""
    labels = [groups.get(r, "") if groups else "" for r in clones.reads]
    names = [g for g in dict.fromkeys(labels) if g != ""] + ([""] if "" in labels else [])
    reads: list[str] = []
    blocks, segments = [], []
    for g in names:
        idx = [i for i, lab in enumerate(labels) if lab == g]
        start = len(reads)
        if cluster and len(idx) >= 2:
            cl = cluster_clones(clones.calls[idx])
            order = [idx[k] for k in cl.order]
            segments += (dendrogram_segments(cl.linkage, cl.order, start) if len(idx) >= 3
                         else _pair_segments(clones.calls[idx], start))
        else:
            order = idx
        reads += [clones.reads[i] for i in order]
        blocks.append((g, start, len(reads)))
    top = max((max(s[1], s[3]) for s in segments), default=0.0)
    return CloneLayout(tuple(reads), tuple(blocks), tuple(segments), top)


def _pair_segments(x: np.ndarray, start: int) -> list[tuple[float, float, float, float]]:
    h = float(pattern_distance(x)[0][0, 1])
    return [(start, 0.0, start, h), (start + 1.0, 0.0, start + 1.0, h), (start, h, start + 1.0, h)]


# =============================================================================================
# permutation machinery shared by the clone-level tests (alleles, heterogeneity, patterns)


def label_draws(labels: np.ndarray, strata: Optional[np.ndarray], rng: np.random.Generator,
                reps: int = PERMUTATIONS, exact_limit: int = EXACT_LIMIT) -> tuple[np.ndarray, bool]:
    """Label vectors for a permutation test: (draws x clones array, exact).

    The first row is the observed labelling.  One stratum and two labels with at most ``exact_limit`` splits:
    every split once (exact).  Otherwise ``reps`` random permutations of the labels within each stratum.
    """
    labels = np.asarray(labels)
    n = len(labels)
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    values = np.unique(labels)
    if len(np.unique(strata)) == 1 and len(values) == 2:
        k = int((labels == values[1]).sum())
        if math.comb(n, k) <= exact_limit:
            from itertools import combinations

            draws = np.full((math.comb(n, k), n), values[0], dtype=labels.dtype)
            chosen = np.array(list(combinations(range(n), k)), dtype=np.intp).reshape(len(draws), k)
            draws[np.arange(len(draws))[:, None], chosen] = values[1]
            observed = labels[None, :]
            return np.concatenate([observed, draws]), True
    draws = np.empty((reps + 1, n), dtype=labels.dtype)
    draws[0] = labels
    order = np.argsort(strata, kind="stable")  # the clones of each stratum, in index order
    bounds = np.flatnonzero(np.r_[True, strata[order][1:] != strata[order][:-1], True]) if n else [0]
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        keys = rng.random((reps, len(idx)))
        draws[1:, idx] = labels[idx][np.argsort(keys, axis=1)]
    return draws, False


def permutation_p(stats: np.ndarray, exact: bool, two_sided: bool = True) -> float:
    """p of the observed statistic ``stats[0]`` against the permutation statistics ``stats[1:]``.

    Exact: the share of all splits at least as extreme.  Monte Carlo: (1 + #extreme) / (1 + draws) (never 0,
    valid at any number of draws).  A permuted statistic that is NaN counts as extreme (conservative).
    """
    obs = float(stats[0])
    if math.isnan(obs):
        return math.nan
    rest = np.asarray(stats[1:], float)
    a, r = (abs(obs), np.abs(rest)) if two_sided else (obs, rest)
    extreme = np.isnan(r) | (r >= a - _REL_TOL * max(1.0, abs(a)))
    if exact:
        return float(extreme.mean())
    return float((1 + extreme.sum()) / (1 + len(rest)))


# =============================================================================================
# the pattern test


def kernel_matrix(x: np.ndarray) -> tuple[np.ndarray, float, int]:
    """(exp(-d / l), l, pairs without a shared call) with l = KERNEL_FRACTION x the median off-diagonal pattern
    distance (a function of the pooled clones only, so it does not change under permutation; 1 / CpGs when the
    median is 0)."""
    k, index, scale, undefined = pattern_kernel(x)
    return k[np.ix_(index, index)], scale, undefined


def pattern_kernel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """``kernel_matrix`` on the distinct patterns: (kernel between distinct patterns, index of each clone's
    pattern, l, pairs without a shared call).  Clones with equal patterns have equal kernel rows, so the
    statistic needs only these (``kernel_dispersion``'s ``index``); the bandwidth and the fill distance are
    taken over every pair of clones (each pair of patterns weighted by the pairs of clones it stands for), as
    on the full matrix.  A distance is differ / shared for two whole numbers up to the number of CpGs, so the
    kernel takes few values: it is looked up by that pair."""
    x = np.asarray(x, float)
    u, index, counts = unique_patterns(x)
    n, n_cpgs = x.shape
    called = (~np.isnan(u)).astype(float)
    m = np.nan_to_num(u)
    differ = m @ (called - m).T
    base = n_cpgs + 1
    key = np.rint(differ + differ.T).astype(np.int64) * base + np.rint(called @ called.T).astype(np.int64)
    # ordered pairs of distinct clones behind each (differ, shared) pair
    c = counts.astype(float)
    weight = (np.bincount(key.ravel(), np.outer(c, c).ravel(), base * base)
              - np.bincount(np.diagonal(key), c, base * base))
    dif, shared = np.divmod(np.arange(base * base), base)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = dif.astype(float) / shared.astype(float)
    defined = (shared > 0) & (weight > 0)
    fill = float((weight[defined] * value[defined]).sum() / weight[defined].sum()) if defined.any() else 0.5
    value[shared == 0] = fill  # no shared call (key 0)
    undefined = round(float(weight[0]) / 2)
    scale = KERNEL_FRACTION * _weighted_median(value, weight) if n > 1 else 1.0
    if scale <= 0:
        scale = 1.0 / max(1, n_cpgs)
    k = np.exp(-value / scale)[key]
    np.fill_diagonal(k, 1.0)  # a clone with itself: distance 0
    return k, index, scale, undefined


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """np.median of the array holding each value ``weights`` (whole numbers) times."""
    keep = weights > 0
    v, w = values[keep], weights[keep]
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    total = round(float(cum[-1]))
    at = np.searchsorted(cum, [(total - 1) // 2 + 0.5, total // 2 + 0.5])  # 0-based ranks of the middle values
    lo, hi = float(v[at[0]]), float(v[at[1]])
    return lo if total % 2 else float(np.mean([lo, hi]))


# A kernel value gathered for one pair of clones costs about as much as this many multiply-adds of a matrix
# product (measured: benchmarks/bench_compare.py --tune): what decides between the two ways of summing a group's
# kernel in kernel_dispersion.
PAIR_COST = 400.0
_CHUNK = 1 << 21  # elements of the largest temporary array of a chunk of draws


@dataclass(frozen=True)
class GroupBlocks:
    """The draws of a permutation test (rows of group labels that permute the first row) as clone orders: row
    r of ``order`` lists the clones group by group (groups in label order, clones in index order within a
    group), so group g of draw r is ``order[r, starts[g]:starts[g] + sizes[g]]``."""

    labels: np.ndarray  # the groups' labels, sorted
    sizes: np.ndarray
    starts: np.ndarray
    order: Optional[np.ndarray]  # draws x clones (None when not asked for)

    def members(self, groups: np.ndarray) -> np.ndarray:
        """Positions in ``order`` of the clones of ``groups`` (group after group)."""
        if not len(groups):
            return np.zeros(0, np.intp)
        return np.concatenate([np.arange(self.starts[g], self.starts[g] + self.sizes[g]) for g in groups])


def group_blocks(draws: np.ndarray, with_order: bool = True) -> GroupBlocks:
    """``GroupBlocks`` of ``draws`` (``order`` None unless ``with_order``); ValueError when a row does not have
    the first row's group sizes."""
    draws = np.atleast_2d(np.asarray(draws))
    labels, sizes = np.unique(draws[0], return_counts=True)
    dense = labels.dtype.kind in "iu" and labels[0] == 0 and labels[-1] == len(labels) - 1  # labels are 0..G-1
    rank = draws if dense else np.searchsorted(labels, draws)
    n_draws, n_groups = len(draws), len(labels)
    per_row = np.bincount((np.arange(n_draws)[:, None] * n_groups + rank).ravel(), minlength=n_draws * n_groups)
    if not (per_row.reshape(n_draws, n_groups) == sizes[None, :]).all():
        raise ValueError("every row of draws must permute the labels of the first row")
    order = None
    if with_order:  # int16: a radix sort
        order = np.argsort(rank.astype(np.int16 if n_groups < 2 ** 15 else np.int64), axis=1, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return GroupBlocks(labels, sizes, starts, order)


def kernel_dispersion(k: np.ndarray, draws: np.ndarray, strata: Optional[np.ndarray] = None,
                      index: Optional[np.ndarray] = None) -> np.ndarray:
    """Between-group kernel dispersion per row of ``draws`` (group labels), summed over strata:
    sum_s sum_g (n_sg / N_s) ||mu_sg - mu_s||^2 = sum_s (sum_g 1'K_sg 1 / n_sg - 1'K_s 1 / N_s) / N_s.

    ``k`` is the kernel between clones, or between distinct patterns with ``index`` giving each clone's row
    (``pattern_kernel``).  Every row of ``draws`` must permute the labels of the first within each stratum
    (``label_draws``), so the group sizes are those of the first row.  A group's 1'K_g 1 in a draw is summed
    over its pairs of clones (small groups: O(n_g^2) per draw) or as c'Kc with c the group's count of each
    pattern (O(patterns^2) per draw), whichever costs less; either way O(N^2) per draw at most, whatever the
    number of groups."""
    draws = np.atleast_2d(np.asarray(draws))
    n = draws.shape[1]
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    index = np.arange(n) if index is None else np.asarray(index, np.intp)
    n_draws = len(draws)
    total = np.zeros(n_draws)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        big_n = len(idx)
        pats, local = np.unique(index[idx], return_inverse=True)
        local = local.reshape(-1)
        ks = k[np.ix_(pats, pats)]
        c_all = np.bincount(local, minlength=len(pats)).astype(float)
        r_all = ks @ c_all
        tot = float(c_all @ r_all)
        acc = np.zeros(n_draws) - tot / big_n
        blocks = group_blocks(draws[:, idx], with_order=False)
        sizes = blocks.sizes
        small = PAIR_COST * sizes * (sizes - 1) / 2 < len(pats) ** 2 + big_n
        if small.any():
            blocks = group_blocks(draws[:, idx])
        quad = np.empty((len(sizes), n_draws))
        if small.any():
            quad[small] = _pair_quads(ks, local, blocks, np.flatnonzero(small)).T
        large = np.flatnonzero(~small)
        if len(large):
            quad[large] = _count_quads(ks, local, draws[:, idx], blocks, large, c_all, r_all, tot, small.any())
        for g in range(len(sizes)):
            acc += quad[g] / float(sizes[g])
        total += acc / big_n
    return total


def _count_quads(ks: np.ndarray, local: np.ndarray, lab: np.ndarray, blocks: GroupBlocks, groups: np.ndarray,
                 c_all: np.ndarray, r_all: np.ndarray, tot: float, others: bool) -> np.ndarray:
    """1'K_g 1 = c_g'K c_g of the ``groups`` in every draw (groups x draws), c_g the group's count of each
    pattern; ``others``: the stratum has groups besides these."""
    n_draws, u = len(lab), len(ks)
    cells = np.arange(n_draws)[:, None] * u + local[None, :]  # (draw, pattern) of each clone

    def counts(g: int) -> np.ndarray:
        return np.bincount(cells[lab == blocks.labels[g]], minlength=n_draws * u).reshape(n_draws, u).astype(float)

    quad = np.empty((len(groups), n_draws))
    if others or len(groups) != 2:
        for k, g in enumerate(groups):
            c = counts(g)
            quad[k] = np.einsum("ij,ij->i", c @ ks, c)
        return quad
    # two groups: the larger is the rest of the stratum, c_last = c_all - c with c the other's counts, so
    # c_last'K c_last = c_all'K c_all - 2 c'K c_all + c'K c needs no product of its own (with more groups the
    # cancellation in such a sum costs more digits than it saves time)
    last = int(np.argmax(blocks.sizes[groups]))
    first = 1 - last
    c = counts(groups[first])
    quad[first] = np.einsum("ij,ij->i", c @ ks, c)
    quad[last] = tot - 2.0 * (c @ r_all) + quad[first]
    return quad


def _pair_quads(ks: np.ndarray, local: np.ndarray, blocks: GroupBlocks, groups: np.ndarray) -> np.ndarray:
    """1'K_g 1 of the ``groups`` in every draw (draws x groups), summed over their clones' pairs."""
    sizes = blocks.sizes[groups]
    pos = blocks.members(groups)  # positions in the draws' clone order
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # of each group in ``pos``
    pa, pb, pg = [], [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        which = np.flatnonzero(sizes == size)
        i, j = np.triu_indices(int(size), 1)
        pa.append((first[which][:, None] + i[None, :]).ravel())
        pb.append((first[which][:, None] + j[None, :]).ravel())
        pg.append(np.repeat(which, len(i)))
    pa, pb, pg = (np.concatenate(v) if v else np.zeros(0, np.intp) for v in (pa, pb, pg))
    by_group = np.argsort(pg, kind="stable")  # each group's pairs together, for a pairwise (accurate) sum
    pa, pb, pg = pa[by_group], pb[by_group], pg[by_group]
    paired = np.unique(pg)  # the groups with at least two clones
    seg = np.searchsorted(pg, paired)
    diag = np.diagonal(ks)
    n_groups = len(groups)
    out = np.empty((len(blocks.order), n_groups))
    step = max(1, _CHUNK // max(1, len(pa) + len(pos)))
    for r0 in range(0, len(blocks.order), step):
        pat = local[blocks.order[r0:r0 + step][:, pos]]  # chunk x clones of the groups: their pattern
        rows = len(pat)
        within = np.add.reduceat(diag[pat], first, axis=1) if len(pos) else np.zeros((rows, 0))
        if len(pa):
            within[:, paired] += 2.0 * np.add.reduceat(ks[pat[:, pa], pat[:, pb]], seg, axis=1)
        out[r0:r0 + rows] = within
    return out


@dataclass(frozen=True)
class PatternTest:
    statistic: float
    p: float
    n: int
    exact: bool
    draws: int
    scale: float
    undefined_pairs: int


def pattern_test(x: np.ndarray, labels: Sequence, strata: Optional[Sequence] = None,
                 rng: Optional[np.random.Generator] = None, reps: int = PERMUTATIONS) -> PatternTest:
    """Do the pattern distributions of the label groups differ?  Permutation test of ``kernel_dispersion``."""
    x = np.asarray(x, float)
    labels = np.asarray(labels)
    st = None if strata is None else np.asarray(strata)
    k, scale, undefined = kernel_matrix(x)
    draws, exact = label_draws(labels, st, rng or np.random.default_rng(0), reps)
    stats = kernel_dispersion(k, draws, st)
    return PatternTest(float(stats[0]), permutation_p(stats, exact, two_sided=False), len(labels), exact,
                       len(draws) - 1, scale, undefined)

