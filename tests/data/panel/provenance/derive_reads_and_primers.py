#!/usr/bin/env python3
"""How EPM2AIP1_reads_classes.tsv, EPM2AIP1_reads_on_target_full.fasta, offtarget_reads_same_run.fasta and the
derived primers were made (provenance script; needs Biopython, run with 1.88).

    python3 derive_reads_and_primers.py SOURCE_READS.fasta SOURCE_REFERENCE.fa OUT_DIR

SOURCE_* = methylscaper inst/extdata/seq_file.fasta and reference.fa (= shared/data/mapit-454-methylscaper/).
"""
import sys
from collections import Counter
from pathlib import Path

from Bio import Align

MID = "ATCAGACACG"          # the 10-nt Roche MID every read starts with
REV = "CAATCAAATTTCTCAACTCTATAAA"   # reverse primer: the 25 nt after the MID in full-length reads and dimers
OFFTARGET = ("H4XQCM208JLQUA", "H4XQCM208JF2H5", "H4XQCM208JJTB9")


def rc(s):
    return s[::-1].translate(str.maketrans("ACGTNacgtn", "TGCANtgcan"))


def records(path):
    out, name = {}, None
    for ln in Path(path).read_text().splitlines():
        ln = ln.strip()
        if ln.startswith(">"):
            name = ln[1:].split()[0]
            out[name] = ""
        elif ln:
            out[name] += ln
    return out


def main(reads_path, ref_path, out_dir):
    out_dir = Path(out_dir)
    reads = records(reads_path)
    ref = next(iter(records(ref_path).values())).upper()
    conv = ref.replace("C", "T")                      # C->T converted FASTA strand (CpG C folded to T as well)
    loc = Align.PairwiseAligner(mode="local", match_score=2, mismatch_score=-3, open_gap_score=-5,
                                extend_gap_score=-2)
    rows = []
    for n, s in reads.items():
        q = rc(s).replace("C", "T")                   # every read is the reverse complement of that strand
        a = loc.align(q, conv)[0]
        ts, te = int(a.aligned[1][0][0]), int(a.aligned[1][-1][1])
        same = sum(1 for (x0, x1), (y0, _) in zip(*a.aligned) for k in range(x1 - x0) if q[x0 + k] == conv[y0 + k])
        ident = same / a.length
        rscore = loc.score(s[:45], REV)
        if te - ts >= 500 and ts <= 35 and te >= 620 and ident >= 0.9:
            cls = "on_target_full"
        elif te - ts >= 300 and te >= 620 and ident >= 0.9:
            cls = "on_target_partial"
        elif len(s) < 100 and rscore >= 38:
            cls = "primer_dimer"
        elif len(s) < 100:
            cls = "short_other"
        else:
            cls = "off_target_or_chimeric"
        rows.append((n, len(s), "yes" if s[:10] == MID else "no", int(rscore), ts, te, f"{ident:.3f}", cls))
    with open(out_dir / "EPM2AIP1_reads_classes.tsv", "w") as f:
        f.write("read_id\tlength\tstarts_with_MID_ATCAGACACG\treverse_primer_score_max50\tfasta_start0\t"
                "fasta_end0\tidentity_CT_folded\tclass\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    print(Counter(r[-1] for r in rows))
    # verbatim records, source order
    src = Path(reads_path).read_text().split(">")[1:]
    full = {r[0] for r in rows if r[-1] == "on_target_full"}
    for fname, keep in (("EPM2AIP1_reads_on_target_full.fasta", full), ("offtarget_reads_same_run.fasta",
                                                                         set(OFFTARGET))):
        with open(out_dir / fname, "w", newline="") as f:
            for rec in src:
                if rec.split()[0] in keep:
                    f.write(">" + rec)
    # forward primer = reverse complement of what follows MID+REV in primer dimers that end with rc(MID)
    rem = Counter(s[35:-10] for s in reads.values()
                  if len(s) < 100 and s.startswith(MID + REV) and s.endswith(rc(MID)))
    print("primer dimers used:", sum(rem.values()))
    for seq, k in rem.most_common(5):
        print(k, "forward =", rc(seq))


if __name__ == "__main__":
    main(*sys.argv[1:4])
