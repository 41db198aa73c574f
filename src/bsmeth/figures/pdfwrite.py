"""Scenes as PDF: vector shapes and text in DejaVu Sans, embedded as a TrueType subset.

Pipeline position: called by ``plots`` to write a figure's PDF (one page per
scene, so a figure split into pages is one file).  Written by hand: a PDF of
circles, lines and a few hundred words is a page of operators, and writing it
directly costs milliseconds where drawing it through a plotting library cost a
second.  The font is embedded (journals' preflight checks reject PDFs whose
fonts are not), subset with fontTools to the characters used, as TrueType, which
Illustrator and Inkscape edit as text.  Output is byte-for-byte deterministic
(no dates; the file identifier is a hash of the content).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from functools import lru_cache
from typing import Sequence

from . import layout as L
from .scene import Circle, Group, Line, Poly, Rect, Scene, Text, font_path, text_origin

KAPPA = 0.5522847498  # Bezier control distance of a quarter circle, per radius


@lru_cache(maxsize=1 << 16)  # a grid's circles repeat their columns' x and their rows' y numbers
def _n(x: float) -> str:
    s = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


@lru_cache(maxsize=256)
def _colour(hexcolour: str, op: str) -> str:
    c = hexcolour.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return f"{_n(r)} {_n(g)} {_n(b)} {op}"


def _pdf_string(text: str) -> bytes:
    raw = L.printable(text).encode("latin-1")
    out = bytearray(b"(")
    for b in raw:
        if b in b"\\()":
            out += b"\\" + bytes([b])
        elif b >= 128:
            out += f"\\{b:03o}".encode("ascii")
        else:
            out.append(b)
    out += b")"
    return bytes(out)


class _Content:
    """Operators of one page; y is flipped here (PDF's origin is bottom-left)."""

    def __init__(self, height: float):
        self.h = height
        self.ops: list[bytes] = []
        self.fill = self.stroke = None
        self.lw = None
        self.chars = {False: set(), True: set()}

    def _paint(self, fill, stroke, lw) -> str:
        if fill and fill != self.fill:
            self.ops.append(_colour(fill, "rg").encode())
            self.fill = fill
        if stroke and lw > 0:
            if stroke != self.stroke:
                self.ops.append(_colour(stroke, "RG").encode())
                self.stroke = stroke
            if lw != self.lw:
                self.ops.append(f"{_n(lw)} w".encode())
                self.lw = lw
        return "B" if fill and stroke and lw > 0 else ("f" if fill else ("S" if stroke and lw > 0 else "n"))

    def circle(self, c: Circle) -> None:
        op = self._paint(c.fill, c.stroke, c.lw)
        x, y, r = c.x, self.h - c.y, c.r
        k = KAPPA * r
        # the ten coordinates of the four Bezier quarters, each formatted once (a grid of 2,000 clones has
        # 50,000 circles: 26 numbers each took 3 s)
        x0, xk, xr, x_k, x_r = _n(x), _n(x + k), _n(x + r), _n(x - k), _n(x - r)
        y0, yk, yr, y_k, y_r = _n(y), _n(y + k), _n(y + r), _n(y - k), _n(y - r)
        self.ops.append((
            f"{xr} {y0} m {xr} {yk} {xk} {yr} {x0} {yr} c "
            f"{x_k} {yr} {x_r} {yk} {x_r} {y0} c "
            f"{x_r} {y_k} {x_k} {y_r} {x0} {y_r} c "
            f"{xk} {y_r} {xr} {y_k} {xr} {y0} c {op}").encode())

    def path(self, pts, closed: bool, fill, stroke, lw) -> None:
        op = self._paint(fill, stroke, lw)
        parts = [f"{_n(pts[0][0])} {_n(self.h - pts[0][1])} m"]
        parts += [f"{_n(x)} {_n(self.h - y)} l" for x, y in pts[1:]]
        if closed:
            parts.append("h")
        self.ops.append((" ".join(parts) + " " + op).encode())

    def rect(self, r: Rect) -> None:
        op = self._paint(r.fill, r.stroke, r.lw)
        self.ops.append(f"{_n(r.x)} {_n(self.h - r.y - r.h)} {_n(r.w)} {_n(r.h)} re {op}".encode())

    def text(self, t: Text) -> None:
        if not t.text:
            return
        ox, oy = text_origin(t)
        self.chars[t.bold].update(L.printable(t.text))
        matrix = f"0 1 -1 0 {_n(ox)} {_n(self.h - oy)}" if t.rotated else f"1 0 0 1 {_n(ox)} {_n(self.h - oy)}"
        colour = _colour(t.colour, "rg")
        self.fill = t.colour
        self.ops.append(f"BT /F{2 if t.bold else 1} {_n(t.size)} Tf {colour} {matrix} Tm ".encode()
                        + _pdf_string(t.text) + b" Tj ET")

    def item(self, item) -> None:
        if isinstance(item, Circle):
            self.circle(item)
        elif isinstance(item, Line):
            self.path(item.points, False, None, item.stroke, item.lw)
        elif isinstance(item, Rect):
            self.rect(item)
        elif isinstance(item, Poly):
            self.path(item.points, True, item.fill, item.stroke, item.lw)
        elif isinstance(item, Text):
            self.text(item)
        elif isinstance(item, Group):
            for sub in item.items:
                self.item(sub)
        else:
            raise TypeError(f"not a shape: {item!r}")


ASCII = frozenset(chr(c) for c in range(32, 127))
# printable ASCII and the few other characters figures use (no-break space in the captions) or users' labels
# often hold (micro, degree, plus-minus, times, en and em dash, minus): every PDF's subset holds at least these
BASE_CHARS = ASCII | frozenset("\u00a0\u00b0\u00b1\u00b5\u00d7\u2013\u2014\u2212")


def _font_chars(used: set[str]) -> frozenset:
    """The characters a PDF's font subset holds: ``BASE_CHARS``, plus any other character used.  One set for
    nearly every figure, whose subsets are shipped (``_subset_font``)."""
    return BASE_CHARS | frozenset(used)


# The BASE_CHARS subsets of the two fonts are shipped (data/DejaVuSans*-base.ttf, made by ``write_base_subsets``):
# nearly every figure needs only them, and making them costs a run about 0.4 s (importing fontTools.subset and
# subsetting both fonts).  data/font_subsets.tsv records the sha256 of the font each was cut from; a shipped
# subset is used only while matplotlib's font is that same file, else the subset is made here.
SUBSETS_TABLE = "font_subsets.tsv"


def _data_file(name: str) -> bytes:
    from importlib.resources import files

    return files("bsmeth").joinpath("data", name).read_bytes()


@lru_cache(maxsize=2)
def _shipped_base(bold: bool) -> bytes | None:
    """The shipped ``BASE_CHARS`` subset of the font, if it was cut from the installed font file."""
    rows = [line.split("\t") for line in _data_file(SUBSETS_TABLE).decode().splitlines()[1:] if line]
    for kind, subset_file, source_sha256 in rows:
        if kind == ("bold" if bold else "regular"):
            if hashlib.sha256(font_path(bold).read_bytes()).hexdigest() == source_sha256:
                return _data_file(subset_file)
    return None


def write_base_subsets(folder) -> None:
    """(Re)make the shipped ``BASE_CHARS`` subsets and their table in ``folder`` (the package's ``data``):
    ``python -c "from bsmeth.figures.pdfwrite import write_base_subsets as w; w('src/bsmeth/data')"``."""
    from pathlib import Path

    lines = ["font\tsubset\tsource_sha256"]
    for bold in (False, True):
        name = f"DejaVuSans{'-Bold' if bold else ''}-base.ttf"
        (Path(folder) / name).write_bytes(_make_subset(bold, BASE_CHARS))
        sha = hashlib.sha256(font_path(bold).read_bytes()).hexdigest()
        lines.append(f"{'bold' if bold else 'regular'}\t{name}\t{sha}")
    (Path(folder) / SUBSETS_TABLE).write_text("\n".join(lines) + "\n")


@lru_cache(maxsize=8)
def _subset_font(bold: bool, chars: frozenset) -> bytes:
    """The TrueType font reduced to ``chars`` (plus .notdef), hinting and layout tables dropped: the shipped
    subset for ``BASE_CHARS``, else made by fontTools."""
    shipped = _shipped_base(bold) if chars == BASE_CHARS else None
    return shipped if shipped is not None else _make_subset(bold, chars)


def _make_subset(bold: bool, chars: frozenset) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    opts = subset.Options()
    opts.hinting = False
    opts.notdef_outline = True
    opts.name_IDs = ["*"]
    opts.layout_features = []
    opts.drop_tables += ["FFTM", "GPOS", "GSUB", "GDEF", "kern", "BASE", "JSTF", "DSIG", "MATH"]
    font = TTFont(str(font_path(bold)), lazy=True, recalcTimestamp=False)  # no date: same bytes every run
    sub = subset.Subsetter(opts)
    sub.populate(text="".join(sorted(chars | {" "})))
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


def _tag(chars: set[str], bold: bool) -> str:
    digest = hashlib.sha256(("B" if bold else "R").encode() + "".join(sorted(chars)).encode("utf-8")).digest()
    return "".join(chr(ord("A") + b % 26) for b in digest[:6])


def pdf_bytes(scenes: Sequence[Scene], title: str = "") -> bytes:
    """One PDF with a page per scene, each page the scene's size."""
    contents = []
    for scene in scenes:
        c = _Content(scene.height)
        c.ops.append(b"1 j")  # round joins; butt caps (the default), as SVG draws
        for item in scene.items:
            c.item(item)
        contents.append(c)
    used = {b: set().union(*(c.chars[b] for c in contents)) for b in (False, True)}

    objects: list[bytes] = []  # object i + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes, extra: str = "") -> bytes:
        packed = zlib.compress(data, 6)
        return f"<< /Length {len(packed)} /Filter /FlateDecode{extra} >>\nstream\n".encode() + packed + \
            b"\nendstream"

    fonts = {}
    for bold in (False, True):
        if not used[bold]:
            continue
        chars = _font_chars(used[bold])
        data = _subset_font(bold, chars)
        bbox = "-1069 -415 1975 1174" if bold else "-1021 -463 1793 1232"  # head table, per 1000 em
        name = f"{_tag(chars, bold)}+DejaVuSans{'-Bold' if bold else ''}"
        file_id = add(stream(data, f" /Length1 {len(data)}"))
        desc = add((f"<< /Type /FontDescriptor /FontName /{name} /Flags 32 /FontBBox [{bbox}] "
                    f"/ItalicAngle 0 /Ascent {round(L.ASCENT * 1000)} /Descent {-round(L.DESCENT * 1000)} "
                    f"/CapHeight {round(L.CAP_HEIGHT * 1000)} /StemV {165 if bold else 80} /FontFile2 {file_id} 0 R >>"
                    ).encode())
        widths = " ".join(str(round(L.text_width(chr(c), 1000.0, bold))) if (c < 127 or c >= 160) else "0"
                          for c in range(32, 256))
        fonts[bold] = add((f"<< /Type /Font /Subtype /TrueType /BaseFont /{name} /FirstChar 32 /LastChar 255 "
                           f"/Widths [{widths}] /Encoding /WinAnsiEncoding /FontDescriptor {desc} 0 R >>").encode())
    font_res = " ".join(f"/F{2 if b else 1} {ref} 0 R" for b, ref in fonts.items())
    pages_id = len(objects) + 2 * len(scenes) + 1  # after every page and its content
    kids = []
    for scene, c in zip(scenes, contents):
        content_id = add(stream(b"\n".join(c.ops)))
        kids.append(add((f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {_n(scene.width)} {_n(scene.height)}] "
                         f"/Resources << /Font << {font_res} >> >> /Contents {content_id} 0 R >>").encode()))
    assert add(f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()) \
        == pages_id
    catalog = add(f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode())
    info = add(b"<< /Producer (bsmeth) /Title " + _pdf_string(title) + b" >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    doc_id = hashlib.md5(bytes(out)).hexdigest()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R "
            f"/ID [<{doc_id}> <{doc_id}>] >>\nstartxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)
