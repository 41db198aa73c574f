"""References in GenBank or EMBL flat-file format, read with Biopython: the one module that imports ``Bio``.

A user who copies a region from NCBI or ENA often saves it as a GenBank (``LOCUS`` ...) or EMBL (``ID   `` ...)
record rather than FASTA.  ``sniff`` tells these formats from FASTA by their first line; ``records`` gives
(name, sequence) for every record, the name being the accession with version (``NT_111909.2``) as in NCBI's
FASTA headers.  Features and annotations are not used.
"""

from __future__ import annotations

import io
from typing import Optional

from .errors import ReferenceFileError


def sniff(text: str) -> Optional[str]:
    """'genbank' or 'embl' when ``text`` starts as a record of that format, else None."""
    first = text.lstrip("\ufeff \t\r\n").split("\n", 1)[0]
    word = first.split(None, 1)[0] if first.strip() else ""
    if word == "LOCUS":
        return "genbank"
    if word == "ID" and first.startswith("ID   "):
        return "embl"
    return None


def records(text: str, fmt: str, source: str) -> list[tuple[str, str]]:
    """Every record of a GenBank/EMBL text as (name, sequence); a malformed file raises ReferenceFileError."""
    from Bio import SeqIO
    from Bio.Seq import UndefinedSequenceError

    label = "GenBank" if fmt == "genbank" else "EMBL"
    out = []
    try:
        for rec in SeqIO.parse(io.StringIO(text), fmt):
            name = rec.id if rec.id and rec.id != "<unknown id>" else rec.name
            try:
                seq = str(rec.seq)
            except UndefinedSequenceError:
                raise ReferenceFileError(
                    f"reference {source}: {label} record {name} has no sequence (an annotation-only or CON "
                    "record); download it with its sequence, or as FASTA") from None
            out.append((name, seq))
    except ReferenceFileError:
        raise
    except Exception as e:  # Biopython raises ValueError and others with a line to point at
        raise ReferenceFileError(f"reference {source}: not a readable {label} file ({e}); fix it or give FASTA") \
            from None
    return out
