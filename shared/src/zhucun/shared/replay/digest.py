"""The digest of a read model: an order-independent hash of its rows, to compare two builds
of the same history (two rebuilds, or a rebuild and the live model)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Mapping, Sequence

import asyncpg

from zhucun.shared.replay.schemas import RUNTIME_TABLES, quote


async def model_tables(pool: asyncpg.Pool, schema: str) -> list[str]:
    """The read model's tables in ``schema``: every ordinary or partitioned table except the
    runtime's own, sorted by name."""
    rows = await pool.fetch(
        """
        SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname
        """,
        schema,
    )
    return [r["relname"] for r in rows if r["relname"] not in RUNTIME_TABLES]


async def digest(
    pool: asyncpg.Pool,
    schema: str,
    tables: Sequence[str],
    *,
    ignore_columns: Mapping[str, Collection[str]] | None = None,
) -> str:
    """An order-independent SHA-256 hex digest of the rows of ``tables`` in ``schema``.

    What it covers, per table (tables in name order, so the order given does not matter):
    the table's name, its columns' names and types in column order, its row count, and two
    64-bit halves of the MD5 of each row's text form (``ROW(col, ...)::text``), each summed
    over all rows as an exact ``numeric``. A sum does not depend on the order rows were
    inserted or are stored in, and, unlike XOR, a row present twice is not cancelled out.
    Changing any value, adding or removing a row, or changing a column's name or type
    changes the digest (up to MD5 collisions: this is a comparison tool, not a
    tamper-evidence mechanism; the event store's hash chain is that).

    Not covered: the schema's name (so a rebuild and the live model compare equal), indexes,
    constraints, sequences' positions, grants, and the runtime tables
    (``projection_offsets``, ``projection_events``, ``projection_counts``), which are
    refused: they record how a model was built, not what it says. ``ignore_columns``
    (table -> column names) leaves out columns that legitimately differ between two builds
    of the same history, such as a ``bigserial`` filled in consumption order or a
    ``default now()``; projections should prefer event times to such columns.

    The text forms are made session-independent (``TimeZone`` UTC, ISO dates, shortest exact
    floats, hex bytea) and every table is read in one REPEATABLE READ snapshot.
    """
    ignored = {t: set(c) for t, c in (ignore_columns or {}).items()}
    wanted = sorted(set(tables))
    runtime = RUNTIME_TABLES.intersection(wanted)
    if runtime:
        raise ValueError(f"runtime tables are not part of a read model: {sorted(runtime)}")
    hasher = hashlib.sha256(b"zhucun.replay.digest.v1\n")
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.execute(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD';"
            " SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1;"
            " SET LOCAL bytea_output = 'hex'"
        )
        for table in wanted:
            columns = await conn.fetch(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
                FROM pg_attribute AS a
                JOIN pg_class AS c ON c.oid = a.attrelid
                JOIN pg_namespace AS n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0
                  AND NOT a.attisdropped
                ORDER BY a.attnum
                """,
                schema,
                table,
            )
            if not columns:
                raise ValueError(f"no table {schema}.{table}")
            kept = [c for c in columns if c["attname"] not in ignored.get(table, ())]
            unknown = ignored.get(table, set()) - {c["attname"] for c in columns}
            if unknown:
                raise ValueError(f"{schema}.{table} has no columns {sorted(unknown)}")
            row = "ROW(" + ", ".join(quote(c["attname"]) for c in kept) + ")::text"
            if not kept:
                row = "''"
            found = await conn.fetchrow(
                f"""
                SELECT count(*) AS n,
                       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text AS a,
                       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text AS b
                FROM (SELECT md5({row}) AS h FROM {quote(schema)}.{quote(table)}) AS rows
                """
            )
            assert found is not None
            shape = ",".join(f"{c['attname']}:{c['type']}" for c in kept)
            hasher.update(f"{table}\t{shape}\t{found['n']}\t{found['a']}\t{found['b']}\n".encode())
    return hasher.hexdigest()


async def digest_of(
    pool: asyncpg.Pool, schema: str, ignore_columns: Mapping[str, Collection[str]] | None
) -> tuple[tuple[str, ...], str, float]:
    """The model's tables, their digest, and the seconds it took."""
    began = time.perf_counter()
    tables = tuple(await model_tables(pool, schema))
    value = await digest(pool, schema, tables, ignore_columns=ignore_columns)
    return tables, value, time.perf_counter() - began
