"""readsbam's MD strings: the vectorised ``_md`` against the SAM specification's definition, column by column."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.readsbam import _NUMBERS, _md


def md_by_definition(columns: list[tuple[bool, str]], dels: dict[int, str], reverse: bool) -> str:
    """SAM's MD, walking the record's columns one by one: the number of matching columns since the last event,
    then a mismatching reference letter or ``^`` and the deleted letters; a number at the end."""
    items: list[tuple[str, object, str]] = []
    for j, (miss, letter) in enumerate(columns):
        if j in dels:
            items.append(("del", None, dels[j]))
        items.append(("col", miss, letter))
    if reverse:
        items.reverse()
    out, run = [], 0
    for kind, miss, text in items:
        if kind == "col" and not miss:
            run += 1
            continue
        out.append(f"{run}{'^' if kind == 'del' else ''}{text}")
        run = 0
    return "".join(out) + str(run)


def padded(columns: list[tuple[bool, str]]) -> tuple[np.ndarray, np.ndarray]:
    """``_md``'s inputs: the mismatches between two True pads, the letters after one pad."""
    miss = np.array([True, *(m for m, _ in columns), True], dtype=bool)
    ref = np.frombuffer(("N" + "".join(c for _, c in columns)).encode("ascii"), dtype=np.uint8)
    return miss, ref


@st.composite
def alignments(draw):
    n = draw(st.integers(1, 60))
    columns = draw(st.lists(st.tuples(st.booleans(), st.sampled_from("ACGTN")), min_size=n, max_size=n))
    at = draw(st.lists(st.integers(1, n - 1), unique=True, max_size=4)) if n > 1 else []
    dels = {p: draw(st.text("ACGTN", min_size=1, max_size=3)) for p in sorted(at)}
    return columns, dels, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(alignments())
def test_md_is_the_sam_definition(case):
    columns, dels, reverse = case
    miss, ref = padded(columns)
    assert _md(miss, ref, encoded(dels), reverse).decode() == md_by_definition(columns, dels, reverse)


def encoded(dels: dict[int, str]) -> list[tuple[int, bytes]]:
    """``_md``'s deletions: in increasing order, their letters as bytes."""
    return [(p, d.encode("ascii")) for p, d in sorted(dels.items())]


def test_md_of_a_perfect_match_and_of_mismatches_only():
    for reverse in (False, True):
        assert _md(*padded([(False, "A")] * 7), [], reverse) == b"7"
        assert _md(*padded([(True, "A"), (True, "C")]), [], reverse) == (b"0C0A0" if reverse else b"0A0C0")
        assert _md(*padded([(False, "A"), (False, "C")]), [(1, b"GG")], reverse) == b"1^GG1"


def test_md_past_the_number_table():
    """Runs longer than the table of small numbers (a long amplicon) are written out too."""
    for n, at in ((_NUMBERS + 500, (3, _NUMBERS + 100)), (_NUMBERS + 500, (3, 2000, 3000))):
        columns = [(j in at, "ACGT"[j % 4]) for j in range(n)]
        for reverse in (False, True):
            for dels in ({}, {n - 7: "T"}):
                miss, ref = padded(columns)
                assert _md(miss, ref, encoded(dels), reverse).decode() == md_by_definition(columns, dels, reverse)
