"""Reading ABIF chromatograms (.ab1/.abi) into ``Read`` objects.

Pipeline position: input stage, called by ``reads`` for files that start with
the ABIF magic.  Biopython's ABIF parser lives here and nowhere else.  Base
calls and PHRED qualities come from PBAS2/PCON2 (the basecaller's edited
calls); the four analysed dye channels (DATA9-12) are kept in the channel order
given by FWO_ (not always GATC), with the peak positions PLOC2, for the
trace-evidence features.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import ReadFormatError
from .models import Read, Trace

_DATA_TAGS = ("DATA9", "DATA10", "DATA11", "DATA12")


def _trace(raw: dict) -> Trace | None:
    order = raw.get("FWO_1")
    if isinstance(order, bytes):
        order = order.decode("ascii", "replace")
    if not order or len(order) < 4 or any(t not in raw for t in _DATA_TAGS):
        return None
    order = order[:4].upper()
    channels = {base: np.asarray(raw[tag], dtype=np.int32) for base, tag in zip(order, _DATA_TAGS)}
    peaks = np.asarray(raw.get("PLOC2") or raw.get("PLOC1") or (), dtype=np.int32)
    return Trace(channels=channels, peaks=peaks, base_order=order)


def read_abif(path: Path, data: bytes | None = None) -> Read:
    """One trace file -> one ``Read`` (id = file stem).  Raises ``ReadFormatError`` if unusable."""
    from io import BytesIO

    from Bio import SeqIO

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle = BytesIO(data) if data is not None else open(path, "rb")
            with handle:
                record = SeqIO.read(handle, "abi")
    except Exception as e:  # Biopython raises many kinds on corrupt files
        raise ReadFormatError(f"{path}: not a readable ABIF trace ({type(e).__name__}: {e})") from None
    seq = str(record.seq).upper()
    if not seq:
        raise ReadFormatError(f"{path}: ABIF file has no base calls (a fragment-analysis .fsa file?)")
    qual = record.letter_annotations.get("phred_quality")
    q = None
    if qual is not None and len(qual) == len(seq):
        q = np.asarray(qual, dtype=np.uint8)
        if not q.any():
            q = None  # instruments such as the ABI 310 store all-zero qualities: treat as no qualities
    raw = record.annotations.get("abif_raw", {})
    return Read(id=path.stem, file=str(path), seq=seq, qual=q, fmt="ab1", trace=_trace(raw))
