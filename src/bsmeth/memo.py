"""Results computed once per object and found again by the object's identity.

Amplicons and panels are frozen dataclasses that hash by value (every CpG, the whole reference): hashing one
for each read would cost more than the work saved.  So the tables made from one (``calling.sites``, the BAM
records' tables, the CpG positions of the call lines) are kept by ``id`` together with the object itself: an id is
reused only once its object is gone, and the identity check rejects an entry left by a reused one.  The oldest
entries go first past a bound.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def by_identity(cache: dict, obj: object, make: Callable[[], T], keep: int = 16) -> T:
    """``make()`` for ``obj``, made once while ``obj`` is among the last ``keep`` objects of ``cache``."""
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = make()
    while len(cache) >= keep:
        cache.pop(next(iter(cache)))
    cache[id(obj)] = (obj, value)
    return value
