"""Long fuzz run of the read-file readers (outside CI): random and damaged real files through ``read_file``.

    python benchmarks/fuzz_readers.py             # 5 minutes
    python benchmarks/fuzz_readers.py 60          # an hour
    python benchmarks/fuzz_readers.py 2 --save failures/   # keep the bytes of failing inputs there
    python benchmarks/fuzz_readers.py --smoke     # one derandomized round of 30 inputs (CI: checks it runs)

The properties are those of tests/test_fuzz.py (whose strategies are reused): ``read_file`` never
raises, returns at least one item, a ``Read`` has a non-empty upper-case IUPAC sequence and no or
per-base uint8 qualities, an ``Unreadable`` names the file.  Here the examples are random (not
derandomized), the seeds of the damage are every real file of tests/data/traces, tests/data/bad/reads
and a few FASTA/FASTQ files, and one input taking more than ``--slow`` seconds counts as a failure
(a hang).  Prints the number of inputs tried and every failure (with the shrunk input); exit code 1
if any.  Writes only to a temporary folder (and --save, if given).
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Hypothesis keeps its files out of the source tree
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "bsmeth-hypothesis"))
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz  # noqa: E402  (the strategies and the property check)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class Slow(Exception):
    pass


def seeds() -> dict[str, bytes]:
    data = ROOT / "tests" / "data"
    files = dict(test_fuzz.REAL)
    for folder in (data / "traces", data / "bad" / "reads"):
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() not in (".md", ".rst", ".tsv") and p.stat().st_size < 400_000:
                files[p.name] = p.read_bytes()
    for p in (data / "quma_gm9" / "Gm9_J1_multi_fasta.txt", data / "nomeplot" / "Oct4" / "Oct4-seq1.seq"):
        if p.is_file():
            files[p.name] = p.read_bytes()
    files["J1.fasta.gz"] = gzip.compress(files.get("Gm9_J1_multi_fasta.txt", b">x\nACGT\n"), mtime=0)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("minutes", nargs="?", type=float, default=5.0, help="how long to run (default 5)")
    ap.add_argument("--batch", type=int, default=500, help="examples per Hypothesis run (default 500)")
    ap.add_argument("--slow", type=float, default=10.0, help="seconds after which one input counts as a hang")
    ap.add_argument("--save", type=Path, help="folder to write the bytes of failing inputs into")
    ap.add_argument("--smoke", action="store_true",
                    help="one round of 30 derandomized inputs, whatever the time: checks the script runs (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batch = 30

    real = seeds()
    strategy = st.one_of(
        test_fuzz.damaged(real),
        st.tuples(st.sampled_from(test_fuzz.SUFFIXES), st.binary(max_size=4096)),
        st.tuples(st.sampled_from(test_fuzz.SUFFIXES),
                  st.builds(lambda h, t: h + t, st.sampled_from([b"ABIF", b"\x1f\x8b", b">", b"@"]),
                            st.binary(max_size=2048))),
    )
    tried = 0
    failures: dict[tuple, dict] = {}  # (exception type, file, line) -> the last (shrunk) failing input
    found: dict[tuple, dict] = {}

    def on_alarm(signum, frame):
        raise Slow(f"one input took more than {args.slow} s")

    signal.signal(signal.SIGALRM, on_alarm)
    workdir = Path(tempfile.mkdtemp(prefix="bsmeth-fuzz-"))

    @settings(max_examples=args.batch, deadline=None, database=None, derandomize=args.smoke,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def prop(case):
        nonlocal tried
        tried += 1
        suffix, data = case
        signal.setitimer(signal.ITIMER_REAL, args.slow)
        try:
            test_fuzz.check(workdir, suffix, data)
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            first = str(e).splitlines()[0] if str(e) else ""
            found[(type(e).__name__, where.filename, where.lineno)] = {
                "error": f"{type(e).__name__}: {first[:200]}", "where": f"{where.filename}:{where.lineno}",
                "suffix": suffix, "data": data}
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def report(key, f) -> None:
        n = len(failures)
        msg = (f"FAILURE {n}: {f['error']}\n  raised at {f['where']}\n"
               f"  input: suffix {f['suffix']!r}, {len(f['data'])} bytes, starts {f['data'][:48]!r}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            out = args.save / f"failure{n}{f['suffix'] or '.bin'}"
            out.write_bytes(f["data"])
            msg += f"\n  saved to {out}"
        f["message"] = msg
        print(msg, flush=True)

    start = time.monotonic()
    end = start + 60 * args.minutes
    rounds = 0
    try:
        while rounds == 0 if args.smoke else time.monotonic() < end:
            rounds += 1
            found.clear()
            try:
                prop()
            except Exception:  # the failures (already shrunk by Hypothesis) are in ``found``
                pass
            for key, f in found.items():
                if key not in failures:  # the same bug found again in a later round is not repeated
                    failures[key] = f
                    report(key, f)
            elapsed = time.monotonic() - start
            print(f"{elapsed / 60:6.1f} min  {tried} inputs tried  {len(failures)} distinct failure(s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        for p in workdir.iterdir():
            p.unlink()
        workdir.rmdir()
    print(f"done: {tried} inputs in {rounds} rounds over {(time.monotonic() - start) / 60:.1f} min; "
          f"{len(failures)} distinct failure(s)")
    for f in failures.values():
        print(f["message"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
