"""Atomic file writing: every output appears whole or not at all.

Bottom of the import graph (next to ``models`` and ``errors``), used by every
stage that writes.  A file is written under a hidden temporary name in its
final folder, then renamed over the final name; a crash or Ctrl-C removes the
temporary file and leaves any previous version intact (a SIGKILL cannot: the
next run into the folder removes it, see ``outdir``).  An OS error while
writing (disk full, file too large, read-only) is an ``OutputError`` (exit 4).
"""

from __future__ import annotations

import codecs
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from .errors import OutputError


def _shown(path: Path) -> str:
    """The path as the user knows it (a file of a staged result set: where it will be, see ``outdir``)."""
    from .outdir import shown_path

    return shown_path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_in(path: Path) -> tuple[int, str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{_shown(path.parent)}: cannot write ({e.strerror or e})") from None
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the file a plain open()'s mode
    return fd, tmp


def _into_place(tmp: str, path: Path, write: Callable[[], object]) -> Path:
    """Run ``write()`` (which fills ``tmp``), then rename ``tmp`` to ``path``; on any failure remove ``tmp``."""
    try:
        write()
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            # disk full, file too large (ulimit -f), read-only or denied: an output problem, exit 4
            raise OutputError(f"{_shown(path)}: cannot write ({e.strerror or e})") from None
        raise
    return path


def write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], object]) -> Path:
    """``writer(fh)`` writes into a binary file handle; the result appears at ``path`` only when complete."""
    path = Path(path)
    fd, tmp = _temp_in(path)

    def write() -> None:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)

    return _into_place(tmp, path, write)


def write_via_path(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """``writer(tmp)`` writes the file by name (for libraries that open files themselves: pysam, xlsxwriter) at
    a temporary path in the final folder; the result appears at ``path`` only when complete."""
    path = Path(path)
    fd, tmp = _temp_in(path)
    os.close(fd)
    return _into_place(tmp, path, lambda: writer(Path(tmp)))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda fh: fh.write(data))


def _byte_escapes(err: UnicodeError) -> tuple[str, int]:
    """Encoding error handler ``bsmeth-bytes``: text that is not valid Unicode (a file name in a legacy encoding
    reaches Python as surrogate escapes) is written as ``\\xNN`` per undecodable byte, so every output file stays
    valid UTF-8 and shows the name the same way (``tsv.undo_byte_escapes`` reverses it)."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = []
    for ch in err.object[err.start:err.end]:
        code = ord(ch)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}")
    return "".join(out), err.end


codecs.register_error("bsmeth-bytes", _byte_escapes)


def encode(text: str) -> bytes:
    """UTF-8 bytes of text that may hold surrogate escapes (see ``_byte_escapes``)."""
    return text.encode("utf-8", "bsmeth-bytes")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text with the line ends as given (``\\n``); undecodable bytes of names as ``\\xNN``."""
    return write_bytes(path, encode(text))
