#!/usr/bin/env python3
"""(Re)create the bad-input corpus of bsmeth in this folder, from real files of tests/data.

Usage (from anywhere; needs only the Python standard library):

    python tests/data/bad/make_corpus.py           # rewrite every corpus file
    python tests/data/bad/make_corpus.py --check   # exit 1 if a file on disk differs from what would be written

Deterministic: the same bytes on every run and machine (fixed random seeds, gzip mtime 0, no
timestamps).  Inputs, all inside tests/data (never ../shared):

    tests/data/traces/3100.ab1, A_forward.ab1, test.fsa   real ABIF files (see traces/SOURCE_*.md)
    tests/data/biq_demo/Master_Sequence.txt, Demo_data/seq_*.fasta   BiQ Analyzer demo (biq_demo/SOURCE.md)

Outputs (what each file is and why: SOURCE.md next to this script):

    reads/       one file per broken or odd read file (the per-read behaviour: a fail row, never a crash)
    no_reads/    a folder without any read file (README.txt, notes.md)
    sheets/      sample sheets with one problem each (paths relative to the sheet, as bsmeth reads them)
    references/  reference FASTAs with one problem each
    designs/     `bsmeth simulate --design` files that are not designs

Files that git cannot keep (an unreadable-permission file, FIFOs, devices, broken and looping links,
file names that are not UTF-8, files over the size limit) are made by the tests in tmp_path.
The corpus must stay small (< 3 MB); the script checks it.
"""

from __future__ import annotations

import argparse
import gzip
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
TRACES = DATA / "traces"
BIQ = DATA / "biq_demo"
DEMO = BIQ / "Demo_data"
MAX_BYTES = 3_000_000

ENTRY = struct.Struct(">4sIHHIIII")  # ABIF directory entry: name, number, type, size, count, datasize, offset, handle
DIR_ENTRY_AT = 6  # the root directory entry ("tdir") sits at byte 6 of the 128-byte header
DIR_COUNT_AT = DIR_ENTRY_AT + 12  # its fields: count at +12, data size at +16, offset at +20
DIR_SIZE_AT = DIR_ENTRY_AT + 16
DIR_OFFSET_AT = DIR_ENTRY_AT + 20


# ---------------------------------------------------------------------------------------------- helpers
def fasta_seq(path: Path) -> str:
    """Sequence of a one-record FASTA, as written (case kept)."""
    lines = path.read_text().splitlines()
    return "".join(ln.strip() for ln in lines if ln.strip() and not ln.startswith(">"))


def wrap(seq: str, width: int = 60) -> list[str]:
    return [seq[i : i + width] for i in range(0, len(seq), width)]


def fasta(records: list[tuple[str, str]], width: int = 60, eol: str = "\n") -> str:
    out = []
    for head, seq in records:
        out.append(">" + head)
        out += wrap(seq, width)
    return eol.join(out) + eol


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def abif_directory(data: bytes) -> tuple[int, int]:
    """(offset, number of entries) of the tag directory of an ABIF file."""
    count = struct.unpack_from(">I", data, DIR_COUNT_AT)[0]
    offset = struct.unpack_from(">I", data, DIR_OFFSET_AT)[0]
    return offset, count


def abif_entries(data: bytes) -> list[tuple]:
    offset, count = abif_directory(data)
    return [ENTRY.unpack_from(data, offset + i * ENTRY.size) for i in range(count)]


def abif_tag_data(data: bytes, name: bytes, number: int) -> bytes:
    offset, _ = abif_directory(data)
    for i, e in enumerate(abif_entries(data)):
        if e[0] == name and e[1] == number:
            size, where = e[5], e[6]
            if size <= 4:  # small data sits in the offset field itself
                where = offset + i * ENTRY.size + 20
            return data[where : where + size]
    raise KeyError(f"{name!r}{number}")


def abif_without_tags(data: bytes, names: set[bytes]) -> bytes:
    """The same ABIF file with the directory entries of ``names`` removed (the data bytes stay, unreferenced)."""
    offset, count = abif_directory(data)
    kept = [e for e in abif_entries(data) if e[0] not in names]
    out = bytearray(data)
    new_dir = b"".join(ENTRY.pack(*e) for e in kept)
    out[offset : offset + count * ENTRY.size] = new_dir + bytes((count - len(kept)) * ENTRY.size)
    struct.pack_into(">I", out, DIR_COUNT_AT, len(kept))
    struct.pack_into(">I", out, DIR_SIZE_AT, len(kept) * ENTRY.size)
    return bytes(out)


def abif_resize_tag(data: bytes, name: bytes, shorter: int) -> bytes:
    """The same ABIF file with the element count and data size of every ``name`` entry ``shorter`` less."""
    out = bytearray(data)
    offset, _ = abif_directory(data)
    for i, e in enumerate(abif_entries(data)):
        if e[0] == name:
            where = offset + i * ENTRY.size
            struct.pack_into(">I", out, where + 12, e[4] - shorter)  # number of elements
            struct.pack_into(">I", out, where + 16, (e[4] - shorter) * e[3])  # data size
    return bytes(out)


def abif_zero_tags(data: bytes, names: set[bytes]) -> bytes:
    """The same ABIF file with the data of ``names`` overwritten by zero bytes (directory untouched)."""
    out = bytearray(data)
    offset, _ = abif_directory(data)
    for i, e in enumerate(abif_entries(data)):
        if e[0] in names:
            size, where = e[5], e[6]
            if size <= 4:
                where = offset + i * ENTRY.size + 20
            out[where : where + size] = bytes(size)
    return bytes(out)


# ---------------------------------------------------------------------------------------------- corpus
def build() -> dict[str, bytes]:
    """Relative path -> bytes of every corpus file."""
    files: dict[str, bytes] = {}
    ab3100 = (TRACES / "3100.ab1").read_bytes()
    a_forward = (TRACES / "A_forward.ab1").read_bytes()
    fsa = (TRACES / "test.fsa").read_bytes()
    seq = {c: fasta_seq(BIQ / "Demo_data" / f"seq_{c}.fasta") for c in "ABCDEFGHIJ"}
    master = fasta_seq(BIQ / "Master_Sequence.txt").upper()
    calls_3100 = abif_tag_data(ab3100, b"PBAS", 2).decode("ascii")
    calls_a_forward = abif_tag_data(a_forward, b"PBAS", 2).decode("ascii")
    dir_offset, dir_count = abif_directory(ab3100)

    # -- reads: ABIF problems ------------------------------------------------------------------
    r = "reads/"
    files[r + "zero_bytes.ab1"] = b""
    files[r + "text_renamed.ab1"] = (BIQ / "Demo_data" / "seq_B.fasta").read_bytes()
    files[r + "truncated_in_header.ab1"] = ab3100[:64]  # inside the 128-byte header
    files[r + "truncated_after_header.ab1"] = ab3100[:1000]  # header complete, data and directory lost
    files[r + "truncated_100kb.ab1"] = ab3100[:100_000]  # in the data: the directory (at the end) is lost
    files[r + "truncated_in_directory.ab1"] = ab3100[: dir_offset + (dir_count // 2) * ENTRY.size + 10]
    past = bytearray(ab3100)
    struct.pack_into(">I", past, DIR_OFFSET_AT, len(ab3100) + 4096)
    files[r + "dir_offset_past_end.ab1"] = bytes(past)
    files[r + "no_basecalls.ab1"] = fsa  # fragment analysis: valid ABIF without PBAS/PCON/PLOC
    files[r + "no_quality_removed.ab1"] = abif_without_tags(ab3100, {b"PCON"})
    files[r + "no_quality_zeroed.ab1"] = abif_zero_tags(ab3100, {b"PCON"})

    # -- reads: FASTA/FASTQ problems -----------------------------------------------------------
    numbered = "\n".join(f"{i * 60 + 1:>6} " + " ".join(line[j : j + 10] for j in range(0, len(line), 10))
                         for i, line in enumerate(wrap(seq["B"].lower())))
    files[r + "non_dna.fasta"] = (
        ">seq_B_numbered GenBank-style layout: line numbers and spaces are layout, not sequence\n" + numbered + "\n"
        + fasta([("protein_p53 a protein sequence (human TP53 N-terminus) given by mistake",
                  "MEEPQSDPSVEPPLSQETFSDLWKLLPENNVLSPLPSQAMDDLMLSPDDIEQWFTEDPGPDEAPRMPEAAPPVAPAPAAPTPAAPAPAPSWPLSS"),
                 ("seq_C_with_X a clone read with an X in it", seq["C"][:100] + "X" + seq["C"][100:])])
    ).encode()
    files[r + "lowercase.fasta"] = fasta([("seq_C_lower", seq["C"].lower())]).encode()
    files[r + "windows_crlf.fasta"] = fasta([("seq_E_crlf", seq["E"])], eol="\r\n").encode()
    files[r + "empty_records.fasta"] = (
        ">empty_first\n" + fasta([("seq_I", seq["I"])]) + ">empty_middle\n\n\n>empty_last\n"
    ).encode()
    files[r + "duplicate_ids.fasta"] = fasta([("clone1 seq_B", seq["B"]), ("clone1 seq_H", seq["H"])]).encode()
    files[r + "clones.fasta.gz"] = gz(fasta([("seq_B", seq["B"]), ("seq_C", seq["C"])]).encode())
    fq = [("seq_E", seq["E"], "I"), ("seq_I", seq["I"], "I"), ("seq_H_lowq", seq["H"].upper(), "#")]
    files[r + "clones.fastq.gz"] = gz("".join(f"@{n}\n{s}\n+\n{q * len(s)}\n" for n, s, q in fq).encode())
    files[r + "malformed.fastq"] = (
        f"@good_first\n{seq['B']}\n+\n{'I' * len(seq['B'])}\n"
        f"@short_qual\n{seq['C']}\n+\n{'I' * 50}\n"
        "this line is not FASTQ\n"
        f"@good_last\n{seq['I']}\n+\n{'I' * len(seq['I'])}\n"
    ).encode()
    files[r + "wrong_gene_3100.fasta"] = fasta([("calls_3100 base calls of tests/data/traces/3100.ab1 "
                                                  "(16S rDNA, not bisulfite)", calls_3100)]).encode()
    rng = random.Random(20240101)
    files[r + "random_100kb.fasta"] = fasta([("random_100kb seeded random sequence",
                                               "".join(rng.choice("ACGT") for _ in range(100_000)))], width=80).encode()
    files[r + "short_read.fasta"] = fasta([("seq_B_30bp", seq["B"][100:130])]).encode()
    files[r + "all_n.fasta"] = fasta([("all_n", "N" * 233)]).encode()
    rng = random.Random(7)
    files[r + "binary_junk.fasta"] = bytes(rng.randrange(256) for _ in range(2000))
    files[r + "corrupt.fasta.gz"] = (lambda b: b[:30] + bytes([b[30] ^ 0xFF]) + b[31:])(
        gz(fasta([("seq_B", seq["B"])]).encode()))
    files[r + "truncated.fasta.gz"] = gz(fasta([("seq_B", seq["B"]), ("seq_C", seq["C"])]).encode())[:-20]
    files[r + "windows1252_header.fasta"] = fasta([("seq_I_cp1252 clone 5 \u00b5M \u2013 Windows-1252 header",
                                                     seq["I"])]).encode("cp1252")
    files[r + "utf16.fasta"] = fasta([("seq_H_utf16", seq["H"])], eol="\r\n").encode("utf-16")

    # -- reads: hostile classes (limits, layouts, trace anomalies) -------------------------------
    # a decompression bomb: a FASTA header, then one line of A; 96 identical gzip members of 1 MiB each
    # (~100 KB on disk), 96 MiB decompressed, over the 64 MiB per-input limit; multi-member gzip is valid
    # (what `cat a.gz b.gz` makes)
    head = b">bomb a gzip bomb\n"
    files[r + "bomb_96mib.fasta.gz"] = gz(head + b"A" * (2**20 - len(head))) + gz(b"A" * 2**20) * 95
    # wrapped FASTQ (sequence and qualities over several lines of 60; quality lines starting with '@')
    files[r + "wrapped.fastq"] = "".join(
        f"@{n} wrapped at 60\n" + "\n".join(wrap(sq)) + "\n+\n"
        + "\n".join(wrap(("@" + "I" * 59) * 10)[: len(wrap(sq))])[: len(sq) + len(wrap(sq)) - 1] + "\n"
        for n, sq in (("seq_B_wrapped", seq["B"]), ("seq_E_wrapped", seq["E"]), ("seq_I_wrapped", seq["I"]))
    ).encode()
    # wrapped FASTQ whose middle record lost its last quality line
    short = seq["C"]
    files[r + "wrapped_short_quality.fastq"] = (
        "@seq_B_ok\n" + "\n".join(wrap(seq["B"])) + "\n+\n" + "\n".join(wrap("I" * len(seq["B"]))) + "\n"
        + "@seq_C_cut\n" + "\n".join(wrap(short)) + "\n+\n" + "\n".join(wrap("I" * len(short))[:-1]) + "\n"
        + "@seq_I_ok\n" + "\n".join(wrap(seq["I"])) + "\n+\n" + "\n".join(wrap("I" * len(seq["I"]))) + "\n"
    ).encode()
    # ABIF anomalies: a quality array 10 shorter than the calls; four empty (all-zero) data channels
    files[r + "short_quality_array.ab1"] = abif_resize_tag(ab3100, b"PCON", 10)
    files[r + "empty_channels.ab1"] = abif_zero_tags(ab3100, {b"DATA"})

    # -- a folder without reads ----------------------------------------------------------------
    files["no_reads/README.txt"] = b"Reads of clone plate 3 go here (not sequenced yet).\n"
    files["no_reads/notes.md"] = b"# Notes\n\n- primers ordered\n- no reads yet\n"

    # -- sample sheets (paths relative to the sheet) -------------------------------------------
    s = "sheets/"
    demo = "../../biq_demo/Demo_data"
    files[s + "missing_file.csv"] = (f"file,sample,cell_line\n{demo}/seq_B.fasta,ctrl,HeLa\n"
                                     f"{demo}/seq_Z.fasta,ctrl,HeLa\n").encode()
    files[s + "partial.csv"] = f"file,sample\n{demo}/seq_B.fasta,ctrl\n".encode()
    files[s + "duplicate_identical.csv"] = (f"file,sample,dose\n{demo}/seq_B.fasta,ctrl,0\n"
                                            f"{demo}/seq_C.fasta,treated,5\n{demo}/seq_B.fasta,ctrl,0\n").encode()
    files[s + "duplicate_conflicting.csv"] = (f"file,sample,dose\n{demo}/seq_B.fasta,ctrl,0\n"
                                              f"{demo}/seq_C.fasta,treated,5\n{demo}/seq_B.fasta,treated,5\n").encode()
    files[s + "no_sample_column.csv"] = f"file,cell_line\n{demo}/seq_B.fasta,HeLa\n".encode()
    files[s + "no_file_column.csv"] = f"path,sample\n{demo}/seq_B.fasta,ctrl\n".encode()
    # a first cell starting with '#' after the header is a row (here: a file named '#clone_B.fasta');
    # a '#' line before the header is a comment
    files[s + "#clone_B.fasta"] = (DEMO / "seq_B.fasta").read_bytes()
    files[s + "hash_first_cell.csv"] = (f"# plate 1, clones picked 2024-01-15\nfile,sample,dose\n"
                                        f"#clone_B.fasta,hashed,0\n{demo}/seq_C.fasta,plain,0\n").encode()
    # a quoted cell over two lines, with a doubled quote, as Excel writes it: CRLF between rows, LF (Alt+Enter)
    # inside the cell
    files[s + "multiline_cell.csv"] = (f'file,sample,note\r\n{demo}/seq_B.fasta,ctrl,"picked twice;\n'
                                       f'see ""plate log"""\r\n{demo}/seq_C.fasta,treated,\r\n').encode("cp1252")
    files[s + "unclosed_quote.csv"] = (f'file,sample,note\n{demo}/seq_B.fasta,ctrl,"never closed\n'
                                       f"{demo}/seq_C.fasta,treated,x\n").encode()
    files[s + "dose_inf.csv"] = (f"file,sample,cell_line,dose\n{demo}/seq_B.fasta,ctrl,HeLa,0\n"
                                 f"{demo}/seq_C.fasta,high,HeLa,inf\n").encode()
    files[s + "dose_nan.csv"] = (f"file,sample,cell_line,dose\n{demo}/seq_B.fasta,ctrl,HeLa,nan\n"
                                 f"{demo}/seq_C.fasta,high,HeLa,10\n").encode()
    files[s + "dose_not_numeric.csv"] = (f"file,sample,cell_line,dose\n{demo}/seq_B.fasta,ctrl,HeLa,none\n"
                                         f"{demo}/seq_C.fasta,low,HeLa,10 uM\n"
                                         f"{demo}/seq_E.fasta,high,HeLa,high\n").encode()

    # -- references ----------------------------------------------------------------------------
    f = "references/"
    a, b = _longest_cpg_free(calls_a_forward)
    files[f + "no_cpg.fasta"] = fasta([(f"A_forward_{a + 1}_{b} CpG-free stretch of the base calls of "
                                        "traces/A_forward.ab1", calls_a_forward[a:b])]).encode()
    files[f + "converted.fasta"] = fasta([("genomic_seq_converted BiQ master sequence, bisulfite-converted in silico",
                                           master.replace("C", "T"))]).encode()
    files[f + "repeated_primer_site.fasta"] = fasta([("genomic_seq_repeat BiQ master sequence + a copy of its "
                                                      "first 40 bp", master + "AAAAAAAAAA" + master[:40])]).encode()
    files[f + "protein.fasta"] = fasta([("p53_protein human TP53 N-terminus",
                                         "MEEPQSDPSVEPPLSQETFSDLWKLLPENNVLSPLPSQAMDDLMLSPDDIEQWFTEDPGP")]).encode()
    files[f + "empty.fasta"] = b">nothing_here\n\n"
    iupac = master[:60] + "R" + master[61:150] + "Y" + master[151:]
    files[f + "iupac.fasta"] = fasta([("genomic_seq_iupac BiQ master sequence with R at 61 and Y at 151",
                                       iupac)]).encode()
    files[f + "windows1252_header.fasta"] = fasta([("genomic_seq BiQ master sequence \u2013 5 \u00b5g, "
                                                    "header in Windows-1252", master)]).encode("cp1252")
    rng = random.Random(11)
    flank = "".join(rng.choice("ACGT") for _ in range(2900))
    files[f + "whole_record_6kb.fasta"] = fasta([("long_record BiQ master sequence in 6 kb of seeded random sequence",
                                                  flank + master + flank)]).encode()

    # -- simulate designs that are not designs -------------------------------------------------
    d = "designs/"
    files[d + "not_an_object.json"] = b'[{"sample": "a"}]\n'
    files[d + "n_clones_text.json"] = b'{"conditions": [{"sample": "a", "n_clones": "eleven"}]}\n'
    files[d + "n_clones_fraction.json"] = b'{"conditions": [{"sample": "a", "n_clones": 2.5}]}\n'
    files[d + "faults_not_counts.json"] = b'{"conditions": [{"sample": "a"}], "faults": {"duplicate": 1e9}}\n'
    files[d + "read_model_text.json"] = b'{"conditions": [{"sample": "a"}], "reads": {"plus_orientation": "half"}}\n'
    files[d + "nested_too_deep.json"] = b"[" * 5000 + b"]" * 5000 + b"\n"
    return files


def _longest_cpg_free(seq: str) -> tuple[int, int]:
    """[start, end) of the longest stretch of A/C/G/T without a CG dinucleotide."""
    best, start = (0, 0), 0
    for i, b in enumerate(seq):
        if b not in "ACGT":
            start = i + 1
            continue
        if i > start and seq[i - 1 : i + 1] == "CG":
            start = i
        if i + 1 - start > best[1] - best[0]:
            best = (start, i + 1)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args(argv)
    files = build()
    total = sum(len(b) for b in files.values())
    if total > MAX_BYTES:
        print(f"corpus is {total} bytes, over the {MAX_BYTES} limit", file=sys.stderr)
        return 1
    differ = []
    for rel, data in sorted(files.items()):
        path = HERE / rel
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                differ.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # files of earlier versions of the corpus that this version does not make
    known = set(files) | {"make_corpus.py", "SOURCE.md"}
    stale = sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and str(p.relative_to(HERE)) not in known)
    if args.check:
        for rel in differ + stale:
            print(f"differs or stale: {rel}", file=sys.stderr)
        return 1 if differ or stale else 0
    for rel in stale:
        print(f"note: {rel} is not made by this script (remove it if it is a left-over)", file=sys.stderr)
    print(f"{len(files)} files, {total} bytes written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
