"""Atomic file writing: every output appears whole or not at all.

Bottom of the import graph (next to ``models`` and ``errors``), used by every
stage that writes.  A file is written under a hidden temporary name in its
final folder, then renamed over the final name; a crash or Ctrl-C removes the
temporary file and leaves any previous version intact (a SIGKILL cannot: the
next run into the folder removes it, see ``outdir``).  An OS error while
writing (disk full, file too large, read-only) is an ``OutputError`` (exit 4).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from .errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], object]) -> Path:
    """``writer(fh)`` writes into a binary file handle; the result appears at ``path`` only when complete."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path.parent}: cannot write ({e.strerror or e})") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the file a plain open()'s mode
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            # disk full, file too large (ulimit -f), read-only or denied: an output problem, exit 4
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text with the line ends as given (``\\n``)."""
    return write_bytes(path, text.encode("utf-8"))
