"""Small read builders shared by the stage tests (imported like callfixtures)."""

from bsmeth.reference import convert


def clone(amp, methylated) -> str:
    """The amplified strand of one clone as sequenced: C kept at methylated CpGs, every other C read as T."""
    read = list(convert(amp.target))
    for cpg, m in zip(amp.cpgs, methylated):
        if m:
            read[cpg.target_pos] = "C"
    return "".join(read)
