"""The report's words: the results summary at the top, the names of the tests, and the glossaries.

Pipeline position: used by ``build`` only; reads the rows of stats.tsv (strings, as written) or of
``stats.amplicon_rows`` (numbers) and the clone table, never recomputes a test.  The glossaries hold one line
for every QC reason and every ``why`` token of ``models`` (a test checks that none is missing) and for every
test of ``stats`` (an unknown test, e.g. from a newer bsmeth, is shown by its id).
"""

from __future__ import annotations

import math
import re
from typing import Optional, Sequence

from ..models import Reason, Why
from .html import esc

ALPHA = 0.05  # the level at which the summary says "rises", "differs" (p as in stats.tsv; see the glossary)
MAX_SENTENCES = 12  # per kind of comparison; the rest are in the statistics table

# test id -> (name in words, kind, what it answers); kind: primary (clone = unit), reference (pooled calls), cpg
TESTS: dict[str, tuple[str, str, str]] = {
    "mannwhitney_clones": (
        "Mann-Whitney U test on per-clone fractions", "primary",
        "Two groups: do their clones' methylation fractions differ? Rank-based (no normal distribution assumed), "
        "one value per clone. Effect: difference of the mean per-clone % (second group minus first) with a "
        "bootstrap 95 % interval over clones."),
    "kruskal_clones": (
        "Kruskal-Wallis test on per-clone fractions", "primary",
        "More than two groups: does any group differ? Rank-based, one value per clone."),
    "trend_jt_clones": (
        "Jonckheere-Terpstra trend test on per-clone fractions", "primary",
        "Does methylation change monotonically with dose (not only linearly)? One value per clone, doses as "
        "ordered groups. Effect: slope of per-clone % per dose unit with a bootstrap 95 % interval, as a size "
        "only."),
    "interaction_ols_hc3": (
        "Interaction: least-squares regression of per-clone % on dose × cell line, HC3 robust errors", "primary",
        "Does dose change methylation differently in the cell lines? Effect: difference of the dose slopes "
        "(percentage points per dose unit) with its 95 % interval; HC3 errors allow unequal variances."),
    "fisher_pooled": (
        "Fisher's exact test on pooled CpG calls", "reference",
        "Reference only (QUMA and BiQ Analyzer report it): every CpG call counted as an independent trial, "
        "which overstates the evidence because CpGs of one molecule are correlated."),
    "trend_cochran_armitage_pooled": (
        "Cochran-Armitage trend test on pooled CpG calls", "reference",
        "Reference only: too many false positives when CpGs within a clone are correlated (measured in "
        "docs/statistics.md)."),
    "fisher_cpg": (
        "Fisher's exact test per CpG", "cpg",
        "Does this CpG differ between two groups? One call per clone at the CpG. Effect: difference in % "
        "methylated with Newcombe's 95 % interval; p_adj: Benjamini-Hochberg over the CpGs of one comparison."),
    # clone patterns (clonal.py; docs/statistics.md "Clone patterns"): alleles, heterogeneity, pattern tests
    "snp_scan": (
        "Scan for a heterozygous site in the clones", "other",
        "At each amplicon position, is one other base read in more clones than sequencing errors explain "
        "(Bonferroni-corrected binomial p)? A site found splits the clones by allele like a known SNP."),
    "asm_perm_clones": (
        "Allele-specific methylation: permutation test on per-clone fractions", "other",
        "Within one sample: do clones of the two alleles differ? Clone = unit, the SNP's own CpG left out; effect: "
        "mean per-clone % of the alternative minus the reference allele, with a bootstrap 95 % interval."),
    "asm_perm_stratified": (
        "Allele-specific methylation pooled over samples: permutation within samples", "other",
        "Over several samples: do the alleles differ, alleles permuted within each sample (so sample "
        "differences cannot pose as an allele effect)?"),
    "asm_trend_jt_clones": (
        "Dose trend per allele: Jonckheere-Terpstra on per-clone fractions", "other",
        "For the clones of one allele: does methylation change monotonically with dose? Answers whether "
        "methylation rises on one allele or both."),
    "asm_interaction_ols_hc3": (
        "Allele x dose interaction: least squares with HC3 errors", "other",
        "Does dose change methylation differently on the two alleles? Effect: difference of the dose slopes."),
    "asm_mannwhitney_clones": (
        "Per allele: Mann-Whitney U between two groups", "other",
        "For the clones of one allele: do the two groups differ (no dose column)?"),
    "pattern_mmd_perm": (
        "Pattern test: kernel two-sample permutation test on clone patterns", "other",
        "Do the groups' clones come from one distribution of methylation patterns? Sensitive to how patterns are "
        "shared, not only to the average (50 % random patterns vs half fully methylated clones)."),
}
_METRIC_WORDS = {"epipolymorphism": "epipolymorphism (Landan 2012)", "entropy": "methylation entropy (Xie 2011)",
                 "pdr": "proportion of discordant reads (PDR)", "mhl": "methylation haplotype load (MHL, Guo 2017)"}
for _m, _words in _METRIC_WORDS.items():
    TESTS[f"{_m}_perm"] = (f"Heterogeneity, {_words}: permutation test between groups", "other",
                           f"Do the groups differ in {_words} over their clones? Clones permuted between the groups; "
                           "effect in metric units (0-1).")
    TESTS[f"{_m}_trend_perm"] = (f"Heterogeneity, {_words}: dose trend by permutation", "other",
                                 f"Does {_words} change with dose? Slope over dose, clones permuted between doses.")

TERMS: tuple[tuple[str, str], ...] = (
    ("clone", "one bacterial colony = one DNA molecule of the PCR product; its CpGs are not independent, so the "
              "clone is the unit of the primary tests."),
    ("per-clone fraction", "methylated / called CpGs of one clone; every clone weighs the same."),
    ("pooled %", "methylated / called CpGs over all clones of a sample (as QUMA and samples.tsv report it)."),
    ("effect", "in percentage points: the second group minus the first (e.g. rBT474 - BT474), or a slope per "
               "dose unit."),
    ("95 % interval", "the range of effects compatible with the data (bootstrap over clones, Newcombe, or HC3)."),
    ("p", "the chance of a difference at least this large if there were none; the summary calls p < 0.05 a "
          "difference."),
    ("p_adj", "p adjusted for the number of tests of one family (Benjamini-Hochberg): per-CpG tests of one "
              "comparison form a family."),
)

REASONS: dict[Reason, str] = {
    Reason.UNREADABLE: "the file or record could not be read as a trace or a sequence (damaged, empty, or another "
                       "format); detail says why.",
    Reason.TOO_LARGE: "the file is larger than the per-input limit (64 MiB on disk or decompressed; README "
                      "\"Limits\"): not read.",
    Reason.LOW_QUALITY: "too few bases of good quality (PHRED at least --min-qual) in the whole read "
                        "(--min-hq-bases), or not one CpG could be called.",
    Reason.NO_AMPLICON: "the read does not align to the amplicon (fewer than 30 bases, or identity at chance "
                        "level): an empty vector or another product.",
    Reason.AMBIGUOUS_AMPLICON: "panel runs: two amplicons fit the read equally well.",
    Reason.LOW_IDENTITY: "bisulfite-aware identity over the covered amplicon below --min-identity (90 %): a poor "
                         "read of the right product.",
    Reason.TOO_MANY_MISMATCHES: "more mismatches than --max-mismatches (off unless set; QUMA uses 10).",
    Reason.MIXED_TRACE: "the chromatogram shows two strong peaks at several CpGs or other Cs: two colonies picked "
                        "together (--keep-mixed keeps such reads).",
    Reason.NO_CPH: "no good-quality non-CpG C in the read: bisulfite conversion cannot be checked.",
    Reason.LOW_CONVERSION: "fewer non-CpG C converted to T than --min-conversion (95 %), or more unconverted than "
                           "--max-unconverted: incomplete bisulfite conversion would read as methylation.",
    Reason.NO_UMI: "amplicon sequencing with --umi: the read pair's names carry no UMI, so it cannot be placed in "
                   "a molecule's family.",
    Reason.UMI_MISMATCH: "amplicon sequencing with --umi: the two mates' names carry different UMIs (or only one "
                         "has one).",
    Reason.DUPLICATE: "a clonal duplicate: the same molecule picked twice (it matches another read of the sample "
                      "at every site, unlikely by chance); the read kept is named in duplicate_of. Amplicon "
                      "sequencing with --umi: another read pair of the same UMI family (one molecule counts once, "
                      "by the consensus of its pairs).",
    Reason.EXCLUDED_BY_USER: "excluded by hand: listed to exclude in the curation file given with --curation.",
}

WHYS: dict[Why, str] = {
    Why.GAP: "the read has a deletion at the CpG's C.",
    Why.OTHER_BASE: "A or G where only C (methylated) or T (unmethylated) is expected.",
    Why.AMBIGUOUS: "N or another IUPAC code from the base caller.",
    Why.LOW_QUALITY: "the base's PHRED is below --min-qual (20): never guessed.",
    Why.NOT_COVERED: "outside the part of the read that aligns.",
    Why.UNDER_PRIMER: "inside a primer site: the primer's own sequence is copied into the product, so never "
                      "assessable.",
    Why.SNP: "the read carries the SNP allele that destroys this CpG: a genotype, not a methylation state.",
    Why.GCG: "--nome only: a GCG site, where the GpC methylase also protects the C.",
    Why.MIXED: "the trace has strong C and T peaks at this CpG: two templates.",
    Why.MATE_CONFLICT: "amplicon sequencing: the two mates of a pair read this CpG differently (one M, one U): "
                       "neither is trusted.",
    Why.UMI_CONFLICT: "amplicon sequencing with --umi: the read pairs of one UMI family (one molecule) read this "
                      "CpG as often M as U: no majority.",
}

MARKS = ("| match, . converted C (T at a non-CpG C), ! unconverted non-CpG C, * CpG, x mismatch, blank: gap; "
         "under the read, the call at each CpG (M methylated, U unmethylated, - not determined).")


def test_name(test: str) -> str:
    return TESTS.get(test, (test, "", ""))[0]


def test_kind(test: str) -> str:
    """primary, reference, cpg or other (a test this bsmeth does not know by name)."""
    if test in TESTS:
        return TESTS[test][1]
    return "cpg" if test.endswith("_cpg") else "other"


# ---------------------------------------------------------------------------------------------
# numbers as the summary writes them


def num(x) -> Optional[float]:
    """A cell of stats.tsv (string or number) as a float; None when empty or not a number."""
    if x is None or x == "":
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def p_html(p: Optional[float]) -> str:
    """p as a reader expects it: 0.032, 0.41; 3.1 × 10<sup>-9</sup> below 0.001."""
    if p is None:
        return "n/a"
    if p >= 0.001:
        return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    if p == 0:
        return "&lt; 10<sup>-300</sup>"
    exp = math.floor(math.log10(p))
    mant = p / 10 ** exp
    return f"{mant:.1f} × 10<sup>{exp}</sup>"


def pts(x: Optional[float], signed: bool = True) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def ci_text(lo: Optional[float], hi: Optional[float]) -> str:
    return f"95 % CI {lo:+.1f} to {hi:+.1f}" if lo is not None and hi is not None else "no interval"


def pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.0f} %" if abs(x) >= 10 else f"{x:.1f} %"


# ---------------------------------------------------------------------------------------------
# groups named in stats.tsv ("cell_line=BT474", "dose=0 < dose=1", "cell_line=B - cell_line=A")

_PAIR = re.compile(r"^([^=]+)=(.*)$", re.S)


def _pair(text: str) -> Optional[tuple[str, str]]:
    m = _PAIR.match(text.strip())
    return (m.group(1), m.group(2)) if m else None


def _levels(groups: str, sep: str) -> Optional[list[tuple[str, str]]]:
    parts = [_pair(x) for x in groups.split(sep)]
    return None if not parts or any(p is None for p in parts) else parts  # type: ignore[return-value]


def _scope_words(scope: str) -> str:
    pair = _pair(scope)
    return "all samples" if scope == "all" or pair is None else f"{pair[0]} {pair[1]}"


class Clones:
    """Mean per-clone % of a selection of clones (the clone table of ``tables.clone_table``)."""

    def __init__(self, clones):
        self.df = clones

    def select(self, *pairs: Optional[tuple[str, str]]):
        df = self.df
        for pair in pairs:
            if pair is None:
                continue
            col, level = pair
            if col not in df.columns:
                return None
            df = df[df[col].astype(str) == level]
        return df

    def mean(self, *pairs) -> tuple[Optional[float], int]:
        df = self.select(*pairs)
        if df is None or not len(df):
            return None, 0
        return float(100 * df["fraction"].mean()), len(df)


def summary_items(rows: Sequence[dict], clones) -> list[tuple[str, list[str]]]:
    """The results in words: (heading, sentences as HTML), from the rows of stats.tsv of one amplicon.

    Each sentence names the comparison, the numbers (group means of per-clone %, effect and interval), the
    test in words and p.  "rises", "differs" mean p < ALPHA; otherwise the sentence says "no clear".
    """
    c = Clones(clones)
    by_test: dict[str, list[dict]] = {}
    for r in rows:
        by_test.setdefault(str(r.get("test", "")), []).append(r)
    out: list[tuple[str, list[str]]] = []

    trends = [_trend_sentence(r, c) for r in by_test.get("trend_jt_clones", [])]
    if trends:
        out.append(("Dose trend", _capped(trends)))
    inter = [_interaction_sentence(r) for r in by_test.get("interaction_ols_hc3", [])]
    if inter:
        out.append(("Do the cell lines respond differently?", inter))
    cpg_by_scope: dict[str, list[dict]] = {}
    for r in by_test.get("fisher_cpg", []):
        cpg_by_scope.setdefault(str(r.get("scope", "")), []).append(r)
    groups = [_two_group_sentence(r, c, cpg_by_scope.get(str(r.get("scope", "")), []))
              for r in by_test.get("mannwhitney_clones", [])]
    groups += [_kruskal_sentence(r) for r in by_test.get("kruskal_clones", [])]
    if groups:
        out.append(("Groups compared", _capped(groups)))
    return out


def _capped(sentences: list[str]) -> list[str]:
    if len(sentences) <= MAX_SENTENCES:
        return sentences
    rest = len(sentences) - MAX_SENTENCES
    return sentences[:MAX_SENTENCES] + [f"… and {rest} more comparisons in the statistics table below."]


def _skipped(r: dict) -> Optional[str]:
    note = str(r.get("note", ""))
    return note if note.startswith("skipped") or num(r.get("p")) is None else None


def _trend_sentence(r: dict, c: Clones) -> str:
    scope = str(r.get("scope", ""))
    who = "All samples" if scope == "all" else esc((_pair(scope) or ("", scope))[1])
    test = "Jonckheere-Terpstra trend test on per-clone fractions"
    skipped = _skipped(r)
    if skipped is not None:
        return f"<b>{who}</b>: dose trend not tested ({esc(skipped)})."
    p, slope = num(r.get("p")), num(r.get("effect"))
    lo, hi = num(r.get("ci_low")), num(r.get("ci_high"))
    n = num(r.get("n"))
    levels = _levels(str(r.get("groups", "")), " < ")
    scope_pair = _pair(scope) if scope != "all" else None
    span = ""
    dose = "dose"
    if levels:
        dose = levels[0][0]
        (m0, _), (m1, _) = c.mean(scope_pair, levels[0]), c.mean(scope_pair, levels[-1])
        if m0 is not None and m1 is not None:
            span = (f" from {pct(m0)} at {esc(dose)} {esc(levels[0][1])} to {pct(m1)} at {esc(dose)} "
                    f"{esc(levels[-1][1])}")
    numbers = (f"slope {pts(slope)} points per {esc(dose)} unit, {ci_text(lo, hi)}; {test}, p = {p_html(p)}"
               f"{f'; {n:.0f} clones' if n is not None else ''}")
    if p is not None and p < ALPHA and slope is not None and slope != 0:
        verb = "rises" if slope > 0 else "falls"
        return f"<b>{who}</b>: methylation {verb} with {esc(dose)}{span} ({numbers})."
    flat = f"{span.replace(' from ', ': ', 1)}" if span else ""
    return f"<b>{who}</b>: no clear trend with {esc(dose)} (flat){flat} ({numbers})."


def _interaction_sentence(r: dict) -> str:
    skipped = _skipped(r)
    if skipped is not None:
        return f"Not tested ({esc(skipped)})."
    p = num(r.get("p"))
    effect, lo, hi = num(r.get("effect")), num(r.get("ci_low")), num(r.get("ci_high"))
    test = "interaction in a least-squares regression of per-clone % on dose × cell line, HC3 robust errors"
    groups = str(r.get("groups", ""))
    m = re.match(r"^slope (.+?) - slope (.+)$", groups)
    if effect is not None and m:
        b, a = (_pair(m.group(1)) or ("", m.group(1)))[1], (_pair(m.group(2)) or ("", m.group(2)))[1]
        size = (f"the dose slope of {esc(b)} minus that of {esc(a)} is {pts(effect)} points per dose unit "
                f"({ci_text(lo, hi)})")
    else:
        size = f"{esc(groups)} (statistic {esc(r.get('statistic', ''))})"
    if p is not None and p < ALPHA:
        return f"Yes: dose acts differently in the cell lines: {size}; {test}, p = {p_html(p)}."
    return f"No clear difference between the cell lines' responses to dose: {size}; {test}, p = {p_html(p)}."


def _two_group_sentence(r: dict, c: Clones, cpg_rows: list[dict]) -> str:
    scope = str(r.get("scope", ""))
    where = _scope_words(scope)
    skipped = _skipped(r)
    if skipped is not None:
        return f"<b>{esc(where)}</b>: not compared ({esc(skipped)})."
    p = num(r.get("p"))
    effect, lo, hi = num(r.get("effect")), num(r.get("ci_low")), num(r.get("ci_high"))
    test = "Mann-Whitney U test on per-clone fractions"
    levels = _levels(str(r.get("groups", "")), " - ")
    scope_pair = _pair(scope) if scope != "all" else None
    if levels and len(levels) == 2:
        (b_mean, nb), (a_mean, na) = c.mean(scope_pair, levels[0]), c.mean(scope_pair, levels[1])
        b, a = esc(levels[0][1]), esc(levels[1][1])
        means = f"{b} {pct(b_mean)} vs {a} {pct(a_mean)} ({nb} vs {na} clones)"
    else:
        b, a = "the second group", "the first"
        means = esc(str(r.get("groups", "")))
    size = f"difference {pts(effect)} points, {ci_text(lo, hi)}"
    if p is not None and p < ALPHA and effect is not None and effect != 0:
        head = f"{b} is {'more' if effect > 0 else 'less'} methylated than {a}"
    else:
        head = f"no clear difference between {b} and {a}"
    cpg = _cpg_count(cpg_rows)
    return f"<b>{esc(where)}</b>: {head}: {means}; {size}; {test}, p = {p_html(p)}.{cpg}"


def _cpg_count(rows: list[dict]) -> str:
    tested = [num(r.get("p_adj")) for r in rows if num(r.get("p_adj")) is not None]
    if not tested:
        return ""
    k = sum(p < ALPHA for p in tested)  # type: ignore[operator]
    return (f" Per CpG (Fisher's exact test, Benjamini-Hochberg): {k} of {len(tested)} CpGs differ at "
            f"p_adj &lt; {ALPHA}.")


def _kruskal_sentence(r: dict) -> str:
    where = _scope_words(str(r.get("scope", "")))
    skipped = _skipped(r)
    if skipped is not None:
        return f"<b>{esc(where)}</b>: not compared ({esc(skipped)})."
    p = num(r.get("p"))
    verdict = "the groups differ" if p is not None and p < ALPHA else "no clear difference between the groups"
    return (f"<b>{esc(where)}</b>: {verdict} ({esc(r.get('groups', ''))}; Kruskal-Wallis test on per-clone "
            f"fractions, p = {p_html(p)}; {esc(r.get('note', ''))}).")
