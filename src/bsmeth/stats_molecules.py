"""The ``compare`` stage for deep data: molecules as weighted patterns (a call folder of the NGS engine).

Pipeline position: called by ``stats.amplicon_results`` for a folder whose molecules are pattern counts
(``tables.CallData.weighted``), one amplicon at a time; writes the same tidy rows (``stats.STATS_COLUMNS``) and
heterogeneity rows.  docs/statistics.md ("Deep data") says which test answers which question and why:

* The **sample is the replicate** where samples are replicated (two or more samples per group): with 10^4-10^6
  molecules a sample, molecule-level tests find any difference between two *tubes* significant, so they cannot
  tell a condition effect from sample-to-sample variation.  Primary tests then work on per-sample mean
  methylation (the mean over its molecules of each molecule's methylated fraction): Welch's t-test between two
  groups (``welch_samples``), Kruskal-Wallis over more (``kruskal_samples``), the OLS slope on dose
  (``trend_ols_samples``), and the dose x cell-line interaction by OLS with HC3 errors on sample means
  (``interaction_ols_hc3``, ``n`` = samples).
* The **molecule is the unit** of the molecule-level tests, exact in their weights (each equals the clone test on
  the expanded data): Mann-Whitney (``mannwhitney_molecules``), Kruskal-Wallis (``kruskal_molecules``),
  Jonckheere-Terpstra (``trend_jt_molecules``); Fisher per CpG and on pooled calls, Cochran-Armitage on pooled
  calls.  Without replicates they are all there is: they then compare the samples at hand (technical
  variation), which their note says.
* Heterogeneity (heterogeneity.tsv) per sample from the pattern counts (``heterogeneity.metrics_weighted``);
  the permutation tests of clone patterns (``clonal``) are not run on deep data (one row says so).
"""

from __future__ import annotations

import math

import numpy as np

from . import heterogeneity as H
from .stats import (
    _pct,
    _row,
    bh_adjust,
    cochran_armitage,
    fisher_2x2_large,
    fisher_cpg_row,
    interaction_design,
    jonckheere_weighted,
    kruskal,
    kruskal_weighted,
    mann_whitney_weighted,
    newcombe_diff_ci,
    ols_hc3,
    welch_t,
)

MIN_REPLICATES = 2  # samples per group for the sample-level tests
MAX_PATTERNS = 20_000  # distinct patterns per sample the heterogeneity metrics are computed over (memory)


def _weighted_mean_ci(f: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    n = w.sum()
    mean = float((w * f).sum() / n)
    var = float((w * (f - mean) ** 2).sum() / max(n - 1, 1))
    return mean, var / n


def _sample_means(clones) -> dict:
    """sample -> (mean per-molecule fraction, molecules)."""
    out = {}
    for s, g in clones.groupby("sample", sort=False):
        w = g["weight"].to_numpy(float)
        out[s] = (float((w * g["fraction"].to_numpy(float)).sum() / w.sum()), int(w.sum()))
    return out


def _two_groups(sub, summary, cpgs, by, scope, levels, means) -> list[dict]:
    g1, g2 = levels
    label = f"{by}={g2} - {by}={g1}"
    c1, c2 = sub[sub[by] == g1], sub[sub[by] == g2]
    s1, s2 = list(dict.fromkeys(c1["sample"])), list(dict.fromkeys(c2["sample"]))
    rows = []
    for number, note in zip(cpgs["cpg"], cpgs["note"]):
        if note == "under_primer":
            continue
        here = summary[summary["cpg"] == number]
        a = here[here["sample"].isin(s1)]
        b = here[here["sample"].isin(s2)]
        counts = (int(a["methylated"].sum()), int(a["unmethylated"].sum()), int(b["methylated"].sum()),
                  int(b["unmethylated"].sum()))
        rows.append(fisher_cpg_row(scope, label, int(number), note, counts, fisher_2x2_large,
                                   "; molecules as units"))
    k1, n1 = int((c1["m"] * c1["weight"]).sum()), int((c1["n"] * c1["weight"]).sum())
    k2, n2 = int((c2["m"] * c2["weight"]).sum()), int((c2["n"] * c2["weight"]).sum())
    orr, p = fisher_2x2_large(k1, n1 - k1, k2, n2 - k2)
    d, lo, hi = newcombe_diff_ci(k1, n1, k2, n2)
    rows.append(_row("fisher_pooled", scope, label, "all", orr, p, _pct(d), (_pct(lo), _pct(hi)), n1 + n2,
                     f"CpG calls {k2}/{n2} vs {k1}/{n1}; reference only: treats CpGs of a molecule as independent"))
    x, wx = c1["fraction"].to_numpy(float), c1["weight"].to_numpy(float)
    y, wy = c2["fraction"].to_numpy(float), c2["weight"].to_numpy(float)
    u, p = mann_whitney_weighted(y, wy, x, wx)
    mx, vx = _weighted_mean_ci(x, wx)
    my, vy = _weighted_mean_ci(y, wy)
    d, se = my - mx, math.sqrt(vx + vy)
    replicated = len(s1) >= MIN_REPLICATES and len(s2) >= MIN_REPLICATES
    unit = ("reference only: molecules of one sample are not independent replicates of the condition"
            if replicated else f"one sample per group ({', '.join(s1 + s2)}): compares these samples, not "
                               "the conditions (no biological replicates)")
    rows.append(_row("mannwhitney_molecules", scope, label, "all", u, p, _pct(d),
                     (_pct(d - 1.959963984540054 * se), _pct(d + 1.959963984540054 * se)), int(wx.sum() + wy.sum()),
                     f"molecules {int(wy.sum())} vs {int(wx.sum())}; U of {by}={g2}; effect = difference of mean "
                     f"per-molecule %, normal CI; {unit}"))
    if replicated:
        a = [means[s][0] for s in s1]
        b = [means[s][0] for s in s2]
        t, p, d, ci = welch_t(a, b)
        rows.append(_row("welch_samples", scope, label, "all", t, p, _pct(d), (_pct(ci[0]), _pct(ci[1])),
                         len(a) + len(b), f"samples {len(b)} vs {len(a)} (the replicates); value = mean "
                                          "per-molecule % of each sample; primary"))
    else:
        rows.append(_row("welch_samples", scope, label, note=f"skipped: needs at least {MIN_REPLICATES} samples "
                                                              "per group (biological replicates)"))
    return rows


def _trend(sub, dose, scope, means, numeric_levels) -> list[dict]:
    from .tables import is_numeric_levels, order_levels

    levels = order_levels(sub[dose])
    if len(levels) < 2:
        return [_row("trend_jt_molecules", scope, note=f"skipped: needs at least two {dose} levels, found "
                                                        f"{len(levels)}")]
    numeric = is_numeric_levels(levels)
    score = {lv: (float(lv) if numeric else float(i)) for i, lv in enumerate(levels)}
    groups = " < ".join(f"{dose}={lv}" for lv in levels)
    scale = "" if numeric else f"; {dose} is not numeric: levels scored 0..{len(levels) - 1} in order"
    sc = sub[dose].map(score).to_numpy(float)
    f, w = sub["fraction"].to_numpy(float), sub["weight"].to_numpy(float)
    jt, z, p = jonckheere_weighted(f, w, sc)
    rows = [_row("trend_jt_molecules", scope, groups, "all", jt, p, None, n=int(w.sum()),
                 note=f"z = {z:.4g}; molecules as units{scale}")]
    x = (sub["m"] * sub["weight"]).groupby(sc).sum()
    n = (sub["n"] * sub["weight"]).groupby(sc).sum()
    zc, pc, sl = cochran_armitage(x.to_numpy(), n.to_numpy(), x.index.to_numpy(float))
    rows.append(_row("trend_cochran_armitage_pooled", scope, groups, "all", zc, pc, _pct(sl), n=int(n.sum()),
                     note=f"reference only: CpGs within a molecule are correlated; statistic = z{scale}"))
    samples = list(dict.fromkeys(sub["sample"]))
    xs = np.array([score[sub[sub["sample"] == s][dose].iloc[0]] for s in samples])
    ys = np.array([100 * means[s][0] for s in samples])
    if len(samples) >= 3 and len(np.unique(xs)) >= 2:
        X = np.column_stack([np.ones_like(xs), xs])
        coef, *_ = np.linalg.lstsq(X, ys, rcond=None)
        e = ys - X @ coef
        df = len(ys) - 2
        from scipy.special import stdtr, stdtrit

        ss = float(((xs - xs.mean()) ** 2).sum())
        se = math.sqrt(float((e ** 2).sum()) / df / ss) if df > 0 and ss > 0 else math.nan
        t = coef[1] / se if se and not math.isnan(se) else math.nan
        p = math.nan if math.isnan(t) else float(2 * stdtr(df, -abs(t)))
        q = float(stdtrit(df, 0.975)) if df > 0 else math.nan
        rows.append(_row("trend_ols_samples", scope, groups, "all", t, p, float(coef[1]),
                         (None, None) if math.isnan(se) else (float(coef[1] - q * se), float(coef[1] + q * se)),
                         len(ys),
                         f"OLS of sample mean % on {dose} ({len(ys)} samples); effect = slope in % per {dose} "
                         f"unit; statistic = t; primary when levels are replicated{scale}"))
    return rows


def _interaction(clones, dose, line, means) -> list[dict]:
    from scipy.special import stdtr, stdtrit

    from .tables import is_numeric_levels, order_levels

    test = "interaction_ols_hc3"
    lines, doses = order_levels(clones[line]), order_levels(clones[dose])
    if len(lines) < 2 or len(doses) < 2:
        return [_row(test, "all", note=f"skipped: needs two {line} and two {dose} levels")]
    numeric = is_numeric_levels(doses)
    score = {lv: (float(lv) if numeric else float(i)) for i, lv in enumerate(doses)}
    samples = list(dict.fromkeys(clones["sample"]))
    first = clones.drop_duplicates("sample").set_index("sample")
    d = np.array([score[first.loc[s, dose]] for s in samples])
    li = np.array([lines.index(first.loc[s, line]) for s in samples])
    X, inter = interaction_design(d, li, len(lines))
    y = np.array([100 * means[s][0] for s in samples])
    res = ols_hc3(X, y)
    if res.df_resid <= 0 or len(inter) != 1:
        return [_row(test, "all", note=f"skipped: {len(samples)} samples are too few for the model (sample "
                                        "means as units)")]
    b = float(res.coef[inter[0]])
    se = math.sqrt(max(0.0, float(res.cov[inter[0], inter[0]])))
    if se == 0:
        return [_row(test, "all", note="skipped: zero standard error")]
    t = b / se
    q = float(stdtrit(res.df_resid, 0.975))
    return [_row(test, "all", f"slope {line}={lines[1]} - slope {line}={lines[0]}", "all", t,
                 float(2 * stdtr(res.df_resid, -abs(t))), b, (b - q * se, b + q * se), res.n,
                 f"model: sample mean % ~ {dose} * {line} (OLS, HC3 SE), samples as units; effect = difference "
                 f"of slopes (% per {dose} unit); statistic = t")]


def molecule_results(data, roles, config) -> tuple[list[dict], list[dict]]:
    """(stats rows, heterogeneity rows) of one amplicon of a folder of weighted molecules."""
    from .tables import clone_table, cpg_table, order_levels

    clones = clone_table(data)
    cpgs = cpg_table(data)
    means = _sample_means(clones)
    summary = data.summary
    by = roles.by
    rows: list[dict] = []
    scopes = [("all", clones)]
    if roles.within:
        scopes = [(f"{roles.within}={lv}", clones[clones[roles.within] == lv])
                  for lv in order_levels(clones[roles.within])] or scopes
    for scope, sub in scopes:
        sub = sub[sub[by] != ""]
        levels = order_levels(sub[by])
        if len(levels) == 2:
            rows += _two_groups(sub, summary, cpgs, by, scope, levels, means)
        elif len(levels) > 2:
            groups = [(sub[sub[by] == lv]["fraction"].to_numpy(), sub[sub[by] == lv]["weight"].to_numpy())
                      for lv in levels]
            h, p = kruskal_weighted(groups)
            label = " vs ".join(f"{by}={lv}" for lv in levels)
            rows.append(_row("kruskal_molecules", scope, label, "all", h, p, n=int(sub["weight"].sum()),
                             note="molecules as units"))
            per = [[means[s][0] for s in dict.fromkeys(sub[sub[by] == lv]["sample"])] for lv in levels]
            if all(len(g) >= MIN_REPLICATES for g in per):
                h, p = kruskal(per)
                rows.append(_row("kruskal_samples", scope, label, "all", h, p, n=sum(map(len, per)),
                                 note="sample mean % as values (the replicates); primary"))
        else:
            rows.append(_row("mannwhitney_molecules", scope, note=f"skipped: needs two {by} groups, found "
                                                                   f"{len(levels)}"))
    if roles.dose:
        if roles.cell_line and roles.cell_line != roles.dose:
            for lv in order_levels(clones[roles.cell_line]):
                rows += _trend(clones[clones[roles.cell_line] == lv], roles.dose, f"{roles.cell_line}={lv}",
                               means, None)
            rows += _interaction(clones, roles.dose, roles.cell_line, means)
        else:
            rows += _trend(clones, roles.dose, "all", means, None)
    rows.append(_row("clone_pattern_tests", "all", note="skipped: the permutation tests of clone patterns "
                                                         "(allele split, heterogeneity, pattern MMD) are not run on "
                                                         "deep data; heterogeneity.tsv has each sample's metrics"))
    families: dict = {}
    for i, r in enumerate(rows):
        families.setdefault((r["test"], r["scope"]), []).append(i)
    for idx in families.values():
        for i, a in zip(idx, bh_adjust([rows[i]["p"] for i in idx])):
            rows[i]["p_adj"] = a
    return rows, heterogeneity_rows(data)


def heterogeneity_rows(data) -> list[dict]:
    """Each sample's epipolymorphism, entropy, PDR and MHL over its molecules (patterns with counts): the
    clone definitions (``heterogeneity``) with each pattern weighted by its count.  No bootstrap interval and no
    rarefaction: with thousands of molecules the sampling error is far below the differences between samples."""
    from .tables import pattern_matrix

    amp = str(data.run.get("amplicon", {}).get("name", ""))
    keep = [i for i, c in enumerate(data.run.get("amplicon", {}).get("cpgs", []))
            if not c.get("under_primer") and not c.get("snp")]
    sheet = data.samples.drop_duplicates("sample").set_index("sample")
    out = []
    for s in data.sample_order():
        sub = data.patterns[data.patterns["sample"] == s]
        x, w = pattern_matrix(sub)
        if not len(w):
            continue
        x = x[:, keep] if x.shape[1] else x
        has = ~np.isnan(x).all(axis=1)
        x, w = x[has], w[has]
        if not len(w):
            continue
        share = ""
        if len(w) > MAX_PATTERNS:  # patterns.tsv is most frequent first: the rare tail is left out
            share = f"; the {MAX_PATTERNS} most frequent patterns ({100 * w[:MAX_PATTERNS].sum() / w.sum():.1f} % " \
                    "of molecules)"
            x, w = x[:MAX_PATTERNS], w[:MAX_PATTERNS]
        f = H.features(x)
        vals = H.metrics_weighted(f, w[None, :].astype(float))
        text = H.units(f)
        for m in H.METRICS:
            out.append({"amplicon": amp, "sample": s,
                        **{c: sheet.loc[s, c] if s in sheet.index else "" for c in data.sample_columns},
                        "metric": m, "value": float(vals[m][0]), "ci_low": None, "ci_high": None,
                        "clones": int(w.sum()), "units": text[m].replace("clones", "molecules") + share,
                        "rarefied": None, "rarefied_clones": None,
                        "rarefaction": "not rarefied: deep data (molecules weighted by pattern counts)"})
    return out
