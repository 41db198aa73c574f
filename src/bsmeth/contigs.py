"""Where each amplicon sits in the exported files (BAM, bedMethyl, Bismark and methylKit tables, IGV).

Pipeline position: shared by the export stages (``readsbam``, ``exports``); imports only the bottom
(``coords``, ``models``, ``tsv``).  An amplicon with a genome anchor sits on its chromosome; one without an
anchor is a contig of its own (``coords.contig_anchor``): named after the amplicon (characters a SAM reference
name cannot hold become ``_``; ``_2``, ``_3``... if two names would then collide, or collide with a chromosome
of another amplicon), as long as its reference record, and written into ``amplicons.fa`` so that IGV and
samtools can use it as the genome.

Placements are made the same way from the in-memory panel (``place_panel``, at ``call``) and from a call
folder's run.json (``place_run``, at ``export``), so both give the same contig names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Optional, Sequence

from .coords import Frame, GenomeAnchor, Strand, from_one_based
from .models import Panel

# SAM v1.6, section 1.2.1: the characters a reference sequence name may hold (the first may not be * or =)
_SAM_FIRST = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-]")
_SAM_REST = re.compile(r"[0-9A-Za-z!#$%&*+./:;=?@^_|~-]")
# assemblies whose chromosome lengths bsmeth ships (data/chrom_sizes.tsv); others get the largest anchor end
ASSEMBLY_ALIASES = {"grch37": "hg19", "hg19": "hg19", "grch38": "hg38", "hg38": "hg38"}


@dataclass(frozen=True)
class Placement:
    """One amplicon as the exported files show it."""

    amplicon: str
    frame: Frame  # always with an anchor: the genome anchor, or the amplicon's own contig
    contig: str  # the chromosome / contig name written into the files
    contig_length: int  # @SQ LN: the assembly's chromosome length when bsmeth knows it
    assembly: str  # the anchor's assembly ('' on its own contig, or when the panel names none)
    reference_length: int
    own_contig: bool  # no genome anchor: the amplicon's reference record is the contig

    @property
    def strand(self) -> str:
        """The genome strand of the amplified (assayed) strand: ``-`` makes a read a flag-16 record."""
        return self.frame.genome_strand or "+"

    def cpg_genome(self, cg_ref: int) -> int:
        """0-based position, on the contig, of the assayed C of the CG whose C is at reference index ``cg_ref``."""
        return self.frame.genome_of(self.frame.cpg_c_ref(cg_ref))

    def span(self) -> tuple[int, int]:
        """The amplicon's interval on the contig (0-based, half-open)."""
        return self.frame.genome_span()


def sam_name(name: str) -> str:
    """``name`` as a valid SAM reference name (invalid characters as ``_``)."""
    out = [c if (_SAM_REST.fullmatch(c) and c.isascii()) else "_" for c in name] or ["_"]
    if not _SAM_FIRST.fullmatch(out[0]):
        out.insert(0, "_")
    return "".join(out)


@lru_cache(maxsize=1)
def chrom_sizes() -> dict[tuple[str, str], int]:
    """(assembly, chrom) -> length, for the assemblies in data/chrom_sizes.tsv."""
    from .tsv import parse

    text = resources.files("bsmeth").joinpath("data/chrom_sizes.tsv").read_text(encoding="utf-8")
    header, rows = parse("\n".join(x for x in text.splitlines() if not x.startswith("#")))
    i, j, k = header.index("assembly"), header.index("chrom"), header.index("length")
    return {(r[i], r[j]): int(r[k]) for r in rows}


def known_length(assembly: str, chrom: str) -> Optional[int]:
    asm = ASSEMBLY_ALIASES.get(assembly.lower())
    if asm is None:
        return None
    sizes = chrom_sizes()
    return sizes.get((asm, chrom)) or sizes.get((asm, "chr" + chrom)) or (sizes.get((asm, "chrM")) if chrom == "MT"
                                                                         else None)


def _place(entries: Sequence[tuple[str, Frame, int]]) -> dict[str, Placement]:
    """(amplicon name, its frame, reference length) in panel order -> placements."""
    chroms = {f.anchor.chrom for _, f, _ in entries if f.anchor is not None}
    taken = set(chroms)
    names: dict[str, str] = {}
    for name, frame, _ in entries:
        if frame.anchor is None:
            base = sam_name(name)
            contig, k = base, 2
            while contig in taken:
                contig, k = f"{base}_{k}", k + 1
            taken.add(contig)
            names[name] = contig
    ends: dict[tuple[str, str], int] = {}
    for _, f, _ in entries:
        if f.anchor is not None:
            key = (f.anchor.assembly, f.anchor.chrom)
            ends[key] = max(ends.get(key, 0), f.anchor.end)
    out = {}
    for name, frame, ref_len in entries:
        if frame.anchor is None:
            placed = frame.placed(names[name], ref_len)
            out[name] = Placement(name, placed, names[name], ref_len, "", ref_len, True)
        else:
            a = frame.anchor
            length = known_length(a.assembly, a.chrom) or ends[(a.assembly, a.chrom)]
            out[name] = Placement(name, frame, a.chrom, max(length, a.end), a.assembly, ref_len, False)
    return out


def place_panel(panel: Panel) -> dict[str, Placement]:
    """Placements of the amplicons of a run, by amplicon name, in panel order."""
    return _place([(a.name, a.frame, len(a.reference)) for a in panel])


def frame_of_entry(entry: dict) -> Frame:
    """The frame of one amplicon entry of run.json (see pipeline.amplicon_dict)."""
    g = entry.get("genome")
    anchor = None
    if isinstance(g, dict) and g.get("chrom"):
        anchor = GenomeAnchor(str(g.get("assembly") or ""), str(g["chrom"]), from_one_based(int(g["start"])),
                              int(g["end"]), str(g.get("strand") or "+"))
    return Frame(Strand(entry["strand"]), from_one_based(int(entry["start"])), int(entry["end"]), anchor)


def place_run(amplicons: Iterable[dict]) -> dict[str, Placement]:
    """Placements from run.json's ``amplicons`` list (the same as ``place_panel`` gave at ``call``)."""
    return _place([(str(e["name"]), frame_of_entry(e), int(e["reference_length"])) for e in amplicons])
