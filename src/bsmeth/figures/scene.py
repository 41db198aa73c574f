"""What a figure draws, as plain shapes and texts in points, and its SVG.

Pipeline position: ``plots`` builds a ``Scene`` per figure page from the pure
geometry of ``layout``; this module writes it as SVG (plain text, no drawing
library), ``raster`` as PNG/TIFF (Pillow) and ``pdfwrite`` as PDF.  The same
scene goes to every format, so what one format shows, every format shows.

Coordinates are points (1/72 inch), origin top-left, y downwards.  Colours
are opaque ``#rrggbb`` (a faint dot is a light tint, not a transparency, which
some print workflows flatten badly).  Text is DejaVu Sans (the font whose
widths ``layout`` measures with); its files are the ones matplotlib ships, found
without importing matplotlib.
"""

from __future__ import annotations

import html
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from . import layout as L


@dataclass(frozen=True)
class Circle:
    x: float
    y: float
    r: float
    fill: Optional[str] = None
    stroke: Optional[str] = None
    lw: float = 0.0


@dataclass(frozen=True)
class Line:
    """An open polyline."""

    points: tuple[tuple[float, float], ...]
    stroke: str = "#000000"
    lw: float = 0.5


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: Optional[str] = None
    stroke: Optional[str] = None
    lw: float = 0.0


@dataclass(frozen=True)
class Poly:
    """A closed polygon."""

    points: tuple[tuple[float, float], ...]
    fill: Optional[str] = None
    stroke: Optional[str] = None
    lw: float = 0.0


@dataclass(frozen=True)
class Text:
    """One line of text.  ``ha``: left, center, right; ``va``: baseline, middle (of the capitals), top (of the
    capitals), bottom (of the descenders).  ``rotated``: turned 90 degrees counter-clockwise (reads upwards);
    alignment is then along the turned text."""

    x: float
    y: float
    text: str
    size: float = L.FONT
    ha: str = "left"
    va: str = "baseline"
    rotated: bool = False
    bold: bool = False
    colour: str = "#000000"


Shape = Union[Circle, Line, Rect, Poly, Text, "Group"]


@dataclass
class Group:
    """Shapes drawn together; ``gid`` becomes the SVG group's id (tests and editors find panels by it)."""

    gid: str
    items: list = field(default_factory=list)


@dataclass
class Scene:
    """One page of a figure: ``width`` x ``height`` points, shapes in drawing order."""

    width: float
    height: float
    items: list = field(default_factory=list)

    def add(self, item) -> None:
        self.items.append(item)

    def walk(self):
        """Every shape, groups flattened, in drawing order."""
        stack = [iter(self.items)]
        while stack:
            for item in stack[-1]:
                if isinstance(item, Group):
                    stack.append(iter(item.items))
                    break
                yield item
            else:
                stack.pop()

    def texts(self) -> list[Text]:
        return [t for t in self.walk() if isinstance(t, Text)]


def baseline_offset(t: Text) -> float:
    """Distance (points) from the anchor to the baseline, along the text's up direction (positive: the
    baseline lies below the anchor in reading orientation)."""
    return {"baseline": 0.0, "middle": L.CAP_HEIGHT * t.size / 2, "top": L.CAP_HEIGHT * t.size,
            "bottom": -L.DESCENT * t.size}[t.va]


def text_origin(t: Text) -> tuple[float, float]:
    """Page coordinates of the left end of the text's baseline."""
    w = L.text_width(t.text, t.size, t.bold)
    along = {"left": 0.0, "center": -w / 2, "right": -w}[t.ha]
    down = baseline_offset(t)
    if t.rotated:  # reading direction is up the page (-y), 'down' in reading terms is +x
        return t.x + down, t.y - along
    return t.x + along, t.y + down


def text_box(t: Text) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the ink a text can cover (capitals and descenders), in page coordinates."""
    w = L.text_width(t.text, t.size, t.bold)
    ox, oy = text_origin(t)
    up, down = 0.76 * t.size, L.DESCENT * t.size  # ascenders of b, d, l reach 0.76 em
    if t.rotated:
        return ox - up, oy - w, ox + down, oy
    return ox, oy - up, ox + w, oy + down


def font_path(bold: bool = False) -> Path:
    """DejaVu Sans as shipped with matplotlib (a dependency), found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    if spec is not None and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            p = Path(base) / "mpl-data" / "fonts" / "ttf" / name
            if p.is_file():
                return p
    raise FileNotFoundError(f"{name} not found in matplotlib's data folder: reinstall matplotlib")


# --- SVG --------------------------------------------------------------------------------------------


def _n(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _paint(fill: Optional[str], stroke: Optional[str], lw: float) -> str:
    out = f' fill="{fill}"' if fill else ' fill="none"'
    if stroke and lw > 0:
        out += f' stroke="{stroke}" stroke-width="{_n(lw)}"'
    return out


def _svg_item(item, out: list[str]) -> None:
    if isinstance(item, Circle):
        out.append(f'<circle cx="{_n(item.x)}" cy="{_n(item.y)}" r="{_n(item.r)}"'
                   f'{_paint(item.fill, item.stroke, item.lw)}/>')
    elif isinstance(item, Line):
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in item.points)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{item.stroke}" stroke-width="{_n(item.lw)}"/>')
    elif isinstance(item, Rect):
        out.append(f'<rect x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"'
                   f'{_paint(item.fill, item.stroke, item.lw)}/>')
    elif isinstance(item, Poly):
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in item.points)
        out.append(f'<polygon points="{pts}"{_paint(item.fill, item.stroke, item.lw)}/>')
    elif isinstance(item, Text):
        x, y = text_origin(item)
        attrs = f' x="{_n(x)}" y="{_n(y)}" font-size="{_n(item.size)}"'
        if item.rotated:
            attrs += f' transform="rotate(-90 {_n(x)} {_n(y)})"'
        if item.bold:
            attrs += ' font-weight="bold"'
        if item.colour != "#000000":
            attrs += f' fill="{item.colour}"'
        out.append(f"<text{attrs}>{html.escape(L.printable(item.text), quote=False)}</text>")
    elif isinstance(item, Group):
        out.append(f'<g id="{html.escape(item.gid)}">')
        for sub in item.items:
            _svg_item(sub, out)
        out.append("</g>")
    else:
        raise TypeError(f"not a shape: {item!r}")


def svg_bytes(scene: Scene, title: str = "") -> bytes:
    """The scene as a standalone SVG document (sizes in points; deterministic)."""
    w, h = _n(scene.width), _n(scene.height)
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt" viewBox="0 0 {w} {h}">',
           "<style>text{font-family:'DejaVu Sans',Verdana,Arial,Helvetica,sans-serif;white-space:pre}</style>"]
    if title:
        out.append(f"<title>{html.escape(title)}</title>")
    out.append(f'<rect width="{w}" height="{h}" fill="#ffffff"/>')
    for item in scene.items:
        _svg_item(item, out)
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")


def pages_of(figure) -> list[Scene]:
    """The scenes of a figure object (``.pages``) or of a single scene."""
    return list(figure.pages) if hasattr(figure, "pages") else [figure]
