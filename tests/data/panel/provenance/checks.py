#!/usr/bin/env python3
"""Re-run every anchor and primer check of SOURCE.md from the files in this folder (standard library only).

The constants below are copied verbatim from the cited public sources (see SOURCE.md for repository, path,
commit); nothing here is fetched.  Run:  python3 checks.py   (exit status 0 = every check passed).
"""
import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OK = True


def check(label, cond, detail=""):
    global OK
    OK &= bool(cond)
    print(f"[{'PASS' if cond else 'FAIL'}] {label}{': ' + detail if detail else ''}")


def fasta(path):
    seq = "".join(ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith(">"))
    return seq


def rc(s):
    return s[::-1].translate(str.maketrans("ACGTacgt", "TGCAtgca"))


# ---------------------------------------------------------------- EPM2AIP1 (methylscaper) reference
EPM = HERE / "EPM2AIP1_promoter_methylscaper.fa"
raw = EPM.read_bytes()
check("EPM2AIP1 FASTA is byte-identical to shared/data/mapit-454-methylscaper/reference.fa",
      hashlib.sha256(raw).hexdigest() == "003f7cd6e7c127e5ac1e31256bbc5d472d666400529048c57ab24fa10a6d8c25",
      "sha256 003f7cd6...8c25, 638 bytes, CRLF line ends")
seq = fasta(EPM)
S = seq.upper()
check("EPM2AIP1 reference length", len(S) == 629, f"{len(S)} nt (the shared SOURCE.md's '630' counts the CR)")
cg = [m.start() for m in re.finditer("(?=CG)", S)]
check("CpG dinucleotides in the reference", len(cg) == 55, f"{len(cg)}")

# Anchor: hg19 chr3, 0-based start 37034226, + strand  =>  index i = hg19 1-based 37034227 + i
HG19_START0 = 37034226

# Illumina 450K/27K MAPINFO (hg19, 1-based C of the CpG on +), isb-cgc/examples-R inst/doc/DNA_Methylation.md
MAPINFO = {
    "cg24607398": 37033625, "cg10990993": 37033632, "cg18320188": 37033980, "cg02279071": 37034154,
    "cg00893636": 37034840, "cg13846866": 37035399, "cg02103401": 37033373, "cg04726821": 37033791,
    "cg11291081": 37033894, "cg05670953": 37033903, "cg04841293": 37034028, "cg05845319": 37034066,
    "cg21109167": 37034084, "cg03901257": 37034142, "cg14751544": 37034166, "cg16764580": 37034346,
    "cg01302270": 37034441, "cg17641046": 37034473, "cg07101782": 37034495, "cg03497419": 37034654,
    "cg27586588": 37034661, "cg16433211": 37034693, "cg10769891": 37034730, "cg19132762": 37034739,
    "cg23658326": 37034787, "cg11600697": 37034814, "cg21490561": 37034825, "cg03192963": 37034909,
    "cg06791151": 37034956, "cg07064226": 37034997, "cg06108510": 37035063, "cg24985459": 37035090,
    "cg12790037": 37035117, "cg25202636": 37035158, "cg17621259": 37035168, "cg14671526": 37035200,
    "cg05906740": 37035205, "cg27331401": 37035207, "cg25837710": 37035220, "cg12851504": 37035222,
    "cg06590608": 37035228, "cg11224603": 37035282, "cg19208331": 37035345, "cg14598950": 37035355,
}
inside = {p: pos - 1 - HG19_START0 for p, pos in MAPINFO.items() if 0 <= pos - 1 - HG19_START0 < len(S) - 1}
on_cg = {p: i for p, i in inside.items() if S[i:i + 2] == "CG"}
check("every 450K/27K probe inside hg19 chr3:37034227-37034855 sits on a CG at index MAPINFO-37034227",
      len(inside) == 13 and on_cg == inside,
      f"{len(on_cg)}/{len(inside)}: " + ", ".join(f"{p}@{i}" for p, i in sorted(inside.items(), key=lambda x: x[1])))
# offset scan: no other placement of the reference (either strand) puts as many probes on CGs
best = {}
for pos in MAPINFO.values():
    for i in cg:
        best[("+", pos - 1 - i)] = best.get(("+", pos - 1 - i), 0) + 1
        best[("-", pos + 1 + i)] = best.get(("-", pos + 1 + i), 0) + 1
ranked = sorted(best.items(), key=lambda kv: -kv[1])
check("offset scan over both strands: the anchor is the unique best placement",
      ranked[0] == (("+", HG19_START0), 13) and ranked[1][1] <= 7,
      f"best {ranked[0]}, runner-up {ranked[1]}")

# PooledPEScreen (Francis Crick Institute) MLH1 'upstream region 1' amplicon: genomic sequence, GRCh38 offset
U1 = ("GCACACAAGCCCGGTTCCGGCATCTCTGCTCCTATTGGCTGGATATTTCGTATTCCCCGAGCTCCTAAAAACGAACCAATAGGAAGAGCGGACAGCGATCTCT"
      "AACGCGCAAGCGCATATCCTTCTAGGTAGCGGGCAGTAGCCGCTTCAGGGAGGGACGAAGAGACCCAGCAACCCACAGAGTTGAGAAATTTG")
U1_FWD_PRIMER = "GCCAGATCACCTCAGCAGAG"    # cutadapt5First (read-1 PCR primer)
U1_REV_PRIMER = "TGGACAGCTTGAATGCCAGT"    # cutadapt5Second (read-2 PCR primer)
U1_GRCH38_OFFSET = 36993191                # GRCh38 1-based position of U1 index 0 ('offset', amplicon_length 195)
k = S.find(U1[:40])
check("PooledPEScreen u1 genomic sequence overlaps the reference end exactly",
      k == 455 and S[k:] == U1[:len(S) - k], f"index {k}-628 ({len(S) - k} nt) identical, incl. the upper-case "
      f"A/A/C at 566/618/622; U1 runs {len(U1) - (len(S) - k)} nt past the FASTA end")
check("PooledPEScreen forward PCR primer is genomic right before u1", S[k - 20:k] == U1_FWD_PRIMER,
      f"index {k - 20}-{k - 1}")
grch38_start0 = U1_GRCH38_OFFSET - 1 - k
check("GRCh38 placement from PooledPEScreen", grch38_start0 == 36992735,
      f"FASTA index 0 = GRCh38 0-based {grch38_start0}; hg19 - GRCh38 = {HG19_START0 - grch38_start0}")
# kzkedzierska/mlh1_endo data/methylation_chr3_GRCh38.bed 'start' column for three probes
BED_START = {"cg16764580": 36992855, "cg16433211": 36993202, "cg23658326": 36993296}
pred = {p: grch38_start0 + inside[p] + 1 for p in BED_START}
check("GRCh38 probe positions (mlh1_endo BED start column) = PooledPEScreen 1-based position of the same CpG's C",
      pred == BED_START, str(pred) + " (the BED column holds the 1-based C, i.e. it is 1-based or off by one)")

# Primers (derived from the 454 reads; see SOURCE.md)
FWD = "ATTGGTATATAAAGTTTTTTATTTTAGT"
REV = "CAATCAAATTTCTCAACTCTATAAA"
top_ct = S.replace("C", "T")
check("forward primer 3'-terminal 2 nt = C->T converted FASTA index 0-1", FWD[-2:] == top_ct[:2],
      f"{FWD[-2:]} vs {top_ct[:2]}; its other 26 nt lie upstream of the FASTA (genomic sequence not available)")
flank3 = U1[len(S) - k:] + rc(U1_REV_PRIMER)[:4]   # genomic bases after FASTA index 628
check("reverse primer = reverse complement of the C->T converted genomic 25 nt right after the FASTA end",
      rc(REV) == flank3.replace("C", "T"),
      f"genomic {flank3} -> converted {flank3.replace('C', 'T')} (no CpG in it); last 4 nt from PooledPEScreen's "
      "read-2 primer site")
check("neither primer binds inside the FASTA (so the panel row leaves forward/reverse empty)",
      FWD not in top_ct and rc(REV) not in top_ct)

# ---------------------------------------------------------------- IGFBP3
IG = HERE / "IGFBP3_promoter_hg19.fa"
igs = fasta(IG).upper()
check("IGFBP3 FASTA length 342 and anchor hg19 chr7 start 45960821 '-' spans it", len(igs) == 342)
check("IGFBP3 SNP rs2854744 89:C>A: FASTA position 89 (1-based) is C, in a CpG", igs[88:90] == "CG")


def binds(primer, genomic):
    """Positions where a converted-form primer matches the genomic strand (primer T pairs with genomic C or T)."""
    return [i for i in range(len(genomic) - len(primer) + 1)
            if all(p == g or (p == "T" and g == "C") for p, g in zip(primer, genomic[i:i + len(primer)]))]


check("IGFBP3 forward primer binds the converted FASTA strand at index 36 only",
      binds("TGGGTATATTTTGGTTTTTGTAGA", igs) == [36])
check("IGFBP3 reverse primer's reverse complement binds the converted FASTA strand ending at index 262",
      [i + 23 for i in binds(rc("AAAACCAAAATAACCCAAAACAC"), igs)] == [262])

# ---------------------------------------------------------------- reads
src = (HERE / "EPM2AIP1_reads_on_target_full.fasta").read_text()
n = src.count(">")
check("on-target full-length read subset", n == 111, f"{n} records")
starts = [r.split("\n", 1)[1].replace("\n", "")[:10] for r in src.split(">")[1:]]
check("subset reads start with the 454 MID ATCAGACACG (one read has a 1-nt MID error)",
      sum(s == "ATCAGACACG" for s in starts) == 110 and all(s.startswith("ATCAGACA") for s in starts),
      f"{sum(s == 'ATCAGACACG' for s in starts)}/{len(starts)} exact")

print("ALL CHECKS PASSED" if OK else "SOME CHECKS FAILED")
sys.exit(0 if OK else 1)
