"""Panels: several amplicons in one run (``--panel panel.tsv``).

Pipeline position: first stage, beside ``reference``.  A panel file is a CSV
or TSV table, one amplicon a row (docs/panels.md):

* ``amplicon``: a unique name; ``reference``: a FASTA file (relative to the
  panel file) or the genomic sequence itself; ``forward``/``reverse``: the
  primers in converted form, 5'->3' (both empty: the whole reference is the
  target, QUMA's mode).
* optional genome anchor: ``assembly``, ``chrom``, ``start`` (0-based, the
  genome position of the region the reference covers, as in BED), optional
  ``end`` (checked against the reference length), ``strand`` (``+``/``-``: the
  genome strand the reference is written on; default ``+``).
* optional ``snps``: known SNPs on the reference, ``POS:REF>ALT`` (1-based
  reference position), named as ``rs2854744=89:C>A``, several separated by
  ``;``.

MethAmplicons2's amplicon table (``Amplicon_Name, Primer1, Primer2, Sequence``
[, ``CDS``]) is read as well: Primer1/Primer2 are its converted forward and
reverse primers and Sequence the genomic amplicon.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .coords import GenomeAnchor, one_based
from .errors import BsmethError, PrimerError, ReferenceFileError
from .models import SNP, Amplicon, Panel
from .reference import IUPAC, build_amplicon, parse_snp, read_reference

COLUMNS = ("amplicon", "reference", "forward", "reverse")
ANCHOR_COLUMNS = ("assembly", "chrom", "start", "end", "strand")
OPTIONAL = (*ANCHOR_COLUMNS, "snps")
# MethAmplicons2's amplicon_info columns -> ours (CDS, its distance to the coding sequence, is not used)
METHAMPLICONS = {"amplicon_name": "amplicon", "ampliconname": "amplicon", "primer1": "forward",
                 "primer2": "reverse", "sequence": "reference", "cds": ""}
STRAND_WORDS = {"+": "+", "-": "-", "plus": "+", "minus": "-", "1": "+", "-1": "-", "forward": "+", "reverse": "-"}


class PanelError(BsmethError):
    """The panel file cannot be used (missing column, unknown reference, bad anchor)."""


def _text(p: Path) -> str:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PanelError(f"panel {p}: cannot read ({e.strerror or e}); give a CSV or TSV file with --panel") from None
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise PanelError(f"panel {p}: not a text table (UTF-8 or Windows-1252)")


def _rows(p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header in our column names, [(line number, cells)]) of a panel file; '#' lines are comments."""
    text = _text(p)
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise PanelError(f"panel {p}: empty; expected a header with columns {', '.join(COLUMNS)}")
    head = lines[0][1]
    delim = "\t" if "\t" in head else ("," if head.count(",") >= head.count(";") else ";")
    parsed = [(n, next(csv.reader(io.StringIO(ln), delimiter=delim), [])) for n, ln in lines]
    header = [h.strip().lower() for h in parsed[0][1]]
    if any(h in METHAMPLICONS for h in header) and "amplicon" not in header:
        header = [METHAMPLICONS.get(h, h) for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PanelError(f"panel {p}, line {parsed[0][0]}: missing column(s) {', '.join(missing)} (found: "
                         f"{', '.join(h for h in header if h) or 'none'}); see docs/panels.md")
    return header, parsed[1:]


def parse_snps(text: str) -> tuple[SNP, ...]:
    """``rs2854744=89:C>A; 120:G>T`` -> SNPs (1-based positions in the text, 0-based in the result)."""
    out = []
    for item in re.split(r"[;\s]+", text.strip()):
        if not item:
            continue
        name, _, spec = item.rpartition("=")
        snp = parse_snp(spec)
        out.append(replace(snp, name=name) if name else snp)
    return tuple(out)


def _anchor(values: dict, length: int, where: str) -> Optional[GenomeAnchor]:
    given = {c: values.get(c, "").strip() for c in ANCHOR_COLUMNS}
    if not any(given[c] for c in ("assembly", "chrom", "start")):
        return None
    if not given["chrom"] or not given["start"]:
        raise PanelError(f"{where}: a genome anchor needs chrom and start (0-based, as in BED); give both or neither")
    try:
        start = int(given["start"].replace(",", ""))
        end = int(given["end"].replace(",", "")) if given["end"] else start + length
    except ValueError:
        raise PanelError(f"{where}: start/end must be whole numbers (0-based start, as in BED)") from None
    strand = STRAND_WORDS.get(given["strand"].lower() or "+")
    if strand is None:
        raise PanelError(f"{where}: strand {given['strand']!r}: give + or - (the genome strand the reference is "
                         "written on)")
    if start < 0 or end - start != length:
        raise PanelError(f"{where}: the genome interval {start}-{end} spans {end - start} bp but the reference has "
                         f"{length} bp; start is 0-based (BED), end exclusive")
    return GenomeAnchor(given["assembly"] or "unknown", given["chrom"], start, end, strand)


def _reference(value: str, base: Path, name: str, where: str) -> tuple[str, str]:
    """(sequence, source) from a FASTA path (relative to the panel) or a sequence written in the cell."""
    value = value.strip()
    if not value:
        raise PanelError(f"{where}: empty reference; give a FASTA file or the sequence")
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        is_file = path.is_file()
    except OSError:  # a sequence longer than a file name may be
        is_file = False
    if is_file:
        _, seq, source = read_reference(path)
        return seq, source
    seq = re.sub(r"\s", "", value).upper().replace("U", "T")
    if len(seq) >= 20 and set(seq) <= IUPAC:
        return seq, f"panel sequence of {name}"
    raise PanelError(f"{where}: reference {value[:40]!r} is neither a file (looked for {path}) nor a DNA sequence")


def load_panel(path: str | Path) -> Panel:
    """Read, check and build every amplicon of a panel file; errors name the file and line."""
    p = Path(path)
    if p.is_dir():
        raise PanelError(f"panel {p}: is a folder; give the CSV/TSV file")
    header, rows = _rows(p)
    amplicons: list[Amplicon] = []
    for n, cells in rows:
        values = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header) if h}
        name = values["amplicon"]
        where = f"panel {p}, line {n}"
        if not name:
            raise PanelError(f"{where}: empty amplicon name")
        if any(a.name == name for a in amplicons):
            raise PanelError(f"{where}: amplicon {name} is listed twice; names must be unique")
        seq, source = _reference(values["reference"], p.parent, name, where)
        try:
            snps = parse_snps(values.get("snps", ""))
            for s in snps:
                if not 0 <= s.pos < len(seq) or seq[s.pos] != s.ref:
                    raise PrimerError(f"snp {s.name or one_based(s.pos)}: the reference has "
                                      f"{seq[s.pos] if 0 <= s.pos < len(seq) else 'nothing'} there, not {s.ref}")
            anchor = _anchor(values, len(seq), where)
            amp = build_amplicon(name, seq, values["forward"] or None, values["reverse"] or None, snps=snps,
                                 source=source, anchor=anchor)
        except (PrimerError, ReferenceFileError) as e:
            raise PanelError(f"{where} ({name}): {e}") from None
        amplicons.append(amp)
    if not amplicons:
        raise PanelError(f"panel {p}: no amplicons after the header")
    return Panel(tuple(amplicons), source=str(p))
