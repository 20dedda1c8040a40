"""Paginated lists: one shape for every list a county user pages through.

A page holds at most ``limit`` items in the order of their ids; ``next`` is the cursor of the
following page (the last item's id, passed back as ``after``), ``None`` on the last page.
Keyset pagination, not offsets: a page never repeats or skips an item because another was
added meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Final, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from zhucun.shared.bounds import ID_MAX_LENGTH, ID_PATTERN

T = TypeVar("T")

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 500

#: ``?limit=``: items per page.
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (at most {MAX_PAGE_SIZE})")
]
#: ``?after=``: the ``next`` cursor of the previous page.
After = Annotated[
    str | None,
    Query(
        pattern=ID_PATTERN,
        max_length=ID_MAX_LENGTH,
        description="the `next` of the previous page; omitted for the first page",
    ),
]


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


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "After", "Limit", "Page", "paginate"]
