"""The reference stage: read the reference FASTA, convert it in silico, find the primers.

Pipeline position: first stage.  ``load_amplicon`` turns a reference record
(plus an optional primer pair) into an ``Amplicon``: the amplified strand, its
CpGs, which CpGs lie under primers, and warnings.  Without primers the whole
record is the target (QUMA's mode).  All coordinates are 0-based, half-open.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

from . import annotated
from .coords import Frame, GenomeAnchor, one_based, revcomp
from .errors import PrimerError, ReferenceFileError
from .files import Refused, decode_text, read_input_bytes, shown
from .models import SNP, Amplicon, CpG, Strand

DNA = set("ACGTN")
IUPAC = set("ACGTURYKMSWBDHVN")
# what each IUPAC letter of a primer stands for
IUPAC_SETS = {
    "A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "AG", "Y": "CT", "K": "GT",
    "M": "AC", "S": "CG", "W": "AT", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}

DEFAULT_NAME = "IGFBP3_promoter"
DEFAULT_FORWARD = "TGGGTATATTTTGGTTTTTGTAGA"
DEFAULT_REVERSE = "AAAACCAAAATAACCCAAAACAC"
# rs2854744 (-202 A/C): the C of the CpG at reference index 88 reads A with the A allele
DEFAULT_SNPS = (SNP(pos=88, ref="C", alt="A", name="rs2854744"),)
# the embedded record is hg19 chr7:45,960,822-45,961,163 written on the minus strand (reference/SOURCE.md)
DEFAULT_ANCHOR = GenomeAnchor("hg19", "chr7", 45960821, 45961163, "-")
MIN_TARGET = 20
# Longest target region (the whole record without primers, or the amplicon between them): a bisulfite PCR
# product is under ~1 kb, and aligning costs ~13 us per target base and read (5 kb: ~70 ms per read).
MAX_TARGET = 5_000
SHORT_TARGET = 40  # below twice this the default read-length thresholds are scaled (pipeline.fit_to_amplicon)
# A target region this long with not one C outside CpGs (primers aside) is an already converted reference:
# genomic sequence has a non-CpG C every ~5 bases, so 50 bases without one do not happen by chance.
CONVERTED_MIN_TARGET = 50


def cpg_sites(seq: str) -> list[int]:
    """0-based positions of the C of every CG in ``seq`` (upper case)."""
    return [m.start() for m in re.finditer("(?=CG)", seq)]


def non_cpg_c(seq: str) -> int:
    """How many C of ``seq`` (upper case) are not the C of a CG."""
    return seq.count("C") - len(cpg_sites(seq))


def looks_converted(seq: str) -> bool:
    """QUMA's test of a whole reference record: it has no more C (or G) than CpGs, i.e. one strand has
    no C outside CpGs: it was bisulfite-converted in silico before it was given."""
    n_cpg = len(cpg_sites(seq))
    return min(seq.count("C"), seq.count("G")) <= n_cpg


def convert(seq: str, methylated_cpg: bool = False) -> str:
    """Bisulfite-convert one strand as read 5'->3': every C to T, except CpG C when ``methylated_cpg``."""
    s = seq.upper()
    if not methylated_cpg:
        return s.replace("C", "T")
    out = list(s)
    for i, b in enumerate(s):
        if b == "C" and not (i + 1 < len(s) and s[i + 1] == "G"):
            out[i] = "T"
    return "".join(out)


def converted_strands(seq: str) -> dict[str, str]:
    """The four bisulfite strands of a double-stranded reference (all CpGs unmethylated).

    OT/OB are the converted original top/bottom strands; CTOT/CTOB their
    complements made by the first PCR cycle.
    """
    ot = convert(seq)
    ob = convert(revcomp(seq))
    return {"OT": ot, "CTOT": revcomp(ot), "OB": ob, "CTOB": revcomp(ob)}


def parse_fasta_text(text: str, source: str) -> list[tuple[str, str]]:
    """Records of a FASTA (or a plain sequence without header) as (name, sequence)."""
    records: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            records.append((line[1:].strip().split()[0] if line[1:].strip() else f"record{len(records) + 1}", []))
        else:
            if not records:
                records.append((Path(source).stem, []))
            records[-1][1].append(re.sub(r"[\s\d]", "", line))
    return [(name, "".join(parts)) for name, parts in records]


def read_reference(path: Optional[str | Path] = None) -> tuple[str, str, str]:
    """Read the first record of a reference FASTA (or GenBank/EMBL file, ``annotated``); (name, upper-case
    sequence, source).

    ``None`` reads the embedded IGFBP3 promoter (hg19, see reference/SOURCE.md).
    """
    if path is None:
        text = resources.files("bsmeth").joinpath("data/IGFBP3_promoter_hg19.fa").read_text()
        source = "embedded default: IGFBP3 promoter hg19 chr7:45960822-45961163 (minus strand)"
    else:
        p = Path(path)
        try:
            raw = read_input_bytes(p)
        except Refused as e:
            why = f"cannot read ({e.strerror})" if e.strerror else e.why
            raise ReferenceFileError(f"reference {shown(p)}: {why}; give a FASTA file with --reference") from None
        text = decode_text(raw)  # the same rule as read files and sheets: UTF-8, UTF-16 with BOM, Windows-1252
        if text is None:
            raise ReferenceFileError(f"reference {p}: not a text FASTA file; give a FASTA file with --reference")
        source = shown(p)
    fmt = annotated.sniff(text)
    records = annotated.records(text, fmt, source) if fmt else parse_fasta_text(text, source)
    records = [r for r in records if r[1]]
    if not records:
        raise ReferenceFileError(f"reference {source}: no sequence found; give a FASTA file with one record")
    name, seq = records[0]
    seq = seq.upper().replace("U", "T")
    bad = sorted(set(seq) - IUPAC)
    if bad:
        i = min(seq.index(b) for b in bad)
        raise ReferenceFileError(
            f"reference {source}, record {name}: non-DNA letter {seq[i]!r} at position {one_based(i)}; fix the FASTA"
        )
    # IUPAC ambiguity codes other than N are refused, not guessed: whether a Y (C or T) is converted, or YG is
    # a CpG, is exactly what the analysis measures.  N (base unknown) is accepted: it matches nothing.
    codes = [(i, b) for i, b in enumerate(seq) if b not in DNA]
    if codes:
        shown_codes = ", ".join(f"{b} at {i + 1}" for i, b in codes[:5]) + (f" and {len(codes) - 5} more"
                                                                            if len(codes) > 5 else "")
        raise ReferenceFileError(
            f"reference {source}, record {name}: IUPAC ambiguity code(s) {shown_codes} (1-based); bsmeth needs the "
            "bases of the reference: write the base of your sample there, or N where it is unknown"
        )
    return name, seq, source


def _clean_primer(primer: str, label: str) -> str:
    p = re.sub(r"\s", "", primer).upper().replace("U", "T")
    if not p:
        raise PrimerError(f"{label} primer is empty; give it 5'->3' in converted form")
    bad = sorted(set(p) - set(IUPAC_SETS))
    if bad:
        raise PrimerError(
            f"{label} primer {primer!r}: non-DNA letter(s) {''.join(bad)}; give it 5'->3' in converted form")
    return p


def _primer_hits(primer: str, strand_seq: str, max_mismatches: int) -> list[tuple[int, int]]:
    """(start, mismatches) of every place where ``primer`` can have been copied from the converted strand.

    ``strand_seq`` is unconverted; a primer T matches a genomic C (converted) and a
    primer C matches only a CpG C (the methylated form).
    """
    hits = []
    n, m = len(strand_seq), len(primer)
    allowed = [set(IUPAC_SETS[b]) for b in primer]
    for i in range(n - m + 1):
        mism = 0
        for j in range(m):
            g = strand_seq[i + j]
            ok = allowed[j]
            if g in ok:
                if g == "C" and "T" not in ok and not (i + j + 1 < n and strand_seq[i + j + 1] == "G"):
                    mism += 1  # primer demands an unconverted C outside CpG
            elif not (g == "C" and "T" in ok):
                mism += 1
            if mism > max_mismatches:
                break
        else:
            hits.append((i, mism))
    return hits


def _locate(primer: str, strands: dict[Strand, str], label: str) -> tuple[Strand, int, int]:
    """Find one binding site of ``primer`` on either strand; (strand, start, mismatches)."""
    for max_mm in (0, 2):
        hits = [(s, i, mm) for s, seq in strands.items() for i, mm in _primer_hits(primer, seq, max_mm)]
        if hits:
            best = min(mm for _, _, mm in hits)
            hits = [h for h in hits if h[2] == best]
            if len(hits) > 1:
                where = ", ".join(f"{s.value} strand at {one_based(i)}" for s, i, _ in hits)
                raise PrimerError(
                    f"{label} primer {primer} binds the converted reference more than once ({where}); "
                    "give a more specific primer or a shorter reference"
                )
            return hits[0]
    raise PrimerError(
        f"{label} primer {primer} does not bind either bisulfite-converted strand of the reference "
        "(up to 2 mismatches); check that it is written 5'->3' in converted form and matches this reference"
    )


# How a primer may have been typed, and the primer (5'->3', converted) that reading gives.  Forward: as the
# converted primer, or as the genomic (unconverted) sequence.  Reverse: as the converted primer, as written on
# the amplified (reference) strand (a common habit: methylcircleplot takes it that way), or either of these
# unconverted.  The first reading of each is the documented form; the others are tried only if it fails.
def _forward_readings(p: str) -> list[tuple[str, str]]:
    return _distinct([("as given", p), ("as genomic (unconverted) sequence, converted", p.replace("C", "T"))])


def _reverse_readings(p: str) -> list[tuple[str, str]]:
    rc = revcomp(p)
    out = [("as given", p),
           ("as written on the reference (amplified) strand, reverse-complemented", rc),
           ("as genomic (unconverted) sequence, converted", p.replace("G", "A")),
           ("as written unconverted on the reference strand, reverse-complemented and converted",
            revcomp(rc.replace("C", "T")))]
    return _distinct(out)


def _distinct(readings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Readings in order, each primer sequence once (the first label that gives it)."""
    seen: set[str] = set()
    out = []
    for label, seq in readings:
        if seq not in seen:
            seen.add(seq)
            out.append((label, seq))
    return out


def _pair(fwd: str, rev: str, strands: dict[Strand, str]) -> tuple[Strand, int, int, int, int]:
    """(strand, forward start, mismatches, reverse site start, mismatches) of a primer pair, or PrimerError."""
    st, fstart, fmm = _locate(fwd, strands, "forward")
    _, rstart, rmm = _locate(revcomp(rev), {st: strands[st]}, "reverse")
    if rstart + len(rev) <= fstart + len(fwd):
        raise PrimerError(
            f"the reverse primer binds at or before the forward primer on the {st.value} strand "
            f"(forward at {one_based(fstart)}, reverse ends at {rstart + len(rev)}); check the primer pair"
        )
    return st, fstart, fmm, rstart, rmm


def place_primers(forward: str, reverse: str, strands: dict[Strand, str]):
    """Where a primer pair binds, trying the ways users type primers.

    Returns (strand, forward start, forward mm, reverse start, reverse mm, forward primer, reverse primer, notes):
    the primers as used (5'->3', converted) and a note for every reading other than the documented one.
    """
    fwd_r, rev_r = _forward_readings(forward), _reverse_readings(reverse)
    first_error = None
    for swap in (False, True):
        for fi, (flabel, f) in enumerate(fwd_r if not swap else _forward_readings(reverse)):
            for ri, (rlabel, r) in enumerate(rev_r if not swap else _reverse_readings(forward)):
                try:
                    st, fs, fmm, rs, rmm = _pair(f, r, strands)
                except PrimerError as e:
                    first_error = first_error or e
                    continue
                notes = []
                if swap:
                    notes.append("the primers bind in the other order; --forward and --reverse were swapped")
                given_f, given_r = (reverse, forward) if swap else (forward, reverse)
                if fi:
                    notes.append(f"forward primer {given_f!r} read {flabel}: {f}")
                if ri:
                    notes.append(f"reverse primer {given_r!r} read {rlabel}: {r} (the reverse primer is written "
                                 "5'->3' as ordered, converted)")
                return st, fs, fmm, rs, rmm, f, r, notes
    raise PrimerError(_binding_report(forward, reverse, strands, first_error)) from None


def _binding_report(forward: str, reverse: str, strands: dict[Strand, str], first: PrimerError) -> str:
    """Why a pair does not work: each primer as the user typed it, and the readings that do bind, if any."""
    parts = []
    for role, typed, readings, rc in (("forward", forward, _forward_readings(forward), False),
                                      ("reverse", reverse, _reverse_readings(reverse), True)):
        found = []
        for label, seq in readings:
            try:
                st, i, _ = _locate(revcomp(seq) if rc else seq, strands, role)
            except PrimerError:
                continue
            found.append(f"{label} ({seq}) binds the converted {st.value} strand at {one_based(i)}")
        parts.append(f"{role} primer {typed!r}: " + ("; ".join(found) if found else
                                                      "binds in no reading (as given, reverse-complemented, "
                                                      "unconverted; up to 2 mismatches)"))
    if "more than once" in str(first):
        return f"{first} ({'; '.join(parts)})"
    return ("the primer pair does not amplify this reference: " + "; ".join(parts) + ". Give both primers 5'->3' "
            "as ordered, in converted form (the reverse primer as the reverse complement of the amplified strand), "
            "from the same converted strand, the forward upstream of the reverse")


def build_amplicon(
    name: str,
    seq: str,
    forward: Optional[str] = None,
    reverse: Optional[str] = None,
    strand: Optional[Strand] = None,
    snps: Iterable[SNP] = (),
    source: str = "",
    anchor: Optional[GenomeAnchor] = None,
) -> Amplicon:
    """Derive the amplicon (target strand, span, CpGs) from a reference and optional primers.

    ``anchor``: where the reference record lies on a genome (its length must be the record's).
    """
    warnings: list[str] = []
    seq = seq.upper()
    if anchor is not None and anchor.length != len(seq):
        raise PrimerError(f"reference {name}: {len(seq)} bp, but its genome anchor {anchor.region()} spans "
                          f"{anchor.length} bp; give the genome interval the FASTA record covers")
    if len(seq) >= CONVERTED_MIN_TARGET and looks_converted(seq):
        warnings.append(
            "the reference has no C (or no G) outside CpGs: it looks already bisulfite-converted; "
            "give the genomic (unconverted) sequence"
        )
    if (forward is None) != (reverse is None):
        raise PrimerError("give both --forward and --reverse primers, or neither (whole-reference mode)")
    if forward is None:
        st = strand or Strand.TOP
        target = seq if st is Strand.TOP else revcomp(seq)
        start, end = 0, len(seq)
        fspan = rspan = (0, 0)
    else:
        fwd = _clean_primer(forward, "forward")
        rev = _clean_primer(reverse, "reverse")
        strands = {Strand.TOP: seq, Strand.BOTTOM: revcomp(seq)}
        if strand is not None:
            strands = {strand: strands[strand]}
        st, fstart, fmm, rstart, rmm, fwd, rev, notes = place_primers(fwd, rev, strands)
        warnings += notes
        for label, mm in (("forward", fmm), ("reverse", rmm)):
            if mm:
                warnings.append(f"{label} primer binds with {mm} mismatch(es)")
        tend = rstart + len(rev)  # _pair checked that the reverse site ends downstream of the forward primer
        strand_seq = strands[st]
        target = strand_seq[fstart:tend]
        if st is Strand.TOP:
            start, end = fstart, tend
        else:
            start, end = len(seq) - tend, len(seq) - fstart
        fspan = (0, len(fwd))
        rspan = (len(target) - len(rev), len(target))
        forward, reverse = fwd, rev
    if len(target) > MAX_TARGET:
        hint = ("give the primers (--forward, --reverse) so that only the amplicon between them is the target"
                if forward is None else "check the primer pair: no bisulfite PCR product is that long")
        raise ReferenceFileError(
            f"reference {source or name}: the target region is {len(target):,} bp, over the limit of "
            f"{MAX_TARGET:,} bp; {hint}")
    if len(target) < MIN_TARGET:
        warnings.append(f"the target region is only {len(target)} bp: too short for a reliable alignment")
    elif len(target) < 2 * SHORT_TARGET:
        warnings.append(f"the target region is only {len(target)} bp: read thresholds are scaled down to half of it")
    inner = target[fspan[1]:rspan[0]] if forward is not None else target
    converted = len(inner) >= CONVERTED_MIN_TARGET and non_cpg_c(inner) == 0
    if converted:
        warnings = [w for w in warnings if not w.startswith("the reference has no C (or no G) outside CpGs")]
        warnings.append(
            "the amplified strand has no C outside CpGs: the reference was given already bisulfite-converted, "
            "so conversion cannot be checked; reads are not failed for it (conversion left empty). "
            "Give the genomic (unconverted) sequence to check conversion")
    amp = Amplicon(
        name=name, reference=seq, strand=st, start=start, end=end, target=target,
        forward=forward, reverse=reverse, forward_span=fspan, reverse_span=rspan, source=source, anchor=anchor,
        converted_reference=converted,
    )
    frame: Frame = amp.frame
    snp_by_pos = {s.pos: s for s in snps}
    cpgs = []
    for p in cpg_sites(seq[start:end]):
        ref_c = start + p  # C of the top-strand CG
        t = frame.cpg_target(ref_c)
        snp = snp_by_pos.get(ref_c) or snp_by_pos.get(ref_c + 1)
        cpgs.append(CpG(number=len(cpgs) + 1, ref_pos=ref_c, target_pos=t, under_primer=amp.in_primer(t), snp=snp,
                        genome_pos=frame.genome_of(frame.cpg_c_ref(ref_c))))
    used_snps = tuple(s for s in snps if start <= s.pos < end)
    if not cpgs:
        warnings.append("the target region has no CpG: nothing to call")
    return replace(amp, cpgs=tuple(cpgs), snps=used_snps, warnings=tuple(warnings))


def load_amplicon(
    path: Optional[str | Path] = None,
    forward: Optional[str] = None,
    reverse: Optional[str] = None,
    strand: Optional[Strand] = None,
    snps: Iterable[SNP] = (),
    anchor: Optional[GenomeAnchor] = None,
) -> Amplicon:
    """The amplicon for a run.  No path: the embedded IGFBP3 reference with the seed study's primers, SNP and
    genome anchor."""
    name, seq, source = read_reference(path)
    for s in snps:
        if not 0 <= s.pos < len(seq) or seq[s.pos] != s.ref:
            found = seq[s.pos] if 0 <= s.pos < len(seq) else "nothing (outside the reference)"
            raise PrimerError(f"--snp {s.name}: the reference has {found} at position {one_based(s.pos)}, not {s.ref}; "
                              "give the position (1-based) and letter of the FASTA as written")
    if path is None:
        if forward is None and reverse is None:
            forward, reverse = DEFAULT_FORWARD, DEFAULT_REVERSE
        snps = tuple(snps) or DEFAULT_SNPS
        name = DEFAULT_NAME
        anchor = anchor or DEFAULT_ANCHOR
    return build_amplicon(name, seq, forward, reverse, strand, snps, source, anchor)


def parse_snp(text: str) -> SNP:
    """Parse ``POS:REF>ALT`` (1-based reference position), e.g. ``89:C>A``."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*([ACGT])\s*>\s*([ACGT])\s*", text.upper())
    if not m or int(m.group(1)) < 1:
        raise PrimerError(f"--snp {text!r}: expected POS:REF>ALT with a 1-based position, e.g. 89:C>A")
    return SNP(pos=int(m.group(1)) - 1, ref=m.group(2), alt=m.group(3), name=f"{m.group(1)}:{m.group(2)}>{m.group(3)}")
