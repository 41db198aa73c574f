"""Tables for other tools, made from a call folder: bedMethyl, Bismark coverage and CpG report, methylKit,
results.xlsx and an IGV session (``bsmeth export DIR``; ``bsmeth run`` writes them all).

Pipeline position: after ``call`` (like ``plot``/``compare``), reading only the call folder: reads.tsv,
cpg_calls.tsv, summary.tsv, samples.tsv, run.json, amplicons.fa and stats.tsv when present (through ``tsv``).
Genome positions come from run.json's amplicon entries through ``contigs``/``coords``; an amplicon without a
genome anchor is its own contig (the name ``readsbam`` gave it in reads.bam).  Formats and conventions:
docs/interop.md.

Counts are over ``pass`` reads only, as in summary.tsv: coverage is the number of reads (clones) with a call
(M or U) at the CpG.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .atomic import write_text
from .contigs import Placement, place_run
from .coords import complement, from_one_based, one_based, revcomp
from .errors import InputError
from .tsv import TableError, read_table, write_table

FORMATS = ("bedmethyl", "bismark", "methylkit", "xlsx", "igv")
MERGED = "all_samples"  # the file of every sample pooled
METHYLKIT_MINCOV = 10  # methylKit::methRead's default mincov
# what a not-determined call counts as in bedMethyl (modkit's columns); under_primer and not_covered are not counted
WHY_COLUMN = {"gap": "delete", "other_base": "diff", "snp": "diff", "low_quality": "fail", "ambiguous": "fail",
              "mixed": "fail", "gcg": "nocall"}


@dataclass
class Counts:
    """Per-CpG counts over pass reads."""

    m: int = 0
    u: int = 0
    delete: int = 0
    fail: int = 0
    diff: int = 0
    nocall: int = 0

    @property
    def valid(self) -> int:
        return self.m + self.u

    def add(self, other: "Counts") -> None:
        for k in ("m", "u", "delete", "fail", "diff", "nocall"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass(frozen=True)
class Site:
    """One CpG of one amplicon, placed: ``pos`` is the 0-based contig position of the assayed C."""

    amplicon: str
    cpg: int
    contig: str
    pos: int
    strand: str
    under_primer: bool


@dataclass
class CallFolder:
    """What the exports read from a call folder."""

    directory: Path
    run: dict
    samples: list[str]
    places: dict[str, Placement]
    sites: list[Site]
    counts: dict[tuple[str, str, int], Counts]  # (sample, amplicon, cpg) -> counts over pass reads
    references: dict[str, str] = field(default_factory=dict)  # amplicon -> reference record (amplicons.fa)

    def site_counts(self, sample: Optional[str], site: Site) -> Counts:
        if sample is not None:
            return self.counts.get((sample, site.amplicon, site.cpg), Counts())
        total = Counts()
        for s in self.samples:
            total.add(self.counts.get((s, site.amplicon, site.cpg), Counts()))
        return total

    def genome_letters(self, place: Placement, start: int, end: int) -> str:
        """Plus-strand letters of the contig at [start, end) from the amplicon's reference ('N' where unknown)."""
        ref = self.references.get(place.amplicon, "")
        anchor = place.frame.anchor
        out = []
        for g in range(start, end):
            r = anchor.ref_of(g)
            if not ref or not 0 <= r < len(ref):
                out.append("N")
            else:
                out.append(ref[r] if anchor.strand == "+" else complement(ref[r]))
        return "".join(out)


def _table(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise InputError(f"{path}: missing; is {path.parent} the output folder of `bsmeth call`?")
    try:
        header, rows = read_table(path)
    except TableError as e:
        raise InputError(f"{path}: not a table written by bsmeth ({e})") from None
    return header, [dict(zip(header, r)) for r in rows]


def read_amplicons_fasta(path: Path) -> dict[str, str]:
    """amplicon name -> reference record, from amplicons.fa (``amplicon=`` in each header)."""
    from .readsbam import decode_name

    out: dict[str, str] = {}
    name, parts = None, []
    for line in path.read_text(encoding="utf-8").splitlines() + [">"]:
        if line.startswith(">"):
            if name is not None:
                out[name] = "".join(parts).upper()
            m = re.search(r"\samplicon=(\S+)", line)
            name, parts = (decode_name(m.group(1)) if m else None), []
        else:
            parts.append(line.strip())
    return out


def load(call_dir: str | os.PathLike) -> CallFolder:
    d = Path(call_dir)
    run_path = d / "run.json"
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{run_path}: missing; is {d} the output folder of `bsmeth call`?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{run_path}: not valid JSON ({e})") from None
    amplicons = run.get("amplicons")
    if not isinstance(amplicons, list) or not amplicons:
        raise InputError(f"{run_path}: no 'amplicons' list; written by an older bsmeth? rerun `bsmeth call`")
    places = place_run(amplicons)
    sites = []
    for e in amplicons:
        p = places[str(e["name"])]
        for c in e.get("cpgs", []):
            sites.append(Site(p.amplicon, int(c["cpg"]), p.contig, p.cpg_genome(from_one_based(int(c["pos"]))),
                              p.strand, bool(c.get("under_primer"))))
    _, calls = _table(d / "cpg_calls.tsv")
    counts: dict[tuple[str, str, int], Counts] = {}
    for c in calls:
        if c["status"] != "pass":
            continue
        k = (c["sample"], c.get("amplicon") or str(amplicons[0]["name"]), int(c["cpg"]))
        n = counts.setdefault(k, Counts())
        if c["call"] == "M":
            n.m += 1
        elif c["call"] == "U":
            n.u += 1
        elif c["why"] in WHY_COLUMN:
            col = WHY_COLUMN[c["why"]]
            setattr(n, col, getattr(n, col) + 1)
    samples = list(dict.fromkeys(str(s) for s in run.get("samples", [])))
    fasta = d / "amplicons.fa"
    refs = read_amplicons_fasta(fasta) if fasta.is_file() else {}
    return CallFolder(d, run, samples, places, sites, counts, refs)


# ------------------------------------------------------------------------------------------ file names

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def file_stems(samples: Sequence[str]) -> dict[str, str]:
    """A file-name stem per sample (other characters as ``_``), unique, never ``all_samples``."""
    used = {MERGED}
    out = {}
    for s in samples:
        base = _UNSAFE.sub("_", s).strip("._") or "sample"
        stem, k = base, 2
        while stem.lower() in {u.lower() for u in used}:
            stem, k = f"{base}_{k}", k + 1
        used.add(stem)
        out[s] = stem
    return out


# ------------------------------------------------------------------------------------------ the tables

def _pct(m: int, n: int) -> str:
    return f"{100 * m / n:.2f}"


def _sorted_sites(folder: CallFolder) -> list[Site]:
    return sorted(folder.sites, key=lambda s: (s.contig, s.pos, s.strand))


def _called_sites(folder: CallFolder, sample: Optional[str]):
    """(site, its counts) of every assessable CpG with at least one M/U call in ``sample`` (None: all), sorted."""
    for s in _sorted_sites(folder):
        n = folder.site_counts(sample, s)
        if not s.under_primer and n.valid:
            yield s, n


def bedmethyl_lines(folder: CallFolder, sample: Optional[str]) -> list[str]:
    """modkit's 18 columns (tab-separated), one line per CpG with a call, sorted by contig and position."""
    out = []
    for s, n in _called_sites(folder, sample):
        out.append("\t".join(map(str, (
            s.contig, s.pos, s.pos + 1, "m", n.valid, s.strand, s.pos, s.pos + 1, "255,0,0", n.valid,
            _pct(n.m, n.valid), n.m, n.u, 0, n.delete, n.fail, n.diff, n.nocall))))
    return out


def coverage_lines(folder: CallFolder, sample: Optional[str]) -> list[str]:
    """Bismark's coverage file: chrom, start, end (1-based, the C), percent, count methylated, unmethylated."""
    out = []
    for s, n in _called_sites(folder, sample):
        p = one_based(s.pos)
        out.append(f"{s.contig}\t{p}\t{p}\t{_pct(n.m, n.valid)}\t{n.m}\t{n.u}")
    return out


def cpg_report_lines(folder: CallFolder, sample: Optional[str]) -> list[str]:
    """Bismark's CpG report (coverage2cytosine): every CpG of the amplicons, the C of both strands (the strand
    not amplified has no reads: 0 0): chrom, 1-based position, strand, methylated, unmethylated, CG, trinucleotide."""
    rows = []
    for s in folder.sites:
        place = folder.places[s.amplicon]
        n = folder.site_counts(sample, s)
        m, u = (0, 0) if s.under_primer else (n.m, n.u)
        plus_c = s.pos if s.strand == "+" else s.pos - 1  # the CG's C on the plus strand
        for strand, pos in (("+", plus_c), ("-", plus_c + 1)):
            if strand == "+":
                tri = folder.genome_letters(place, pos, pos + 3)
            else:
                tri = revcomp(folder.genome_letters(place, pos - 2, pos + 1))
            counts = (m, u) if strand == s.strand else (0, 0)
            rows.append((s.contig, pos, strand, counts, tri))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [f"{c}\t{one_based(p)}\t{st}\t{m}\t{u}\tCG\t{tri}" for c, p, st, (m, u), tri in rows]


def methylkit_rows(folder: CallFolder, sample: Optional[str]) -> list[list]:
    """methylKit's text format (methRead(pipeline = "amp")): chrBase, chr, base (1-based C), strand F/R,
    coverage, freqC, freqT (percents)."""
    out = []
    for s, n in _called_sites(folder, sample):
        p = one_based(s.pos)
        out.append([f"{s.contig}.{p}", s.contig, p, "F" if s.strand == "+" else "R", n.valid,
                    _pct(n.m, n.valid), _pct(n.u, n.valid)])
    return out


METHYLKIT_COLUMNS = ("chrBase", "chr", "base", "strand", "coverage", "freqC", "freqT")


def _lines(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


@dataclass(frozen=True)
class ExportResult:
    files: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


def run_export(call_dir: str | os.PathLike, formats: Sequence[str] = FORMATS) -> ExportResult:
    """Write the requested formats into the call folder; returns the files written and warnings to print."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"--formats: unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    folder = load(call_dir)
    d = folder.directory
    stems = file_stems(folder.samples)
    files: list[Path] = []
    index: list[list] = []
    warnings: list[str] = []
    targets = [(s, stems[s]) for s in folder.samples] + [(None, MERGED)]

    def put(fmt: str, sample: Optional[str], path: Path, text: str) -> None:
        files.append(write_text(path, text))
        index.append([fmt, "" if sample is None else sample, path.relative_to(d).as_posix()])

    if "bedmethyl" in formats:
        for sample, stem in targets:
            put("bedmethyl", sample, d / "bedmethyl" / f"{stem}.bedmethyl", _lines(bedmethyl_lines(folder, sample)))
    if "bismark" in formats:
        for sample, stem in targets:
            put("bismark_cov", sample, d / "bismark" / f"{stem}.bismark.cov", _lines(coverage_lines(folder, sample)))
            put("bismark_cpg_report", sample, d / "bismark" / f"{stem}.CpG_report.txt",
                _lines(cpg_report_lines(folder, sample)))
    if "methylkit" in formats:
        from .tsv import table_text

        low = total = 0
        for sample, stem in targets:
            rows = methylkit_rows(folder, sample)
            if sample is not None:
                total += len(rows)
                low += sum(r[4] < METHYLKIT_MINCOV for r in rows)
            put("methylkit", sample, d / "methylkit" / f"{stem}.txt", table_text(METHYLKIT_COLUMNS, rows))
        if low:
            warnings.append(f"methylKit: {low} of {total} per-sample CpG rows have fewer than {METHYLKIT_MINCOV} "
                            f"clones, and methRead() drops them by default (mincov = {METHYLKIT_MINCOV}): read "
                            "clone data with methRead(..., mincov = 1)")
    if "xlsx" in formats:
        from .workbook import write_results_workbook

        path = write_results_workbook(d, stems)
        files.append(path)
        index.append(["xlsx", "", path.name])
    if "igv" in formats:
        for path in write_igv_sessions(folder, MERGED if "bedmethyl" in formats or
                                       (d / "bedmethyl" / f"{MERGED}.bedmethyl").is_file() else None):
            files.append(path)
            index.append(["igv_session", "", path.name])
    write_table(d / "exports.tsv", ("format", "sample", "file"), index)
    return ExportResult(tuple(files) + (d / "exports.tsv",), tuple(warnings))


# ------------------------------------------------------------------------------------------ IGV

IGV_GENOMES = {"hg19": "hg19", "grch37": "hg19", "hg38": "hg38", "grch38": "hg38", "mm10": "mm10", "mm39": "mm39"}


def _xml(s: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(s)


def igv_session_xml(genome: str, loci: Sequence[str], resources: Sequence[tuple[str, str]]) -> str:
    """An IGV desktop session (version 8): the genome, the loci (several: IGV's split view) and the tracks,
    paths relative to the session file.  ``resources``: (path, kind) with kind bam, modbam or bedmethyl."""
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
             f'<Session genome={_xml(genome)} locus={_xml(" ".join(loci))} relativePath="true" version="8">',
             "    <Resources>"]
    for path, _ in resources:
        lines.append(f"        <Resource path={_xml(path)}/>")
    lines += ["    </Resources>", '    <Panel name="DataPanel">']
    for path, kind in resources:
        if kind == "bam":  # IGV's bisulfite mode (CG): red = methylated, blue = unmethylated
            lines += [f'        <Track attributeKey={_xml(path)} clazz="org.broad.igv.sam.AlignmentTrack" '
                      f'experimentType="BISULFITE" id={_xml(path)} name={_xml(path + " (bisulfite CG)")} '
                      'visible="true">',
                      '            <RenderOptions colorOption="BISULFITE" groupByOption="SAMPLE"/>',
                      "        </Track>"]
        elif kind == "modbam":  # base modifications (MM/ML), 5mC
            lines += [f'        <Track attributeKey={_xml(path)} clazz="org.broad.igv.sam.AlignmentTrack" '
                      f'id={_xml(path)} name={_xml(path + " (5mC, MM/ML)")} visible="true">',
                      '            <RenderOptions colorOption="BASE_MODIFICATION_2COLOR" groupByOption="SAMPLE"/>',
                      "        </Track>"]
    lines += ["    </Panel>", "</Session>"]
    return "\n".join(lines) + "\n"


def write_igv_sessions(folder: CallFolder, bedmethyl: Optional[str]) -> list[Path]:
    """igv_session.xml for the amplicons of the first genome of the run; igv_session_<genome>.xml for any
    other genome (an IGV session has one genome).  Amplicons without an anchor use amplicons.fa as genome."""
    d = folder.directory
    groups: dict[str, list[Placement]] = {}
    for p in folder.places.values():
        key = "amplicons.fa" if p.own_contig else IGV_GENOMES.get(p.assembly.lower(), p.assembly or "unknown")
        groups.setdefault(key, []).append(p)
    resources = []
    for name, kind in (("reads.bam", "bam"), ("reads.mod.bam", "modbam")):
        if (d / name).is_file():
            resources.append((name, kind))
    if bedmethyl:
        resources.append((f"bedmethyl/{bedmethyl}.bedmethyl", "bedmethyl"))
    out = []
    for i, (genome, places) in enumerate(groups.items()):
        loci = []
        for p in places:
            a, b = p.span()
            pad = max(10, (b - a) // 10)
            loci.append(f"{p.contig}:{one_based(max(0, a - pad))}-{b + pad}")
        stem = "igv_session" if i == 0 else "igv_session_" + re.sub(r"[^A-Za-z0-9._-]+", "_", genome)
        out.append(write_text(d / f"{stem}.xml", igv_session_xml(genome, loci, resources)))
    return out
