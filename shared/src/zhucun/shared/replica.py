"""Tables of read models and replicas, written in bulk: a batch's rows in one statement.

A projection applies a batch of deliveries at once (``zhucun.shared.pipeline``). Its rows go
to PostgreSQL as one array per column, turned back into rows by the statement itself
(``INSERT ... SELECT * FROM unnest($1::text[], $2::date[], ...)``): one round trip however
many rows the batch has. A :class:`Table` states a table's columns and their SQL types once
and writes the statements: its ``CREATE TABLE``, the bulk insert (or upsert) of new rows and
the bulk update of some columns by key.

What a consumer keeps stays its own (ADR 0019: each consumer owns its replicas): its tables,
their columns and indexes, and which events fill them; this module only writes the SQL.
:func:`latest` is the fold every replica starts with: the last event of a kind per key.

Table and column names are the code's own, never input: they are written into the SQL as
they are; the values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import asyncpg

from zhucun.shared.pipeline import Delivery

E = TypeVar("E")
K = TypeVar("K", bound=Hashable)


def unnest(types: Sequence[str], *, first: int = 1) -> str:
    """``unnest($1::text[], $2::date[])``: the parameters ``first``... as arrays of ``types``,
    unnested into rows."""
    arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, start=first))
    return f"unnest({arrays})"


def _arrays(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """The rows as one list per column (``width`` columns, also when there are no rows)."""
    if any(len(row) != width for row in rows):
        raise ValueError(f"every row must have {width} values")
    return [[row[n] for row in rows] for n in range(width)]


@dataclass(frozen=True, slots=True)
class Table:
    """A table written in bulk: its (schema-qualified) ``name``, its ``columns`` with the SQL
    type of each (in order), its primary ``key`` and the columns that may be NULL (every
    other one is NOT NULL)."""

    name: str
    columns: Mapping[str, str]
    key: tuple[str, ...]
    nullable: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = (set(self.key) | self.nullable) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.name}: no column(s) {sorted(unknown)}")

    def create(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` of the table (its indexes are the owner's)."""
        columns = [
            f"{name} {sql_type}{'' if name in self.nullable else ' NOT NULL'}"
            for name, sql_type in self.columns.items()
        ]
        columns.append(f"PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    " + ",\n    ".join(columns) + "\n)"

    def _types(self, columns: Sequence[str]) -> list[str]:
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise ValueError(f"{self.name}: no column(s) {unknown}")
        return [self.columns[c] for c in columns]

    async def insert(
        self,
        conn: asyncpg.Connection,
        rows: Iterable[Sequence[object]],
        *,
        columns: Sequence[str] | None = None,
        on_conflict: Literal["nothing", "update"] = "nothing",
        returning: Sequence[str] = (),
    ) -> list[asyncpg.Record]:
        """Insert ``rows`` (values in the order of ``columns``, by default all of them) in
        one statement. A row whose key is taken is left as it is (``"nothing"``) or takes
        the new values (``"update"``). The rows inserted come back with the ``returning``
        columns (none by default)."""
        names = list(columns or self.columns)
        batch = list(rows)
        if not batch:
            return []
        if on_conflict == "update":
            changed = [c for c in names if c not in self.key]
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in changed)
            action = f"DO UPDATE SET {updates}" if changed else "DO NOTHING"
        else:
            action = "DO NOTHING"
        statement = (
            f"INSERT INTO {self.name} ({', '.join(names)})"
            f" SELECT * FROM {unnest(self._types(names))}"
            f" ON CONFLICT ({', '.join(self.key)}) {action}"
        )
        arrays = _arrays(batch, len(names))
        if returning:
            return list(await conn.fetch(f"{statement} RETURNING {', '.join(returning)}", *arrays))
        await conn.execute(statement, *arrays)
        return []

    async def insert_fields(
        self,
        conn: asyncpg.Connection,
        objects: Iterable[object],
        *,
        omit: Sequence[str] = (),
        on_conflict: Literal["nothing", "update"] = "nothing",
    ) -> None:
        """Insert a row per object (an event, say) whose attributes of the columns' names are
        the values, the columns in ``omit`` left out (their defaults, or NULL)."""
        names = [c for c in self.columns if c not in omit]
        rows = [[getattr(o, c) for c in names] for o in objects]
        await self.insert(conn, rows, columns=names, on_conflict=on_conflict)

    async def update(
        self, conn: asyncpg.Connection, rows: Iterable[Sequence[object]], *, columns: Sequence[str]
    ) -> None:
        """Set ``columns`` of the rows named by key: each of ``rows`` is the key's values,
        then the new values of ``columns``. Keys not in the table change nothing."""
        batch = list(rows)
        if not batch:
            return
        names = [*self.key, *columns]
        assignments = ", ".join(f"{c} = r.{c}" for c in columns)
        matches = " AND ".join(f"t.{k} = r.{k}" for k in self.key)
        await conn.execute(
            f"UPDATE {self.name} AS t SET {assignments}"
            f" FROM {unnest(self._types(names))} AS r({', '.join(names)})"
            f" WHERE {matches}",
            *_arrays(batch, len(names)),
        )


def latest(
    deliveries: Iterable[Delivery], kind: type[E] | tuple[type[E], ...], key: Callable[[E], K]
) -> dict[K, E]:
    """The last event of ``kind`` (a class, or a tuple of classes) per ``key`` among the
    payloads of ``deliveries``, in consumption order (one key's events arrive in order)."""
    found: dict[K, E] = {}
    for delivery in deliveries:
        event = delivery.payload
        if isinstance(event, kind):
            found[key(event)] = event
    return found


__all__ = ["Table", "latest", "unnest"]
