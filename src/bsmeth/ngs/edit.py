"""Gapped alignment of the reads that do not match their amplicon without gaps: edlib behind this one module.

Pipeline position: inside ``engine``, only for the few reads the exact (ungapped) path leaves over.  Both
sequences are in the 3-letter alphabet (C read as T); edlib's infix mode (``HW``) places the whole read inside
the reference window, and its extended CIGAR gives the reference -> read column map the calls are taken from.
"""

from __future__ import annotations

import re

import numpy as np

_OPS = re.compile(r"(\d+)([=XIDM])")


def align_columns(read3: bytes, ref3: bytes, max_edits: int) -> tuple[int, int, np.ndarray, int, int] | None:
    """Align ``read3`` inside ``ref3``: (edits, reference start, read column per reference position from that
    start (-2 for a deletion in the read), insertions, alignment columns), or None when more than ``max_edits``
    edits are needed."""
    import edlib

    res = edlib.align(read3, ref3, mode="HW", task="path", k=max_edits)
    if res["editDistance"] < 0 or not res["locations"]:
        return None
    start = res["locations"][0][0]
    cols: list[int] = []
    q = 0
    ins = 0
    n_cols = 0
    for n, op in _OPS.findall(res["cigar"]):
        n = int(n)
        n_cols += n
        if op in "=XM":
            cols.extend(range(q, q + n))
            q += n
        elif op == "I":  # read bases not in the reference
            q += n
            ins += n
        else:  # D: reference bases missing from the read
            cols.extend([-2] * n)
    return res["editDistance"], start, np.asarray(cols, np.int32), ins, n_cols
