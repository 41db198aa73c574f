"""Allele-specific methylation: clones split by the allele they carry, and heterozygous sites found from the
clones themselves.

Pipeline position: part of ``compare`` (called through ``clonal``); reads the loaded call folder only
(reads.tsv ``genotype``, alignments.txt for the site scan, run.json for the amplicon and its SNPs).

Known SNPs (``--snp``, and rs2854744 shipped with the IGFBP3 amplicon): each clone's allele is reads.tsv's
``genotype`` (``rs2854744:C``).  Sites found from the clones (``scan_sites``): at each amplicon position the
clones' letters that a bisulfite-converted reference cannot produce (anything but C/T at a C, anything but
the reference letter elsewhere) are counted; a position where one such letter is far more frequent than the
folder's background mismatch rate (binomial tail, Bonferroni over positions and letters) and is carried by at
least ``SCAN_MIN_READS`` clones and ``SCAN_MIN_SHARE`` of them is a heterozygous (or homozygous) site.

A C/T SNP on the assayed strand cannot be told from conversion: a T allele reads as a converted C, a C allele
reads T unless its C is methylated.  Such a known SNP is flagged and not split (``genotype`` would put every
converted clone in the T allele); the scan reports a position whose non-CpG C escapes conversion in many
clones, or a T read as C, as a flagged site, never splits on it, and cannot see a C>T SNP at all (documented
in docs/statistics.md).  A site at the C or the G of a CpG destroys that CpG in one allele: the CpG is left
out of every pattern (``patterns.excluded_cpgs``), as a known SNP's CpG is.

The split: per sample, the difference of mean per-clone methylation (alt - ref, clone = unit, per-clone %
over the assessable CpGs, SNP CpGs left out) with an exact (or Monte-Carlo) permutation p and a bootstrap
interval; pooled over samples, the same statistic stratified by sample (permutations within samples).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .memo import by_key
from .patterns import AMPLICON, EXACT_LIMIT, PERMUTATIONS, CloneSet, label_draws, permutation_p

SCAN_ALPHA = 1e-3  # Bonferroni-adjusted binomial p below which a position is a site
SCAN_MIN_READS = 3  # clones that must carry the other letter
SCAN_MIN_SHARE = 0.10  # ... and their share of the clones covering the position
SCAN_MIN_RATE = 1e-3  # floor of the background rate (a folder of perfect reads would make any letter significant)
ASM_MIN_CLONES = 2  # clones of each allele a sample needs for the split test
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


@dataclass(frozen=True)
class Site:
    """A position whose alleles split the clones."""

    amplicon: str
    name: str  # the SNP's name (rs2854744), or POS:REF>ALT for a site found from the clones
    ref: str  # allele letters, reference (top) strand, as in --snp and genotype
    alt: str
    pos: int  # 1-based FASTA position (0 when unknown)
    cpgs: tuple[int, ...]  # CpG numbers the site sits on (left out of the patterns)
    source: str  # 'known' (--snp) or 'found' (scan_sites)
    confounded: str = ""  # why the clones cannot be split here ('' = they can)
    alleles: dict = field(default_factory=dict, compare=False)  # read -> allele letter (ref or alt)
    evidence: str = ""  # scan: counts and p


# =============================================================================================
# run.json helpers


def amplicon_meta(run: dict, amplicon: str = "") -> dict:
    """run.json's description of ``amplicon`` ('' = the only one): the ``amplicon`` entry (one amplicon's
    tables, ``CallData.subset``, carry theirs there), else the matching entry of ``amplicons``."""
    one = run.get("amplicon")
    if isinstance(one, dict) and (not amplicon or one.get("name", amplicon) == amplicon):
        return one
    many = run.get("amplicons")
    if isinstance(many, list):
        for a in many:
            if isinstance(a, dict) and (a.get("name") == amplicon or not amplicon):
                return a
    return one if isinstance(one, dict) else {}


def _strand_letter(letter: str, meta: dict) -> str:
    """A top-strand letter as read on the amplified strand."""
    return letter if meta.get("strand", "top") == "top" else _COMPLEMENT.get(letter, letter)


def _ct_confounded(ref: str, alt: str, meta: dict) -> str:
    pair = {_strand_letter(ref, meta), _strand_letter(alt, meta)}
    if pair == {"C", "T"}:
        return ("C/T on the assayed strand: a T allele reads as a converted C and a C allele reads T unless "
                "methylated, so clones cannot be assigned to an allele; assay the other strand (G/A there)")
    return ""


# =============================================================================================
# known SNPs: reads.tsv genotype


def known_sites(data) -> list[Site]:
    """The known SNPs seen in reads.tsv ``genotype``, with each pass clone's allele."""
    reads = data.reads
    if "genotype" not in reads.columns:
        return []
    passing = reads[reads["status"] == "pass"]
    amp_col = passing[AMPLICON].tolist() if AMPLICON in passing.columns else [""] * len(passing)
    seen: dict = {}
    for amp, rid, gt in zip(amp_col, passing["read"].tolist(), passing["genotype"].tolist()):
        for item in str(gt).split(","):
            if ":" not in item:
                continue
            name, allele = item.rsplit(":", 1)
            seen.setdefault((amp, name), {})[rid] = allele
    cpg_notes = _snp_cpgs(data)
    out = []
    for (amp, name), alleles in seen.items():
        meta = amplicon_meta(data.run, amp)
        snp = next((s for s in meta.get("snps", []) or [] if isinstance(s, dict) and
                    (s.get("name") or str(s.get("pos"))) == name), {})
        letters = list(dict.fromkeys(sorted(alleles.values())))
        ref = snp.get("ref") or (letters[0] if letters else "")
        alt = snp.get("alt") or next((x for x in letters if x != ref), "")
        out.append(Site(amp, name, ref, alt, int(snp.get("pos") or 0), tuple(cpg_notes.get((amp, name), ())),
                        "known", _ct_confounded(ref, alt, meta) if alt else "", alleles))
    return out


def _snp_cpgs(data) -> dict:
    """(amplicon, SNP name) -> CpG numbers noted ``snp:<name>`` in summary.tsv."""
    s = data.summary
    amp_col = s[AMPLICON].tolist() if AMPLICON in s.columns else [""] * len(s)
    out: dict = {}
    for amp, c, note in zip(amp_col, s["cpg"].tolist(), s["note"].tolist()):
        if note.startswith("snp:"):
            cpgs = out.setdefault((amp, note[4:]), [])
            if int(c) not in cpgs:
                cpgs.append(int(c))
    return out


# =============================================================================================
# sites found from the clones


@dataclass(frozen=True)
class AlignedBases:
    """One read's alignment from alignments.txt: the amplified-strand letters it covers and its letters there."""

    read: str
    amplicon: str
    status: str
    start: int  # 0-based amplicon position of the first covered letter
    target: str  # reference letters (amplified strand), no gaps
    bases: str  # the read's letter at each of them ('-' for a deletion)


_KEY = re.compile(r"(\w+)=(\S*)")


def parse_alignments(text: str) -> list[AlignedBases]:
    """Every read block of alignments.txt (docs/outputs.md): header, then blocks of target / marks / read / calls.
    The target line's label is the 1-based amplicon position of its first letter; insertions in the read
    (target '-') are dropped."""
    out: list[AlignedBases] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(">"):
            i += 1
            continue
        head = line[1:].split(" ", 1)
        keys = dict(_KEY.findall(head[1] if len(head) > 1 else ""))
        i += 1
        start: Optional[int] = None
        target, bases = [], []
        while i < len(lines) and not lines[i].startswith(">"):
            if lines[i].strip() == "" or i + 2 >= len(lines):
                i += 1
                continue
            label, t_line, r_line = lines[i][:6], lines[i][6:], lines[i + 2][6:]
            if start is None:
                if not label.strip().isdigit():
                    i += 5  # a block of inserted bases before the first labelled one: nothing to place
                    continue
                start = int(label) - 1
            for tc, rc in zip(t_line, r_line.ljust(len(t_line))):
                if tc != "-":
                    target.append(tc)
                    bases.append(rc if rc.strip() else "-")
            i += 5
        if start is not None:
            out.append(AlignedBases(head[0], keys.get(AMPLICON, ""), keys.get("status", ""), start,
                                    "".join(target), "".join(bases)))
    return out


def _compatible(g: str, b: str) -> bool:
    return b == g or (g == "C" and b == "T")


def _bdtrc_tail(k: int, n: int, p: float) -> float:
    """P(X >= k), X ~ Binomial(n, p)."""
    from scipy.special import bdtrc

    return 1.0 if k <= 0 else float(bdtrc(k - 1, n, p))


def _cpg_targets(meta: dict) -> dict:
    """0-based amplified-strand position of each CpG's C -> CpG number, from run.json."""
    out = {}
    try:
        start, end, top = int(meta["start"]), int(meta["end"]), meta.get("strand", "top") == "top"
    except (KeyError, TypeError, ValueError):
        return out
    for c in meta.get("cpgs", []) or []:
        if isinstance(c, dict) and "pos" in c and "cpg" in c:
            pos = int(c["pos"])
            out[pos - start if top else end - 1 - pos] = int(c["cpg"])
    return out


def _fasta_pos(t: int, meta: dict) -> int:
    try:
        start, end = int(meta["start"]), int(meta["end"])
    except (KeyError, TypeError, ValueError):
        return 0
    return start + t if meta.get("strand", "top") == "top" else end - t


@dataclass(frozen=True)
class Scan:
    """What the scan looked at, for the report and the ``snp_scan`` rows."""

    amplicon: str
    positions: int  # positions scanned
    reads: int  # pass reads with an alignment
    mismatch_rate: float  # background: letters a converted reference cannot give, per covered letter
    unconverted_rate: float  # background: non-CpG C read as C
    sites: tuple[Site, ...]
    note: str = ""


def scan_sites(data, known: Optional[list[Site]] = None) -> list[Scan]:
    """Heterozygous sites found from the pass clones of each amplicon (positions of known SNPs and primers are
    skipped).  Needs alignments.txt; without it each amplicon's ``Scan`` says so."""
    path: Optional[Path] = data.alignments_path
    known = known or []
    amps = list(dict.fromkeys(data.cpg_calls[AMPLICON].tolist())) if AMPLICON in data.cpg_calls.columns else [""]
    if path is None:
        return [Scan(a, 0, 0, math.nan, math.nan, (), "alignments.txt not found: no scan") for a in amps]
    raw = path.read_bytes()
    version = hashlib.blake2b(raw, digest_size=16).digest()  # the file's content (a rewrite can keep size and time)
    parsed = by_key(_PARSED, version, _parse_bytes, raw)
    aligned = [a for a in parsed if a.status == "pass"]
    # a panel's alignments.txt may not name the amplicon in each header: then the read's calls do
    amp_of = (dict(zip(data.cpg_calls["read"].tolist(), data.cpg_calls[AMPLICON].tolist()))
              if AMPLICON in data.cpg_calls.columns else {})
    out = []
    for amp in amps:
        meta = amplicon_meta(data.run, amp)
        mine = [a for a in aligned if (a.amplicon or amp_of.get(a.read, "")) == amp]
        mine_known = [s for s in known if s.amplicon == amp]
        # everything _scan_amplicon reads: the reads (this version of the file), the amplicon, the known positions
        key = (version, amp, json.dumps(meta, sort_keys=True), tuple(s.pos for s in mine_known),
               tuple(a.read for a in mine))
        out.append(by_key(_SCANS, key, _scan_amplicon, amp, meta, mine, mine_known))
    return out


# One process draws the lollipop (its clones grouped by a site) and writes the report's allele section from
# the same scan of the same file (2,000 reads: 0.2 s a scan): the last few files parsed and scans made are kept
# (``memo.by_key``).
_PARSED: dict = {}
_SCANS: dict = {}


def _parse_bytes(raw: bytes) -> list[AlignedBases]:
    """``parse_alignments`` of a file's bytes, read as ``Path.read_text`` would (UTF-8, newlines translated)."""
    return parse_alignments(raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n"))


def _scan_amplicon(amp: str, meta: dict, aligned: list[AlignedBases], known: list[Site]) -> Scan:
    length = max([a.start + len(a.target) for a in aligned] + [int(meta.get("length") or 0)])
    if not aligned or length == 0:
        return Scan(amp, 0, len(aligned), math.nan, math.nan, (), "no pass read with an alignment")
    target = [""] * length
    letters = np.full((len(aligned), length), " ", dtype="U1")
    for r, a in enumerate(aligned):
        letters[r, a.start:a.start + len(a.bases)] = list(a.bases)
        for k, g in enumerate(a.target):
            target[a.start + k] = g
    tgt = np.array([g or " " for g in target], dtype="U1")
    skip = np.zeros(length, bool)
    f_len, r_len = len(meta.get("forward") or ""), len(meta.get("reverse") or "")
    skip[:f_len] = True
    if r_len:
        skip[length - r_len:] = True
    cpg_at = _cpg_targets(meta)
    top = meta.get("strand", "top") == "top"
    for s in known:
        if s.pos:
            t = s.pos - int(meta.get("start", 1)) if top else int(meta.get("end", 0)) - s.pos
            if 0 <= t < length:
                skip[t] = True
    is_cpg = np.array([tgt[t] == "C" and t + 1 < length and tgt[t + 1] == "G" for t in range(length)])
    acgt = np.isin(letters, list("ACGT"))
    compatible = (letters == tgt[None, :]) | ((tgt[None, :] == "C") & (letters == "T"))
    mism = acgt & ~compatible & ~skip[None, :] & (tgt[None, :] != " ")
    covered = (acgt & ~skip[None, :] & (tgt[None, :] != " ")).sum(axis=0)
    n_cov = int(covered.sum())
    rate = max(SCAN_MIN_RATE, float(mism.sum()) / n_cov) if n_cov else SCAN_MIN_RATE
    non_cpg_c = (tgt == "C") & ~is_cpg & ~skip
    c_reads = ((letters == "C") | (letters == "T")) & non_cpg_c[None, :]
    unconv = (letters == "C") & non_cpg_c[None, :]
    u_rate = max(SCAN_MIN_RATE, float(unconv.sum()) / max(1, int(c_reads.sum())))
    scanned = int(((covered > 0) & ~skip).sum())
    tests = max(1, 3 * scanned)
    sites = []
    for t in range(length):
        if skip[t] or covered[t] == 0:
            continue
        n = int(covered[t])
        best, k = "", 0
        for b in "ACGT":
            kb = int((mism[:, t] & (letters[:, t] == b)).sum())
            if kb > k:
                best, k = b, kb
        kind = ""
        if k:
            p = min(1.0, tests * _bdtrc_tail(k, n, rate / 3))
        else:
            p = 1.0
        if non_cpg_c[t]:
            nc = int(c_reads[:, t].sum())
            ku = int(unconv[:, t].sum())
            pu = min(1.0, tests * _bdtrc_tail(ku, nc, u_rate)) if ku else 1.0
            if pu < p and ku >= SCAN_MIN_READS and ku / max(nc, 1) >= SCAN_MIN_SHARE and pu < SCAN_ALPHA:
                best, k, n, p, kind = "C", ku, nc, pu, "unconverted"
        if p >= SCAN_ALPHA or k < SCAN_MIN_READS or k / n < SCAN_MIN_SHARE:
            continue
        g = tgt[t]
        cpgs = tuple(cpg_at[x] for x in (t, t - 1) if x in cpg_at and (x == t or g == "G"))
        ref_top = g if top else _COMPLEMENT.get(g, g)
        alt_top = best if top else _COMPLEMENT.get(best, best)
        pos = _fasta_pos(t, meta)
        name = f"{pos}:{ref_top}>{alt_top}" if pos else f"amplicon position {t + 1}:{g}>{best}"
        if kind == "unconverted" or {g, best} == {"C", "T"}:
            confounded = ("C/T on the assayed strand: " + (
                "this non-CpG C escapes conversion in many clones (a SNP creating a CpG, non-CpG methylation, "
                "or a local conversion failure)" if kind == "unconverted" else
                "a T read as C: a C allele is seen only where its C is protected from conversion") +
                "; clones reading T may carry either allele, so they are not split")
        else:
            confounded = ""
        alleles = {}
        if not confounded:
            for r, a in enumerate(aligned):
                b = letters[r, t]
                if b == best:
                    alleles[a.read] = alt_top
                elif b in "ACGT" and _compatible(g, b):
                    alleles[a.read] = ref_top
        evidence = f"{k}/{n} clones read {best} at amplicon position {t + 1} (reference {g}); Bonferroni p = {p:.3g}"
        sites.append(Site(amp, name, ref_top, alt_top, pos, cpgs, "found", confounded, alleles, evidence))
    return Scan(amp, scanned, len(aligned), float(mism.sum()) / n_cov if n_cov else math.nan,
                float(unconv.sum()) / max(1, int(c_reads.sum())), tuple(sites))


def found_cpgs(scans: list[Scan]) -> dict:
    """{amplicon: {cpg: 'snp:<name>'}} for the CpGs under sites found by the scan (to leave out of patterns)."""
    out: dict = {}
    for sc in scans:
        for s in sc.sites:
            for c in s.cpgs:
                out.setdefault(sc.amplicon, {})[c] = f"snp:{s.name}"
    return out


# =============================================================================================
# the split


@dataclass(frozen=True)
class AlleleSplit:
    """One sample's clones split by their allele at ``site``."""

    site: Site
    clones: CloneSet
    labels: np.ndarray  # per clone of ``clones``: 0 = ref, 1 = alt, -1 = allele not readable
    fractions: np.ndarray  # per clone: methylated fraction over the assessable CpGs (site CpGs left out)

    def count(self, label: int) -> int:
        return int((self.labels == label).sum())

    def mean(self, label: int) -> float:
        f = self.fractions[self.labels == label]
        return float(f.mean()) if len(f) else math.nan

    def pooled(self, label: int) -> tuple[int, int]:
        """(methylated, called) CpG calls of the allele's clones."""
        x = self.clones.calls[self.labels == label]
        called = ~np.isnan(x)
        return int(np.nansum(x)), int(called.sum())


def split(site: Site, clones: CloneSet) -> AlleleSplit:
    labels = np.array([1 if site.alleles.get(r) == site.alt else 0 if site.alleles.get(r) == site.ref else -1
                       for r in clones.reads], dtype=int)
    return AlleleSplit(site, clones, labels, clones.fractions())


def read_alleles(site: Site) -> dict:
    """read -> 'name=allele' labels, e.g. for ``patterns.clone_layout`` (rows grouped by allele)."""
    return {r: f"{site.name}={a}" for r, a in site.alleles.items()}


@dataclass(frozen=True)
class AlleleTest:
    statistic: float  # weighted mean difference alt - ref of per-clone fractions
    p: float
    ci: tuple[float, float]
    n: int
    exact: bool
    draws: int
    strata: int


def _weighted_difference(fr: np.ndarray, draws: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """sum_s w_s (mean alt - mean ref) / sum_s w_s per row of ``draws`` (0/1 labels), w_s = n1 n2 / (n1 + n2)."""
    num = np.zeros(len(draws))
    den = 0.0
    for s in np.unique(strata):
        idx = strata == s
        lab = draws[:, idx]
        f = fr[idx]
        n1 = lab.sum(axis=1)
        n0 = idx.sum() - n1
        if n1[0] == 0 or n0[0] == 0:
            continue
        w = n1[0] * n0[0] / (n1[0] + n0[0])
        d = (lab * f).sum(axis=1) / n1 - ((1 - lab) * f).sum(axis=1) / n0
        num += w * d
        den += w
    return num / den if den > 0 else np.full(len(draws), np.nan)


def allele_test(fractions: np.ndarray, labels: np.ndarray, strata: np.ndarray, rng: np.random.Generator,
                reps: int = PERMUTATIONS, boot: int = 4000, exact_limit: int = EXACT_LIMIT) -> AlleleTest:
    """Permutation test (allele labels permuted within strata) of the weighted alt - ref difference of mean
    per-clone fraction, with a percentile bootstrap interval (clones resampled within stratum x allele)."""
    fr = np.asarray(fractions, float)
    lab = np.asarray(labels, int)
    st = np.asarray(strata)
    draws, exact = label_draws(lab, st, rng, reps, exact_limit)
    stats = _weighted_difference(fr, draws, st)
    p = permutation_p(stats, exact)
    # bootstrap: resample clones within each stratum x allele cell; the labels stay
    cells: dict = {}  # (stratum, allele) -> its clones, cells in first-appearance order (their draws' order)
    for i, key in enumerate(zip(st.tolist(), lab.tolist())):
        cells.setdefault(key, []).append(i)
    means = {}
    for key, members in cells.items():
        idx = np.array(members)
        resampled = fr[idx[rng.integers(0, len(idx), size=(boot, len(idx)))]]
        # summed clone after clone (column-major), as the selection of the cell's columns was summed before
        means[key] = (np.asfortranarray(resampled).mean(axis=1), len(idx))
    bs = _bootstrap_stat(means, boot)
    lo, hi = (np.nanquantile(bs, [0.025, 0.975]) if np.isfinite(bs).sum() >= 2 else (math.nan, math.nan))
    return AlleleTest(float(stats[0]), p, (float(lo), float(hi)), len(fr), exact, len(draws) - 1,
                      len(np.unique(st)))


def _bootstrap_stat(means: dict, reps: int) -> np.ndarray:
    """``_weighted_difference`` of resampled cell means: ``means[(stratum, allele)]`` = (the cell's mean in each
    of ``reps`` resamples, its clone count)."""
    num = np.zeros(reps)
    den = 0.0
    for s in sorted({s for s, _ in means}):
        if (s, 1) not in means or (s, 0) not in means:
            continue
        (alt, n1), (ref, n0) = means[(s, 1)], means[(s, 0)]
        w = n1 * n0 / (n1 + n0)
        num += w * (alt - ref)
        den += w
    return num / den if den > 0 else np.full(reps, np.nan)


# =============================================================================================
# for the figures


def grouping_sites(data) -> tuple[dict, list[Scan]]:
    """(amplicon -> the ``Site`` its clones are grouped by, the scans): an amplicon's first splittable site, a
    known SNP (reads.tsv order) before one found by ``scan_sites``; amplicons without one are absent.  The
    scans give ``found_cpgs`` (CpGs the patterns leave out)."""
    known = known_sites(data)
    scans = scan_sites(data, known)
    out: dict = {}
    for s in known + [x for sc in scans for x in sc.sites]:
        if not s.confounded:
            out.setdefault(s.amplicon, s)
    return out, scans


def clone_layouts(data, cluster: bool = True) -> dict:
    """(amplicon, sample) -> ``patterns.CloneLayout`` for the lollipop panels: clones grouped by their allele at
    the amplicon's first splittable site (``grouping_sites``; no grouping without one), ordered by hierarchical
    clustering within each group, with the dendrogram's lines.  Pass reads with no call at an assessable CpG
    are not in a layout (they carry no pattern): draw them after its last row."""
    from .patterns import clone_layout, clone_sets

    sites, scans = grouping_sites(data)
    out = {}
    for cs in clone_sets(data, found_cpgs(scans)):
        site = sites.get(cs.amplicon)
        out[(cs.amplicon, cs.sample)] = clone_layout(cs, read_alleles(site) if site else None, cluster)
    return out
