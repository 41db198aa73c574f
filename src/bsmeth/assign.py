"""Which amplicon of a panel a read comes from.

Pipeline position: after ``reads``, before ``alignment``.  The vote is
bisulfite-aware: each amplicon counts the read's k-mers (in the 3-letter
alphabet, C read as T, so methylation cannot sway it) that occur in it, in the
read's better orientation (``alignment.orient``).  The amplicon with most hits
wins.  When the runner-up comes close (``NEAR_TIE`` of the winner's hits), both
are aligned and the alignment scores decide.  Scores within ``SCORE_TIE`` of
each other (nested or overlapping amplicons: a read of the part both share)
are decided by coverage: an amplicon the alignment covers whole (``WHOLE``)
wins over one it covers in part (the short product of a nested pair, read
through from primer to primer); otherwise the read is ``ambiguous_amplicon``.
A read with no hit in any amplicon of a panel of several is ``no_amplicon``
without alignment.  A panel of one amplicon skips the vote: every read is
aligned to it, as in the one-amplicon form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .alignment import align, best_hits
from .memo import hold
from .models import Panel, Reason

NEAR_TIE = 0.8  # runner-up k-mer hits at least this share of the winner's: decide by alignment score
SCORE_TIE = 0.1  # alignment scores closer than this share of the better one: decided by coverage
WHOLE = 0.95  # share of an amplicon's length an alignment must cover to count as the whole product
MIN_HITS = 1  # fewer k-mer hits in every amplicon of a panel: no_amplicon


@dataclass(frozen=True)
class Assignment:
    """The outcome of the vote: an amplicon index, or a reason and detail why none."""

    index: Optional[int]
    reason: Optional[Reason] = None
    detail: str = ""


def votes(panel: Panel, seq: str) -> list[int]:
    """Per amplicon, the read's k-mer hits in its better orientation (``alignment.best_hits``)."""
    hold(len(panel))  # every read visits every amplicon's tables: keep them all
    return best_hits(panel.amplicons, seq)


def assign(panel: Panel, seq: str, qual=None) -> Assignment:
    """The amplicon a read belongs to (see the module docstring for the rule)."""
    if len(panel) == 1:
        return Assignment(0)
    v = votes(panel, seq)
    order = sorted(range(len(v)), key=lambda i: (-v[i], i))
    best, second = order[0], order[1]
    if v[best] < MIN_HITS:
        return Assignment(None, Reason.NO_AMPLICON,
                          f"no 12-mer (C/T merged) of any of the {len(panel)} panel amplicons in the read")
    if v[second] < NEAR_TIE * v[best]:
        return Assignment(best)
    names = panel.names
    scored = [(i, align(panel.amplicons[i], seq, qual)) for i in order[:2]]
    scores = [(i, a.score if a is not None else 0.0, a) for i, a in scored]
    scores.sort(key=lambda x: -x[1])
    (i1, s1, a1), (i2, s2, a2) = scores
    if s1 <= 0:
        return Assignment(None, Reason.NO_AMPLICON, "no alignment to any panel amplicon")
    if s1 - s2 < SCORE_TIE * s1:
        whole = [i for i, a in ((i1, a1), (i2, a2))
                 if a is not None and a.target_end - a.target_start >= WHOLE * panel.amplicons[i].length]
        if len(whole) == 1:
            return Assignment(whole[0])
        return Assignment(None, Reason.AMBIGUOUS_AMPLICON,
                          f"matches {names[i1]} and {names[i2]} equally well (alignment scores {s1:.0f} and "
                          f"{s2:.0f}; k-mer votes {v[i1]} and {v[i2]}): overlapping amplicons?")
    return Assignment(i1)
