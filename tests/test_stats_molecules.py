"""Statistics of deep data: the weighted tests equal the clone tests on the expanded data, and the compare stage
of a folder of weighted patterns (``stats_molecules``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.stats import (
    fisher_2x2,
    fisher_2x2_large,
    jonckheere_terpstra,
    jonckheere_weighted,
    kruskal,
    kruskal_weighted,
    mann_whitney,
    mann_whitney_weighted,
    welch_t,
)

FRACTIONS = st.sampled_from([0.0, 0.1, 0.25, 1 / 3, 0.5, 0.6, 0.75, 0.9, 1.0])
WEIGHTED = st.lists(st.tuples(FRACTIONS, st.integers(1, 40)), min_size=1, max_size=12)


def expand(pairs):
    return np.repeat([v for v, _ in pairs], [w for _, w in pairs])


def close(a, b):
    return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(WEIGHTED, WEIGHTED)
def test_weighted_mann_whitney_equals_the_expanded_test(x, y):
    u, p = mann_whitney_weighted([v for v, _ in x], [w for _, w in x], [v for v, _ in y], [w for _, w in y])
    ue, pe = mann_whitney(expand(x), expand(y))
    assert close(u, ue) and close(p, pe)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(WEIGHTED, min_size=2, max_size=4))
def test_weighted_kruskal_equals_the_expanded_test(groups):
    h, p = kruskal_weighted([([v for v, _ in g], [w for _, w in g]) for g in groups])
    he, pe = kruskal([expand(g) for g in groups])
    assert close(h, he) and close(p, pe)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(WEIGHTED, min_size=2, max_size=4))
def test_weighted_jonckheere_equals_the_expanded_test(groups):
    vals = [v for g in groups for v, _ in g]
    ws = [w for g in groups for _, w in g]
    lab = [float(k) for k, g in enumerate(groups) for _ in g]
    a = jonckheere_weighted(vals, ws, lab)
    b = jonckheere_terpstra(np.concatenate([expand(g) for g in groups]),
                            np.concatenate([[float(k)] * int(sum(w for _, w in g)) for k, g in enumerate(groups)]))
    assert all(close(x, y) for x, y in zip(a, b))


def test_mann_whitney_on_100000_weighted_molecules_is_exact_and_quick():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 26, 60_000) / 25
    y = rng.integers(0, 26, 40_000) / 25 + 0.02
    y = np.minimum(y, 1)
    ux, cx = np.unique(x, return_counts=True)
    uy, cy = np.unique(y, return_counts=True)
    u, p = mann_whitney_weighted(ux, cx, uy, cy)
    ue, pe = mann_whitney(x, y)
    assert close(u, ue) and close(p, pe)


@pytest.mark.parametrize("table", [(3, 9, 8, 2), (0, 12, 5, 5), (200, 900, 260, 840), (1500, 500, 1400, 600)])
def test_fisher_large_equals_the_exact_integer_test(table):
    a = fisher_2x2_large(*table)
    b = fisher_2x2(*table)
    assert close(a[0], b[0]) and abs(a[1] - b[1]) <= 1e-6 * max(b[1], 1e-300) + 1e-300


def test_welch_t_against_scipy():
    from scipy import stats

    x, y = [0.1, 0.15, 0.12, 0.2], [0.3, 0.42, 0.35]
    t, p, d, ci = welch_t(x, y)
    ref = stats.ttest_ind(y, x, equal_var=False)
    assert close(t, ref.statistic) and close(p, ref.pvalue) and ci[0] < d < ci[1]
    assert math.isnan(welch_t([0.1], [0.2, 0.3])[1])
