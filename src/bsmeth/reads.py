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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import InputError, ReadFormatError
from .models import Read, Unreadable

TRACE_EXT = {".ab1", ".abi", ".ab", ".scf"}
SEQ_EXT = {".fa", ".fasta", ".fas", ".fna", ".seq", ".fq", ".fastq", ".txt"}
# a folder may hold notes and sheets next to reads: only these are taken from folders
FOLDER_EXT = (TRACE_EXT | SEQ_EXT) - {".txt"}
_SEQ_LETTERS = re.compile(r"[^A-Za-z]")
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
        p = Path(arg)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*")
                if f.is_file() and _suffix(f) in FOLDER_EXT and not f.name.startswith(".")
            )
            for f in files:
                rel_parent = f.parent.relative_to(p)
                sample = p.resolve().name if rel_parent == Path(".") else rel_parent.parts[0]
                add(f, arg, sample)
            if not files:
                raise InputError(
                    f"{arg}: folder has no read files ({', '.join(sorted(FOLDER_EXT))}); give the folder of traces or FASTA files"
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


def _clean(seq: str) -> tuple[str, str]:
    """Upper-case DNA with digits/spaces removed; IUPAC kept.  Returns (seq, problem)."""
    s = _SEQ_LETTERS.sub("", seq).upper().replace("U", "T")
    bad = sorted(set(s) - _IUPAC)
    if bad:
        return s, f"non-DNA letter(s) {''.join(bad)}"
    return s, ""


def _fastq(text: str, path: Path) -> Iterator[Union[Read, Unreadable]]:
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i]
        if not head.startswith("@") or i + 2 >= len(lines):
            yield Unreadable(_stem(path), str(path), f"{path}, line {i + 1}: malformed FASTQ record")
            return
        rid = head[1:].split()[0] if head[1:].strip() else f"record_at_line_{i + 1}"
        seq, plus, qs = lines[i + 1].strip(), lines[i + 2], lines[i + 3].strip() if i + 3 < len(lines) else ""
        i += 4
        if not plus.startswith("+") or len(qs) != len(seq):
            yield Unreadable(rid, str(path), f"{path}, record {rid}: sequence and quality lengths differ")
            continue
        clean, problem = _clean(seq)
        if problem or not clean:
            yield Unreadable(rid, str(path), f"{path}, record {rid}: {problem or 'empty sequence'}")
            continue
        q = np.frombuffer(qs.encode("ascii", "replace"), dtype=np.uint8).astype(np.int16) - 33
        yield Read(rid, str(path), clean, np.clip(q, 0, 93).astype(np.uint8), "fastq")


def read_file(path: Path) -> list[Union[Read, Unreadable]]:
    """All reads of one file; a file that cannot be used at all gives one ``Unreadable``."""
    from .traces import read_abif

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return [Unreadable(_stem(path), str(path), f"{path}: cannot open ({e.strerror})")]
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            return [Unreadable(_stem(path), str(path), f"{path}: corrupt gzip file ({e})")]
    if not data.strip():
        return [Unreadable(_stem(path), str(path), f"{path}: empty file")]
    if data[:4] == b"ABIF":
        try:
            return [read_abif(path, data)]
        except ReadFormatError as e:
            return [Unreadable(_stem(path), str(path), str(e))]
    if data[:4] == b".scf":
        return [Unreadable(_stem(path), str(path), f"{path}: SCF traces are not read yet; convert to ABIF or FASTA")]
    if _suffix(path) in TRACE_EXT:
        head = data[:4].decode("latin-1")
        return [Unreadable(_stem(path), str(path), f"{path}: not an ABIF trace (starts with {head!r}, not 'ABIF')")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [Unreadable(_stem(path), str(path), f"{path}: binary file, neither a trace nor a text sequence")]
    if text.lstrip().startswith("@"):
        return list(_fastq(text, path))
    out: list[Union[Read, Unreadable]] = []
    for rid, raw, line_no in _records_fasta(text, path):
        seq, problem = _clean(raw)
        if problem or not seq:
            out.append(Unreadable(rid, str(path), f"{path}, record {rid} (line {line_no}): {problem or 'empty record'}"))
        else:
            out.append(Read(rid, str(path), seq, None, "fasta"))
    if not out:
        out.append(Unreadable(_stem(path), str(path), f"{path}: no sequence found"))
    return out
