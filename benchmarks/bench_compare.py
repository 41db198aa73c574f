"""CPU seconds of ``bsmeth compare`` (stats.tsv + heterogeneity.tsv) on large designs, the code before the scaling
rewrite (d9468ee) and this checkout side by side, and whether both write the same tables.

    python benchmarks/bench_compare.py              # 100, 300, 1,200 samples; two large default-role designs
    python benchmarks/bench_compare.py --smoke      # 20 samples (CI: checks the script runs)
    python benchmarks/bench_compare.py --tune       # the cost model of the two group-sum paths (PAIR_COST)

Designs (call folders written once, each compared in a fresh process of this interpreter):

* N samples x 2 clones x 10 CpGs, cell lines A/B, doses 0-3: ``tests/callfixtures.py`` as
  ``tests/test_report.py::test_twelve_hundred_samples_stay_usable`` builds it, compared ``by=sample`` (one
  group per sample) and with the default roles (``by=cell_line`` within ``dose``);
* 1,200 samples x 10 clones with a SNP on CpG 6 (about half the clones carry its other allele): default roles,
  so also the allele split of every sample;
* the seed-study design with 250 clones per sample (8 samples, 2,000 clones, 24 assessable CpGs: the molecules of
  ``benchmarks/bench_call.py --scale 2000``, simulated at the call-table level by ``bsmeth.simulate.calls``).

Default compare options (999 permutations, 1,000 and 4,000 bootstrap resamples), seed 1.  The old code is
``git archive d9468ee`` of this repository (or ``--old SRC``, a source folder); a run of it that needs more than
``--old-memory`` GB (the old heterogeneity test of 1,200 groups held a groups x draws x clones matrix) or more than
``--old-timeout`` seconds is reported as such.  ``same`` compares the two processes' stats.tsv and
heterogeneity.tsv text byte for byte.  CPU time is the child's (all its threads): OpenBLAS threads that spin on
a busy machine count, so ``--blas-threads`` sets OPENBLAS_NUM_THREADS in the children (default: as inherited).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "d9468ee"

# one compare in a fresh process: load the folder, time compare_results, write both tables' text
CHILD = r"""
import json, sys, time
from bsmeth import stats as S
from bsmeth.clonal import heterogeneity_columns
from bsmeth.tables import load_call_dir
folder, roles, out = sys.argv[1], sys.argv[2], sys.argv[3]
config = S.CompareConfig() if roles == "default" else S.CompareConfig(by="sample", within=None)
data = load_call_dir(folder)
t = time.process_time()
rows, het = S.compare_results(data, config)
cpu = time.process_time() - t
text = S.rows_to_tsv(rows) + "\n" + S.rows_to_tsv(het, heterogeneity_columns(data))
open(out, "w", encoding="utf-8").write(text)
print(json.dumps({"cpu": cpu, "rows": len(rows), "het": len(het)}))
"""


def wide_design(folder: Path, n_samples: int, clones: int, snp: bool, seed: int) -> Path:
    """The test's design: n samples of ``clones`` random clones over 10 CpGs (tests/callfixtures.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from callfixtures import random_clones, write_call_dir

    rng = random.Random(seed)
    samples = []
    for i in range(n_samples):
        cl = random_clones(rng, clones, 0.3, 10)
        if snp:  # the other allele (no CpG 6) in about half the clones
            cl = [c[:5] + ("s" if rng.random() < 0.5 else c[5]) + c[6:] for c in cl]
        samples.append({"sample": f"P{i:04d}", "cell_line": "AB"[i % 2], "dose": str((i // 2) % 4), "clones": cl})
    return write_call_dir(folder, samples, snp_cpg=6 if snp else None)


def deep_design(folder: Path, clones: int) -> Path:
    """The seed-study design (8 samples, 24 assessable CpGs) with ``clones`` clones per sample."""
    from dataclasses import replace

    from bsmeth.reference import load_amplicon
    from bsmeth.simulate import seed_study_design
    from bsmeth.simulate.calls import write_call_folder

    design = seed_study_design()
    design = replace(design, conditions=tuple(replace(c, n_clones=clones) for c in design.conditions))
    return write_call_folder(design, load_amplicon(), folder, seed=1, undetermined=0.02)


def old_source(tmp: Path, given: str | None) -> tuple[str | None, str]:
    """(source folder of the old code or None, what it is)."""
    if given:
        return given, given
    dest = tmp / "old"
    dest.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "src"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None, f"commit {OLD_COMMIT} is not in this clone"
    return str(dest / "src"), f"git archive {OLD_COMMIT}"


def run_child(folder: Path, roles: str, out: Path, src: str | None, memory_gb: float, timeout: float,
              blas: str | None) -> dict:
    """{"cpu", ...} of one compare in a fresh process, or {"failed": why}."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if src:
        env["PYTHONPATH"] = src
    if blas:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = blas
    limit = int(memory_gb * 2 ** 30)

    def cap() -> None:  # address space, so a run that would need more fails fast with MemoryError
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        p = subprocess.run([sys.executable, "-c", CHILD, str(folder), roles, str(out)], env=env, capture_output=True,
                           text=True, timeout=timeout, preexec_fn=cap if memory_gb else None, check=False)
    except subprocess.TimeoutExpired:
        return {"failed": f"not done in {timeout:.0f} s"}
    if p.returncode != 0:
        oom = "MemoryError" in p.stderr or "Unable to allocate" in p.stderr or p.returncode < 0
        return {"failed": f"out of memory (> {memory_gb:g} GB)" if oom else f"failed: {p.stderr.strip()[-200:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def compare_designs(args) -> int:
    smoke = args.smoke
    sizes = (20,) if smoke else tuple(int(x) for x in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, what = (None, "not measured (--no-old)") if args.no_old else old_source(tmp, args.old)
        blas = args.blas_threads or os.environ.get("OPENBLAS_NUM_THREADS") or "as OpenBLAS chooses"
        print(f"bsmeth compare, CPU seconds of compare_results in a fresh process; old: {what}; "
              f"OpenBLAS threads: {blas}; {os.cpu_count()} cores")
        designs = []
        for n in sizes:
            d = wide_design(tmp / f"wide{n}", n, 2, False, 12)
            designs += [(f"{n} samples x 2 clones", "by=sample", d), (f"{n} samples x 2 clones", "default", d)]
        if not smoke and not args.no_large:
            designs.append(("1200 samples x 10 clones, SNP", "default", wide_design(tmp / "snp", 1200, 10, True, 14)))
            designs.append(("8 samples x 250 clones", "default", deep_design(tmp / "deep", 250)))
        print(f"{'design':34s} {'roles':10s} {'old':>10s} {'new':>8s} {'speed-up':>9s}  same tables")
        failures = 0
        for k, (name, roles, folder) in enumerate(designs):
            role_arg = "sample" if roles == "by=sample" else "default"
            new_out, old_out = tmp / f"new{k}.tsv", tmp / f"old{k}.tsv"
            new = run_child(folder, role_arg, new_out, None, 0, args.timeout, args.blas_threads)
            old = (run_child(folder, role_arg, old_out, src, args.old_memory, args.old_timeout, args.blas_threads)
                   if src else {"failed": what})
            if "failed" in new:
                failures += 1
                print(f"{name:34s} {roles:10s} new code {new['failed']}")
                continue
            if "failed" in old:
                print(f"{name:34s} {roles:10s} {'-':>10s} {new['cpu']:8.2f} {'-':>9s}  -  (old: {old['failed']})")
                continue
            same = digest(new_out) == digest(old_out)
            print(f"{name:34s} {roles:10s} {old['cpu']:10.2f} {new['cpu']:8.2f} {old['cpu'] / new['cpu']:8.1f}x  "
                  f"{'yes' if same else 'NO'}")
    return 1 if failures else 0


def tune() -> int:
    """Time the pair path and the matrix path of the group sums on the same draws, forcing each (in this process,
    this checkout): the crossovers are what PAIR_COST in patterns.py and heterogeneity.py encode."""
    import numpy as np

    from bsmeth import heterogeneity as H
    from bsmeth import patterns as P

    rng = np.random.default_rng(0)
    draws_n = 200
    print(f"group sums of {draws_n} draws, CPU seconds: pairs of clones / matrix product "
          f"(heterogeneity PAIR_COST {H.PAIR_COST:g}, kernel PAIR_COST {P.PAIR_COST:g})")
    saved = H.PAIR_COST, P.PAIR_COST
    for cpgs, n, size in ((10, 2400, 2), (10, 2400, 10), (10, 2400, 40), (10, 2400, 120), (24, 2000, 10),
                          (24, 2000, 50), (24, 2000, 250)):
        x = (rng.random((n, cpgs)) < 0.3).astype(float)
        x[rng.random((n, cpgs)) < 0.05] = np.nan
        draws, _ = P.label_draws(np.repeat(np.arange(n // size), size), None, rng, draws_n - 1)
        f, strata = H.features(x), np.zeros(n, int)
        k, index, _, _ = P.pattern_kernel(x)
        got = {}
        for path, cost in (("pairs", 0.0), ("matrix", float("inf"))):
            H.PAIR_COST = P.PAIR_COST = cost
            t = time.process_time()
            H.group_statistic(f, draws, strata, "k")
            het = time.process_time() - t
            t = time.process_time()
            P.kernel_dispersion(k, draws, strata, index)
            got[path] = (het, time.process_time() - t)
        H.PAIR_COST, P.PAIR_COST = saved
        print(f"  {cpgs} CpGs, {n} clones in groups of {size:3d} ({len(np.unique(index))} patterns): heterogeneity "
              f"{got['pairs'][0]:.3f} / {got['matrix'][0]:.3f}, kernel {got['pairs'][1]:.3f} / {got['matrix'][1]:.3f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="20 samples only (CI: checks the script runs)")
    ap.add_argument("--sizes", default="100,300,1200", help="samples of the 2-clone designs (default 100,300,1200)")
    ap.add_argument("--no-large", action="store_true", help="leave out the 1,200 x 10 and 8 x 250 designs")
    ap.add_argument("--old", metavar="SRC", help=f"source folder of the old code (default: git archive {OLD_COMMIT})")
    ap.add_argument("--no-old", action="store_true", help="this checkout only")
    ap.add_argument("--old-memory", type=float, default=8.0, help="GB of address space for an old run (default 8)")
    ap.add_argument("--old-timeout", type=float, default=1200.0, help="seconds for an old run (default 1200)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for a new run (default 600)")
    ap.add_argument("--blas-threads", help="OPENBLAS_NUM_THREADS of the children (default: as inherited)")
    ap.add_argument("--tune", action="store_true", help="time the two group-sum paths instead")
    args = ap.parse_args(argv)
    return tune() if args.tune else compare_designs(args)


if __name__ == "__main__":
    sys.exit(main())
