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
    amp_col = s[AMPLICON] if has_amplicon(s) else [""] * len(s)
    for a, c, note in zip(amp_col, s["cpg"], s["note"]):
        if note == "under_primer" or note.startswith("snp:"):
            out.setdefault(a, {})[int(c)] = note
    calls = data.cpg_calls
    mask = calls["why"].isin(("under_primer", "snp"))
    sub = calls[mask]
    amp_col = sub[AMPLICON] if has_amplicon(sub) else [""] * len(sub)
    for a, c, why in zip(amp_col, sub["cpg"], sub["why"]):
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
    amplicons = list(dict.fromkeys(amp_of_call)) if amp_of_call is not None else [""]
    reads = data.reads[data.reads["status"] == "pass"]
    order = data.sample_order()
    out: list[CloneSet] = []
    for amp in amplicons:
        c_amp = calls if amp_of_call is None else calls[amp_of_call == amp]
        skip = excluded.get(amp, {})
        all_cpgs = sorted({int(c) for c in c_amp["cpg"]})
        cpgs = [c for c in all_cpgs if c not in skip]
        col = {c: j for j, c in enumerate(cpgs)}
        p = c_amp[c_amp["status"] == "pass"]
        p = p[p["call"].isin(("M", "U"))]
        r_amp = reads if amp_of_call is None or not has_amplicon(reads) else reads[reads[AMPLICON] == amp]
        samples = [s for s in order if s in set(r_amp["sample"])] + \
            [s for s in dict.fromkeys(r_amp["sample"]) if s not in order]
        rows_of = {}
        for s in samples:
            rows_of[s] = [r for r in r_amp["read"][r_amp["sample"] == s]]
        index = {rid: (s, i) for s, rids in rows_of.items() for i, rid in enumerate(rids)}
        mats = {s: np.full((len(rids), len(cpgs)), np.nan) for s, rids in rows_of.items()}
        for rid, cpg, call in zip(p["read"], p["cpg"], p["call"]):
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
            for r, chosen in enumerate(combinations(range(n), k)):
                draws[r, list(chosen)] = values[1]
            observed = labels[None, :]
            return np.concatenate([observed, draws]), True
    draws = np.empty((reps + 1, n), dtype=labels.dtype)
    draws[0] = labels
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
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
    d, undefined = pattern_distance(x)
    n = len(d)
    off = d[~np.eye(n, dtype=bool)]
    scale = KERNEL_FRACTION * float(np.median(off)) if len(off) else 1.0
    if scale <= 0:
        scale = 1.0 / max(1, x.shape[1])
    return np.exp(-d / scale), scale, undefined


def kernel_dispersion(k: np.ndarray, draws: np.ndarray, strata: Optional[np.ndarray] = None) -> np.ndarray:
    """Between-group kernel dispersion per row of ``draws`` (group labels), summed over strata:
    sum_s sum_g (n_sg / N_s) ||mu_sg - mu_s||^2 = sum_s (sum_g 1'K_sg 1 / n_sg - 1'K_s 1 / N_s) / N_s."""
    n = k.shape[0]
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    total = np.zeros(len(draws))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        ks = k[np.ix_(idx, idx)]
        lab = draws[:, idx]
        big_n = len(idx)
        acc = np.zeros(len(draws)) - ks.sum() / big_n
        for g in np.unique(lab[0]):
            ind = (lab == g).astype(float)
            ng = ind.sum(axis=1)
            quad = np.einsum("ij,ij->i", ind @ ks, ind)
            acc += np.where(ng > 0, quad / np.where(ng > 0, ng, 1), 0.0)
        total += acc / big_n
    return total


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

