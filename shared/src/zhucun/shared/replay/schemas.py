"""The schemas a rebuild works in: their names, the checks on them, and dropping them.

A rebuild builds into ``<live>__rebuild_<8 hex>`` and keeps the model it replaces as
``<live>__old_<UTC time>``; an as-of build goes into a scratch schema of the caller's
choosing. Every name must leave room for those suffixes within PostgreSQL's 63 bytes.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from zhucun.shared.replay.report import ReplayError

#: The projection runtime's own tables: positions and bookkeeping, not the read model.
#: :func:`~zhucun.shared.replay.digest` refuses them; ``model_tables`` leaves them out.
RUNTIME_TABLES = frozenset({"projection_offsets", "projection_events", "projection_counts"})

IDENTIFIER_LIMIT = 63
REBUILD_SUFFIX = "__rebuild_"
OLD_SUFFIX = "__old_"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def check_schema(schema: str, suffix: int) -> None:
    """Refuses a schema name that is not a plain lower-case identifier, or too long to take
    a suffix of ``suffix`` characters."""
    if not schema.isidentifier() or schema.lower() != schema or not schema.isascii():
        raise ValueError(f"invalid schema name {schema!r}")
    if len(schema) + suffix > IDENTIFIER_LIMIT:
        raise ValueError(
            f"schema name {schema!r} is too long: at most {IDENTIFIER_LIMIT - suffix} "
            "characters leave room for the rebuild's suffixes"
        )


async def schema_exists(pool: asyncpg.Pool, schema: str) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))


async def relations(conn: Any, schema: str) -> dict[str, str]:
    """Tables, views, materialized views and foreign tables of ``schema``: name -> relkind
    (``conn``: a pool or a connection)."""
    rows = await conn.fetch(
        """
        SELECT c.relname, c.relkind FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        """,
        schema,
    )
    return {r["relname"]: r["relkind"] for r in rows}


async def drop_schema(pool: asyncpg.Pool, schema: str) -> None:
    """Drop a schema a rebuild made: a previous model (``..__old_..``), a failed rebuild's
    fresh schema (``..__rebuild_..``), or a scratch schema of
    :func:`~zhucun.shared.replay.rebuild_as_of`. Refuses a schema with an event store (an
    ``events`` table) in it."""
    check_schema(schema, 0)
    tables = await pool.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
        schema,
    )
    names = {r["relname"] for r in tables}
    if "events" in names or not RUNTIME_TABLES & names:
        raise ReplayError(f"schema {schema!r} does not look like a projection's; not dropped")
    await pool.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
