"""reads.bam and reads.mod.bam: every read of a call on its amplicon's genome position (docs/interop.md).

Pipeline position: an output stage of ``call`` (run from ``pipeline.write_outputs``), working from the
in-memory results: each ``ReadResult`` with its ``AlignedRead`` (``read_pos``: target position -> index in the
read as given, -1 for a deletion; ``orientation``; ``target_start``/``target_end``) and the read's own bases
and qualities.  Positions go through ``coords`` (via ``contigs.Placement``); pysam is behind ``bam``.

The conventions, in short (docs/interop.md has them in full):

* A record shows the read as the **amplified (bisulfite-converted) strand** it reports on, like a Bismark
  alignment of a directional library: OT (flag 0, ``XR:Z:CT``, ``XG:Z:CT``) when that strand is the genome's
  plus strand, OB (flag 16, ``XR:Z:CT``, ``XG:Z:GA``) when it is the minus strand.  A read sequenced from the
  reverse primer is stored reverse complemented (``YO:A:-``, reads.tsv's ``orientation``).
* ``XM``: Bismark's methylation string; at CpGs exactly bsmeth's call (``Z`` = M, ``z`` = U, ``.`` = not
  determined), at other C the base as read (x/X CHG, h/H CHH, u/U unknown context) where PHRED >= --min-qual
  and outside primers.  ``NM``/``MD`` against the unconverted reference, as the SAM specification and
  ``samtools calmd`` define them (each C read as T counts).
* reads.mod.bam: the same records with C restored at every CpG called M or U, ``MM:Z:C+m?,...;`` listing
  exactly those Cs (``?``: every other C is of unknown status), ``ML`` 255 for M and 0 for U, ``MN`` = SEQ
  length, and the observed bases in ``YB:Z`` (same orientation as SEQ).
* Every read with a sequence is written: passing reads plain, failed reads with flag 0x200 (0x400 for a
  clonal duplicate), reads without an alignment unmapped (flag 4 | 0x200) with their reason in ``YR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import numpy as np

from . import __version__
from .atomic import write_text
from .bam import FLAG_DUPLICATE, FLAG_QCFAIL, FLAG_REVERSE, FLAG_UNMAPPED, Header, Record, index_fasta, write_bam
from .contigs import Placement, place_panel
from .coords import complement, read_index, revcomp
from .models import Amplicon, Call, Panel, ReadResult, Reason, Status

READS_BAM = "reads.bam"
MOD_BAM = "reads.mod.bam"
AMPLICONS_FA = "amplicons.fa"
TRACE_FORMATS = ("ab1", "abi", "scf")  # reads from a capillary sequencer for sure: PL:CAPILLARY
_QNAME_OK = frozenset(chr(c) for c in range(33, 127) if chr(c) != "@")  # SAM QNAME [!-?A-~]
# percent-encoding of names for SAM text fields (RFC 3986, as SAM's CT/PT tags): printable ASCII but % and space
_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")


def encode_name(name: str) -> str:
    """A name (read id, sample) as SAM text: printable ASCII but space, other bytes percent-encoded (``decode_name``
    reverses it; bytes of names in a legacy encoding survive through surrogate escapes)."""
    return quote(name.encode("utf-8", "surrogateescape"), safe=_SAFE)


def decode_name(text: str) -> str:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def sam_text(text: str) -> str:
    """Free text (a reason's detail) as a SAM Z value: printable ASCII, anything else as a backslash escape."""
    return "".join(c if " " <= c <= "~" else c.encode("utf-8", "surrogateescape").decode("latin-1")
                   .encode("unicode_escape").decode("ascii") for c in text)


def qname_of(read_id: str) -> str:
    """The read id as a SAM QNAME ([!-?A-~]+, at most 254): other characters as ``_`` (the id is then kept in
    ``YN:Z``)."""
    q = "".join(c if c in _QNAME_OK else "_" for c in read_id)[:254]
    return q or "_"


def read_group_id(sample: str) -> str:
    return encode_name(sample) or "%00"


# ------------------------------------------------------------------------------------------ one read

class _Columns:
    """The alignment of one read as columns in the orientation of the amplified strand:
    ``ops`` (M, I, D, S), ``q`` (index in the oriented read, -1 for D) and ``t`` (target position, -1 for I/S)."""

    def __init__(self, result: ReadResult):
        aln = result.aligned
        n = len(result.sequence)
        o = aln.orientation
        rp = aln.read_pos
        ops: list[str] = []
        qs: list[int] = []
        ts: list[int] = []
        prev = None
        for t in range(aln.target_start, aln.target_end):
            given = int(rp[t])
            if given < 0:
                if prev is not None:  # a deletion (none can come before the first aligned base)
                    ops.append("D"), qs.append(-1), ts.append(t)
                continue
            q = read_index(given, o, n)
            if prev is not None:
                if q <= prev:
                    raise ValueError(f"read {result.read_id}: read positions do not increase along the target")
                for k in range(prev + 1, q):
                    ops.append("I"), qs.append(k), ts.append(-1)
            ops.append("M"), qs.append(q), ts.append(t)
            prev = q
        while ops and ops[-1] == "D":  # trailing deletions are no alignment
            ops.pop(), qs.pop(), ts.pop()
        first = qs[0]
        self.ops = ["S"] * first + ops + ["S"] * (n - 1 - prev)
        self.q = list(range(first)) + qs + list(range(prev + 1, n))
        self.t = [-1] * first + ts + [-1] * (n - 1 - prev)


def _cigar(ops: Sequence[str]) -> tuple[tuple[str, int], ...]:
    out: list[list] = []
    for op in ops:
        if out and out[-1][0] == op:
            out[-1][1] += 1
        else:
            out.append([op, 1])
    return tuple((op, n) for op, n in out)


def _md_nm(ops: Sequence[str], read: Sequence[str], ref: Sequence[str]) -> tuple[str, int]:
    """MD and NM of columns in record orientation (``read``/``ref``: the letters of each column, '' if none)."""
    md: list[str] = []
    run = nm = 0
    in_del = False
    for op, b, r in zip(ops, read, ref):
        if op == "M":
            in_del = False
            if b == r and b in "ACGT":
                run += 1
            else:
                md.append(str(run)), md.append(r)
                run, nm = 0, nm + 1
        elif op == "D":
            if not in_del:
                md.append(str(run)), md.append("^")
                run, in_del = 0, True
            md.append(r)
            nm += 1
        elif op == "I":
            nm += 1
            in_del = False  # a deletion after an insertion starts a new ^ item
    md.append(str(run))
    return "".join(md), nm


def target_letters(amp: Amplicon, t: int, n: int) -> str:
    """The amplified strand's letters at target positions ``t``..``t+n-1``, beyond the amplicon too ('N' past the
    reference record)."""
    frame = amp.frame
    out = []
    for u in range(t, t + n):
        if 0 <= u < amp.length:
            out.append(amp.target[u])
            continue
        r = frame.ref_of(u)
        if not 0 <= r < len(amp.reference):
            out.append("N")
        else:
            b = amp.reference[r]
            out.append(b if frame.strand.value == "top" else complement(b))
    return "".join(out)


def _context(amp: Amplicon, t: int) -> str:
    """Bismark's context letter of the C at target ``t``: z (CpG), x (CHG), h (CHH) or u (unknown)."""
    nxt = target_letters(amp, t + 1, 2)
    if nxt[0] == "G":
        return "z"
    if nxt[0] == "N":
        return "u"
    if nxt[1] == "G":
        return "x"
    return "u" if nxt[1] == "N" else "h"


def build_records(result: ReadResult, amp: Amplicon, place: Placement, min_qual: int, qname: str,
                  rg: str) -> tuple[Record, Record]:
    """The reads.bam and reads.mod.bam records of one aligned read."""
    cols = _Columns(result)
    seq = result.sequence
    o = result.aligned.orientation
    oriented = seq if o == "+" else revcomp(seq)
    quals = result.qualities
    oq = None if quals is None else bytes(np.asarray(quals if o == "+" else quals[::-1], dtype=np.uint8))
    n = len(oriented)
    call_at = {c.cpg.target_pos: c for c in result.calls}
    # XM and the restored sequence, in the oriented read
    xm = ["."] * n
    restored = list(oriented)
    called: dict[int, bool] = {}  # oriented index -> methylated, for the CpGs called M/U
    for op, q, t in zip(cols.ops, cols.q, cols.t):
        if op != "M" or amp.target[t] != "C":
            continue
        c = call_at.get(t)
        if c is not None:
            if c.call is Call.NOT_DETERMINED:
                continue
            xm[q] = "Z" if c.call is Call.METHYLATED else "z"
            called[q] = c.call is Call.METHYLATED
            restored[q] = "C"
            continue
        b = oriented[q]
        if amp.in_primer(t) or b not in "CT" or (oq is not None and oq[q] < min_qual):
            continue
        ctx = _context(amp, t)
        xm[q] = ctx.upper() if b == "C" else ctx
    restored_s = "".join(restored)
    # MM/ML on the oriented read (the record's original orientation, see module docstring)
    skips, probs, k = [], [], 0
    for i, b in enumerate(restored_s):
        if b != "C":
            continue
        if i in called:
            skips.append(k)
            probs.append(255 if called[i] else 0)
            k = 0
        else:
            k += 1
    mm = "C+m?" + "".join(f",{s}" for s in skips) + ";"
    # record orientation: the genome's forward strand
    rev = place.strand == "-"
    frame = place.frame
    ops, qidx, tidx = cols.ops, cols.q, cols.t
    if rev:
        ops, qidx, tidx = ops[::-1], qidx[::-1], tidx[::-1]
    ref = [(complement(amp.target[t]) if rev else amp.target[t]) if t >= 0 else "" for t in tidx]

    def in_record(s: str) -> str:
        return revcomp(s) if rev else s

    rec_seq, rec_restored = in_record(oriented), in_record(restored_s)
    rec_xm = "".join(xm[::-1]) if rev else "".join(xm)
    rec_qual = None if oq is None else (oq[::-1] if rev else oq)
    read_letters = [rec_seq[(n - 1 - q) if rev else q] if q >= 0 else "" for q in qidx]
    md, nm = _md_nm(ops, read_letters, ref)
    restored_letters = [rec_restored[(n - 1 - q) if rev else q] if q >= 0 else "" for q in qidx]
    md_mod, nm_mod = _md_nm(ops, restored_letters, ref)
    aligned_t = [t for t in tidx if t >= 0]
    pos = frame.genome_of_target(aligned_t[0])
    flag = FLAG_REVERSE if rev else 0
    if result.status is Status.FAIL:
        flag |= FLAG_DUPLICATE if result.reason is Reason.DUPLICATE else FLAG_QCFAIL
    cigar = _cigar(ops)
    common = _common_tags(result, rg, qname)
    bismark = (("XM", rec_xm, "Z"), ("XR", "CT", "Z"), ("XG", "GA" if rev else "CT", "Z"))
    plain = Record(qname, flag, place.contig, pos, cigar, rec_seq, rec_qual,
                   (("NM", nm, "i"), ("MD", md, "Z"), *bismark, *common))
    mod_tags = [("NM", nm_mod, "i"), ("MD", md_mod, "Z"), ("MM", mm, "Z")]
    if probs:
        mod_tags.append(("ML", probs, "BC"))
    mod_tags += [("MN", n, "i"), ("YB", rec_seq, "Z"), *common]
    mod = Record(qname, flag, place.contig, pos, cigar, rec_restored, rec_qual, tuple(mod_tags))
    return plain, mod


def _common_tags(result: ReadResult, rg: str, qname: str) -> list[tuple[str, object, str]]:
    tags: list[tuple[str, object, str]] = [("RG", rg, "Z")]
    if qname != result.read_id:
        tags.append(("YN", encode_name(result.read_id), "Z"))
    if result.amplicon:
        tags.append(("YA", encode_name(result.amplicon), "Z"))
    tags.append(("YS", result.status.value, "Z"))
    if result.reason is not None:
        tags.append(("YR", result.reason.value, "Z"))
    if result.detail:
        tags.append(("YD", sam_text(result.detail), "Z"))
    if result.duplicate_of:
        tags.append(("YP", encode_name(result.duplicate_of), "Z"))
    if result.aligned is not None:
        tags.append(("YO", result.aligned.orientation, "A"))
    qc = result.qc
    if qc is not None:
        if qc.conversion is not None:
            tags.append(("YC", round(float(qc.conversion), 4), "f"))
        tags.append(("YI", round(float(qc.identity), 4), "f"))
    if result.genotype:
        tags.append(("YG", sam_text(result.genotype), "Z"))
    return tags


def unmapped_record(result: ReadResult, qname: str, rg: str) -> Record:
    """A read without an alignment (no amplicon, too few good bases...), as given, with its reason."""
    q = None if result.qualities is None else bytes(np.asarray(result.qualities, dtype=np.uint8))
    return Record(qname, FLAG_UNMAPPED | FLAG_QCFAIL, "", -1, (), result.sequence, q,
                  tuple(_common_tags(result, rg, qname)))


# ------------------------------------------------------------------------------------------ the files

def amplicons_fasta(panel: Panel, places: dict[str, Placement]) -> str:
    """Every amplicon's reference record, named by its contig when it has no anchor (else by the amplicon's
    contig name too, with its anchor in the description): the genome of the amplicons without one."""
    out = []
    for amp in panel:
        p = places[amp.name]
        a = amp.anchor
        desc = f" amplicon={encode_name(amp.name)}" + (f" anchor={a.assembly}:{a.region()}:{a.strand}" if a else "")
        name = p.contig if p.own_contig else _fasta_name(amp.name, places)
        out.append(f">{name}{desc}")
        ref = amp.reference
        out += [ref[i:i + 60] for i in range(0, len(ref), 60)]
    return "\n".join(out) + "\n"


def _fasta_name(amplicon: str, places: dict[str, Placement]) -> str:
    from .contigs import sam_name

    taken = {p.contig for p in places.values()}
    base = name = sam_name(amplicon)
    k = 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def bam_header(panel: Panel, places: dict[str, Placement], samples: Sequence[str],
               results: Sequence[ReadResult], command: Sequence[str], mod: bool) -> Header:
    refs: dict[str, tuple[str, int, str]] = {}
    for amp in panel:
        p = places[amp.name]
        if p.contig not in refs:
            refs[p.contig] = (p.contig, p.contig_length, p.assembly)
        else:  # two amplicons on one chromosome: the longest length wins
            name, length, asm = refs[p.contig]
            refs[p.contig] = (name, max(length, p.contig_length), asm)
    formats: dict[str, set] = {}
    for r in results:
        formats.setdefault(r.sample, set()).add(r.fmt)
    rgs = []
    for s in samples:
        rg = {"ID": read_group_id(s), "SM": encode_name(s) or "%00"}
        fmts = formats.get(s, set()) - {""}
        if fmts and fmts <= set(TRACE_FORMATS):
            rg["PL"] = "CAPILLARY"
        rgs.append(rg)
    cl = " ".join(encode_name(a) for a in command)
    program = {"ID": "bsmeth", "PN": "bsmeth", "VN": __version__, **({"CL": cl} if cl else {})}
    comments = (
        "bsmeth: each read is stored as the amplified (bisulfite-converted) strand it reports on: flag 16 when "
        "that strand is the genome's minus strand; YO:A:- marks a read sequenced as its reverse complement",
        "bsmeth: flag 0x200 = failed bsmeth's QC (reason in YR), 0x400 = clonal duplicate; unmapped reads carry "
        "their reason in YR; names in RG, YN, YA and YP are percent-encoded",
        ("bsmeth: SEQ has C restored at every CpG called M or U; MM/ML list exactly those (C+m?, ML 255 = M, "
         "0 = U); the observed bases are in YB" if mod else
         "bsmeth: XM/XR/XG as Bismark; at CpGs XM holds bsmeth's calls (Z = M, z = U, . = not determined)"),
        "bsmeth: conventions in docs/interop.md",
    )
    return Header(tuple(refs.values()), tuple(rgs), program, comments)


def write_read_bams(out: Path, panel: Panel, results: Sequence[ReadResult], samples: Sequence[str],
                    min_qual: int, command: Sequence[str] = ()) -> list[Path]:
    """reads.bam, reads.mod.bam (each with its .bai) and amplicons.fa (with .fai) in ``out``."""
    out = Path(out)
    places = place_panel(panel)
    by_name = {a.name: a for a in panel}
    fasta = write_text(out / AMPLICONS_FA, amplicons_fasta(panel, places))
    index_fasta(fasta)
    groups = {s: read_group_id(s) for s in samples}
    plain: list[Record] = []
    mod: list[Record] = []
    used: set[str] = set()
    for r in results:
        if not r.sequence:
            continue  # an unreadable file: no bases to write (reads.tsv lists it)
        qname = qname_of(r.read_id)
        base, k = qname, 2
        while qname in used:
            qname, k = f"{base}#{k}", k + 1
        used.add(qname)
        rg = groups.get(r.sample) or read_group_id(r.sample)
        if r.aligned is None or r.amplicon not in by_name:
            rec = unmapped_record(r, qname, rg)
            plain.append(rec)
            mod.append(rec)
            continue
        a, b = build_records(r, by_name[r.amplicon], places[r.amplicon], min_qual, qname, rg)
        plain.append(a)
        mod.append(b)
    written = [write_bam(out / READS_BAM, bam_header(panel, places, samples, results, command, False), plain),
               write_bam(out / MOD_BAM, bam_header(panel, places, samples, results, command, True), mod)]
    return [fasta, *written]


def output_names() -> tuple[str, ...]:
    return (READS_BAM, READS_BAM + ".bai", MOD_BAM, MOD_BAM + ".bai", AMPLICONS_FA, AMPLICONS_FA + ".fai")

