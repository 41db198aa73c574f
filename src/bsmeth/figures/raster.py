"""Scenes as pixels: PNG and TIFF (LZW) through Pillow, the only module that imports it.

Pipeline position: called by ``plots`` to write the raster formats of a
figure (``scene`` describes what is drawn).  Shapes are anti-aliased by
drawing their coverage mask at 4x and reducing it; identical shapes at the same
sub-pixel offset (the circles of a lollipop grid) reuse one mask, so a grid of
thousands of circles costs a few dozen masks.  Text is set with FreeType in
DejaVu Sans without kerning, as ``layout`` measures it.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Callable

from . import layout as L
from .scene import Circle, Group, Line, Poly, Rect, Scene, Text, font_path, text_origin

SS = 4  # supersampling of shape masks
QUANT = 4  # sub-pixel offsets are quantised to 1/QUANT pixel for mask reuse


@lru_cache(maxsize=256)
def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@lru_cache(maxsize=64)
def _font(bold: bool, size_px: float):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(bold)), size_px, layout_engine=ImageFont.Layout.BASIC)


class _Canvas:
    def __init__(self, scene: Scene, dpi: float):
        from PIL import Image, ImageDraw

        self.k = dpi / L.POINTS_PER_INCH
        self.im = Image.new("RGB", (max(1, math.ceil(scene.width * self.k)), max(1, math.ceil(scene.height * self.k))),
                            "white")
        self.draw = ImageDraw.Draw(self.im)
        self.core = self.im.im  # Pillow's image core: pastes go to it directly (see _paste)
        self.masks: dict = {}

    # a shape's coverage mask: drawn at SS x into an 'L' image, reduced, cached by shape and sub-pixel offset
    def _stamp(self, key, x0: float, y0: float, w: float, h: float, paint: Callable):
        ix, iy = math.floor(x0), math.floor(y0)
        fx, fy = round((x0 - ix) * QUANT) / QUANT, round((y0 - iy) * QUANT) / QUANT
        full = (key, fx, fy)
        mask = self.masks.get(full) if key is not None else None
        if mask is None:
            from PIL import Image, ImageDraw

            mw, mh = math.ceil(w + fx) + 2, math.ceil(h + fy) + 2
            big = Image.new("L", (mw * SS, mh * SS), 0)
            paint(ImageDraw.Draw(big), (fx + 1) * SS, (fy + 1) * SS)
            mask = big.reduce(SS)
            if key is not None and len(self.masks) < 4096:
                self.masks[full] = mask
        return mask, (ix - 1, iy - 1)

    def _paste(self, colour: str, mask, at) -> None:
        # what Image.paste(colour, box, mask) ends in, without its checks of the arguments on every call: a
        # lollipop grid pastes two masks for each of tens of thousands of circles
        w, h = mask.size
        self.core.paste(_rgb(colour), (at[0], at[1], at[0] + w, at[1] + h), mask.im)

    def circle(self, c: Circle) -> None:
        k = self.k
        r = c.r * k
        lw = c.lw * k if c.stroke else 0.0
        outer = r + lw / 2
        x0, y0 = c.x * k - outer, c.y * k - outer
        style = (round(r, 2), round(lw, 2))
        if c.fill:
            def paint_fill(d, ox, oy):
                e = (outer - r) * SS
                d.ellipse((ox + e, oy + e, ox + e + 2 * r * SS, oy + e + 2 * r * SS), fill=255)
            mask, at = self._stamp(("cf", *style), x0, y0, 2 * outer, 2 * outer, paint_fill)
            self._paste(c.fill, mask, at)
        if lw > 0:
            def paint_ring(d, ox, oy):
                d.ellipse((ox, oy, ox + 2 * outer * SS, oy + 2 * outer * SS), fill=255)
                inner = max(0.0, r - lw / 2)
                e = (outer - inner) * SS
                if inner > 0:
                    d.ellipse((ox + e, oy + e, ox + e + 2 * inner * SS, oy + e + 2 * inner * SS), fill=0)
            mask, at = self._stamp(("cs", *style), x0, y0, 2 * outer, 2 * outer, paint_ring)
            self._paste(c.stroke, mask, at)

    def polygon(self, pts, fill, stroke, lw) -> None:
        k = self.k
        px = [(x * k, y * k) for x, y in pts]
        pad = (lw * k if stroke else 0.0) / 2 + 0.5
        x0, y0 = min(p[0] for p in px) - pad, min(p[1] for p in px) - pad
        x1, y1 = max(p[0] for p in px) + pad, max(p[1] for p in px) + pad
        rel = tuple((round(x - x0, 2), round(y - y0, 2)) for x, y in px)
        if fill:
            def paint(d, ox, oy):
                d.polygon([(ox + x * SS, oy + y * SS) for x, y in rel], fill=255)
            mask, at = self._stamp(("pf", rel), x0, y0, x1 - x0, y1 - y0, paint)
            self._paste(fill, mask, at)
        if stroke and lw > 0:
            self.polyline(tuple(pts) + (pts[0],), stroke, lw)

    def polyline(self, pts, colour: str, lw: float) -> None:
        k = self.k
        w = lw * k
        if len(pts) > 3:  # a curve (a trace): one mask for all its segments, smooth joins
            px = [(x * k, y * k) for x, y in pts]
            pad = w / 2 + 1
            x0, y0 = min(p[0] for p in px) - pad, min(p[1] for p in px) - pad
            x1, y1 = max(p[0] for p in px) + pad, max(p[1] for p in px) + pad

            def paint_curve(d, ox, oy):
                d.line([(ox + (x - x0) * SS, oy + (y - y0) * SS) for x, y in px], fill=255,
                       width=max(1, round(w * SS)), joint="curve")
            mask, at = self._stamp(None, x0, y0, x1 - x0, y1 - y0, paint_curve)
            self._paste(colour, mask, at)
            return
        for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
            xa, ya, xb, yb = xa * k, ya * k, xb * k, yb * k
            if (xa == xb or ya == yb) and w >= 1.5:  # axis-aligned and at least 1.5 px: a rectangle is exact enough
                hx, hy = (0.0, w / 2) if ya == yb else (w / 2, 0.0)  # butt ends, as SVG and PDF draw them
                x0, x1 = round(min(xa, xb) - hx), round(max(xa, xb) + hx)
                y0, y1 = round(min(ya, yb) - hy), round(max(ya, yb) + hy)
                self.draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), fill=_rgb(colour))
                continue
            pad = w / 2 + 1
            x0, y0 = min(xa, xb) - pad, min(ya, yb) - pad
            rel = (round(xa - x0, 2), round(ya - y0, 2), round(xb - x0, 2), round(yb - y0, 2))

            def paint(d, ox, oy, rel=rel):
                a = (ox + rel[0] * SS, oy + rel[1] * SS)
                b = (ox + rel[2] * SS, oy + rel[3] * SS)
                d.line((a, b), fill=255, width=max(1, round(w * SS)))
            mask, at = self._stamp(("l", rel, round(w, 2)), x0, y0, abs(xb - xa) + 2 * pad, abs(yb - ya) + 2 * pad,
                                   paint)
            self._paste(colour, mask, at)

    def rect(self, r: Rect) -> None:
        k = self.k
        if r.fill:
            x0, y0, x1, y1 = r.x * k, r.y * k, (r.x + r.w) * k, (r.y + r.h) * k
            self.draw.rectangle((round(x0), round(y0), max(round(x0), round(x1) - 1), max(round(y0), round(y1) - 1)),
                                fill=_rgb(r.fill))
        if r.stroke and r.lw > 0:
            pts = ((r.x, r.y), (r.x + r.w, r.y), (r.x + r.w, r.y + r.h), (r.x, r.y + r.h), (r.x, r.y))
            self.polyline(pts, r.stroke, r.lw)

    def text(self, t: Text) -> None:
        from PIL import Image, ImageDraw

        if not t.text:
            return
        k = self.k
        font = _font(t.bold, round(t.size * k * 4) / 4)
        ox, oy = text_origin(t)
        s = L.printable(t.text)
        if not t.rotated:
            self.draw.text((ox * k, oy * k), s, font=font, fill=_rgb(t.colour), anchor="ls")
            return
        left, top, right, bottom = font.getbbox(s, anchor="ls")
        pad = 2
        mw, mh = right - min(0, left) + 2 * pad, bottom - top + 2 * pad
        mask = Image.new("L", (int(mw), int(mh)), 0)
        bx, by = pad - min(0, left), pad - top  # baseline origin inside the mask
        ImageDraw.Draw(mask).text((bx, by), s, font=font, fill=255, anchor="ls")
        rot = mask.rotate(90, expand=True)  # counter-clockwise: (u, v) -> (v, mw - u)
        self._paste(t.colour, rot, (round(ox * k - by), round(oy * k - (mw - bx))))

    def item(self, item) -> None:
        if isinstance(item, Circle):
            self.circle(item)
        elif isinstance(item, Line):
            self.polyline(item.points, item.stroke, item.lw)
        elif isinstance(item, Rect):
            self.rect(item)
        elif isinstance(item, Poly):
            self.polygon(item.points, item.fill, item.stroke, item.lw)
        elif isinstance(item, Text):
            self.text(item)
        elif isinstance(item, Group):
            for sub in item.items:
                self.item(sub)
        else:
            raise TypeError(f"not a shape: {item!r}")


def render(scene: Scene, dpi: float):
    """The scene as a Pillow RGB image at ``dpi``."""
    canvas = _Canvas(scene, dpi)
    for item in scene.items:
        canvas.item(item)
    return canvas.im


def png_bytes(scene: Scene, dpi: float) -> bytes:
    buf = io.BytesIO()
    render(scene, dpi).save(buf, format="PNG", dpi=(dpi, dpi), compress_level=6)
    return buf.getvalue()


def tiff_bytes(scene: Scene, dpi: float) -> bytes:
    """TIFF, LZW-compressed (what journals ask for), resolution tags set to ``dpi``."""
    buf = io.BytesIO()
    render(scene, dpi).save(buf, format="TIFF", dpi=(dpi, dpi), compression="tiff_lzw")
    return buf.getvalue()
