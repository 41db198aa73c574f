"""The report's clone-pattern sections: the allele split and the heterogeneity table, as plain data.

Pipeline position: called by ``report.build_report``, which renders the sections (headings, notes, tables)
with its own HTML helpers; this module returns text and table cells only, so it holds no HTML.  Reads
stats.tsv and heterogeneity.tsv when ``compare`` wrote them (the figures of the run), else computes them with
the report's compare options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import alleles as A
from .. import patterns as P
from ..clonal import HETEROGENEITY_FILE, METRIC_LABEL
from ..heterogeneity import METRICS


@dataclass(frozen=True)
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: list
    table_id: str


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    notes: tuple[str, ...] = ()
    tables: tuple[Table, ...] = field(default_factory=tuple)


def _num(x, digits: int = 1) -> str:
    if x in (None, ""):
        return ""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return ""
    return f"{v:.{digits}f}"


def _p(x) -> str:
    if x in (None, ""):
        return ""
    v = float(x)
    return "" if math.isnan(v) else (f"{v:.2g}" if v < 0.001 else f"{v:.3f}")


def _read(path, amplicon: str) -> list[dict]:
    """The rows of a table (through the one reader) that belong to ``amplicon``."""
    from ..tsv import read_table

    header, rows = read_table(path)
    out = [dict(zip(header, r)) for r in rows]
    return [r for r in out if r.get("amplicon", amplicon) == amplicon]


def _results(data, config, computed=None) -> tuple[list[dict], list[dict], str]:
    """stats and heterogeneity rows of one amplicon (``data``: its tables, ``CallData.subset``); ``computed``:
    ``stats.amplicon_results`` of them with ``config``, when the report has it already."""
    amplicon = str((data.run.get("amplicon") or {}).get("name", ""))
    stats_path, het_path = data.directory / "stats.tsv", data.directory / HETEROGENEITY_FILE
    if stats_path.is_file() and het_path.is_file():
        return (_read(stats_path, amplicon), _read(het_path, amplicon),
                "from stats.tsv and heterogeneity.tsv (bsmeth compare)")
    from ..stats import amplicon_results, format_value

    rows, het = computed if computed is not None else amplicon_results(data, config)
    fmt = [{k: format_value(v) for k, v in r.items()} for r in rows]
    return fmt, [{k: format_value(v) for k, v in h.items()} for h in het], \
        "computed for this report (run bsmeth compare to write stats.tsv and heterogeneity.tsv)"


def sections(data, config, computed=None) -> list[Section]:
    """The allele-split section and the heterogeneity section of one amplicon's part of the report (``computed``:
    ``stats.amplicon_results(data, config)``, when already computed)."""
    stats, het, source = _results(data, config, computed)
    known = A.known_sites(data)
    scans = A.scan_sites(data, known)
    sites = known + [s for sc in scans for s in sc.sites]
    sets = P.clone_sets(data, A.found_cpgs(scans))
    sheet = {s: {c: v for c, v in zip(data.sample_columns, vals)} for s, *vals in
             data.samples[["sample", *data.sample_columns]].itertuples(index=False, name=None)}
    panel = False  # the report shows these sections per amplicon: no amplicon column in their tables
    return [_allele_section(sites, scans, sets, stats, sheet, data.sample_columns, panel, source),
            _heterogeneity_section(het, stats, data.sample_columns, panel, source)]


def _allele_section(sites, scans, sets, stats, sheet, columns, panel, source) -> Section:
    notes = []
    for sc in scans:
        where = f"amplicon {sc.amplicon}: " if sc.amplicon else ""
        if sc.note:
            notes.append(f"{where}site scan: {sc.note}.")
        elif not sc.sites:
            notes.append(f"{where}no heterozygous site found from the clones besides the known SNP(s) "
                         f"({sc.positions} positions of {sc.reads} pass clones scanned).")
        for s in sc.sites:
            notes.append(f"{where}site found from the clones: {s.name} ({s.evidence})"
                         + (f"; {s.confounded}" if s.confounded else "; clones split by it below") + ".")
    if not sites:
        return Section("alleles", "Allele-specific methylation",
                       (*notes, "No SNP with alleles in the clones (reads.tsv genotype, or a site found from the "
                                 "clones): nothing to split."))
    notes.append("Clones split by the allele they carry; per-clone methylation over the assessable CpGs, the "
                 "SNP's own CpG left out (one allele has no CpG there). Difference = mean per-clone % of the "
                 "alternative minus the reference allele, clone = unit, permutation p (asm_perm_clones in "
                 f"stats.tsv). Statistics {source}.")
    tables = []
    for site in sites:
        label = f"{site.name}: {site.ref}/{site.alt}" + (f" at position {site.pos}" if site.pos else "") + \
            (f", CpG {', '.join(map(str, site.cpgs))}" if site.cpgs else "") + \
            (" (found from the clones)" if site.source == "found" else " (known SNP)")
        if site.confounded:
            notes.append(f"{site.name}: not split: {site.confounded}.")
            continue
        by_scope = {r["scope"]: r for r in stats if r["test"] == "asm_perm_clones" and r["groups"].startswith(
            f"{site.name}=")}
        rows = []
        for cs in [c for c in sets if c.amplicon == site.amplicon]:
            sp = A.split(site, cs)
            scope = f"sample={cs.sample}"
            r = by_scope.get(scope, {})
            ci = f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}" if r.get("ci_low") else ""
            m_ref, n_ref = sp.pooled(0)
            m_alt, n_alt = sp.pooled(1)
            rows.append([*([cs.amplicon] if panel else []), cs.sample, *[sheet.get(cs.sample, {}).get(c, "")
                                                                        for c in columns],
                         str(sp.count(0)), _num(100 * sp.mean(0)), _num(100 * m_ref / n_ref if n_ref else None),
                         str(sp.count(1)), _num(100 * sp.mean(1)), _num(100 * m_alt / n_alt if n_alt else None),
                         _num(r.get("effect")), ci, _p(r.get("p")),
                         str(sp.count(-1)) if sp.count(-1) else "",
                         f"not tested: fewer than {A.ASM_MIN_CLONES} clones of an allele"
                         if min(sp.count(0), sp.count(1)) < A.ASM_MIN_CLONES else ""])
        ref, alt = f"{site.name}={site.ref}", f"{site.name}={site.alt}"
        tables.append(Table(
            label, (*(["amplicon"] if panel else []), "sample", *columns, f"{ref} clones", f"{ref} mean %",
                    f"{ref} pooled %", f"{alt} clones", f"{alt} mean %", f"{alt} pooled %", "difference",
                    "95 % CI", "p", "no allele", "note"),
            rows, f"alleles-{site.name}"))
        more = [r for r in stats if r["test"] in ("asm_perm_stratified", "asm_trend_jt_clones",
                                                  "asm_interaction_ols_hc3", "asm_mannwhitney_clones")
                and site.name in r["groups"]]
        if more:
            tables.append(Table(
                f"{site.name}: pooled over samples, and per allele across conditions",
                ("test", "scope", "groups", "effect", "95 % CI", "p", "n"),
                [[r["test"], r["scope"], r["groups"], _num(r["effect"], 2),
                  f"{_num(r['ci_low'], 2)} to {_num(r['ci_high'], 2)}" if r["ci_low"] else "", _p(r["p"]), r["n"]]
                 for r in more], f"alleles-{site.name}-tests"))
    return Section("alleles", "Allele-specific methylation", tuple(notes), tuple(tables))


def _heterogeneity_section(het, stats, columns, panel, source) -> Section:
    notes = ["Per sample, over its clones: epipolymorphism (Landan 2012) and methylation entropy (Xie 2011) over "
             "windows of 4 consecutive CpGs, PDR (share of clones with >= 4 CpGs called that carry both "
             "methylated and unmethylated CpGs) and MHL (Guo 2017); SNP and primer CpGs left out. Value with a "
             "95 % bootstrap interval over clones, and rarefied: the mean over subsets of the common clone count, "
             "so samples of different sizes compare fairly (the raw values grow with the clone count). "
             f"Definitions: docs/statistics.md. Figures {source}."]
    key = ("amplicon", "sample") if panel else ("sample",)
    samples: dict = {}
    for h in het:
        samples.setdefault(tuple(h.get(k, "") for k in key), {**{c: h.get(c, "") for c in columns}})[h["metric"]] = h
    rows = []
    common = next((h["rarefaction"] for h in het if h.get("rarefied_clones")), "")
    for k, rec in samples.items():
        first = next(rec[m] for m in METRICS if m in rec)
        cells = []
        for m in METRICS:
            h = rec.get(m, {})
            ci = f" ({_num(h.get('ci_low'), 2)}-{_num(h.get('ci_high'), 2)})" if h.get("ci_low") else ""
            cells += [f"{_num(h.get('value'), 3)}{ci}", _num(h.get("rarefied"), 3)]
        rows.append([*k, *[rec.get(c, "") for c in columns], first.get("clones", ""), first.get("rarefied_clones", ""),
                     *cells])
    headers = (*key, *columns, "clones", "rarefied to",
               *[x for m in METRICS for x in (f"{METRIC_LABEL[m]} (95 % CI)", f"{METRIC_LABEL[m]} rarefied")])
    if common:
        notes.append(f"Rarefaction: {common.split(';')[0]}.")
    tables = [Table("Heterogeneity per sample (heterogeneity.tsv)", headers, rows, "heterogeneity")]
    tests = [r for r in stats if r["test"].endswith("_perm") and not r["test"].startswith("asm")]
    if tests:
        by_scope: dict = {}
        for r in tests:
            by_scope.setdefault((r["scope"], r["groups"]), {})[r["test"]] = r
        names = [f"{m}_perm" for m in METRICS] + [f"{m}_trend_perm" for m in METRICS] + ["pattern_mmd_perm"]
        shown = [n for n in names if any(n in v for v in by_scope.values())]
        trows = [[scope, groups, *[(f"{_num(v[n]['effect'], 3)}, p {_p(v[n]['p'])}" if v[n]["effect"]
                                    else f"p {_p(v[n]['p'])}") if n in v and v[n]["p"] else "" for n in shown]]
                 for (scope, groups), v in by_scope.items()]
        tables.append(Table("Comparisons, clone = unit (effect in metric units; permutation p)",
                            ("scope", "groups", *shown), trows, "heterogeneity-tests"))
        notes.append("pattern_mmd_perm tests whether the groups' clones come from one distribution of patterns "
                     "(kernel two-sample test on the pattern distance); it is significant also when only the "
                     "average methylation differs.")
    return Section("heterogeneity", "Epiallele heterogeneity", tuple(notes), tuple(tables))
