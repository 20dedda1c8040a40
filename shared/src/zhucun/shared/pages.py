"""Paginated lists: one shape for every list a county user pages through.

A page holds at most ``limit`` items in the order of their ids; ``next`` is the cursor of the
following page (the last item's id, passed back as ``after``), ``None`` on the last page.
Keyset pagination, not offsets: a page never repeats or skips an item because another was
added meanwhile. Pure (application layers import it); the query parameters of a list route
are ``zhucun.shared.http``'s ``Limit`` and ``After``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 500


class Page(BaseModel, Generic[T]):
    """One page of a list, in the order of the items' ids."""

    model_config = ConfigDict(frozen=True)

    items: tuple[T, ...]
    #: Pass as ``after`` for the next page; ``None``: this is the last page.
    next: str | None


def paginate(items: Iterable[T], key: Callable[[T], str], after: str | None, limit: int) -> Page[T]:
    """The page of ``items`` (in any order) after the cursor ``after``, by ``key``."""
    ordered = sorted((item for item in items if after is None or key(item) > after), key=key)
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page[T](items=tuple(page), next=key(page[-1]) if more and page else None)


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Page", "paginate"]
