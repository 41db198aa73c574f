"""Accuracy of ``bsmeth quantify`` on simulated direct reads (figures printed, calibration plot written).

    python benchmarks/bench_quantify.py [--reads 8] [--contexts 3] [--plot docs/images/quantify_calibration.png]
    python benchmarks/bench_quantify.py --smoke [--plot OUT.png]   # 1 read, 1 context; no plot unless --plot

For each context draw (the amplicon's sequence-context effects, ``DirectModel.context_seed``) and each peak
model (``default``: the simulator's documented model; ``harsh``: context sd 0.4, dye-specific context sd
0.2, peak noise 10 %, baseline noise 2.5 %), ``--reads`` direct reads per level 0, 10, 25, 50, 75, 90,
100 % (orientations alternating) are quantified

* ``batch``: all reads of the run together (the default of ``bsmeth quantify``: the per-CpG dye ratio is
  calibrated over reads of different methylation);
* ``single``: every read alone (its own dye ratio, nothing calibrated across reads);
* ``one level + standards``: the 50 % reads only, with two 0 % and two 100 % standard reads.

Per level: mean absolute error of the per-CpG estimates against the per-CpG truth (percentage points),
mean signed error, and how often the truth lies in [low, high].  Target: MAE within 10 points.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np

from bsmeth.quantify import QuantifyConfig, quantify_reads
from bsmeth.reads import read_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate.direct import DirectModel, simulate_direct

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
MODELS = {"default": DirectModel(),
          "harsh": DirectModel(context_sd=0.4, dye_context_sd=0.2, peak_sd=0.1, noise=0.025)}


def _score(estimates, truth) -> list[tuple[float, float, float, bool]]:
    """(level, truth, estimate, truth within [low, high]) per estimated CpG."""
    out = []
    for e in estimates:
        for s in e.sites:
            if s.fraction is None:
                continue
            t = truth[(e.read_id, s.cpg)]
            out.append((float(e.sample[-3:]) / 100, t, s.fraction, s.low <= t <= s.high))
    return out


def run(n_reads: int, n_contexts: int) -> dict:
    amp = load_amplicon()
    cfg = QuantifyConfig()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, base in MODELS.items():
            for ctx in range(n_contexts):
                model = DirectModel(**{**base.__dict__, "context_seed": ctx})
                res = simulate_direct(amp, Path(tmp) / f"{name}{ctx}", LEVELS, n_reads, seed=100 + ctx, model=model)
                std = simulate_direct(amp, Path(tmp) / f"{name}{ctx}std", (0, 1.0), 2, seed=200 + ctx, model=model)
                truth = {(r["read"], int(r["cpg"])): float(r["true_fraction"])
                         for r in csv.DictReader(open(res.truth), delimiter="\t")}
                items = [(read_file(p)[0], p.parent.name) for p in res.traces]
                batch, _ = quantify_reads(amp, items, cfg)
                single = [quantify_reads(amp, [it], cfg)[0][0] for it in items]
                mid = [it for it in items if it[1] == "direct_050"]
                standards, _ = quantify_reads(amp, mid, cfg, [read_file(p)[0] for p in std.traces])
                for mode, est in (("batch", batch), ("single", single), ("one level + standards", standards)):
                    results.setdefault((name, mode), []).extend(_score(est, truth))
    return results


def table(results: dict) -> None:
    print(f"{'model':8s} {'mode':22s} " + " ".join(f"{100 * lv:>14g}%" for lv in LEVELS))
    for (name, mode), rows in results.items():
        a = np.array(rows, dtype=float)
        cells = []
        for lv in LEVELS:
            sel = np.isclose(a[:, 0], lv)
            if not sel.any():
                cells.append(f"{'':>15s}")
                continue
            err = 100 * (a[sel, 2] - a[sel, 1])
            cells.append(f"{np.abs(err).mean():5.1f} {err.mean():+5.1f} {100 * a[sel, 3].mean():3.0f}%")
        print(f"{name:8s} {mode:22s} " + " ".join(cells))
    print("cells: MAE (points), mean signed error (points), coverage of [low, high]")


def plot(results: dict, path: Path) -> None:
    from bsmeth.figures.plots import _new_figure, save_figure

    fig = _new_figure(10.5, 3.8)
    panels = [("default", "batch"), ("default", "single"), ("harsh", "batch")]
    for k, key in enumerate(panels):
        a = np.array(results[key], dtype=float)
        ax = fig.add_subplot(1, len(panels), k + 1)
        rng = np.random.default_rng(1)
        ax.scatter(100 * a[:, 1] + rng.uniform(-0.8, 0.8, len(a)), 100 * a[:, 2], s=3, alpha=0.18, color="#0072B2",
                   linewidths=0, label="one CpG of one read")
        for lv in LEVELS:
            sel = np.isclose(a[:, 0], lv)
            est = 100 * a[sel, 2]
            ax.errorbar(100 * lv, est.mean(), yerr=est.std(), color="#D55E00", marker="o", markersize=4, capsize=3,
                        linewidth=0, elinewidth=1.2, label="mean +- sd per level" if lv == 0 else None)
        ax.plot([0, 100], [0, 100], color="#555555", linewidth=0.8, linestyle="--")
        mae = 100 * np.abs(a[:, 2] - a[:, 1]).mean()
        ax.set_title(f"{key[0]} model, {key[1]} (MAE {mae:.1f} points)", fontsize=9)
        ax.set_xlim(-5, 105)
        ax.set_ylim(-5, 105)
        ax.set_xlabel("true methylation of the CpG (%)", fontsize=8)
        if k == 0:
            ax.set_ylabel("estimated (%)", fontsize=8)
            ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.text(0.01, 0.005, "Simulated direct reads (bsmeth.simulate.direct), IGFBP3 amplicon, both orientations; "
             "batch: all reads of the run calibrate the per-CpG dye ratio; single: every read alone.",
             fontsize=7, color="#333333")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.18, top=0.9, wspace=0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path.with_suffix(""), ("png",))
    print(f"calibration plot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reads", type=int, default=8, help="reads per level and context draw")
    ap.add_argument("--contexts", type=int, default=3, help="context draws (amplicon sequence effects)")
    ap.add_argument("--plot", help="calibration plot to write (default docs/images/quantify_calibration.png; "
                                   "'' for none)")
    ap.add_argument("--smoke", action="store_true", help="1 read per level, 1 context draw, no plot unless --plot: "
                                                         "checks the script runs (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.reads, args.contexts = 1, 1
    if args.plot is None:
        args.plot = "" if args.smoke else str(ROOT / "docs" / "images" / "quantify_calibration.png")
    results = run(args.reads, args.contexts)
    print(f"{args.reads} reads per level x {args.contexts} context draws per model; per-CpG estimates\n")
    table(results)
    worst = max(100 * np.abs(np.array(r, dtype=float)[np.isclose(np.array(r, dtype=float)[:, 0], lv), 2]
                             - np.array(r, dtype=float)[np.isclose(np.array(r, dtype=float)[:, 0], lv), 1]).mean()
                for (name, mode), r in results.items() if mode == "batch" for lv in LEVELS)
    print(f"\nworst MAE of a level, batch mode: {worst:.1f} points (target <= 10)")
    if args.plot:
        plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
