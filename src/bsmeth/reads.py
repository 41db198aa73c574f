"""Finding input reads and reading sequences (FASTA, multi-FASTA, plain sequence, FASTQ, gzip'd).

Pipeline position: input stage.  ``collect`` expands files, folders and glob
patterns into ``InputFile``s (each with a default sample name), and
``read_file`` turns one file into ``Read``s, or ``Unreadable`` entries for what
cannot be used.  File type is sniffed from the content, not trusted from the
extension: a text file renamed .ab1 is reported as such.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from .errors import InputError, ReadFormatError
from .files import (  # noqa: F401 (re-exported)
    MAX_INPUT_BYTES,
    Refused,
    decode_text,
    file_key,
    file_stem,
    link_problem,
    read_input_bytes,
    shown,
    special_kind,
)
from .models import Read, Reason, Unreadable
from .traces import read_abif, read_scf

log = logging.getLogger("bsmeth")

TRACE_EXT = {".ab1", ".abi", ".ab", ".scf"}
SEQ_EXT = {".fa", ".fasta", ".fas", ".fna", ".seq", ".fq", ".fastq", ".txt"}
ALIGNMENT_EXT = {".bam"}  # read by bam_reads
# a folder may hold notes and sheets next to reads: only these are taken from folders
FOLDER_EXT = (TRACE_EXT | SEQ_EXT | ALIGNMENT_EXT) - {".txt"}
# removed silently from sequence lines: layout (spaces, line numbers) and gap/stop symbols of aligned FASTA
_SEQ_LAYOUT = re.compile(r"[\s\d\-.*]")
_IUPAC = set("ACGTURYKMSWBDHVN")


@dataclass(frozen=True)
class InputFile:
    path: Path
    given: str  # the argument that produced it
    default_sample: str
    # identity of the file, for matching sample-sheet rows and dropping repeats: (st_dev, st_ino) of what the
    # path points to; for a path that does not lead to a file (broken link) its absolute path
    key: object = None


def _suffix(p: Path | str) -> str:
    """The extension that says what a file is, lower case, a trailing .gz skipped (``x.FASTA.gz`` -> ``.fasta``)."""
    name = (p if isinstance(p, str) else p.name).lower()  # a string: no Path made (folders of thousands)
    if name.endswith("."):
        return ""
    parts = name.lstrip(".").split(".")[1:]  # pathlib's suffixes
    if len(parts) > 1 and parts[-1] == "gz":
        return "." + parts[-2]
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


@dataclass
class _Found:
    """What a search of folders and patterns saw besides read files, for one warning line."""

    skipped: list = field(default_factory=list)  # (path, why)

    def warn(self) -> None:
        if not self.skipped:
            return
        listed = "; ".join(f"{shown(p)} ({why})" for p, why in self.skipped[:5])
        more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        log.warning("warning: skipped %d entr%s of the input folders: %s%s", len(self.skipped),
                    "y" if len(self.skipped) == 1 else "ies", listed, more)


def _walk(root: str, found: _Found) -> list[tuple[tuple[str, ...], str, object]]:
    """(path parts below ``root``, path, key) of every entry that is or should be a read file, in any order.

    Regular files (and links to them) of any name; other entries (FIFOs, devices, broken or looping links)
    are returned when their name ends in a read-file extension -- they become ``fail`` rows -- and noted
    in ``found`` otherwise.  Hidden entries are never reads.  Links to folders are not followed (a link to
    '/' would search the whole disk): noted in ``found``.
    """
    out: list = []
    stack = [(root, ())]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            found.skipped.append((folder, f"cannot list the folder: {e.strerror or e}"))
            continue
        for e in entries:
            name = e.name
            if name.startswith("."):  # .git, .ipynb_checkpoints, macOS ._ forks
                continue
            parts = rel + (name,)
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, parts))
                    continue
                if e.is_file(follow_symlinks=False):
                    out.append((parts, e.path, None))
                    continue
                st = e.stat()  # follows a link
            except OSError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                out.append((parts, e.path, file_key(e.path, st)))
            elif st is not None and stat.S_ISDIR(st.st_mode):
                found.skipped.append((e.path, "a symbolic link to a folder, not followed: give its target as an input"))
            elif _suffix(name) in FOLDER_EXT:
                out.append((parts, e.path, file_key(e.path, st) if st is not None else os.path.abspath(e.path)))
            else:
                why = link_problem(e.path) if st is None else special_kind(st.st_mode)
                found.skipped.append((e.path, why or "cannot be read"))
    return out


_KEPT: Optional[dict] = None  # (working folder, inputs) -> (files, what was skipped) while listings_kept is active


@contextmanager
def listings_kept() -> Iterator[None]:
    """While active, ``collect`` lists the same inputs once: ``call`` and ``run`` look at the inputs to choose
    the engine (clone reads or amplicon FASTQ), then run on them (a folder of 2,000 traces takes 0.03-0.07 s to
    list)."""
    global _KEPT
    _KEPT = {}
    try:
        yield
    finally:
        _KEPT = None


def collect(inputs: list[str], warn: bool = True) -> list[InputFile]:
    """Expand files, folders (recursively, sorted) and glob patterns.  A folder is one sample by default.
    ``warn``: print the warning line about what was skipped (off for a look at the inputs before the run).

    Whatever a folder or pattern holds that is not a regular file is either an input (with a read-file
    extension: its ``fail`` row says why it cannot be read) or named in one warning line; an argument
    that is a broken or looping link is an error, as a missing path is.
    """
    kept = _KEPT
    listing = (os.getcwd(), tuple(os.fspath(a) for a in inputs)) if kept is not None else None
    if kept is not None and listing in kept:
        out, found = kept[listing]
        if warn:
            found.warn()
        return list(out)
    out: list[InputFile] = []
    seen: set = set()
    found = _Found()

    def add(p: str, given: str, sample: str, key: object) -> None:
        if key is None:
            key = file_key(p)
        if key not in seen:
            seen.add(key)
            out.append(InputFile(Path(p), given, sample, key))

    for arg in inputs:
        if not str(arg).strip():
            raise InputError("an input path is empty; give files, folders or patterns")
        arg = os.fspath(arg)
        p = Path(arg)
        if p.is_dir():
            entries = _walk(arg, found)
            entries.sort(key=lambda x: x[0])  # the order of sorted paths: a folder's files at its name
            files = [x for x in entries if _suffix(x[0][-1]) in FOLDER_EXT]
            root_name = shown(p.resolve().name)
            for parts, path, key in files:
                add(path, arg, root_name if len(parts) == 1 else shown(parts[0]), key)
            if not files:
                names = [x[0][-1] for x in entries]
                others = ", ".join(shown(n) for n in names[:3]) + (" ..." if len(names) > 3 else "")
                holds = f"it holds only {others}" if names else "it is empty"
                raise InputError(
                    f"{shown(arg)}: folder has no read files ({holds}); read files end in "
                    f"{', '.join(sorted(FOLDER_EXT))} (optionally .gz)"
                )
        elif p.exists():
            add(arg, arg, shown(file_stem(p)), None)
        elif link_problem(arg):
            raise InputError(f"{shown(arg)}: {link_problem(arg)}; give the file it should lead to")
        elif any(ch in arg for ch in "*?["):
            matches = []
            for m in sorted(glob.glob(arg, recursive=True)):
                try:
                    st = os.stat(m)
                except OSError:
                    st = None
                if st is not None and stat.S_ISDIR(st.st_mode):
                    continue  # a pattern names files; folders it matches are not searched
                matches.append((m, st))
            if not matches:
                raise InputError(f"{shown(arg)}: pattern matches no file")
            for m, st in matches:
                add(m, arg, shown(file_stem(m)), file_key(m, st) if st is not None else os.path.abspath(m))
        else:
            raise InputError(f"{shown(arg)}: no such file or folder")
    if warn:
        found.warn()
    if kept is not None:
        kept[listing] = (list(out), found)
    return out


def _records_fasta(text: str, path: Path) -> Iterator[tuple[str, str, int]]:
    """(id, raw sequence, line number of header) for each record; header-less text is one record."""
    rid, parts, line_no = None, [], 1
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if rid is not None:
                yield rid, "".join(parts), line_no
            head = line[1:].strip()
            rid, parts, line_no = (head.split()[0] if head else f"record_at_line_{i}"), [], i
        else:
            if rid is None:
                rid, line_no = file_stem(path), i
            parts.append(line)
    if rid is not None:
        yield rid, "".join(parts), line_no


def _shown(chars) -> str:
    """Characters for a message: printable ones as they are, others as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in chars)


def _clean(seq: str) -> tuple[str, str]:
    """Upper-case DNA with digits, spaces and gap symbols removed; IUPAC kept.  Returns (seq, problem)."""
    s = _SEQ_LAYOUT.sub("", seq)
    # checked before upper-casing: str.upper() maps some non-ASCII letters to ASCII ones ('ß' -> 'SS')
    bad = sorted({c for c in s if not (c.isascii() and c.upper() in _IUPAC)})
    s = s.upper().replace("U", "T")
    if bad:
        more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
        return s, f"non-DNA letter(s) {_shown(bad[:12])}{more}"
    return s, ""


def _fastq_start(lines: list[str], i: int) -> bool:
    """Does a FASTQ record plausibly start at line ``i``: '@id', sequence line(s), then a '+' line?"""
    if not lines[i].startswith("@"):
        return False
    j = i + 1
    while j < len(lines) and lines[j].strip() and lines[j][0] not in "@+":
        j += 1
    return i + 1 < j < len(lines) and lines[j].startswith("+")


def _fastq(text: str, path: str) -> Iterator[Union[Read, Unreadable]]:
    """FASTQ records, 4-line or wrapped.  A malformed stretch gives one ``Unreadable``; reading resumes at the
    next record.

    A record is '@id', its sequence lines, a '+' line, then its qualities.  With the sequence on one line
    the qualities are the one next line (the common 4-line layout).  With a wrapped sequence the quality
    lines are taken until they are as long as the sequence (a quality line may start with '@' or '+');
    a line that would make them longer, or that starts the next record, ends them short.
    """
    lines = text.splitlines()
    n = len(lines)
    i = 0
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i]
        if not _fastq_start(lines, i):
            start = i
            i += 1
            while i < n and not _fastq_start(lines, i):
                i += 1
            rid = head[1:].split()[0] if head.startswith("@") and head[1:].strip() else f"record_at_line_{start + 1}"
            span = f"line {start + 1}" if i - start == 1 else f"lines {start + 1}-{i}"
            yield Unreadable(rid, path, f"{path}, line {start + 1}: malformed FASTQ record "
                                        f"(expected '@id', sequence, '+', qualities; {span} skipped)")
            continue
        rid = head[1:].split()[0] if head[1:].strip() else f"record_at_line_{i + 1}"
        j = i + 1
        while not lines[j].startswith("+"):
            j += 1
        seq_lines = lines[i + 1:j]
        seq = "".join(x.strip() for x in seq_lines)
        k = j + 1
        if len(seq_lines) == 1:
            qs = lines[k].strip() if k < n else ""
            k += 1
        else:
            parts: list[str] = []
            got = 0
            while k < n and got < len(seq):
                q = lines[k].strip()
                if parts and (got + len(q) > len(seq) or (q.startswith("@") and _fastq_start(lines, k)
                                                            and got + len(q) != len(seq))):
                    break
                parts.append(q)
                got += len(q)
                k += 1
            qs = "".join(parts)
        i = k
        where = f"{path}, record {rid}"
        if len(qs) != len(seq):
            yield Unreadable(rid, path, f"{where}: sequence and quality lengths differ ({len(seq)} and {len(qs)})")
            continue
        clean, problem = _clean(seq)
        if problem or not clean:
            yield Unreadable(rid, path, f"{where}: {problem or 'empty sequence'}")
            continue
        if len(clean) != len(seq):
            yield Unreadable(rid, path, f"{where}: sequence has gap or space characters that have no quality; "
                                        "remove them")
            continue
        q = np.frombuffer(qs.encode("ascii", "replace"), dtype=np.uint8).astype(np.int16) - 33
        yield Read(rid, path, clean, np.clip(q, 0, 93).astype(np.uint8), "fastq")


# magic bytes of files people drop into a folder of reads by mistake
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (or .xlsx/.docx): unpack it, or export the sequence as FASTA"),
    (b"%PDF", "a PDF document: export the sequence as FASTA"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"{\\rtf", "an RTF document: save the sequence as plain text or FASTA"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document: export the sequence as FASTA"),
)


def read_file(path: Path) -> list[Union[Read, Unreadable]]:
    """All reads of one file; a file that cannot be used at all gives one ``Unreadable``.

    Never raises for bad content: whatever the bytes, the result has at least one item.  Ids, file
    names and messages are writable text (``text.shown``) whatever bytes the file name holds.
    """
    path = path if isinstance(path, Path) else Path(path)
    name = shown(path)  # the file as written into tables and messages
    stem = shown(file_stem(path))

    def unreadable(why: str, reason: Reason = Reason.UNREADABLE) -> list[Union[Read, Unreadable]]:
        return [Unreadable(stem, name, f"{name}: {why}", reason)]

    try:
        data = read_input_bytes(path)
    except Refused as e:
        return unreadable(e.why, e.reason)
    if data[:4] == b"BAM\x01":  # an alignment file, decompressed: reads of a BAM (bam_reads)
        from .bam_reads import read_bam_file

        return read_bam_file(path)
    if not data[:64].strip() and not data.strip():  # (the whole file copied only when it starts blank)
        return unreadable("empty file")
    for magic, reader in ((b"ABIF", read_abif), (b".scf", read_scf)):
        if data[:4] == magic:
            try:
                return [reader(name, data)]
            except ReadFormatError as e:
                return [Unreadable(stem, name, str(e))]
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return unreadable(f"not a sequence file: {what}")
    if _suffix(path) in TRACE_EXT:
        head = data[:4].decode("latin-1")
        start = data[:200].decode("utf-8", "ignore").lstrip()
        hint = ("; it looks like a FASTA file: rename it .fasta" if start.startswith(">")
                else "; it looks like a FASTQ file: rename it .fastq" if start.startswith("@") else "")
        return unreadable(f"not an ABIF trace (starts with {head!r}, not 'ABIF'){hint}")
    text = decode_text(data)
    del data
    if text is None:
        return unreadable("binary file, neither a trace nor a text sequence")
    if text.lstrip().startswith("@"):
        out = list(_fastq(text, name))
    else:
        out = []
        for rid, raw, line_no in _records_fasta(text, Path(name)):
            seq, problem = _clean(raw)
            if problem or not seq:
                out.append(Unreadable(rid, name, f"{name}, record {rid} (line {line_no}): {problem or 'empty record'}"))
            else:
                out.append(Read(rid, name, seq, None, "fasta"))
    if not out:
        out = unreadable("no sequence found")
    return out
