"""Results computed once per object and found again by the object's identity.

Amplicons and panels are frozen dataclasses that hash by value (every CpG, the whole reference): hashing one
for each read would cost more than the work saved.  So the tables made from one (``calling.sites``, the BAM
records' tables, the CpG positions of the call lines) are kept by ``id`` together with the object itself: an id is
reused only once its object is gone, and the identity check rejects an entry left by a reused one.  The oldest
entries go first past a bound: 16 objects, or as many as the largest panel a read was assigned in (``hold``), since
each read of a panel visits every amplicon's tables (a FIFO smaller than the panel would make them again for
every read: 17 amplicons cost 2.7 ms a read against 0.36 for 10).  ``by_key`` keeps, the same way, values made
from content that does hash cheaply (``alleles.scan_sites``: a digest of alignments.txt).
"""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

T = TypeVar("T")


_KEEP = [16]  # the bound of every cache: raised by ``hold``


def hold(n: int) -> None:
    """Keep the tables of at least ``n`` objects in every cache (``assign``: the amplicons of its panel)."""
    if n > _KEEP[0]:
        _KEEP[0] = n


def held() -> int:
    """The bound ``hold`` has set (also ``models.register_panel``'s: the CpGs of every amplicon stay registered)."""
    return _KEEP[0]


def by_identity(cache: dict, obj: object, make: Callable[[], T], keep: Optional[int] = None) -> T:
    """``make()`` for ``obj``, made once while ``obj`` is among the last ``keep`` objects of ``cache`` (default:
    the bound ``hold`` sets)."""
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = make()
    _room(cache, _KEEP[0] if keep is None else keep)
    cache[id(obj)] = (obj, value)
    return value


def by_key(cache: dict, key, make: Callable[..., T], *args, keep: int = 8) -> T:
    """``make(*args)`` for a hashable ``key`` (for values made from content, not from one object: a file's
    bytes and what was read from them), made once while ``key`` is among the last ``keep`` keys of ``cache``."""
    if key not in cache:
        _room(cache, keep)
        cache[key] = make(*args)
    return cache[key]


def _room(cache: dict, keep: int) -> None:
    """The oldest entries dropped until ``cache`` has room for one more under ``keep``."""
    while len(cache) >= keep:
        cache.pop(next(iter(cache)))
