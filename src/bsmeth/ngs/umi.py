"""UMIs (``--umi``): the UMI of each read pair from its read names, families, and the consensus of a family.

Pipeline position: beside ``engine`` (workers: ``parse`` on each mate's chunk, ``pair_umis`` after
``engine.pairs``; ``family_records`` in ``aggregate.Tally.add``) and ``aggregate`` (main process, at the end:
``consensus``).  docs/ngs.md ("UMIs") is the user's account.

**Where the UMI is** (``CONVENTIONS``): the last field of the first word of the read name (up to the first space
or tab), after the last

* ``:`` as Illumina's bcl2fastq and BCL Convert write it (``@M01:1:FC:1:1101:1000:2000:ACGTACGT 1:N:0:1``;
  dual UMIs as ``ACGTACGT+GGCATTCA``), or
* ``_`` as umi_tools ``extract`` writes it (``@read1_ACGTACGT``).

A UMI is 1 to ``UMI_BYTES`` letters of ``ACGTN`` (upper case), parts joined by single ``+``.  ``--umi`` detects
the convention per FASTQ file from its first reads (``detect``: the convention under which most of the first
``DETECT_READS`` names carry a UMI, Illumina's on a tie; none: the run stops, exit 3); ``--umi-pattern REGEX``
replaces detection: the regular expression is searched in the first word of each name and its group ``umi`` (or
its first group) is the UMI, any characters, at most ``UMI_BYTES``.  A pair whose names carry no UMI fails
``no_umi``; mates whose UMIs differ (or only one of which has one) fail ``umi_mismatch``.  UMIs are compared
exactly: a sequencing error in a UMI makes a family of its own (no clustering of similar UMIs).

**Families**: passing pairs with the same (sample, amplicon, original strand, UMI) are one molecule.  The
original strand is OT for reads of OT and CTOT, OB for OB and CTOB: the copies of one molecule are read from
either end in a non-directional library, so its CTOT reads belong to its OT family.  A family is held as one
record of fixed width (``family_dtype``): per CpG the votes M minus U (``diff``) and the smallest call code its
pairs gave there (``low``: 0 M or 1 U when at least one pair called it, else the first not-determined reason in
``engine.WHY_CODES`` order), and the number of pairs; records of one family from several chunks add up
(``spill.Store``: sum and min, so the result does not depend on chunks or processes).

**Consensus** per CpG: more M than U votes -> M, more U -> U, as many (at least one each) -> ``-`` with why
``umi_conflict``; no vote -> ``-`` with the family's first reason.  A family without one CpG called fails
``low_quality`` (one molecule); the family's other pairs fail ``duplicate``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .engine import UMICONF, M, U
from .fastq import Records

UMI_BYTES = 32  # longest UMI kept (dual UMIs of 2 x 12 with their '+' fit); longer: no_umi
DETECT_READS = 1000  # names looked at to detect the convention of a file
CONVENTIONS = {"illumina": ":", "umi_tools": "_"}
UMI_WORDS = UMI_BYTES // 8
_VALID = np.zeros(256, bool)
_VALID[list(b"ACGTN+")] = True
_SPACE = np.zeros(256, bool)
_SPACE[[9, 32]] = True


def names_matrix(rec: Records) -> tuple[np.ndarray, np.ndarray]:
    """(first words of the read names as uint8 n x w, 0-padded; their lengths)."""
    a = rec.buffer
    s = rec.hstart + 1  # after '@'
    ln = (rec.hend - s).astype(np.int64)
    w = max(1, int(ln.max()) if len(ln) else 1)
    col = np.arange(w)
    inside = col[None, :] < ln[:, None]
    H = np.where(inside, a[np.where(inside, s[:, None] + col[None, :], 0)], 0).astype(np.uint8)
    sp = _SPACE[H] & inside
    wend = np.where(sp.any(axis=1), sp.argmax(axis=1), ln)
    H[col[None, :] >= wend[:, None]] = 0
    return H, wend


def parse(rec: Records, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """(UMI bytes as uint8 n x ``UMI_BYTES``, 0-padded; whether the name carries a UMI) of every read of a
    chunk, by ``convention`` (a key of ``CONVENTIONS``, or ``re:REGEX``)."""
    n = len(rec)
    out = np.zeros((n, UMI_BYTES), np.uint8)
    if not n:
        return out, np.zeros(0, bool)
    if convention.startswith("re:"):
        return _parse_regex(rec, re.compile(convention[3:]), out)
    H, wend = names_matrix(rec)
    w = H.shape[1]
    col = np.arange(w)
    sep = (H == ord(CONVENTIONS[convention])) & (col[None, :] < wend[:, None])
    has = sep.any(axis=1)
    start = w - sep[:, ::-1].argmax(axis=1)  # after the last separator
    length = wend - start
    ok = has & (length >= 1) & (length <= UMI_BYTES)
    j = np.arange(UMI_BYTES)
    take = ok[:, None] & (j[None, :] < length[:, None])
    U_ = np.where(take, H[np.arange(n)[:, None], np.minimum(start[:, None] + j[None, :], w - 1)], 0).astype(np.uint8)
    plus = U_ == ord("+")
    ok &= (_VALID[U_] | ~take).all(axis=1)
    last = np.maximum(length - 1, 0)
    ok &= ~plus[:, 0] & ~plus[np.arange(n), np.minimum(last, UMI_BYTES - 1)]
    ok &= ~(plus[:, 1:] & plus[:, :-1]).any(axis=1)
    out[ok] = U_[ok]
    return out, ok


def _parse_regex(rec: Records, rx: re.Pattern, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    H, wend = names_matrix(rec)
    ok = np.zeros(len(rec), bool)
    group = "umi" if "umi" in rx.groupindex else (1 if rx.groups else 0)
    for i, (row, e) in enumerate(zip(H, wend.tolist())):
        m = rx.search(row[:e].tobytes().decode("utf-8", "replace"))
        if m and m.group(group):
            b = m.group(group).encode()
            if len(b) <= UMI_BYTES:
                out[i, :len(b)] = np.frombuffer(b, np.uint8)
                ok[i] = True
    return out, ok


def detect(path: Path, pattern: str | None = None) -> str:
    """The UMI convention of a FASTQ file from its first ``DETECT_READS`` names (module docstring)."""
    from .fastq import chunks, parse_chunk

    first = b""
    for c, _ in chunks(path, None, 1 << 18):
        first = c
        break
    rec = parse_chunk(first, what=str(path))
    if len(rec) > DETECT_READS:
        rec = _head(rec, DETECT_READS)
    name = bytes(first.split(b"\n", 1)[0][1:]).decode("utf-8", "replace") if first else ""
    if pattern is not None:
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise InputError(f"--umi-pattern {pattern!r}: not a regular expression ({e})") from None
        if not parse(rec, "re:" + pattern)[1].any():
            raise InputError(f"{path}: --umi-pattern {rx.pattern!r} finds no UMI in the first {len(rec)} read names "
                             f"(first: {name!r}); the UMI is its group 'umi' or its first group")
        return "re:" + pattern
    found = {c: int(parse(rec, c)[1].sum()) for c in CONVENTIONS}
    best = max(CONVENTIONS, key=lambda c: found[c])  # dicts keep order: Illumina's first on a tie
    if not found[best]:
        raise InputError(f"{path}: --umi, but no UMI in the first {len(rec)} read names (first: {name!r}); expected "
                         "the UMI as the last ':' field of the name (Illumina: @M01:1:FC:1:1101:1000:2000:ACGTACGT) "
                         "or after a '_' (umi_tools: @read1_ACGTACGT), or give --umi-pattern REGEX")
    return best


def _head(rec: Records, n: int) -> Records:
    from dataclasses import replace

    return replace(rec, seq=rec.seq[:n], length=rec.length[:n], qstart=rec.qstart[:n], hstart=rec.hstart[:n],
                   hend=rec.hend[:n], names=rec.names[:n] if rec.names is not None else None)


def pair_umis(u1: np.ndarray, ok1: np.ndarray, u2: np.ndarray | None, ok2: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UMI bytes of each pair, no UMI, mates' UMIs differ) from the two mates' UMIs (R2 None: single-end)."""
    if u2 is None:
        return u1, ~ok1, np.zeros(len(u1), bool)
    same = ok1 & ok2 & (u1 == u2).all(axis=1)
    none = ~ok1 & ~ok2
    return u1, none, ~same & ~none


def umi_text(u: np.ndarray) -> list[str]:
    """UMI bytes (n x ``UMI_BYTES``) as strings ('' where none)."""
    return [bytes(r).rstrip(b"\0").decode("utf-8", "replace") for r in u]


def family_dtype(width: int) -> np.dtype:
    """A family record: key (sample, amplicon, original strand; the UMI), per CpG the votes and the lowest
    code, and the pairs."""
    return np.dtype([("key", np.uint64, (1 + UMI_WORDS,)), ("diff", np.int32, (width,)),
                     ("low", np.uint8, (width,)), ("n", np.int64)])


FAMILY_REDUCERS = {"diff": "sum", "low": "min", "n": "sum"}


def family_records(sample: int, amplicon: np.ndarray, strand: np.ndarray, umis: np.ndarray, calls: np.ndarray,
                   width: int) -> np.ndarray:
    """One record per passing pair (rows of a chunk), keyed by its family."""
    from .spill import key_words

    n = len(amplicon)
    recs = np.zeros(n, family_dtype(width))
    head = ((np.uint64(sample) << np.uint64(24)) | (amplicon.astype(np.uint64) << np.uint64(8))
            | (strand.astype(np.uint64) // np.uint64(2)))
    recs["key"][:, 0] = head
    recs["key"][:, 1:] = key_words(umis)
    c = calls[:, :width]
    recs["diff"] = (c == M).astype(np.int32) - (c == U).astype(np.int32)
    recs["low"] = c.astype(np.uint8)
    recs["n"] = 1
    return recs


def split_key(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample, amplicon, molecule strand: OT 0 or OB 2) of family keys."""
    head = key[:, 0]
    return ((head >> np.uint64(24)).astype(np.int64), ((head >> np.uint64(8)) & np.uint64(0xFFFF)).astype(np.int64),
            (2 * (head & np.uint64(0xFF))).astype(np.int64))


def consensus(diff: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Call codes (int8, engine's) of families from their votes (module docstring)."""
    voted = low <= U
    out = np.where(diff > 0, M, np.where(diff < 0, U, UMICONF))
    return np.where(voted, out, low).astype(np.int8)
