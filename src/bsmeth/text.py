"""Decoding the text files people give bsmeth (reads, sample sheets, reference FASTAs) and showing names.

Bottom of the import graph (next to ``errors`` and ``models``).  One rule for every text input, so a
file that one reader accepts the others accept too: UTF-8 (with or without BOM), UTF-16 with a BOM
(Excel's and Notepad's "Unicode text"), else Windows-1252 (old Windows editors; Excel's "CSV (Comma
delimited)", e.g. a dose written '10 \\xb5M').  Bytes that are not text give None: NUL bytes outside
UTF-16, or control characters in what would be Windows-1252.

``shown`` turns a file name into text that can be written anywhere: on POSIX a name is bytes, and bytes
that are not UTF-8 reach Python as lone surrogates, which no UTF-8 file can hold.
"""

from __future__ import annotations

import os
from typing import Optional

_CONTROLS_OK = "\t\r\n\f\v"


def decode_text(data: bytes) -> Optional[str]:
    """The text of a file's bytes (see the module docstring), or None when they are not text."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
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
