"""FASTQ input of the NGS engine: dnaio behind this one module.

Pipeline position: the first stage of ``bsmeth.ngs``.  The main process opens
the files (gzip or not; dnaio's xopen decompresses, with ISA-L where it is
installed) and cuts them into chunks of whole records (``dnaio.read_chunks`` /
``read_paired_chunks``: R1 and R2 chunks always hold the same number of
records, as cutadapt does).  A chunk travels to a worker as bytes; the worker
turns it into numpy arrays (``parse_chunk``) without one Python object per
read: the line ends are found with numpy, and sequences and qualities are
gathered into padded 2-D ``uint8`` matrices.  A chunk that is not well-formed
FASTQ is parsed again by dnaio, whose message names the problem.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

CHUNK_BYTES = 1 << 21  # 2 MiB of R1 (and as much of R2) per chunk: ~6,000 pairs of 150 bp
PHRED_OFFSET = 33
_UPPER = np.arange(256, dtype=np.uint8)
_UPPER[97:123] -= 32


@dataclass(frozen=True, eq=False)
class Records:
    """The reads of one chunk: ``seq`` is n x width (0-padded), ``length`` per read, qualities where needed
    (``quals``: most bases' PHRED is never looked at), ``names`` the read ids (the header up to the first space)
    only when asked for."""

    seq: np.ndarray  # uint8 ASCII, upper case
    length: np.ndarray  # int32
    buffer: np.ndarray  # uint8: the chunk's bytes
    qstart: np.ndarray  # int64: where each read's quality line starts in ``buffer``
    names: list[str] | None = None
    hstart: np.ndarray | None = None  # int64: where each read's header line ('@...') starts in ``buffer``
    hend: np.ndarray | None = None  # int64: where it ends (line end excluded)

    def __len__(self) -> int:
        return len(self.length)

    def quals(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """PHRED of reads ``rows`` at columns ``cols`` (1-D: the same columns for every read; 2-D: a row of
        columns per read); the columns must lie inside the reads."""
        cols = np.asarray(cols)
        start = self.qstart[rows]
        idx = start[:, None] + (cols if cols.ndim == 2 else cols[None, :])
        return self.buffer[idx] - np.uint8(PHRED_OFFSET)

    @property
    def qual(self) -> np.ndarray:
        """Every read's PHRED as an n x width matrix (0 past a read's end)."""
        w = self.seq.shape[1]
        col = np.arange(w)
        inside = col[None, :] < self.length[:, None]
        q = self.buffer[np.where(inside, self.qstart[:, None] + col[None, :], 0)]
        return np.where(inside, q - np.uint8(PHRED_OFFSET), 0).astype(np.uint8)


def is_fastq(path: Path) -> bool:
    """Does the file (gzip'd or not) start with a FASTQ record?  Read by content, as every input is."""
    import gzip

    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                with gzip.open(fh) as gz:
                    start = gz.read(4096)
            else:
                start = fh.read(4096)
    except Exception:  # noqa: BLE001 - unreadable or corrupt (zlib.error is no OSError): not FASTQ for routing
        return False
    lines = start.lstrip().split(b"\n")
    return len(lines) >= 4 and lines[0].startswith(b"@") and lines[2].startswith(b"+")


def first_lengths(path: Path, n: int = 200) -> list[int]:
    """Lengths of the first ``n`` reads (to tell short amplicon reads from long clone reads)."""
    import dnaio

    out = []
    try:
        with dnaio.open(path, mode="r") as f:
            for rec in f:
                out.append(len(rec.sequence))
                if len(out) >= n:
                    break
    except Exception:  # noqa: BLE001 - a damaged file: what was read so far decides
        pass
    return out


def _open(path: Path):
    import xopen

    return xopen.xopen(path, "rb", threads=0)


def chunks(path: Path, path2: Path | None = None, size: int = CHUNK_BYTES) -> Iterator[tuple[bytes, bytes | None]]:
    """(R1 chunk, R2 chunk or None) as bytes, whole records, in file order."""
    from dnaio import read_chunks, read_paired_chunks

    try:
        with _open(path) as f1:
            if path2 is None:
                for c in read_chunks(f1, size):
                    yield bytes(c), None
                return
            with _open(path2) as f2:
                for c1, c2 in read_paired_chunks(f1, f2, size):
                    yield bytes(c1), bytes(c2)
    except (ValueError, EOFError, OSError) as e:
        where = f"{path}" + (f" / {path2}" if path2 else "")
        raise InputError(f"{where}: cannot read as FASTQ ({e}); are R1 and R2 complete and of the same run?") from None


def _dnaio_error(buf: bytes, what: str) -> str:
    """dnaio's own message for a chunk that is not well-formed FASTQ."""
    import dnaio

    try:
        for _ in dnaio.FastqReader(io.BytesIO(buf)):
            pass
    except dnaio.exceptions.FileFormatError as e:
        return f"{what}: {e}"
    return f"{what}: not 4-line FASTQ records"


def parse_chunk(buf: bytes, names: bool = False, what: str = "FASTQ") -> Records:
    """A chunk of whole FASTQ records as arrays.  Raises ``InputError`` for malformed records."""
    a = np.frombuffer(buf, np.uint8)
    if len(a) == 0:
        z = np.zeros((0, 1), np.uint8)
        e = np.zeros(0, np.int64)
        return Records(z, np.zeros(0, np.int32), a, e, [] if names else None, e, e)
    nl = np.flatnonzero(a == 10)
    if a[-1] != 10:
        nl = np.append(nl, len(a))
    if len(nl) % 4:
        raise InputError(_dnaio_error(buf, what))
    starts = np.empty_like(nl)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    ends = nl.copy()
    cr = a[np.maximum(ends - 1, 0)] == 13  # Windows line ends
    ends = ends - (cr & (ends > starts))
    h0, s0, p0, q0 = starts[0::4], starts[1::4], starts[2::4], starts[3::4]
    s1, q1 = ends[1::4], ends[3::4]
    length = (s1 - s0).astype(np.int32)
    ok = (a[h0] == 64) & (a[np.minimum(p0, len(a) - 1)] == 43) & (q1 - q0 == length)
    if not ok.all():
        raise InputError(_dnaio_error(buf, what))
    width = max(1, int(length.max()) if len(length) else 1)
    col = np.arange(width, dtype=np.int64)
    idx = s0[:, None] + col[None, :]
    if int(length.min()) == width:  # reads of one length (the rule on Illumina runs): no padding
        seq = a[idx]
    else:
        inside = col[None, :] < length[:, None]
        seq = np.where(inside, a[np.where(inside, idx, 0)], 0).astype(np.uint8)
    if (seq > 96).any():  # lower case
        seq = _UPPER[seq]
    ids = None
    if names:
        ids = [buf[i + 1:j].split(None, 1)[0].decode("utf-8", "replace") if j > i + 1 else ""
               for i, j in zip(h0.tolist(), ends[0::4].tolist())]
    return Records(seq, length, a, q0.astype(np.int64), ids, h0.astype(np.int64), ends[0::4].astype(np.int64))


def mate_id(name: str) -> str:
    """A read id without the mate suffix (``/1``, ``/2``), for checking that R1 and R2 are in step."""
    return name[:-2] if len(name) > 2 and name[-2] == "/" and name[-1] in "12" else name


def header_ids(buf: bytes) -> tuple[str, str]:
    """The ids of the first and last record of a chunk (R1/R2 pairing is checked on these)."""
    lines = buf.split(b"\n", 1)
    first = lines[0][1:].split(None, 1)[0].decode("utf-8", "replace") if lines[0] else ""
    tail = buf.rstrip(b"\n").rsplit(b"\n", 4)
    last = tail[-4] if len(tail) >= 4 else b""
    last = last[1:].split(None, 1)[0].decode("utf-8", "replace") if last.startswith(b"@") else ""
    return mate_id(first), mate_id(last)


def looks_like_ngs(paths: Sequence[Path]) -> bool:
    """FASTQ input of amplicon sequencing: every file FASTQ by content, and short reads (at most
    ``SHORT_READ`` bases among the first reads: Illumina, not Sanger clone reads, which run 500-1000 bases)."""
    if not paths:
        return False
    for p in paths:
        if not is_fastq(p):
            return False
    lengths = first_lengths(paths[0])
    return bool(lengths) and max(lengths) <= SHORT_READ


SHORT_READ = 400
