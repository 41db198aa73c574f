"""Reading the files people give bsmeth (reads, sample sheets, reference FASTAs), at the lowest level.

Bottom of the import graph (next to ``errors`` and ``models``).  Each job is done here once, for every input:

* the bytes (``read_input_bytes``): regular files only, opened without blocking and checked before a byte is
  read (a FIFO never hangs a run, /dev/zero is never read); at most ``MAX_INPUT_BYTES`` on disk and after
  gunzipping (a gzip "bomb" is decompressed in 1 MiB chunks and dropped at the limit, never held whole);
* the text (``decode_text``): one rule, so a file that one reader accepts the others accept too: UTF-8
  (with or without BOM), UTF-16 with a BOM (Excel's and Notepad's "Unicode text"; mostly ASCII, as every
  bsmeth input is), else Windows-1252 (old Windows editors; Excel's "CSV (Comma delimited)", e.g. a dose
  written '10 \\xb5M').  Bytes that are not text give None: NUL bytes outside UTF-16, or control characters
  in what would be Windows-1252;
* the name (``shown``): on POSIX a file name is bytes, and bytes that are not UTF-8 reach Python as lone
  surrogates, which no UTF-8 file can hold: they are shown ``\\xNN``;
* the identity (``file_key``) of a file, and why a path is not a file (``special_kind``, ``link_problem``).
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from typing import Optional

from .models import Reason

_CONTROLS_OK = "\t\r\n\f\v"


def decode_text(data: bytes) -> Optional[str]:
    """The text of a file's bytes (see the module docstring), or None when they are not text."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
        # every bsmeth input is mostly ASCII (sequence letters, paths, separators): mostly other characters
        # means binary bytes that happen to start like a UTF-16 byte-order mark
        return text if 2 * sum(c.isascii() for c in text) >= len(text) else None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Windows-1252 defines every byte but five (shown as U+FFFD); text has no control characters
    text = data.decode("cp1252", errors="replace")
    if any(ord(c) < 32 and c not in _CONTROLS_OK for c in text):
        return None
    return text


def file_stem(path: str | os.PathLike) -> str:
    """The file's name without its extension, a trailing .gz skipped (``x.ab1.gz`` -> ``x``): pathlib's
    ``stem`` rule, without making a Path (folders of thousands of traces)."""
    name = os.path.basename(os.fspath(path))
    if name.lower().endswith(".gz"):
        name = name[:-3]
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def shown(name: str | os.PathLike) -> str:
    """A file name or path as writable text: bytes that are not UTF-8 become ``\\xNN`` (e.g. ``clone\\xe9.ab1``)."""
    s = os.fspath(name)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(s).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a surrogate that no file name produced
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def file_key(path: str | os.PathLike, st: Optional[os.stat_result] = None) -> object:
    """The identity of a file: (device, inode) of what ``path`` leads to, else its absolute path."""
    if st is None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is ('a FIFO (named pipe)', 'a character device'...)."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def link_problem(path: str | os.PathLike) -> Optional[str]:
    """Why a path that exists as a name leads nowhere: a broken or looping symbolic link (None otherwise)."""
    try:
        os.stat(path)
        return None
    except OSError as e:
        if not os.path.islink(path):
            return None
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself)"
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a broken symbolic link (to {shown(target)}, which does not exist)"


# Inputs larger than this (on disk, or decompressed) are not read: a `fail` row with reason `too_large`.
# Sanger traces are < 1 MiB and a multi-FASTA of 10,000 clones ~ 10 MiB; the limit bounds the memory one
# input can take (a gzip "bomb" is decompressed in chunks and stopped here).  Split larger files.
MAX_INPUT_BYTES = 64 * 2**20
_CHUNK = 2**20
_GZIP = b"\x1f\x8b"  # the first two bytes of a gzip file
# read-only, without blocking (a FIFO), never becoming the controlling terminal, binary (Windows)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


class Refused(Exception):
    """An input file not read: ``why`` (for its row or message), ``reason`` unreadable or too_large."""

    def __init__(self, why: str, reason: Reason = Reason.UNREADABLE, strerror: str = ""):
        super().__init__(why)
        self.why, self.reason = why, reason
        self.strerror = strerror  # the system's words when opening or reading failed, else ''


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"


def _too_large(what: str) -> Refused:
    return Refused(f"{what}, over the limit of {_mib(MAX_INPUT_BYTES)} per input file; split it into "
                    "smaller files", Reason.TOO_LARGE)


def _read_chunks(fh, limit: int, first: bytes = b"", what: str = "") -> bytes:
    """The rest of ``fh`` after ``first``, refused as soon as it grows past ``limit`` (never held whole)."""
    chunks, size = [first], len(first)
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _too_large(f"{what} more than {_mib(limit)}")
        chunks.append(chunk)


def read_input_bytes(path: str | os.PathLike, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of one input file, gunzipped if it is gzip'd.  Raises ``Refused``.

    Only regular files are read: the file is opened without blocking and checked before a byte is read,
    so a FIFO never hangs the run and /dev/zero is never read.  A file larger than ``limit`` on disk is
    not opened further; a gzip stream is decompressed in 1 MiB chunks and stopped past ``limit``.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        problem = link_problem(path)
        raise Refused(problem or f"cannot open ({e.strerror or e})", strerror=problem or str(e.strerror or e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"cannot open: {special_kind(st.st_mode)}, not a regular file "
                          "(bsmeth reads only regular files)")
        if st.st_size > limit:
            raise _too_large(f"{_mib(st.st_size)} on disk")
    except BaseException:
        os.close(fd)
        raise
    try:
        # the whole file in one read, straight from the descriptor (no file object, no separate read of the
        # first two bytes: this is the per-trace path); those two bytes tell whether it is gzip'd.  One byte
        # more than its size, or a second read that finds the end, tells whether it grew since fstat (or
        # reports size 0, as /proc and some network files do)
        try:
            data = os.read(fd, max(st.st_size + 1, 2))
            while len(data) <= st.st_size and data[:2] != _GZIP:  # the read that finds the end (or a short read)
                more = os.read(fd, st.st_size + 1 - len(data))
                if not more:
                    return data
                data += more
        except OSError as e:
            raise Refused(f"cannot read ({e.strerror or e})", strerror=str(e.strerror or e)) from None
        with os.fdopen(fd, "rb", buffering=0) as fh:
            fd = -1  # closed with fh
            try:
                if data[:2] != _GZIP:  # it grew: read on, never past the limit
                    return _read_chunks(fh, limit, data, "holds")
                del data  # gzip'd: read again from its start, decompressed in chunks (reading is cheap next to that)
                fh.seek(0)
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return _read_chunks(gz, limit, b"", f"{_mib(st.st_size)} gzip'd, decompresses to")
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise Refused(f"corrupt gzip file ({e})") from None
            except OSError as e:
                raise Refused(f"cannot read ({e.strerror or e})", strerror=str(e.strerror or e)) from None
    finally:
        if fd >= 0:
            os.close(fd)
