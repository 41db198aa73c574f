"""readsbam's record parts (made per read in the workers) against their definitions, position by position, and
its fast paths against the general ones: on simulated reads of a top- and a bottom-strand amplicon, each on the
genome's plus and minus strand (both record orientations), read in both orientations, with and without gaps."""

from __future__ import annotations

import struct
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readfixtures import amplicon_forms

from bsmeth import readsbam
from bsmeth.coords import revcomp
from bsmeth.models import CallConfig, Panel
from bsmeth.pipeline import process_file
from bsmeth.reference import (
    convert,
    load_amplicon,
)
from bsmeth.simulate import seed_study_design, simulate

MIN_QUAL = CallConfig().min_qual
QUALS = (MIN_QUAL, 45)  # (the simulated traces' PHRED values reach below 45 often, below the default seldom)


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    """Simulated traces (both orientations, poor conversion, a low-quality read) and two FASTA reads with a
    3-base deletion and a 3-base insertion, as given and reverse complemented."""
    d = seed_study_design()
    d = replace(d, conditions=tuple(replace(c, n_clones=3) for c in (d.conditions[0], d.conditions[7])),
                faults={"poor_conversion": 1, "failed_read": 1})
    folder = tmp_path_factory.mktemp("reads")
    simulate(d, load_amplicon(), folder, seed=7)
    conv = convert(load_amplicon().target)
    body = conv[:60] + conv[63:120] + "GTA" + conv[120:]
    (folder / "gaps_plus.fa").write_text(">gaps_plus\n" + body + "\n", encoding="ascii")
    (folder / "gaps_minus.fa").write_text(">gaps_minus\n" + revcomp(body) + "\n", encoding="ascii")
    return sorted(folder.rglob("*.ab1")) + sorted(folder.glob("*.fa"))


@pytest.fixture(scope="module", params=["top", "bottom", "top_own", "bottom_own"])
def aligned(request, reads):
    """(amplicon, placement, the aligned results) of one form."""
    amp = amplicon_forms()[request.param]
    cfg = CallConfig(write_bam=False)
    results = [r for f in reads for r in process_file(f, "s", amp, cfg) if r.aligned is not None and r.sequence]
    amps, places = readsbam.panel_parts(Panel((amp,)))
    assert {r.aligned.orientation for r in results} == {"+", "-"}
    return amp, places[amp.name], results


def tags_of(parts: readsbam.ReadParts, body: bytes) -> tuple[bytes, dict]:
    """(the bases as letters, the tags) of a record body as ``record_parts`` makes it (CIGAR, bases, qualities,
    tags)."""
    at = 4 * parts.n_cigar
    packed = body[at:at + (parts.l_seq + 1) // 2]
    letters = "".join("=ACMGRSVTWYHKDBN"[b >> 4] + "=ACMGRSVTWYHKDBN"[b & 15] for b in packed)[:parts.l_seq]
    at += (parts.l_seq + 1) // 2 + parts.l_seq
    tags = {}
    while at < len(body):
        tag, kind = body[at:at + 2].decode(), chr(body[at + 2])
        at += 3
        if kind == "Z":
            end = body.index(b"\0", at)
            tags[tag], at = body[at:end].decode(), end + 1
        elif kind == "i":
            tags[tag], at = struct.unpack_from("<i", body, at)[0], at + 4
        elif kind == "B":
            n = struct.unpack_from("<i", body, at + 1)[0]
            tags[tag], at = list(body[at + 5:at + 5 + n]), at + 5 + n
        else:
            raise AssertionError(f"tag {tag}: type {kind}")
    return letters.encode(), tags


def by_definition(result, amp, place, min_qual: int) -> tuple[str, str]:
    """(XM, the restored bases) walking the target position by position: at a CpG's C the call (Z for M, z for U,
    else '.'); at any other C outside the primers the context letter, upper case for a C read, lower case for a
    T, '.' for another base or a PHRED below --min-qual; the restored bases: C at the Z and z, as the amplified
    strand reads them; both in the record's orientation."""
    aln, seq, n = result.aligned, result.sequence, len(result.sequence)
    oriented = seq if aln.orientation == "+" else revcomp(seq)
    quals = result.qualities
    oq = None if quals is None else (quals if aln.orientation == "+" else quals[::-1])
    cpg_call = {c.target_pos: code for c, code in zip(amp.cpgs, result.calls.codes)}
    xm, restored = ["."] * n, list(oriented)
    for t in range(amp.length):
        g = int(aln.read_pos[t])
        if g < 0 or amp.target[t] != "C":
            continue
        q = g if aln.orientation == "+" else n - 1 - g
        if t in cpg_call:
            xm[q] = {"M": "Z", "U": "z"}.get(cpg_call[t], ".")
            if xm[q] != ".":
                restored[q] = "C"
        elif not amp.in_primer(t) and (oq is None or oq[q] >= min_qual) and oriented[q] in "CT":
            ctx = readsbam._context(amp, t)
            xm[q] = ctx.upper() if oriented[q] == "C" else ctx
    xm_s, restored_s = "".join(xm), "".join(restored)
    if place.strand == "-":
        return xm_s[::-1], revcomp(restored_s)
    return xm_s, restored_s


@pytest.mark.parametrize("min_qual", QUALS)
def test_xm_and_restored_bases_are_their_definition(aligned, min_qual):
    amp, place, results = aligned
    masked = 0
    for r in results:
        parts = readsbam.record_parts(r, amp, place, min_qual)
        bases, tags = tags_of(parts, parts.plain)
        restored, mod_tags = tags_of(parts, parts.mod)
        xm, want_restored = by_definition(r, amp, place, min_qual)
        masked += xm != by_definition(r, amp, place, 0)[0]
        assert tags["XM"] == xm, r.read_id
        assert restored.decode() == want_restored and mod_tags["YB"].encode() == bases, r.read_id
        assert len(mod_tags["ML"] if "ML" in mod_tags else []) == xm.count("Z") + xm.count("z")
        assert sorted(mod_tags["ML"] if "ML" in mod_tags else []) == sorted(
            [255] * xm.count("Z") + [0] * xm.count("z"))
    assert masked if min_qual > MIN_QUAL else True  # the quality mask is exercised


@pytest.mark.parametrize("min_qual", QUALS)
def test_the_gap_free_path_is_the_general_one(aligned, monkeypatch, min_qual):
    """Reads without a gap take one slice of columns and one pass for both MD strings (``_gap_free``); through
    ``_gapped`` and ``_md`` they come out the same.  The reads with gaps are there too (their CIGAR has I and D)."""
    amp, place, results = aligned
    fast = [readsbam.record_parts(r, amp, place, min_qual) for r in results]
    monkeypatch.setattr(readsbam, "_gap_free", lambda *a: False)
    general = [readsbam.record_parts(r, amp, place, min_qual) for r in results]
    names = [f.name for f in fields(readsbam.ReadParts)]
    assert [[getattr(p, k) for k in names] for p in fast] == [[getattr(p, k) for k in names] for p in general]
    gapped = [p for p, r in zip(fast, results) if r.read_id.startswith("gaps")]
    assert len(gapped) == 2 and all(p.n_cigar >= 5 for p in gapped)


def test_record_parts_sets_every_field(aligned):
    """``ReadParts`` is made without its ``__init__`` (see ``record_parts``): every field is there, nothing else."""
    amp, place, results = aligned
    parts = readsbam.record_parts(results[0], amp, place, MIN_QUAL)
    assert set(vars(parts)) == {f.name for f in fields(readsbam.ReadParts)}


@st.composite
def two_rows(draw):
    n = draw(st.integers(1, 80))
    plain = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mod = [m and draw(st.booleans()) for m in plain]  # the restored read mismatches at fewer columns
    ref = draw(st.text("ACGTN", min_size=n + 1, max_size=n + 1))
    return plain, mod, ref, draw(st.booleans())


@settings(max_examples=200, deadline=None)
@given(two_rows())
def test_both_md_strings_in_one_pass_are_each_ones(case):
    plain, mod, ref, reverse = case
    miss = np.array([[True, *plain, True], [True, *mod, True]], dtype=bool)
    ref_u8 = np.frombuffer(ref.encode(), dtype=np.uint8)
    assert readsbam._md_both(miss, ref.encode(), reverse) == (readsbam._md_block(miss[0], ref_u8, reverse),
                                                               readsbam._md_block(miss[1], ref_u8, reverse))
