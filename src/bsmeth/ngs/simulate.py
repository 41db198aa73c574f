"""Simulated paired-end bisulfite amplicon sequencing, with truth (``bsmeth simulate --ngs``).

Pipeline position: beside ``simulate``/``simulate_panel`` (it reuses their design: ``Condition`` per sample with
per-CpG methylation probabilities and sheet columns; the default is the seed study's BT474/rBT474 x dose design,
in ``replicates`` biological replicates per condition).  For every sample and amplicon of the panel, molecules
are drawn and sequenced as Illumina read pairs (numpy, vectorised: a million pairs take seconds):

* a molecule: each CpG methylated with its condition's probability (independently), each non-CpG C converted
  with probability ``conversion``; the PCR copies the converted amplified strand from primer to primer;
* a library: ``directional`` (R1 always from the forward primer: OT) or not (R1 from either end: OT or CTOT);
  reads of ``read_length`` bases, adapter read-through past a short insert;
* qualities falling towards the 3' end, substitutions drawn with the probability each PHRED says;
* planted artefacts, each with the reason ``bsmeth call`` must give (truth column ``expected_reason``):
  ``indel`` (a 1-3 base insertion or deletion in one mate: must pass), ``poor_conversion`` (conversion
  70-85 %: ``low_conversion``), ``primer_dimer`` (the two primers joined: ``no_amplicon``), ``other_product``
  (a converted sequence of no amplicon, e.g. a mispriming product: ``no_amplicon``).

Files (docs/simulate.md): ``fastq/<sample>_R1_001.fastq.gz`` and ``_R2_001``, ``samples.csv`` (file, file2,
sample, cell_line, dose, replicate), ``truth_cpgs.tsv`` (per sample, amplicon and CpG: the design probability and
the percent methylated among the simulated molecules that must pass), ``truth_pairs.tsv.gz`` (per pair: kind,
expected reason, strand, the molecule's true pattern and the errors planted), ``panel.tsv``, ``README.txt``.
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
    truth_rows = ["read\tsample\tamplicon\tkind\texpected_reason\tstrand\tpattern\terrors_r1\terrors_r2"]
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
            kinds = np.full(n, "ok", object)
            u = rng.random(n)
            edge = 0.0
            for kind, frac in design.artefacts:
                kinds[(u >= edge) & (u < edge + frac)] = kind
                edge += frac
            meth = rng.random((n, len(cpg_c))) < probs[None, :]
            conversion = np.where(kinds == "poor_conversion", rng.uniform(0.70, 0.85, n), design.conversion)
            mol = _convert(np.broadcast_to(target, (n, L)), cpg_c, meth, conversion, rng)
            # what the molecule itself shows at its non-CpG C outside the primers (what conversion QC sees)
            tpos = np.arange(L)
            f0, f1 = amp.forward_span
            r0, r1_ = amp.reverse_span
            nxt = np.r_[target[1:], ord("N")]
            cph = np.flatnonzero((target == ord("C")) & (nxt != ord("G")) & ~((tpos >= f0) & (tpos < f1))
                                 & ~((tpos >= r0) & (tpos < r1_)))
            mol_conv = (mol[:, cph] == ord("T")).mean(axis=1) if len(cph) else np.ones(n)
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
            for i in np.flatnonzero(kinds == "indel"):
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
            aid = [f"{pre}:{i + 1}" for i in range(n)]
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
                for i in range(n):
                    k = kinds[i]
                    pattern = letters[i].tobytes().decode() if k in ("ok", "indel", "poor_conversion") else ""
                    strand = "CTOT" if ctot[i] else "OT"
                    expected = EXPECTED[k]
                    if k in ("ok", "indel", "poor_conversion"):  # what the molecule itself shows decides
                        expected = "low_conversion" if mol_conv[i] < min_conversion else ""
                    truth_rows.append(f"{aid[i]}\t{s}\t{amp.name}\t{k}\t{expected}\t{strand}\t{pattern}\t"
                                      f"{int(e1[i].sum())}{';' + indel_note[i] if indel_note[i].startswith('R1') else ''}"
                                      f"\t{int(e2[i].sum())}{';' + indel_note[i] if indel_note[i].startswith('R2') else ''}")
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
               f"artefacts (share of pairs): {', '.join(f'{k} {v:g}' for k, v in design.artefacts)}\n"
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
