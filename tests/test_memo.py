"""Tests of bsmeth.memo: per-object results found by identity, bounded."""

from __future__ import annotations

from bsmeth.memo import by_identity


def test_made_once_per_object_by_identity_not_equality_and_bounded():
    made = []

    def make(x):
        return lambda: made.append(x) or len(made)

    cache: dict = {}
    a, b = [1], [1]  # equal, not the same object
    assert by_identity(cache, a, make(a), keep=2) == 1
    assert by_identity(cache, a, make(a), keep=2) == 1 and len(made) == 1  # found again, not made
    assert by_identity(cache, b, make(b), keep=2) == 2  # an equal object is another entry
    c = [2]
    assert by_identity(cache, c, make(c), keep=2) == 3 and len(cache) == 2  # the oldest (a) went
    assert by_identity(cache, a, make(a), keep=2) == 4 and len(made) == 4
