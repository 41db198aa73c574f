"""The clone-pattern part of ``compare``: allele split, heterogeneity and pattern tests as tidy rows.

Pipeline position: called by ``stats.compare_results`` after the per-clone methylation tests; reads only the
loaded call folder.  Builds the clone matrices once (``patterns.clone_sets``, after leaving out the CpGs of
SNPs known or found by ``alleles.scan_sites``) and returns

* rows for stats.tsv (``stats.STATS_COLUMNS``): ``snp_scan``, ``asm_perm_clones`` (per sample),
  ``asm_perm_stratified`` (pooled, stratified by sample), ``asm_trend_jt_clones`` and
  ``asm_interaction_ols_hc3`` (per allele over dose, per cell line) or ``asm_mannwhitney_clones`` (per allele
  between two groups, without a dose), ``<metric>_perm`` and ``<metric>_trend_perm`` for each heterogeneity
  metric, ``pattern_mmd_perm``;
* rows for heterogeneity.tsv (``HETEROGENEITY_COLUMNS``): per sample and metric.

Scopes follow ``compare``'s roles: the ``by`` groups within each ``within`` level, over all levels
(stratified by level), and over dose per cell line.  With an ``amplicon`` column every analysis runs per
amplicon (``stats.compare_results`` calls this module with one amplicon's tables at a time).  Every test draws
from its own generator, seeded by ``CompareConfig.seed`` and the test's name and scope, so rows do not depend on
each other.
"""

from __future__ import annotations

import math
import zlib
from typing import Optional

import numpy as np

from . import alleles as A
from . import heterogeneity as H
from . import patterns as P

HETEROGENEITY_FILE = "heterogeneity.tsv"
METRIC_LABEL = {"epipolymorphism": "epipolymorphism", "entropy": "methylation entropy", "pdr": "PDR",
                "mhl": "MHL"}


def _rng(seed: int, *key) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def _scope(amplicon: str, scope: str) -> str:
    """The scope column of a row.  The amplicon is not part of it: stats.tsv has an ``amplicon`` column and
    ``stats.compare_results`` runs this module once per amplicon."""
    return scope


def heterogeneity_columns(data) -> tuple[str, ...]:
    amp = (P.AMPLICON,) if P.has_amplicon(data.cpg_calls) else ()
    return (*amp, "sample", *data.sample_columns, "metric", "value", "ci_low", "ci_high", "clones", "units",
            "rarefied", "rarefied_clones", "rarefaction")


def clonal_results(data, roles, config) -> tuple[list[dict], list[dict]]:
    """(stats rows, heterogeneity.tsv rows) of the call folder ``data`` for the resolved compare ``roles``."""
    from .stats import _row

    known = A.known_sites(data)
    scans = A.scan_sites(data, known)
    sets = P.clone_sets(data, A.found_cpgs(scans))
    sheet = _sheet(data)
    panel = P.has_amplicon(data.cpg_calls)
    rows: list[dict] = []
    for sc in scans:
        rows += _scan_rows(sc, _row)
    sites = known + [s for sc in scans for s in sc.sites]
    boots = {}
    for amp in dict.fromkeys(s.amplicon for s in sets):
        mine = [s for s in sets if s.amplicon == amp]
        boots[amp] = _Bootstrap(amp, mine, config)
        for site in [s for s in sites if s.amplicon == amp]:
            rows += _asm_rows(site, mine, sheet, roles, config, _row)
        rows += _heterogeneity_rows(amp, mine, sheet, roles, config, _row, boots[amp])
    het = []
    for amp in dict.fromkeys(s.amplicon for s in sets):
        mine = [s for s in sets if s.amplicon == amp]
        common = H.common_count([s.n for s in mine])
        smallest = next((s.sample for s in mine if s.n == common), "") if common else ""
        boots[amp].prefetch([(s.sample,) for s in mine])
        per_sample = H.samples_heterogeneity([s.calls for s in mine], common,
                                             [_rng(config.seed, "rarefy", amp, s.sample) for s in mine],
                                             [boots[amp].of((s.sample,)) for s in mine], smallest,
                                             [boots[amp].features((s.sample,)) for s in mine])
        for s, rows_of_sample in zip(mine, per_sample):
            for h in rows_of_sample:
                het.append({**({P.AMPLICON: amp} if panel else {}), "sample": s.sample,
                            **{c: sheet.get(s.sample, {}).get(c, "") for c in data.sample_columns},
                            "metric": h.metric, "value": h.value, "ci_low": h.ci[0], "ci_high": h.ci[1],
                            "clones": h.clones, "units": h.units, "rarefied": h.rarefied,
                            "rarefied_clones": h.rarefied_clones, "rarefaction": h.rarefaction})
    return rows, het


def _sheet(data) -> dict:
    cols = list(data.sample_columns)
    s = data.samples.drop_duplicates("sample")
    return {name: dict(zip(cols, vals)) for name, *vals in s[["sample", *cols]].itertuples(index=False, name=None)}


class _Bootstrap:
    """Bootstrap distributions of the metrics of pooled clone sets ("cells": one or more samples), each drawn
    once from its own generator: heterogeneity.tsv's intervals and the comparisons' intervals share them (a
    comparison's resample is its cells' resamples: clones resampled within each group of each stratum)."""

    def __init__(self, amp: str, sets: list, config) -> None:
        self.amp, self.config = amp, config
        self.sets = {s.sample: s for s in sets}
        self.cache: dict = {}
        self.feature_cache: dict = {}

    def features(self, samples: tuple) -> H.Features:
        key = tuple(samples)
        if key not in self.feature_cache:
            self.feature_cache[key] = H.features(np.concatenate([self.sets[s].calls for s in key]))
        return self.feature_cache[key]

    def of(self, samples: tuple) -> Optional[dict]:
        key = tuple(samples)
        if key not in self.cache:
            self.prefetch([key])
        return self.cache[key]

    def prefetch(self, keys: list) -> None:
        """Draw the resamples of every cell of ``keys`` not drawn yet, together (``H.bootstrap_many``)."""
        todo = [tuple(k) for k in dict.fromkeys(tuple(k) for k in keys) if tuple(k) not in self.cache]
        xs = [np.concatenate([self.sets[s].calls for s in key]) for key in todo]
        rngs = [_rng(self.config.seed, "bootstrap", self.amp, *key) for key in todo]
        fs = [self.features(key) if len(x) >= 2 else None for key, x in zip(todo, xs)]
        for key, got in zip(todo, H.bootstrap_many(xs, self.config.resamples, rngs, fs)):
            self.cache[key] = got


def _value(sheet: dict, sample: str, column: Optional[str]) -> str:
    if column is None:
        return ""
    return sample if column == "sample" else str(sheet.get(sample, {}).get(column, ""))


# =============================================================================================
# snp scan


def _scan_rows(sc: A.Scan, row) -> list[dict]:
    scope = _scope(sc.amplicon, "all")
    bg = (f"background: {100 * sc.mismatch_rate:.3g} % of covered letters mismatch, "
          f"{100 * sc.unconverted_rate:.3g} % of non-CpG C unconverted" if sc.positions else sc.note)
    if not sc.sites:
        return [row("snp_scan", scope, note=f"no heterozygous site found in {sc.positions} positions of "
                                            f"{sc.reads} pass clones (known SNPs and primers skipped); {bg}")]
    out = []
    for s in sc.sites:
        share = None
        k_n = s.evidence.split(" clones", 1)[0].split("/")
        try:
            share = 100.0 * int(k_n[0]) / int(k_n[1])
        except (ValueError, IndexError):
            pass
        cp = f"; on CpG {', '.join(map(str, s.cpgs))} (left out of patterns)" if s.cpgs else ""
        out.append(row("snp_scan", scope, s.name, "all", share, None, n=sc.reads,
                       note=f"{s.evidence}{cp}; {s.confounded or 'clones split by allele (asm_* rows)'}; {bg}; "
                            "statistic = % of covering clones with the other letter"))
    return out


# =============================================================================================
# allele-specific methylation


def _asm_rows(site: A.Site, sets: list, sheet: dict, roles, config, row) -> list[dict]:
    amp = site.amplicon
    label = f"{site.name}={site.alt} - {site.name}={site.ref}"
    where = "found from the clones" if site.source == "found" else "known SNP"
    if site.confounded:
        return [row("asm_perm_clones", _scope(amp, "all"), label,
                    note=f"skipped: {site.name} ({where}): {site.confounded}")]
    cp = f"CpG {', '.join(map(str, site.cpgs))} ({site.name}) left out" if site.cpgs else ""
    rows = []
    splits = [A.split(site, s) for s in sets]
    for sp in splits:
        s = sp.clones.sample
        n0, n1 = sp.count(0), sp.count(1)
        lost = sp.count(-1)
        counts = (f"{site.name}={site.alt}: {n1} clones, mean {_p(sp.mean(1))} %; "
                  f"{site.name}={site.ref}: {n0} clones, mean {_p(sp.mean(0))} %")
        extra = "; ".join(x for x in (cp, f"{lost} clone(s) without a readable allele" if lost else "") if x)
        if min(n0, n1) < A.ASM_MIN_CLONES:
            rows.append(row("asm_perm_clones", _scope(amp, f"sample={s}"), label, n=n0 + n1,
                            note=f"skipped: needs >= {A.ASM_MIN_CLONES} clones of each allele ({counts}); one "
                                 "allele only means a homozygous sample (or loss of an allele)"
                                 + (f"; {extra}" if extra else "")))
            continue
        ok = sp.labels >= 0
        t = A.allele_test(sp.fractions[ok], sp.labels[ok], np.zeros(int(ok.sum()), int),
                          _rng(config.seed, "asm", amp, site.name, s), config.permutations, config.bootstrap_reps)
        how = (f"exact permutation over all {t.draws} splits" if t.exact else f"{t.draws} permutations")
        rows.append(row("asm_perm_clones", _scope(amp, f"sample={s}"), label, "all", 100 * t.statistic, t.p,
                        100 * t.statistic, (100 * t.ci[0], 100 * t.ci[1]), t.n,
                        f"{counts}; statistic = effect = difference of mean per-clone % ({where}); {how}; "
                        f"bootstrap CI ({config.bootstrap_reps} resamples of clones within allele)"
                        + (f"; {extra}" if extra else "")))
    # pooled over samples, stratified by sample: all, and per level of `by`
    pools = [("all", splits)]
    if roles.by and roles.by != "sample":
        levels = _levels([_value(sheet, sp.clones.sample, roles.by) for sp in splits])
        pools += [(f"{roles.by}={lv}", [sp for sp in splits if _value(sheet, sp.clones.sample, roles.by) == lv])
                  for lv in levels]
    for scope, group in pools:
        usable = [sp for sp in group if min(sp.count(0), sp.count(1)) >= 1]
        if len(usable) < 2:
            continue
        fr = np.concatenate([sp.fractions[sp.labels >= 0] for sp in usable])
        lab = np.concatenate([sp.labels[sp.labels >= 0] for sp in usable])
        st = np.concatenate([np.full(int((sp.labels >= 0).sum()), k) for k, sp in enumerate(usable)])
        t = A.allele_test(fr, lab, st, _rng(config.seed, "asm_strat", amp, site.name, scope), config.permutations,
                          config.bootstrap_reps)
        n1, n0 = int(lab.sum()), int((lab == 0).sum())
        rows.append(row("asm_perm_stratified", _scope(amp, scope), label, "all", 100 * t.statistic, t.p,
                        100 * t.statistic, (100 * t.ci[0], 100 * t.ci[1]), t.n,
                        f"{len(usable)} samples with both alleles, clones {n1} {site.alt} vs {n0} {site.ref}; "
                        "statistic = effect = mean over samples of the per-sample difference of mean per-clone %, "
                        "weighted n1 n0 / (n1 + n0); "
                        f"{t.draws} permutations of alleles within samples; bootstrap CI" + (f"; {cp}" if cp else "")))
    rows += _asm_group_rows(site, splits, sheet, roles, config, row)
    return rows


def _asm_group_rows(site: A.Site, splits: list, sheet: dict, roles, config, row) -> list[dict]:
    """Does methylation change with dose (or between groups) on one allele or on both?"""
    import pandas as pd

    from .stats import _interaction_rows, _trend_rows, bootstrap_mean_diff_ci, mann_whitney
    from .tables import order_levels

    amp = site.amplicon
    recs = []
    for sp in splits:
        s = sp.clones.sample
        for lab, f, x in zip(sp.labels, sp.fractions, sp.clones.calls):
            if lab < 0:
                continue
            recs.append({"sample": s, "allele": site.alt if lab else site.ref, "m": int(np.nansum(x)),
                         "n": int((~np.isnan(x)).sum()), "fraction": float(f),
                         **{c: _value(sheet, s, c) for c in {roles.by, roles.dose, roles.cell_line} - {None}}})
    if not recs:
        return []
    clones = pd.DataFrame(recs)
    # ref allele first: the interaction's effect reads alt - ref
    clones = pd.concat([clones[clones["allele"] == site.ref], clones[clones["allele"] == site.alt]],
                       ignore_index=True)
    rows: list[dict] = []
    name = site.name
    if roles.dose:
        lines = ([(f"{roles.cell_line}={lv}", clones[clones[roles.cell_line] == lv])
                  for lv in order_levels(clones[roles.cell_line])]
                 if roles.cell_line and roles.cell_line != roles.dose else [("all", clones)])
        for scope, sub in lines:
            for allele in (site.ref, site.alt):
                one = sub[sub["allele"] == allele]
                if len(one) < 3:
                    continue
                r = _trend_rows(one, roles.dose, _scope(amp, scope), _rng(config.seed, "asm_trend", amp, name,
                                                                         scope, allele), config.bootstrap_reps)[0]
                r["test"] = "asm_trend_jt_clones"
                r["groups"] = f"{name}={allele}: {r['groups']}" if r["groups"] else f"{name}={allele}"
                r["note"] = f"clones carrying {name}={allele} only; {r['note']}"
                rows.append(r)
            both = sub.rename(columns={"allele": name})
            if both[name].nunique() == 2:
                r = _interaction_rows(both, roles.dose, name)[0]
                r["test"] = "asm_interaction_ols_hc3"
                r["scope"] = _scope(amp, scope)
                r["note"] = f"does dose change methylation differently on the two alleles? {r['note']}"
                rows.append(r)
    elif roles.by and roles.by != "sample":
        levels = order_levels(clones[roles.by])
        if len(levels) == 2:
            g1, g2 = levels
            for allele in (site.ref, site.alt):
                one = clones[clones["allele"] == allele]
                x = one[one[roles.by] == g1]["fraction"].to_numpy()
                y = one[one[roles.by] == g2]["fraction"].to_numpy()
                if len(x) == 0 or len(y) == 0:
                    continue
                u, p = mann_whitney(y, x)
                d, lo, hi = bootstrap_mean_diff_ci(x, y, _rng(config.seed, "asm_mw", amp, name, allele),
                                                   config.bootstrap_reps)
                rows.append(row("asm_mannwhitney_clones", _scope(amp, "all"),
                                f"{name}={allele}: {roles.by}={g2} - {roles.by}={g1}", "all", u, p, 100 * d,
                                (100 * lo, 100 * hi), len(x) + len(y),
                                f"clones carrying {name}={allele} only: {len(y)} vs {len(x)}; U of {roles.by}={g2}; "
                                "effect = difference of mean per-clone %, bootstrap CI"))
    return rows


def _p(x: float) -> str:
    return "" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _levels(values) -> list:
    from .tables import order_levels

    return order_levels(values)


# =============================================================================================
# heterogeneity and pattern tests


def _heterogeneity_rows(amp: str, sets: list, sheet: dict, roles, config, row, boot: _Bootstrap) -> list[dict]:
    rows: list[dict] = []
    by, within = roles.by, roles.within
    if by is None:
        return rows
    by_of = {s.sample: _value(sheet, s.sample, by) for s in sets}
    comparisons = []  # (scope, [(stratum, [(label index, set)])], level names)
    if within:
        strata = []
        for wl in _levels([_value(sheet, s.sample, within) for s in sets]):
            here = [s for s in sets if _value(sheet, s.sample, within) == wl and by_of[s.sample] != ""]
            levels = _levels([by_of[s.sample] for s in here])
            if len(levels) >= 2:
                members = [(levels.index(by_of[s.sample]), s) for s in here]
                comparisons.append((f"{within}={wl}", [members], levels))
                strata.append((levels, members))
        all_levels = _levels([by_of[s.sample] for s in sets if by_of[s.sample] != ""])
        if len(strata) >= 2:
            comparisons.append(("all", [[(all_levels.index(lv[i]), s) for i, s in m] for lv, m in strata],
                                all_levels))
    else:
        here = [s for s in sets if by_of[s.sample] != ""]
        levels = _levels([by_of[s.sample] for s in here])
        if len(levels) >= 2:
            comparisons.append(("all", [[(levels.index(by_of[s.sample]), s) for s in here]], levels))
    for scope, strata, levels in comparisons:
        rows += _compare_groups(amp, scope, strata, levels, by, within, config, row, boot)
    if roles.dose:
        from .tables import is_numeric_levels

        lines = ([(f"{roles.cell_line}={lv}", [s for s in sets if _value(sheet, s.sample, roles.cell_line) == lv])
                  for lv in _levels([_value(sheet, s.sample, roles.cell_line) for s in sets])]
                 if roles.cell_line and roles.cell_line != roles.dose else [("all", sets)])
        for scope, members in lines:
            doses = _levels([_value(sheet, s.sample, roles.dose) for s in members])
            if len(doses) < 2:
                continue
            numeric = is_numeric_levels(doses)
            scores = {i: (float(d) if numeric else float(i)) for i, d in enumerate(doses)}
            strata = [[(doses.index(_value(sheet, s.sample, roles.dose)), s) for s in members
                       if _value(sheet, s.sample, roles.dose) != ""]]
            rows += _dose_trend(amp, scope, strata, doses, scores, roles.dose, numeric, config, row, boot)
    return rows


def _stack(strata: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled matrix, group label per clone and stratum per clone."""
    xs, labels, st = [], [], []
    for k, members in enumerate(strata):
        for g, s in members:
            xs.append(s.calls)
            labels += [g] * s.n
            st += [k] * s.n
    x = np.concatenate(xs) if xs else np.zeros((0, 0))
    return x, np.array(labels, int), np.array(st, int)


def _cells(strata: list) -> list[dict]:
    """Per stratum: group label -> the samples pooled in that cell."""
    out = []
    for members in strata:
        cells: dict = {}
        for g, s in members:
            cells.setdefault(g, []).append(s.sample)
        out.append({g: tuple(v) for g, v in cells.items()})
    return out


def _boot_difference(strata: list, first: int, second: int, boot: _Bootstrap) -> Optional[dict]:
    """Resampled statistic of a two-group comparison: the mean over strata of (second - first)."""
    diffs = [(boot.of(c[second]), boot.of(c[first])) for c in _cells(strata) if first in c and second in c]
    diffs = [(b, a) for b, a in diffs if a is not None and b is not None]
    if not diffs:
        return None
    return {m: np.mean([b[m] - a[m] for b, a in diffs], axis=0) for m in H.METRICS}


def _compare_groups(amp, scope, strata, levels, by, within, config, row, boot: _Bootstrap) -> list[dict]:
    x, lab, st = _stack(strata)
    present = sorted(set(lab.tolist()))
    if len(present) < 2 or len(x) < 3:
        return []
    # labels renumbered 0..k-1 in level order (present levels only)
    remap = {g: i for i, g in enumerate(present)}
    lab = np.array([remap[g] for g in lab], int)
    names = [levels[g] for g in present]
    two = len(names) == 2
    rng = _rng(config.seed, "heterogeneity_perm", amp, scope)
    draws, exact = P.label_draws(lab, st, rng, config.permutations)
    f = H.features(x)
    kind = "two" if two else "k"
    stats = H.group_statistic(f, draws, st, kind)
    ci = {m: (math.nan, math.nan) for m in H.METRICS}
    if two:
        resampled = _boot_difference(strata, present[0], present[1], boot)
        if resampled is not None:
            ci = {m: H.shifted_percentile_ci(resampled[m], float(stats[m][0]), bounds=(-1.0, 1.0))
                  for m in H.METRICS}
    label = f"{by}={names[1]} - {by}={names[0]}" if two else " vs ".join(f"{by}={n}" for n in names)
    counts = ", ".join(f"{n}: {int((lab == i).sum())}" for i, n in enumerate(names))
    strat = f"; stratified by {within} ({len(strata)} levels: permutations within levels, statistic averaged)" \
        if len(strata) > 1 else ""
    how = f"exact over all {len(draws) - 1} splits" if exact else f"{len(draws) - 1} permutations of clone labels"
    rows = []
    for m in H.METRICS:
        obs = float(stats[m][0])
        p = P.permutation_p(stats[m], exact, two_sided=two)
        what = ("difference of " + METRIC_LABEL[m] + " (metric units, 0-1)") if two else \
            ("spread of the groups' " + METRIC_LABEL[m] + ": sum n_g (m_g - m)^2 / N")
        rows.append(row(f"{m}_perm", _scope(amp, scope), label, "all", obs, p, obs if two else None,
                        ci[m] if two else (None, None), len(lab),
                        f"clones {counts} (pooled per group); statistic = {what}; {how}{strat}"
                        + ("; bootstrap CI over clones (percentiles shifted by the bootstrap bias); values on all "
                           "clones (heterogeneity.tsv: rarefied)" if two else "")))
    k, index, scale, undefined = P.pattern_kernel(x)
    disp = P.kernel_dispersion(k, draws, st, index)
    rows.append(row("pattern_mmd_perm", _scope(amp, scope), label, "all", float(disp[0]),
                    P.permutation_p(disp, exact, two_sided=False), n=len(lab),
                    note=_pattern_note(counts, scale, undefined, how, strat)))
    return rows


def _pattern_note(counts, scale, undefined, how, strat) -> str:
    return (f"clones {counts}; statistic = between-group kernel dispersion (two groups: n1 n2 / N^2 x MMD^2), "
            f"kernel exp(-d / {scale:.3g}), d = share of differing CpGs among those called in both clones "
            f"(bandwidth = median d / 4){f'; {undefined} pair(s) without a shared call' if undefined else ''}; "
            f"{how}{strat}; H0: all clones from one pattern distribution (exchangeable); significant also "
            "when only the average methylation differs")


def _dose_trend(amp, scope, strata, doses, scores, dose, numeric, config, row, boot: _Bootstrap) -> list[dict]:
    x, lab, st = _stack(strata)
    present = sorted(set(lab.tolist()))
    if len(present) < 2 or len(x) < 3:
        return []
    rng = _rng(config.seed, "heterogeneity_trend", amp, scope)
    draws, exact = P.label_draws(lab, st, rng, config.permutations)
    f = H.features(x)
    stats = H.group_statistic(f, draws, st, "trend", scores)
    # resampled slope: each dose level's clones resampled (its cell's bootstrap), one value per level
    cells = _cells(strata)[0]
    per = [boot.of(cells[g]) for g in present]
    xs = np.array([scores[g] for g in present], float)
    xc = xs - xs.mean()
    resampled = ({m: (xc[:, None] * (np.stack([b[m] for b in per]) - np.stack([b[m] for b in per]).mean(axis=0))
                      ).sum(axis=0) / float((xc ** 2).sum()) for m in H.METRICS}
                 if all(b is not None for b in per) and (xc ** 2).sum() > 0 else None)
    groups = " < ".join(f"{dose}={doses[g]}" for g in present)
    counts = ", ".join(f"{doses[g]}: {int((lab == g).sum())}" for g in present)
    how = f"exact over all {len(draws) - 1} splits" if exact else f"{len(draws) - 1} permutations of clones over doses"
    scale_note = "" if numeric else f"; {dose} not numeric: levels scored 0..{len(doses) - 1}"
    rows = []
    for m in H.METRICS:
        obs = float(stats[m][0])
        rows.append(row(f"{m}_trend_perm", _scope(amp, scope), groups, "all", obs,
                        P.permutation_p(stats[m], exact), obs,
                        H.shifted_percentile_ci(resampled[m], obs) if resampled else (None, None), len(lab),
                        f"clones per {dose} {counts}; statistic = effect = least-squares slope of {METRIC_LABEL[m]} "
                        f"per {dose} unit over the {dose} levels (one value per level, clones pooled); {how}; "
                        f"bootstrap CI over clones within levels (percentiles shifted by the bootstrap bias)"
                        f"{scale_note}"))
    k, index, scale, undefined = P.pattern_kernel(x)
    disp = P.kernel_dispersion(k, draws, st, index)
    rows.append(row("pattern_mmd_perm", _scope(amp, scope), " vs ".join(f"{dose}={doses[g]}" for g in present),
                    "all", float(disp[0]), P.permutation_p(disp, exact, two_sided=False), n=len(lab),
                    note=_pattern_note(counts, scale, undefined, how, "")))
    return rows
