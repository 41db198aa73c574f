"""Simulated paired-end bisulfite amplicon sequencing, with truth (``bsmeth simulate --ngs``).

Pipeline position: beside ``simulate.clones``/``simulate.panel`` (it reuses their design: ``Condition`` per sample with
per-CpG methylation probabilities and sheet columns; the default is the seed study's BT474/rBT474 x dose design,
in ``replicates`` biological replicates per condition).  For every sample and amplicon of the panel, molecules
are drawn and sequenced as Illumina read pairs (numpy, vectorised: a million pairs take seconds):

* a molecule: each CpG methylated with its condition's probability (independently), each non-CpG C converted
  with probability ``conversion``; the PCR copies the converted amplified strand from primer to primer;
* a library: ``directional`` (R1 always from the forward primer: OT) or not (R1 from either end: OT or CTOT);
  reads of ``read_length`` bases, adapter read-through past a short insert;
* qualities falling towards the 3' end, substitutions drawn with the probability each PHRED says;
* optional UMIs (``umi_length``): every molecule gets a UMI of its own (distinct within a sample and amplicon)
  and is read as a family of PCR copies whose sizes follow a log-normal law (``family_mean``, ``family_sigma``:
  a large sigma is PCR jackpotting, a few molecules taking many of the reads); the UMI is the last ``:`` field
  of the read names (Illumina's convention); each copy has its own strand read first, qualities, sequencing
  errors and, rarely, an indel (``indel`` is drawn per molecule and planted in its first copy only);
  conversion, methylation and the artefacts primer dimer / other product belong to the molecule;
* planted artefacts, each with the reason ``bsmeth call`` must give (truth column ``expected_reason``):
  ``indel`` (a 1-3 base insertion or deletion in one mate: must pass), ``poor_conversion`` (conversion
  70-85 %: ``low_conversion``), ``primer_dimer`` (the two primers joined: ``no_amplicon``), ``other_product``
  (a converted sequence of no amplicon, e.g. a mispriming product: ``no_amplicon``).

Files (docs/simulate.md): ``fastq/<sample>_R1_001.fastq.gz`` and ``_R2_001``, ``samples.csv`` (file, file2,
sample, cell_line, dose, replicate), ``truth_cpgs.tsv`` (per sample, amplicon and CpG: the design probability and
the percent methylated among the simulated molecules that must pass), ``truth_pairs.tsv.gz`` (per pair: kind,
expected reason, strand, the molecule's true pattern, the errors planted, the molecule and its UMI), ``panel.tsv``,
``README.txt``.  With UMIs, ``truth_cpgs.tsv`` counts molecules (what ``--umi`` should recover), not pairs.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..atomic import write_text, write_with
from ..coords import revcomp
from ..models import Panel
from ..simulate import Condition, Design, seed_study_design

ADAPTER_R1 = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC" + "A" * 40  # TruSeq read-through, then poly-A
ADAPTER_R2 = "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT" + "A" * 40
ARTEFACTS = ("indel", "poor_conversion", "primer_dimer", "other_product")
EXPECTED = {"ok": "", "indel": "", "poor_conversion": "low_conversion", "primer_dimer": "no_amplicon",
            "other_product": "no_amplicon"}
_LETTERS = np.frombuffer(b"ACGT", np.uint8)


@dataclass(frozen=True)
class NgsDesign:
    """What to simulate (docs/simulate.md)."""

    conditions: tuple[Condition, ...]
    pairs: int = 10_000  # read pairs per sample (over all amplicons)
    replicates: int = 2  # biological replicates per condition (samples <condition>_r1, _r2 ...)
    read_length: int = 150
    directional: bool = False
    conversion: float = 0.995
    artefacts: tuple[tuple[str, float], ...] = (("indel", 0.02), ("poor_conversion", 0.01),
                                                ("primer_dimer", 0.01), ("other_product", 0.01))
    quality: tuple[float, float] = (36.0, 3.0)  # PHRED mean at the 5' end and spread; falls towards the 3' end
    umi_length: int = 0  # 0: no UMIs (every pair its own molecule)
    family_mean: float = 4.0  # UMIs: mean read pairs per molecule (log-normal family sizes, at least 1)
    family_sigma: float = 1.0  # UMIs: sigma of log(family size); 2 or more: strong PCR jackpotting


def default_design(panel: Panel, pairs: int = 10_000, replicates: int = 2, seed: int = 20240115) -> NgsDesign:
    """The seed study (BT474/rBT474 x dose 0, 1, 3, 10) for the panel's first amplicon's CpG count; the other
    amplicons get the same mean levels through ``_probabilities``."""
    d: Design = seed_study_design(seed, n_cpgs=len(panel.amplicons[0].cpgs))
    return NgsDesign(d.conditions, pairs=pairs, replicates=replicates)


def _probabilities(cond: Condition, n: int, amp_index: int) -> np.ndarray:
    """Per-CpG probabilities of a condition for an amplicon of ``n`` CpGs: the condition's own for the first
    amplicon (when the count fits), else its mean with a per-CpG spread drawn from the amplicon's index."""
    p = np.atleast_1d(np.asarray(cond.methylation, float))
    if len(p) == n and amp_index == 0:
        return p
    from scipy.special import expit, logit

    mean = float(p.mean())
    eff = np.random.default_rng(1000 + amp_index).normal(0, 0.9, n)
    m = np.clip(mean, 0.01, 0.99)
    base = logit(m) - eff.mean()
    out = expit(base + eff)
    return np.clip(out * (mean / max(out.mean(), 1e-9)), 0, 1)


def _convert(mol: np.ndarray, cpg_c: np.ndarray, meth: np.ndarray, conversion: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Bisulfite-converted molecules: CpG C stay C when methylated, other C become T with probability
    ``conversion`` (per molecule)."""
    n, L = mol.shape
    out = mol.copy()
    is_c = mol == ord("C")
    keep = np.zeros((n, L), bool)
    keep[:, cpg_c] = meth
    conv = rng.random((n, L)) < conversion[:, None]
    noncpg = is_c.copy()
    noncpg[:, cpg_c] = False
    out[noncpg & conv] = ord("T")
    cpg_mask = np.zeros((n, L), bool)
    cpg_mask[:, cpg_c] = True
    out[is_c & cpg_mask & ~keep] = ord("T")
    return out


def _quality(n: int, length: int, mean: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    pos = np.arange(length) / max(1, length - 1)
    q = rng.normal(mean - 10 * pos ** 3, sd, (n, length))
    return np.clip(np.rint(q), 2, 41).astype(np.uint8)


def _errors(seq: np.ndarray, qual: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Substitutions with the probability each PHRED says; (sequences, error mask)."""
    p = 10 ** (-qual.astype(float) / 10.0)
    err = (rng.random(seq.shape) < p) & (seq != 0)
    if err.any():
        shift = rng.integers(1, 4, err.sum())
        code = np.searchsorted(_LETTERS, seq[err])
        code = np.clip(code, 0, 3)
        seq = seq.copy()
        seq[err] = _LETTERS[(code + shift) % 4]
    return seq, err


def _family_sizes(n: int, mean: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Read pairs per molecule, log-normal (at least 1), adding up to ``n`` (the last family cut short)."""
    mu = np.log(max(mean, 1.0)) - sigma ** 2 / 2
    parts: list = []
    total = 0
    while total < n:
        d = np.maximum(1, np.rint(rng.lognormal(mu, sigma, max(16, int(2 * n / max(mean, 1.0)))))).astype(np.int64)
        parts.append(d)
        total += int(d.sum())
    sizes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, n))  # the family that reaches n
    sizes = sizes[:k + 1].copy() if n else sizes[:0]
    if n:
        sizes[-1] -= int(cum[k]) - n
    return sizes


def _umis(m: int, length: int, rng: np.random.Generator) -> list[str]:
    """``m`` distinct random UMIs of ``length`` bases."""
    space = 4 ** length
    if m > space // 2:
        raise ValueError(f"--umi-length {length}: too short for {m} distinct molecules of one sample and amplicon")
    vals = rng.integers(0, space, m)
    while True:
        _, first = np.unique(vals, return_index=True)
        dup = np.setdiff1d(np.arange(m), first)
        if not len(dup):
            break
        vals[dup] = rng.integers(0, space, len(dup))
    digits = (vals[:, None] >> (2 * np.arange(length)[::-1])[None, :]) & 3
    return [row.tobytes().decode() for row in _LETTERS[digits]]


def _reads(frag: list[bytes], length: int, adapter: str) -> np.ndarray:
    ad = adapter.encode()
    return np.frombuffer(b"".join((f + ad)[:length].ljust(length, b"A") for f in frag), np.uint8).reshape(-1, length)


def _fastq(ids: Sequence[str], seq: np.ndarray, qual: np.ndarray, mate: int) -> bytes:
    qtext = (qual + 33).astype(np.uint8)
    out = io.BytesIO()
    for rid, s, q in zip(ids, seq, qtext):
        out.write(b"@%s %d:N:0:1\n%s\n+\n%s\n" % (rid.encode(), mate, s.tobytes(), q.tobytes()))
    return out.getvalue()


@dataclass(frozen=True)
class NgsSimulation:
    out_dir: Path
    sample_sheet: Path
    truth_cpgs: Path
    truth_pairs: Path | None
    n_pairs: int
    samples: tuple[str, ...]


def _gzip(data: bytes) -> bytes:
    try:
        from isal import igzip

        return igzip.compress(data, compresslevel=1, mtime=0)
    except ImportError:  # pragma: no cover - isal comes with dnaio's xopen
        return gzip.compress(data, compresslevel=1, mtime=0)


def simulate_ngs(design: NgsDesign, panel: Panel, out_dir: str | Path, seed: int = 1,
                 truth: bool = True, command: str = "") -> NgsSimulation:
    """Write the FASTQ files, sample sheet and truth of ``design`` for ``panel`` into ``out_dir``."""
    from ..models import CallConfig

    min_conversion = CallConfig().min_conversion
    out = Path(out_dir)
    (out / "fastq").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sheet = ["file,file2,sample,cell_line,dose,replicate"]
    truth_cpg = ["sample\tamplicon\tcpg\tpos\tprobability\tmolecules\tmethylated\tpercent"]
    truth_rows = ["read\tsample\tamplicon\tkind\texpected_reason\tstrand\tpattern\terrors_r1\terrors_r2\tmolecule\tumi"]
    samples = []
    total = 0
    conds = [(replace(c, sample=f"{c.sample}_r{r + 1}"), r + 1) for c in design.conditions
             for r in range(design.replicates)]
    L_read = design.read_length
    for cond, rep in conds:
        s = cond.sample
        samples.append(s)
        ids: list[str] = []
        r1s, r2s, q1s, q2s = [], [], [], []
        n_amp = len(panel)
        share = [design.pairs // n_amp + (1 if i < design.pairs % n_amp else 0) for i in range(n_amp)]
        for ai, amp in enumerate(panel):
            n = share[ai]
            L = amp.length
            target = np.frombuffer(amp.target.upper().encode(), np.uint8)
            cpg_c = np.array([c.target_pos for c in amp.cpgs], int)
            probs = _probabilities(cond, len(amp.cpgs), ai)
            # molecules and their read pairs (without UMIs one pair per molecule); families drawn apart from
            # ``rng`` so that a run without UMIs draws what it always drew
            umis: list[str] = []
            if design.umi_length:
                frng = np.random.default_rng([seed, 104729, len(samples), ai])
                sizes = _family_sizes(n, design.family_mean, design.family_sigma, frng)
                umis = _umis(len(sizes), design.umi_length, frng)
                n_mol = len(sizes)
                fam = np.repeat(np.arange(n_mol), sizes)
            else:
                n_mol = n
                fam = np.arange(n)
            first_copy = np.r_[True, fam[1:] != fam[:-1]] if n else np.zeros(0, bool)
            kinds = np.full(n_mol, "ok", object)
            u = rng.random(n_mol)
            edge = 0.0
            for kind, frac in design.artefacts:
                kinds[(u >= edge) & (u < edge + frac)] = kind
                edge += frac
            meth = rng.random((n_mol, len(cpg_c))) < probs[None, :]
            conversion = np.where(kinds == "poor_conversion", rng.uniform(0.70, 0.85, n_mol), design.conversion)
            mol = _convert(np.broadcast_to(target, (n_mol, L)), cpg_c, meth, conversion, rng)
            # what the molecule itself shows at its non-CpG C outside the primers (what conversion QC sees)
            tpos = np.arange(L)
            f0, f1 = amp.forward_span
            r0, r1_ = amp.reverse_span
            nxt = np.r_[target[1:], ord("N")]
            cph = np.flatnonzero((target == ord("C")) & (nxt != ord("G")) & ~((tpos >= f0) & (tpos < f1))
                                 & ~((tpos >= r0) & (tpos < r1_)))
            mol_conv = (mol[:, cph] == ord("T")).mean(axis=1) if len(cph) else np.ones(n_mol)
            frags = [bytes(m) for m in mol]
            fwd = amp.forward or amp.target[:20]
            rev_end = amp.target[amp.reverse_span[0]:] if amp.reverse else amp.target[-20:]
            for i in np.flatnonzero(kinds == "primer_dimer"):
                dimer = fwd + revcomp(amp.reverse) if amp.reverse else fwd + rev_end
                frags[i] = dimer.encode()
            for i in np.flatnonzero(kinds == "other_product"):
                other = rng.choice(_LETTERS, rng.integers(150, 260))
                other[other == ord("C")] = ord("T")  # an unmethylated, converted product of other DNA
                frags[i] = bytes(other)
            frags = [frags[m] for m in fam]  # a read pair per PCR copy
            # an indel is a copy's own (a polymerase or sequencing slip): the molecule's first copy carries it
            pair_kinds = kinds[fam]
            pair_kinds[(pair_kinds == "indel") & ~first_copy] = "ok"
            # R1 from the forward primer (OT) or, in a non-directional library, from the reverse one (CTOT)
            ctot = (rng.random(n) < 0.5) if not design.directional else np.zeros(n, bool)
            first = [revcomp(f.decode()).encode() if c else f for f, c in zip(frags, ctot)]
            second = [revcomp(f.decode()).encode() for f in first]
            r1 = _reads(first, L_read, ADAPTER_R1)
            r2 = _reads(second, L_read, ADAPTER_R2)
            q1 = _quality(n, L_read, *design.quality, rng)
            q2 = _quality(n, L_read, design.quality[0] - 2, design.quality[1], rng)
            r1, e1 = _errors(r1, q1, rng)
            r2, e2 = _errors(r2, q2, rng)
            indel_note = [""] * n
            for i in np.flatnonzero(pair_kinds == "indel"):
                mate = int(rng.integers(0, 2))
                size = int(rng.integers(1, 4))
                at = int(rng.integers(30, L_read - 30))
                r, _q = (r1, q1) if mate == 0 else (r2, q2)
                row = r[i].copy()
                if rng.random() < 0.5:  # deletion
                    row = np.r_[row[:at], row[at + size:], np.full(size, ord("A"), np.uint8)]
                    indel_note[i] = f"R{mate + 1}:del{size}@{at + 1}"
                else:
                    ins = rng.choice(_LETTERS, size)
                    row = np.r_[row[:at], ins, row[at:]][:L_read]
                    indel_note[i] = f"R{mate + 1}:ins{size}@{at + 1}"
                r[i] = row
            pre = f"SIM:{s}:{amp.name}"
            aid = ([f"{pre}:{i + 1}:{umis[m]}" for i, m in enumerate(fam.tolist())] if umis
                   else [f"{pre}:{i + 1}" for i in range(n)])
            ids += aid
            r1s.append(r1)
            r2s.append(r2)
            q1s.append(q1)
            q2s.append(q2)
            clean = (kinds == "ok") | (kinds == "indel")
            mm = meth[clean]
            for k, c in enumerate(amp.cpgs):
                mk = int(mm[:, k].sum())
                pct = f"{100 * mk / len(mm):.4f}" if len(mm) and not c.under_primer else ""
                truth_cpg.append(f"{s}\t{amp.name}\t{c.number}\t{c.ref_pos + 1}\t{probs[k]:.4f}\t{len(mm)}\t{mk}\t"
                                 f"{pct}")
            if truth:
                letters = np.where(meth, ord("M"), ord("U")).astype(np.uint8)
                letters[:, [c.under_primer for c in amp.cpgs]] = ord("-")
                for i, m in enumerate(fam.tolist()):
                    k = pair_kinds[i]
                    pattern = letters[m].tobytes().decode() if k in ("ok", "indel", "poor_conversion") else ""
                    strand = "CTOT" if ctot[i] else "OT"
                    expected = EXPECTED[k]
                    if k in ("ok", "indel", "poor_conversion"):  # what the molecule itself shows decides
                        expected = "low_conversion" if mol_conv[m] < min_conversion else ""
                    note1 = ";" + indel_note[i] if indel_note[i].startswith("R1") else ""
                    note2 = ";" + indel_note[i] if indel_note[i].startswith("R2") else ""
                    truth_rows.append(f"{aid[i]}\t{s}\t{amp.name}\t{k}\t{expected}\t{strand}\t{pattern}\t"
                                      f"{int(e1[i].sum())}{note1}\t{int(e2[i].sum())}{note2}\t{amp.name}:{m + 1}\t"
                                      f"{umis[m] if umis else ''}")
        # pairs of all amplicons shuffled together, as a sequencer writes them
        order = rng.permutation(len(ids))
        R1, R2 = np.concatenate(r1s)[order], np.concatenate(r2s)[order]
        Q1, Q2 = np.concatenate(q1s)[order], np.concatenate(q2s)[order]
        ids = [ids[i] for i in order]
        f1 = out / "fastq" / f"{s}_R1_001.fastq.gz"
        f2 = out / "fastq" / f"{s}_R2_001.fastq.gz"
        data1, data2 = _gzip(_fastq(ids, R1, Q1, 1)), _gzip(_fastq(ids, R2, Q2, 2))
        write_with(f1, lambda fh, d=data1: fh.write(d))
        write_with(f2, lambda fh, d=data2: fh.write(d))
        total += len(ids)
        sheet.append(f"fastq/{f1.name},fastq/{f2.name},{s},{cond.columns.get('cell_line', '')},"
                     f"{cond.columns.get('dose', '')},{rep}")
    sheet_path = write_text(out / "samples.csv", "\n".join(sheet) + "\n")
    cpgs_path = write_text(out / "truth_cpgs.tsv", "\n".join(truth_cpg) + "\n")
    pairs_path = None
    if truth:
        text = ("\n".join(truth_rows) + "\n").encode()
        pairs_path = out / "truth_pairs.tsv.gz"
        write_with(pairs_path, lambda fh: fh.write(_gzip(text)))
    write_text(out / "panel.tsv", panel_text(panel))
    write_text(out / "README.txt", f"Simulated paired-end bisulfite amplicon sequencing (bsmeth simulate --ngs).\n"
               f"command: {command}\nseed: {seed}\nsamples: {len(samples)}, read pairs: {total} "
               f"({design.pairs} per sample), read length {design.read_length}, "
               f"{'directional' if design.directional else 'non-directional'} library\n"
               f"artefacts (share of molecules): {', '.join(f'{k} {v:g}' for k, v in design.artefacts)}\n"
               + (f"UMIs: {design.umi_length} bases, the last ':' field of the read names; read pairs per molecule "
                  f"log-normal, mean about {design.family_mean:g}, sigma {design.family_sigma:g}\n"
                  if design.umi_length else "") +
               "run: bsmeth run --samples samples.csv --panel panel.tsv --out results\n")
    return NgsSimulation(out, sheet_path, cpgs_path, pairs_path, total, tuple(samples))


def panel_text(panel: Panel) -> str:
    """A panel file of the panel (sequences written in the cells), so the simulated folder can be run alone."""
    rows = ["amplicon\treference\tforward\treverse\tassembly\tchrom\tstart\tstrand\tsnps"]
    for a in panel:
        an = a.anchor
        snps = ";".join(f"{s.name + '=' if s.name else ''}{s.pos + 1}:{s.ref}>{s.alt}" for s in a.snps)
        rows.append("\t".join([a.name, a.reference, a.forward or "", a.reverse or "",
                               an.assembly if an else "", an.chrom if an else "", str(an.start) if an else "",
                               an.strand if an else "", snps]))
    return "\n".join(rows) + "\n"
