"""Finding input reads and reading sequences (FASTA, multi-FASTA, plain sequence, FASTQ, gzip'd).

Pipeline position: input stage.  ``collect`` expands files, folders and glob
patterns into ``InputFile``s (each with a default sample name), and
``read_file`` turns one file into ``Read``s, or ``Unreadable`` entries for what
cannot be used.  File type is sniffed from the content, not trusted from the
extension: a text file renamed .ab1 is reported as such.
"""

from __future__ import annotations

import glob
import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import InputError, ReadFormatError
from .models import Read, Unreadable

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


def _suffix(p: Path) -> str:
    s = p.suffixes
    if s and s[-1].lower() == ".gz" and len(s) > 1:
        return s[-2].lower()
    return p.suffix.lower()


def _stem(p: Path) -> str:
    name = p.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def collect(inputs: list[str]) -> list[InputFile]:
    """Expand files, folders (recursively, sorted) and glob patterns.  A folder is one sample by default."""
    out: list[InputFile] = []
    seen: set[Path] = set()

    def add(p: Path, given: str, sample: str) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(InputFile(p, given, sample))

    for arg in inputs:
        if not str(arg).strip():
            raise InputError("an input path is empty; give files, folders or patterns")
        p = Path(arg)
        if p.is_dir():
            # hidden files and folders (.git, .ipynb_checkpoints, macOS ._ forks) are never reads
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            files = [f for f in found if _suffix(f) in FOLDER_EXT]
            for f in files:
                rel_parent = f.parent.relative_to(p)
                sample = p.resolve().name if rel_parent == Path(".") else rel_parent.parts[0]
                add(f, arg, sample)
            if not files:
                others = ", ".join(f.name for f in found[:3]) + (" ..." if len(found) > 3 else "")
                holds = f"it holds only {others}" if found else "it is empty"
                raise InputError(
                    f"{arg}: folder has no read files ({holds}); read files end in "
                    f"{', '.join(sorted(FOLDER_EXT))} (optionally .gz)"
                )
        elif p.exists():
            add(p, arg, _stem(p))
        elif any(ch in arg for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(f"{arg}: pattern matches no file")
            for m in matches:
                add(m, arg, _stem(m))
        else:
            raise InputError(f"{arg}: no such file or folder")
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
                rid, line_no = _stem(path), i
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
    """Does a 4-line FASTQ record plausibly start at line ``i``?"""
    return lines[i].startswith("@") and i + 2 < len(lines) and lines[i + 2].startswith("+")


def _fastq(text: str, path: Path) -> Iterator[Union[Read, Unreadable]]:
    """4-line FASTQ records.  A malformed stretch gives one ``Unreadable`` and reading resumes at the next record."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i]
        if not _fastq_start(lines, i):
            start = i
            i += 1
            while i < len(lines) and not _fastq_start(lines, i):
                i += 1
            rid = head[1:].split()[0] if head.startswith("@") and head[1:].strip() else f"record_at_line_{start + 1}"
            span = f"line {start + 1}" if i - start == 1 else f"lines {start + 1}-{i}"
            yield Unreadable(rid, str(path), f"{path}, line {start + 1}: malformed FASTQ record "
                                             f"(expected '@id', sequence, '+', qualities; {span} skipped)")
            continue
        rid = head[1:].split()[0] if head[1:].strip() else f"record_at_line_{i + 1}"
        seq = lines[i + 1].strip()
        qs = lines[i + 3].strip() if i + 3 < len(lines) else ""
        i += 4
        if len(qs) != len(seq):
            yield Unreadable(rid, str(path), f"{path}, record {rid}: sequence and quality lengths differ "
                                             f"({len(seq)} and {len(qs)})")
            continue
        clean, problem = _clean(seq)
        if problem or not clean:
            yield Unreadable(rid, str(path), f"{path}, record {rid}: {problem or 'empty sequence'}")
            continue
        if len(clean) != len(seq):
            yield Unreadable(rid, str(path), f"{path}, record {rid}: sequence has gap or space characters "
                                             "that have no quality; remove them")
            continue
        q = np.frombuffer(qs.encode("ascii", "replace"), dtype=np.uint8).astype(np.int16) - 33
        yield Read(rid, str(path), clean, np.clip(q, 0, 93).astype(np.uint8), "fastq")


# magic bytes of files people drop into a folder of reads by mistake
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (or .xlsx/.docx): unpack it, or export the sequence as FASTA"),
    (b"%PDF", "a PDF document: export the sequence as FASTA"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"{\\rtf", "an RTF document: save the sequence as plain text or FASTA"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document: export the sequence as FASTA"),
)


def _decode(data: bytes) -> str | None:
    """Text of a sequence file: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252; None if binary."""
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
    # an old Windows editor: the sequence letters are ASCII anyway, only headers/comments differ
    text = data.decode("cp1252", errors="replace")
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\r\n\f\v")
    return None if controls else text


def read_file(path: Path) -> list[Union[Read, Unreadable]]:
    """All reads of one file; a file that cannot be used at all gives one ``Unreadable``.

    Never raises for bad content: whatever the bytes, the result has at least one item.
    """
    from .traces import read_abif, read_scf

    path = Path(path)
    stem = _stem(path)

    def unreadable(why: str) -> list[Union[Read, Unreadable]]:
        return [Unreadable(stem, str(path), f"{path}: {why}")]

    try:
        data = path.read_bytes()
    except OSError as e:
        return unreadable(f"cannot open ({e.strerror or e})")
    if data[:2] == b"\x1f\x8b":
        from .bam import is_bam

        if is_bam(data):  # BGZF holding BAM: reads of an alignment file (bam_reads)
            from .bam_reads import read_bam_file

            return read_bam_file(path)
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            return unreadable(f"corrupt gzip file ({e})")
    if not data.strip():
        return unreadable("empty file")
    if data[:4] == b"ABIF":
        try:
            return [read_abif(path, data)]
        except ReadFormatError as e:
            return [Unreadable(stem, str(path), str(e))]
    if data[:4] == b".scf":
        try:
            return [read_scf(path, data)]
        except ReadFormatError as e:
            return [Unreadable(stem, str(path), str(e))]
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return unreadable(f"not a sequence file: {what}")
    if _suffix(path) in TRACE_EXT:
        head = data[:4].decode("latin-1")
        start = data[:200].decode("utf-8", "ignore").lstrip()
        hint = ("; it looks like a FASTA file: rename it .fasta" if start.startswith(">")
                else "; it looks like a FASTQ file: rename it .fastq" if start.startswith("@") else "")
        return unreadable(f"not an ABIF trace (starts with {head!r}, not 'ABIF'){hint}")
    text = _decode(data)
    if text is None:
        return unreadable("binary file, neither a trace nor a text sequence")
    if text.lstrip().startswith("@"):
        out = list(_fastq(text, path))
    else:
        out = []
        for rid, raw, line_no in _records_fasta(text, path):
            seq, problem = _clean(raw)
            if problem or not seq:
                out.append(Unreadable(rid, str(path), f"{path}, record {rid} (line {line_no}): {problem or 'empty record'}"))
            else:
                out.append(Read(rid, str(path), seq, None, "fasta"))
    if not out:
        out = unreadable("no sequence found")
    return out
