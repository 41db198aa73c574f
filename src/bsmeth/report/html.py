"""HTML building blocks of the report: escaping, compact tables, embedded data and figures.

Bottom of the report's modules (``build`` assembles, ``summary`` words the results, ``reads`` embeds the
per-read data).  Every piece of text from the inputs goes through ``esc``.  Tables are plain HTML,
readable without JavaScript; ``class="data"`` marks the ones the page's script makes sortable, filterable and
searchable.  Closing ``</td>``/``</tr>`` tags are left out (HTML allows it): a 2,000-row table is a fifth smaller.
A table of more than ``PAGE_ROWS`` rows shows its first rows only until the script pages it: laying out 2,000 rows
took 2 of the 2.8 CPU seconds Chromium spent on a 2,000-read report (without JavaScript a ``<noscript>`` style
shows every row).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import zlib
from typing import Iterable, Optional, Sequence

PAGE_ROWS = 100  # a longer table shows this many rows at a time (all of them without JavaScript)
NOSCRIPT_STYLE = "<noscript><style>table.big tbody tr{display:table-row!important}</style></noscript>"
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+|inf|∞)$")


def esc(x) -> str:
    """Text for HTML (attribute-safe); '' for None and NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return html.escape(str(x), quote=True)


def number_text(x: float) -> str:
    """A float as the report shows it: up to 4 decimals, trailing zeros dropped, tiny values in e-notation."""
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.3g}"
    if x % 1:
        return f"{x:.4f}".rstrip("0").rstrip(".")
    return f"{x:.0f}"


def cell(x, numeric_text: bool = False) -> str:
    """One ``<td>``: numbers right-aligned (class ``n``); strings that look like numbers too with
    ``numeric_text`` (tables read back as text)."""
    if isinstance(x, bool):
        return f"<td>{'yes' if x else 'no'}"
    if isinstance(x, float):
        return f"<td class=n>{esc(number_text(x))}" if not math.isnan(x) else "<td>"
    if isinstance(x, int):
        return f"<td class=n>{x}"
    if isinstance(x, Raw):
        return f"<td{x.attrs}>{x.html}"
    if numeric_text and isinstance(x, str) and _NUMBER.match(x):
        return f"<td class=n>{esc(x)}"
    return f"<td>{esc(x)}"


class Raw:
    """Cell content that is already HTML (built with ``esc``), with optional attributes for its ``<td>``."""

    __slots__ = ("html", "attrs")

    def __init__(self, html_text: str, attrs: str = ""):
        self.html, self.attrs = html_text, (" " + attrs if attrs else "")


def html_table(headers: Sequence[str], rows: Iterable[Sequence], row_classes: Optional[Sequence[str]] = None,
               table_id: str = "", numeric_text: bool = False, data: bool = True,
               titles: Optional[Sequence[str]] = None, caption: str = "") -> str:
    """An HTML table.  ``data``: sortable/filterable/searchable by the page's script; ``titles``: a tooltip per
    column header (what the column means)."""
    rows = list(rows)
    cls = ("data big" if len(rows) > PAGE_ROWS else "data") if data else ""
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{cls}"' if cls else "")
    out = [f"<table{attrs}>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>")
    for k, h in enumerate(headers):
        tip = titles[k] if titles and k < len(titles) and titles[k] else ""
        out.append(f'<th title="{esc(tip)}">{esc(h)}</th>' if tip else f"<th>{esc(h)}</th>")
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(rows):
        cls = row_classes[i] if row_classes else ""
        out.append(f'\n<tr class="{esc(cls)}">' if cls else "\n<tr>")
        out += [cell(v, numeric_text) for v in r]
    out.append("</tbody></table>")
    return "".join(out)


def definition_list(items: Iterable[tuple[str, str]], cls: str = "") -> str:
    """``<dl>`` of (term, definition) pairs; both are escaped."""
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<dl class="{cls}">{body}</dl>' if cls else f"<dl>{body}</dl>"


def json_script(element_id: str, value) -> str:
    """Data for the page's script: JSON inside ``<script type="application/json">`` (``</`` cannot end it)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def packed(data: bytes) -> str:
    """``data`` deflated (zlib) and base64-encoded: the page's script inflates it on first use
    (``DecompressionStream('deflate')``), so large per-read data costs a fraction of its size and no render time."""
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def packed_script(element_id: str, data: bytes) -> str:
    return f'<script type="application/octet-stream" id="{esc(element_id)}" data-z="deflate">{packed(data)}</script>'


def img(png: bytes, alt: str, width_px: Optional[int] = None) -> str:
    """A PNG embedded as a data URI; ``width_px``: the CSS width to show it at (e.g. half the pixels for a
    figure drawn at twice the screen's resolution)."""
    style = f' style="width:{width_px}px"' if width_px else ""
    return f'<img alt="{esc(alt)}"{style} src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def preview_png(png: bytes, max_width: int, max_height: int, max_bytes: int,
                max_pixels: int = 100_000_000) -> tuple[Optional[bytes], tuple[int, int], str]:
    """``png`` as the report embeds it: (bytes or None, its size, what was done).

    Within ``max_width`` x ``max_height`` and ``max_bytes``: as it is.  Else reduced by the smallest integer
    factor that fits (a box filter) and quantised to 16 colours: a lollipop grid of 2,000 clones (3,862 x 9,242
    px, 1.8 MB) becomes 1,288 x 3,081 px and 0.12 MB and stays legible (antialiased scaling without quantising
    made it 5-9 MB: every pixel a new colour).  Over ``max_pixels`` (a 5,708 x 54,659 px grid of 1,200 samples),
    or still over ``max_bytes``: None, and the report links the file instead.
    """
    w, h = png_size(png)
    if w <= max_width and h <= max_height and len(png) <= max_bytes:
        return png, (w, h), "as drawn"
    if w * h > max_pixels:
        return None, (w, h), f"{w} x {h} px is too large to embed"
    import io

    from PIL import Image

    factor = max(1, math.ceil(max(w / max_width, h / max_height)))
    with Image.open(io.BytesIO(png)) as im:
        while True:
            small = im.convert("RGB").reduce(factor) if factor > 1 else im.convert("RGB")
            buf = io.BytesIO()
            small.quantize(colors=16, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG", compress_level=9)
            out = buf.getvalue()
            if len(out) <= max_bytes or small.width <= 800:
                break
            factor += 1
    if len(out) > max_bytes:
        return None, (w, h), f"{len(png) / 1e6:.1f} MB is too large to embed"
    return out, small.size, f"reduced from {w} x {h} px to {small.width} x {small.height} px, 16 colours"
