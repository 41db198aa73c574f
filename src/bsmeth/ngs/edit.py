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

    if edlib.align(read3, ref3, mode="HW", task="distance", k=max_edits)["editDistance"] < 0:
        return None  # most reads sent here that do not align (primer dimers, adapter): the cheap answer
    res = edlib.align(read3, ref3, mode="HW", task="path", k=max_edits)
    if res["editDistance"] < 0 or not res["locations"]:
        return None
    start = res["locations"][0][0]
    ops = _OPS.findall(res["cigar"])
    kind = np.frombuffer("".join(op for _, op in ops).encode(), np.uint8)
    runs = np.array([int(n) for n, _ in ops])
    k = np.repeat(kind, runs)  # one letter per alignment column
    in_read = k != ord("D")
    in_ref = k != ord("I")
    read_col = np.cumsum(in_read) - 1
    cols = np.where(in_read, read_col, -2)[in_ref].astype(np.int32)
    return res["editDistance"], start, cols, int((k == ord("I")).sum()), len(k)
