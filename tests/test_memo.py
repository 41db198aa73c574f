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


def test_hold_raises_the_default_bound(monkeypatch):
    from bsmeth import memo

    monkeypatch.setattr(memo, "_KEEP", [3])
    cache: dict = {}
    objs = [[k] for k in range(5)]
    for o in objs:
        by_identity(cache, o, lambda: 0)
    assert len(cache) == 3
    memo.hold(5)
    memo.hold(2)  # never lowered
    for o in objs:
        by_identity(cache, o, lambda: 0)
    assert len(cache) == 5 and memo._KEEP == [5]


def test_a_panel_larger_than_the_bound_keeps_every_amplicons_tables(monkeypatch):
    """Each read of a panel visits every amplicon (the vote): past the bound a FIFO would make every table
    again for every read (17 amplicons cost 7x 10)."""
    import random

    from bsmeth import alignment, memo
    from bsmeth.assign import assign
    from bsmeth.models import Panel
    from bsmeth.reference import build_amplicon

    monkeypatch.setattr(memo, "_KEEP", [16])
    monkeypatch.setattr(alignment, "_TABLES", {})
    made = []
    real = alignment._make_tables
    monkeypatch.setattr(alignment, "_make_tables", lambda *a: made.append(1) or real(*a))
    rng = random.Random(3)
    seqs = ["".join(rng.choice("ACGT") for _ in range(200)).replace("CG", "CA") for _ in range(24)]
    panel = Panel(tuple(build_amplicon(f"a{k}", s) for k, s in enumerate(seqs)))
    read = seqs[5][20:180].replace("C", "T")
    for _ in range(3):
        assert assign(panel, read).index == 5
    assert len(made) == 24
