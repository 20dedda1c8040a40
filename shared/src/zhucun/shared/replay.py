"""Replay: rebuild a projection's read model from offset zero and switch it in atomically,
build it *as of* a point in the history for an auditor, and compare read models by digest.

* :func:`rebuild` builds the projection into a fresh schema (``<live>__rebuild_<id>``) while
  the live model keeps serving, up to the end offsets taken when it starts, catches up with
  the live model, and swaps the two schemas in one transaction. The previous model stays as
  ``<live>__old_<time>``.
* :func:`rebuild_as_of` builds into a scratch schema only the records up to a Kafka record
  timestamp or explicit offsets, and leaves it there for queries.
* :func:`digest` is an order-independent hash of a read model's rows: two rebuilds, or a
  rebuild and the live model, are equal when their digests are.

**What is applied** is exactly what :class:`~zhucun.shared.projection.ProjectionRunner`
applies, through the projection's own ``registry`` and ``apply``: the same envelope, the same
payload (the event data validated by the registry, upcasters included: the contract is not
relaxed), the same event-id dedupe, the same poison records skipped. A rebuild and the live
model built by the runner therefore have equal digests (the tests check it).

**The fast path** (figures: ``bench/projection_bench.py``):

* one Kafka consumer with the partitions *assigned* (no group membership, no rebalance),
  large fetches, and batches of ``batch_size`` records (10,000 by default) per PostgreSQL
  transaction (``synchronous_commit`` off: a crash loses whole batches, offsets with them);
  ``apply`` is documented to give the same result for any split into batches;
* fetching and decoding overlap with writing: one batch is decoded while the previous one is
  written (PostgreSQL works on another core);
* the CloudEvents headers are checked and converted directly (UUIDs by asyncpg's C parser,
  the body by pydantic-core's JSON parser) instead of through pydantic's model validation;
  only the exact form ``to_kafka`` writes is taken this way, and any other record goes
  through :func:`~zhucun.shared.envelope.from_kafka`, so what is accepted and every error
  are the runner's;
* the event-id dedupe runs in memory (a fresh schema read from offset zero sees each offset
  once; about 70 bytes per event), and ``projection_events`` is filled without its primary
  key, which is built once at the end, so the live runner goes on recognising duplicates;
* the cyclic garbage collector is paused while batches stream through (see ``_quiet_gc``);
* ``workers=N`` splits the partitions over N processes, each with its own consumer and
  connection (decoding is CPU-bound: one Python process uses one core).

Memory: about three batches of decoded events are alive at a time (some 4 KB an event:
~130 MB at the default batch size) plus the dedupe's ~70 bytes an event, per process.

**Poison records** (not a Zhucun CloudEvent, an unknown type, a contract violation, an
``apply`` that raises for that one event) are skipped as the runner skips them after
dead-lettering; the rebuild does not dead-letter them again (they were when first
consumed), but logs each one (``replay.rejected``: topic, partition, offset, kind) and counts
them in the report and in ``projection_counts.dead_lettered``. ``strict=True`` stops the
rebuild at the first one instead (:class:`~zhucun.shared.projection.PoisonRecord`).

**Gaps.** Offsets are expected to be dense, as for the runner: a partition whose next record
lies beyond the expected offset stops the rebuild with :class:`ReplayError` rather than
silently build a model without the missing records.

A failed rebuild never touches the live model; it leaves its fresh or scratch schema for
inspection (drop it with :func:`drop_schema`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import resource
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast
from uuid import UUID, uuid4

import asyncpg
import pydantic_core
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from asyncpg.pgproto import pgproto
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from zhucun.shared.envelope import CONTENT_TYPE, SPEC_VERSION, RecordedEvent, from_kafka
from zhucun.shared.events import EventContractError, UnknownEventType
from zhucun.shared.kafka import client_options
from zhucun.shared.projection import (
    INFRASTRUCTURE_ERRORS,
    Delivery,
    PoisonRecord,
    Projection,
    ProjectionRunner,
)
from zhucun.shared.settings import KafkaSettings

log = structlog.get_logger(__name__)

#: The projection runtime's own tables: positions and bookkeeping, not the read model.
#: :func:`digest` refuses them; :func:`model_tables` leaves them out.
RUNTIME_TABLES = frozenset({"projection_offsets", "projection_events", "projection_counts"})

DEFAULT_BATCH_SIZE = 10_000
#: Kafka fetch sizes of a rebuild: large enough that a fetch carries thousands of records.
FETCH_MAX_BYTES = 64 * 1024 * 1024
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
#: Attempts at writing one batch when the database fails (back-off doubling from 1 s).
WRITE_ATTEMPTS = 5
#: How long the switch waits for the live model's locks before it tries again.
SWITCH_LOCK_TIMEOUT_SECONDS = 2.0
SWITCH_ATTEMPTS = 8
#: Catching up with the live model before the switch: passes at most, and the lag (events)
#: small enough to be applied inside the switch transaction, while readers wait.
CATCH_UP_PASSES = 5
SWITCH_TAIL_EVENTS = 1_000
#: The longest the switch transaction may spend applying that tail (readers wait meanwhile).
SWITCH_TAIL_SECONDS = 5.0
#: Records decoded between two yields to the event loop (so the writer is not kept waiting),
#: and taken from the consumer at a time (a batch is several of these: fetched records,
#: with their 16 header tuples each, are freed once decoded).
_DECODE_SLICE = 1000
_FETCH_RECORDS = 2000
#: The most rejected records listed in a report (all are counted and logged).
MAX_LISTED_REJECTS = 100
#: How often the rebuild's consumer group commits its progress to Kafka (for group tools).
KAFKA_COMMIT_INTERVAL_SECONDS = 5.0

_IDENTIFIER_LIMIT = 63
_REBUILD_SUFFIX = "__rebuild_"
_OLD_SUFFIX = "__old_"

TopicPartitionKey = tuple[str, int]
ProgressChoice = bool | Literal["always"]


class ReplayError(Exception):
    """A rebuild cannot proceed: a bad schema, an offset gap, a switch that cannot be made.
    The live model is untouched; a fresh or scratch schema is left for inspection."""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record the rebuild skipped, as the live runner dead-lettered it."""

    topic: str
    partition: int
    offset: int
    kind: str


@dataclass(frozen=True, slots=True)
class RebuildReport:
    projection: str
    #: Where the built model is now: the live schema after a switch, else the scratch schema.
    schema: str
    #: The previous live model, kept for inspection (None when there was none, or as-of).
    previous_schema: str | None
    #: Records consumed up to ``stop_offsets``: ``applied + duplicates + rejected``.
    events: int
    applied: int
    duplicates: int
    rejected: int
    #: From the start of consuming to ``stop_offsets`` committed, with the dedupe table's
    #: key built (what ``events_per_second`` divides by).
    seconds: float
    #: :func:`digest` of the built model at ``stop_offsets``.
    digest: str
    digest_seconds: float
    tables: tuple[str, ...]
    #: The first offset read and the offset the model (and ``digest``) stops at, per topic
    #: and partition: for :func:`rebuild`, the end offsets taken at its start.
    start_offsets: Mapping[TopicPartitionKey, int]
    stop_offsets: Mapping[TopicPartitionKey, int]
    rejects: tuple[RejectedRecord, ...] = field(default=())
    #: Records applied after ``stop_offsets`` to catch up with the live model before the
    #: switch (the last of them inside the switch transaction), and the offsets both models
    #: stood at when they were switched (None without a switch or without a live model).
    caught_up_events: int = 0
    switched_at: Mapping[TopicPartitionKey, int] | None = None
    #: From the end of the build to the switch committed (catch-up included).
    switch_seconds: float = 0.0
    #: With ``workers > 1``: the largest peak resident memory of a worker process (MiB).
    worker_peak_rss_mib: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# --- digest --------------------------------------------------------------------------------


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
            row = "ROW(" + ", ".join(_quote(c["attname"]) for c in kept) + ")::text"
            if not kept:
                row = "''"
            found = await conn.fetchrow(
                f"""
                SELECT count(*) AS n,
                       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text AS a,
                       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text AS b
                FROM (SELECT md5({row}) AS h FROM {_quote(schema)}.{_quote(table)}) AS rows
                """
            )
            assert found is not None
            shape = ",".join(f"{c['attname']}:{c['type']}" for c in kept)
            hasher.update(f"{table}\t{shape}\t{found['n']}\t{found['a']}\t{found['b']}\n".encode())
    return hasher.hexdigest()


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --- rebuild and switch --------------------------------------------------------------------


async def rebuild(
    pool: asyncpg.Pool,
    make_projection: Callable[[str], Projection],
    kafka: KafkaSettings,
    *,
    live_schema: str,
    progress: ProgressChoice = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    dsn: str | None = None,
    check_crcs: bool = True,
    ignore_columns: Mapping[str, Collection[str]] | None = None,
    strict: bool = False,
    allow_foreign_tables: bool = False,
) -> RebuildReport:
    """Rebuild the projection from offset zero and switch it in for ``live_schema``.

    1. ``make_projection(fresh)`` builds the projection for a fresh schema
       ``<live_schema>__rebuild_<8 hex>``; its runtime and model tables are created there.
    2. The end offsets of every partition of every topic are taken now; the rebuild reads
       from each partition's beginning up to them, with a consumer group id of its own
       (``<name>__rebuild_<8 hex>``, partitions assigned, never joining the live group),
       while the live runner keeps serving and consuming ``live_schema`` undisturbed.
    3. The rebuilt model's :func:`digest` is taken (``RebuildReport.digest``).
    4. **Catch-up**: while the live runner has committed offsets beyond the rebuilt ones
       (events that arrived meanwhile), those records are applied to the rebuilt model too,
       in passes, until the difference is small (``SWITCH_TAIL_EVENTS``).
    5. **The switch**, in one transaction: ``ACCESS EXCLUSIVE`` locks on the live tables
       (``projection_offsets`` first, which a live runner's batch also takes first, so the
       two queue rather than deadlock; ``lock_timeout`` bounds the wait, then it is
       retried); the live runner's offsets, read under that lock, are final: the last few
       records up to them are applied to the rebuilt model in the same transaction; then
       ``ALTER SCHEMA live RENAME TO <live>__old_<UTC time>``, ``ALTER SCHEMA fresh RENAME
       TO live``, and the live schema's and tables' grants given to the new ones. Other
       sessions see the old model or the new one, never a missing table or a mix: a reader
       that resolved a name before the commit waits for the lock and then resolves it
       again. Without a live schema (a first build), the fresh one is simply renamed.

    **Why a live runner continues correctly.** Its SQL names ``"<live>".table``; names are
    resolved per statement, so its next batch locks and reads the offsets stored in the
    *rebuilt* schema, and PostgreSQL's offsets are the runner's truth. Thanks to step 5
    they are exactly the offsets it had committed itself, so it goes on from there in the
    new model: nothing lost, nothing applied twice, whether it was idle or busy. Should
    they differ all the same (a runner that had fallen behind the rebuild skips what is
    already applied; one that is ahead finds a gap, logs ``projection.offset_gap``, seeks
    back to the stored offset and applies from there), the runner's own rules keep the
    model exact. ``projection_events`` was filled by the rebuild, so duplicates keep being
    recognised, and ``projection_counts`` continues from the rebuild's totals.

    **The previous model** is kept as ``<live>__old_<YYYYmmdd_HHMMSS>``
    (``RebuildReport.previous_schema``) to compare or inspect. Drop it when done, with
    :func:`drop_schema` or ``DROP SCHEMA "<name>" CASCADE``. A failed rebuild leaves its
    fresh schema and never touches the live one; drop it the same way.

    The live schema must hold this projection only: the switch moves the whole schema, so a
    schema shared with an event store or another projection is refused (:class:`ReplayError`,
    before any work) unless ``allow_foreign_tables``. Grants are copied; default privileges
    (``ALTER DEFAULT PRIVILEGES IN SCHEMA``) and objects referring to the schema's tables
    by OID from outside it (foreign keys, views in other schemas) stay with the old schema.

    ``progress``: a rich progress bar on stderr (events/s, time left) when stderr is a
    terminal; ``"always"`` shows it anyway. ``workers > 1`` builds in that many processes
    (partitions split between them; ``make_projection`` must be picklable, e.g. a
    module-level class or a ``functools.partial`` of one, and ``dsn`` names the database of
    ``pool``); every copy of an event is on its key's partition, so each process dedupes its
    own, and should that not hold (events re-published after the partition count changed)
    the dedupe table's key fails to build and the rebuild stops instead of switching.
    ``check_crcs=False`` skips Kafka's CRC check of fetched batches (less CPU; the event
    store's hash chain is the tamper evidence).
    """
    _check_schema(live_schema, max(len(_OLD_SUFFIX) + 15, len(_REBUILD_SUFFIX) + 8))
    fresh = f"{live_schema}{_REBUILD_SUFFIX}{uuid4().hex[:8]}"
    tuning = _Tuning(batch_size, strict, check_crcs)
    factory = _factory(make_projection, workers, dsn)
    projection = make_projection(fresh)
    async with _Replay(pool, projection, kafka, schema=fresh, tuning=tuning) as replay:
        await replay.prepare(until=None)
        if await _schema_exists(pool, live_schema):
            try:  # refused before any work
                await _check_switchable(
                    pool, live_schema, fresh, projection.name, allow_foreign_tables
                )
            except ReplayError:
                await pool.execute(f"DROP SCHEMA {_quote(fresh)} CASCADE")
                raise
        built = await replay.build(
            progress, f"rebuild {live_schema}", workers=workers, dsn=dsn, factory=factory
        )
        tables, value, digest_seconds = await _digest_of(pool, fresh, ignore_columns)
        began = time.perf_counter()
        previous, switched_at, caught_up = await replay.switch_in(live_schema, allow_foreign_tables)
        switch_seconds = time.perf_counter() - began
    report = built.report(
        schema=live_schema,
        previous=previous,
        digest=value,
        digest_seconds=digest_seconds,
        tables=tables,
        caught_up=caught_up,
        switched_at=switched_at,
        switch_seconds=switch_seconds,
    )
    log.info(
        "replay.rebuilt",
        projection=report.projection,
        schema=live_schema,
        previous_schema=previous,
        events=report.events,
        seconds=round(report.seconds, 3),
        events_per_second=round(report.events_per_second),
        rejected=report.rejected,
        caught_up_events=caught_up,
        digest=report.digest,
    )
    return report


async def rebuild_as_of(
    pool: asyncpg.Pool,
    make_projection: Callable[[str], Projection],
    kafka: KafkaSettings,
    *,
    scratch_schema: str,
    until: datetime | Mapping[TopicPartitionKey, int],
    progress: ProgressChoice = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    dsn: str | None = None,
    check_crcs: bool = True,
    ignore_columns: Mapping[str, Collection[str]] | None = None,
    strict: bool = False,
) -> RebuildReport:
    """Build the projection into ``scratch_schema`` (which must not exist) from the records up
    to ``until`` only, and leave it there for auditors to query. Nothing is switched.

    ``until`` is either

    * a ``datetime`` (with a time zone): every record whose **Kafka record timestamp** is at
      or before it (millisecond precision). Per partition, the stop offset is the one
      ``offsets_for_times`` gives for the next millisecond (the first record after
      ``until``), or the end offset when there is none. The record timestamp is the relay's
      publish time (``CreateTime``): when the event became visible to consumers, so this is
      the history the read model could have seen by then, a prefix of each partition found
      by the broker's time index without reading the log. The event's recorded time
      (``ce_recordedtime``) is at most a relay lag earlier: an event recorded just before
      ``until`` but published after it is not included. The relay publishes in store order
      from one leader, so timestamps do not decrease within a partition;
    * or explicit stop offsets ``{(topic, partition): offset}`` (exclusive, like a stored
      ``next_offset``) for every partition of the projection's topics, such as a runner's
      ``stored_offsets()`` or an earlier report's ``stop_offsets``.

    The other arguments are :func:`rebuild`'s. Build another point after
    ``drop_schema(pool, scratch_schema)``, or into another scratch schema.
    """
    if isinstance(until, datetime) and until.tzinfo is None:
        raise ValueError("until: a naive datetime; give it a time zone")
    _check_schema(scratch_schema, 0)
    if await _schema_exists(pool, scratch_schema):
        raise ReplayError(f"schema {scratch_schema!r} exists; drop it or choose another")
    tuning = _Tuning(batch_size, strict, check_crcs)
    factory = _factory(make_projection, workers, dsn)
    projection = make_projection(scratch_schema)
    async with _Replay(pool, projection, kafka, schema=scratch_schema, tuning=tuning) as replay:
        await replay.prepare(until=until)
        built = await replay.build(
            progress, f"as of: {scratch_schema}", workers=workers, dsn=dsn, factory=factory
        )
    tables, value, digest_seconds = await _digest_of(pool, scratch_schema, ignore_columns)
    report = built.report(
        schema=scratch_schema,
        previous=None,
        digest=value,
        digest_seconds=digest_seconds,
        tables=tables,
    )
    log.info(
        "replay.built_as_of",
        projection=report.projection,
        schema=scratch_schema,
        until=until.isoformat() if isinstance(until, datetime) else "offsets",
        events=report.events,
        seconds=round(report.seconds, 3),
        digest=report.digest,
    )
    return report


async def drop_schema(pool: asyncpg.Pool, schema: str) -> None:
    """Drop a schema this module made: a previous model (``..__old_..``), a failed rebuild's
    fresh schema (``..__rebuild_..``), or a scratch schema of :func:`rebuild_as_of`.
    Refuses a schema with an event store (an ``events`` table) in it."""
    _check_schema(schema, 0)
    tables = await pool.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
        schema,
    )
    names = {r["relname"] for r in tables}
    if "events" in names or not RUNTIME_TABLES & names:
        raise ReplayError(f"schema {schema!r} does not look like a projection's; not dropped")
    await pool.execute(f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE")


def _check_schema(schema: str, suffix: int) -> None:
    if not schema.isidentifier() or schema.lower() != schema or not schema.isascii():
        raise ValueError(f"invalid schema name {schema!r}")
    if len(schema) + suffix > _IDENTIFIER_LIMIT:
        raise ValueError(
            f"schema name {schema!r} is too long: at most {_IDENTIFIER_LIMIT - suffix} "
            "characters leave room for the rebuild's suffixes"
        )


async def _schema_exists(pool: asyncpg.Pool, schema: str) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))


async def _relations(conn: Any, schema: str) -> dict[str, str]:
    rows = await conn.fetch(
        """
        SELECT c.relname, c.relkind FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        """,
        schema,
    )
    return {r["relname"]: r["relkind"] for r in rows}


async def _check_switchable(
    conn: Any, live: str, fresh: str, name: str, allow_foreign_tables: bool
) -> None:
    """Refuses to move a schema that holds more than this projection (``conn``: a pool or a
    connection)."""
    live_relations = await _relations(conn, live)
    fresh_relations = await _relations(conn, fresh)
    if not allow_foreign_tables:
        foreign = sorted(set(live_relations) - set(fresh_relations))
        if foreign:
            raise ReplayError(
                f"schema {live!r} holds tables the rebuilt projection does not have "
                f"({', '.join(foreign)}): the switch moves the whole schema, so a projection "
                "to be rebuilt needs a schema of its own (or pass allow_foreign_tables=True "
                "when these are an older version's tables)"
            )
    if "projection_offsets" in live_relations:
        others = await conn.fetch(
            f"SELECT DISTINCT projection FROM {_quote(live)}.projection_offsets "
            "WHERE projection <> $1",
            name,
        )
        if others:
            raise ReplayError(
                f"schema {live!r} also holds projections "
                f"{sorted(r['projection'] for r in others)}: they would be switched too"
            )


async def _digest_of(
    pool: asyncpg.Pool, schema: str, ignore_columns: Mapping[str, Collection[str]] | None
) -> tuple[tuple[str, ...], str, float]:
    began = time.perf_counter()
    tables = tuple(await model_tables(pool, schema))
    value = await digest(pool, schema, tables, ignore_columns=ignore_columns)
    return tables, value, time.perf_counter() - began


async def _grants(conn: Any, live: str, tables: Collection[str]) -> list[str]:
    """GRANT statements giving the new live schema and those of its ``tables`` the old ones
    had what the old ones had (the owner's own privileges are implicit and not repeated).
    Read before the renames, run after them: they name the live schema."""
    statements: list[str] = []
    schema_acl = await conn.fetch(
        """
        SELECT a.grantee, a.privilege_type, a.is_grantable
        FROM pg_namespace AS n, aclexplode(n.nspacl) AS a
        WHERE n.nspname = $1 AND a.grantee <> n.nspowner
        """,
        live,
    )
    for row in schema_acl:
        statements.append(
            f"GRANT {row['privilege_type']} ON SCHEMA {_quote(live)} TO "
            f"{await _grantee(conn, row['grantee'])}"
            + (" WITH GRANT OPTION" if row["is_grantable"] else "")
        )
    table_acl = await conn.fetch(
        """
        SELECT c.relname, a.grantee, a.privilege_type, a.is_grantable
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace,
             aclexplode(c.relacl) AS a
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND a.grantee <> c.relowner
        """,
        live,
    )
    for row in table_acl:
        if row["relname"] not in tables:
            continue
        statements.append(
            f"GRANT {row['privilege_type']} ON TABLE {_quote(live)}.{_quote(row['relname'])} "
            f"TO {await _grantee(conn, row['grantee'])}"
            + (" WITH GRANT OPTION" if row["is_grantable"] else "")
        )
    return statements


async def _grantee(conn: Any, oid: int) -> str:
    if oid == 0:
        return "PUBLIC"
    return _quote(str(await conn.fetchval("SELECT pg_get_userbyid($1)", oid)))


# --- the fast decode path ------------------------------------------------------------------


_SPEC = SPEC_VERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
_EVENT_FIELDS = frozenset(RecordedEvent.model_fields)
_HYPHEN, _T, _DOT, _Z = ord("-"), ord("T"), ord("."), ord("Z")
_new_object = object.__new__
_set = object.__setattr__


def _uuid(raw: bytes) -> UUID:
    """A canonical ``8-4-4-4-12`` UUID, parsed by asyncpg's C implementation (a
    ``uuid.UUID`` subclass, what the event store's reads return too)."""
    if len(raw) != 36 or not (
        raw[8] == raw[13] == raw[18] == raw[23] == _HYPHEN  # the parser skips any hyphens
    ):
        raise ValueError("not a canonical UUID")
    return cast(UUID, pgproto.UUID(raw.decode("ascii")))


def _time(raw: bytes) -> datetime:
    """Exactly the form ``format_time`` writes: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The result
    carries ``datetime.timezone.utc`` (as asyncpg's reads of the store do; pydantic's own
    UTC object in ``from_kafka``'s: equal instants, equal text forms)."""
    if len(raw) != 27 or raw[10] != _T or raw[19] != _DOT or raw[26] != _Z:
        raise ValueError("not a zhucun timestamp")
    return datetime.fromisoformat(raw.decode("ascii"))


def _int(raw: bytes) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError("not a small non-negative integer")
    return int(raw)


def _recorded_event(values: dict[str, Any]) -> RecordedEvent:
    """A ``RecordedEvent`` from values already of its field types: what ``model_construct``
    does (with every field set) without its per-field Python loop."""
    event = _new_object(RecordedEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _EVENT_FIELDS)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _fast_envelope(
    headers: Sequence[tuple[str, bytes]], value: bytes
) -> tuple[RecordedEvent, str] | None:
    """The envelope and source of a record in exactly the form ``to_kafka`` writes, or None
    for anything else (the caller then takes the runner's path, :func:`from_kafka`, which
    decides and explains); a header that is not UTF-8 raises what ``from_kafka`` raises.

    Every header is checked and converted to its field's type, accepting only the canonical
    forms (which pydantic accepts too, giving the same values), so the event is the one
    ``from_kafka`` returns without running pydantic's validation of it (equal, field by
    field): UUIDs are asyncpg's C ``UUID`` (a ``uuid.UUID``, equal and hashing alike), as in
    events read from the store, and times are UTC.
    """
    h = dict(headers)
    # from_kafka decodes every header as UTF-8, used or not (and repeated ones too): one
    # check when all are ASCII, which is the rule, else each one as from_kafka does.
    try:
        ascii_only = len(h) == len(headers) and b"".join(h.values()).isascii()
    except TypeError:  # a header without a value
        ascii_only = False
    if not ascii_only:
        for _, raw in headers:
            if raw.__class__ is bytes and not raw.isascii():
                raw.decode()  # raises what from_kafka raises (the caller rejects the record)
    if h.get("ce_specversion") != _SPEC:
        return None
    content_type = h.get("content-type", _CONTENT_TYPE)
    if not isinstance(content_type, bytes) or not content_type.startswith(_CONTENT_TYPE):
        return None
    try:
        causation = h.get("ce_causationid")
        actor = h.get("ce_actor")
        values = {
            "event_id": _uuid(h["ce_id"]),
            "stream_id": h["ce_stream"].decode(),
            "stream_version": _int(h["ce_streamversion"]),
            "global_position": _int(h["ce_position"]),
            "event_type": h["ce_type"].decode(),
            "schema_version": _int(h["ce_schemaversion"]),
            "key": h["ce_partitionkey"].decode(),
            "data": pydantic_core.from_json(value, cache_strings="keys"),
            "occurred_at": _time(h["ce_time"]),
            "recorded_at": _time(h["ce_recordedtime"]),
            "correlation_id": _uuid(h["ce_correlationid"]),
            "causation_id": None if causation is None else _uuid(causation),
            "actor": None if actor is None else actor.decode(),
            "prev_hash": h["ce_prevhash"].decode(),
            "hash": h["ce_hash"].decode(),
        }
        source = h["ce_source"].decode()
    except (KeyError, ValueError, AttributeError, TypeError):
        return None  # UnicodeDecodeError is a ValueError
    if not isinstance(values["data"], dict):
        return None
    return _recorded_event(values), source


def _decode(record: Any, projection: Projection) -> Delivery:
    """The runner's decoding of one record (same result, same errors), faster."""
    value = record.value if record.value is not None else b""
    fast = _fast_envelope(record.headers, value)
    event, source = fast if fast is not None else from_kafka(record.headers, value)
    payload = event.decode(projection.registry)
    return Delivery(record.topic, record.partition, record.offset, event, source, payload)


def _reject_kind(error: Exception) -> str:
    from zhucun.shared.envelope import CloudEventError

    if isinstance(error, CloudEventError):
        return "invalid-cloudevent"
    if isinstance(error, UnknownEventType):
        return "unknown-event-type"
    if isinstance(error, EventContractError):
        return "contract-violation"
    return "undecodable"


# --- the replay engine ---------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    deliveries: list[Delivery]
    rejects: list[tuple[RejectedRecord, Exception]]
    consumed: int
    #: Next offset per partition touched by the batch.
    offsets: dict[TopicPartitionKey, int]


@dataclass(slots=True)
class _Built:
    """Totals of a build (or of one worker's share, or of a catch-up)."""

    projection: str
    events: int
    applied: int
    duplicates: int
    rejected: int
    seconds: float
    start: dict[TopicPartitionKey, int]
    stop: dict[TopicPartitionKey, int]
    rejects: list[RejectedRecord]
    #: The largest peak resident memory of the worker processes (KiB), if any.
    worker_peak_rss_kib: int | None = None

    def report(
        self,
        *,
        schema: str,
        previous: str | None,
        digest: str,
        digest_seconds: float,
        tables: tuple[str, ...],
        caught_up: int = 0,
        switched_at: Mapping[TopicPartitionKey, int] | None = None,
        switch_seconds: float = 0.0,
    ) -> RebuildReport:
        return RebuildReport(
            projection=self.projection,
            schema=schema,
            previous_schema=previous,
            events=self.events,
            applied=self.applied,
            duplicates=self.duplicates,
            rejected=self.rejected,
            seconds=self.seconds,
            digest=digest,
            digest_seconds=digest_seconds,
            tables=tables,
            start_offsets=dict(self.start),
            stop_offsets=dict(self.stop),
            rejects=tuple(self.rejects),
            caught_up_events=caught_up,
            switched_at=switched_at,
            switch_seconds=switch_seconds,
            worker_peak_rss_mib=(
                None
                if self.worker_peak_rss_kib is None
                else round(self.worker_peak_rss_kib / 1024, 1)
            ),
        )


@dataclass(frozen=True, slots=True)
class _Tuning:
    batch_size: int
    strict: bool
    check_crcs: bool


class _Replay:
    """Reads a projection's topics and applies them into ``schema`` through the projection,
    in large transactions: from the beginning up to stop offsets, then on to whatever the
    live model has reached."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        kafka: KafkaSettings,
        *,
        schema: str,
        tuning: _Tuning,
        group_id: str | None = None,
    ) -> None:
        if tuning.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if isinstance(projection.topics, str) or not projection.topics:
            raise ValueError(f"projection {projection.name!r}: topics must be a list of names")
        self.pool = pool
        self.projection = projection
        self.kafka = kafka
        self.schema = schema
        self.tuning = tuning
        self.batch_size = tuning.batch_size
        self.name = projection.name
        self.group_id = group_id or f"{projection.name}{_REBUILD_SUFFIX}{uuid4().hex[:8]}"
        self.runner = ProjectionRunner(pool, projection, kafka, schema=schema)
        s = _quote(schema)
        self._offsets = f"{s}.projection_offsets"
        self._events = f"{s}.projection_events"
        self._counts = f"{s}.projection_counts"
        options = client_options(kafka)
        options["client_id"] = f"{kafka.client_id}-replay-{projection.name}"
        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            fetch_max_wait_ms=100,
            check_crcs=tuning.check_crcs,
        )
        #: Per partition held: the first offset of the build, where the build stops, and
        #: the next offset to apply (committed in ``schema``).
        self.start: dict[Any, int] = {}
        self.stop: dict[Any, int] = {}
        self.position: dict[Any, int] = {}
        #: Event ids applied so far (as 128-bit ints): the build's dedupe, in memory.
        self._seen: set[int] = set()
        #: After the build, the dedupe goes through ``projection_events`` as the runner's.
        self._table_dedupe = False
        #: ``projection_events``'s primary key, dropped while loading and added at the end.
        self._events_key: tuple[str, str] | None = None
        self._log = log.bind(projection=self.name, schema=schema)

    async def __aenter__(self) -> _Replay:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    def _totals(self) -> _Built:
        return _Built(
            projection=self.name,
            events=0,
            applied=0,
            duplicates=0,
            rejected=0,
            seconds=0.0,
            start={_key(tp): o for tp, o in self.start.items()},
            stop={_key(tp): o for tp, o in self.stop.items()},
            rejects=[],
        )

    # --- set-up (the coordinating process) -------------------------------------------------

    async def prepare(self, *, until: datetime | Mapping[TopicPartitionKey, int] | None) -> None:
        """Fixes the start and stop offsets, then creates the schema and its tables."""
        tps = await self._partitions()
        self.consumer.assign(tps)
        self.consumer.pause(*tps)  # nothing is fetched until stream() resumes them
        beginning = await self.consumer.beginning_offsets(tps)
        end = await self.consumer.end_offsets(tps)
        stop = dict(end)
        if isinstance(until, datetime):
            millis = int(until.timestamp() * 1000) + 1  # the first millisecond after until
            found = await self.consumer.offsets_for_times({tp: millis for tp in tps})
            stop = {tp: end[tp] if found[tp] is None else found[tp].offset for tp in tps}
        elif until is not None:
            wanted = {(tp.topic, tp.partition) for tp in tps}
            missing = sorted(wanted - set(until))
            extra = sorted(set(until) - wanted)
            if missing or extra:
                raise ValueError(
                    f"until: offsets must name every partition of {list(self.projection.topics)}"
                    f" (missing {missing}, unknown {extra})"
                )
            stop = {tp: until[(tp.topic, tp.partition)] for tp in tps}
            beyond = sorted(_key(tp) for tp in tps if stop[tp] > end[tp])
            if beyond:
                raise ValueError(f"until: offsets beyond the end of {beyond}")
        self.start = {tp: beginning[tp] for tp in tps}
        self.stop = {tp: max(stop[tp], beginning[tp]) for tp in tps}
        self.position = dict(self.start)

        if await _schema_exists(self.pool, self.schema):
            raise ReplayError(f"schema {self.schema!r} exists already")
        await self.runner.migrate()
        await self.pool.execute(
            f"""
            INSERT INTO {self._offsets} (projection, topic, partition, next_offset)
            SELECT $1, t.topic, t.partition, t.next_offset
            FROM unnest($2::text[], $3::int[], $4::bigint[]) AS t(topic, partition, next_offset)
            """,
            self.name,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [self.start[tp] for tp in tps],
        )
        # Each id is written once (the build dedupes in memory): maintaining the key for
        # every batch costs more than building it once at the end.
        key = await self.pool.fetchrow(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'p'",
            self._events,
        )
        if key is not None:
            self._events_key = (key["conname"], key["definition"])
            await self.pool.execute(
                f"ALTER TABLE {self._events} DROP CONSTRAINT {_quote(key['conname'])}"
            )

    async def _partitions(self) -> list[Any]:
        """Every partition of the projection's topics. A consumer learns a topic's partitions
        from a subscription; a short-lived one without a group asks (as the runner's
        ``lag()`` does), so the replay's own consumer never joins a group."""
        options = client_options(self.kafka)
        options["client_id"] = f"{self.kafka.client_id}-replay-probe-{self.name}"
        topics = list(self.projection.topics)
        existing = await self.consumer.topics()
        missing = [t for t in topics if t not in existing]
        if missing:
            raise ReplayError(f"topics {missing} do not exist")
        probe = AIOKafkaConsumer(*topics, **options, enable_auto_commit=False)
        await probe.start()
        try:
            return [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(probe.partitions_for_topic(topic) or ())
            ]
        finally:
            await probe.stop()

    def assign(self, parts: Sequence[tuple[str, int, int, int]]) -> None:
        """A worker's share: ``(topic, partition, start, stop)`` of partitions prepared by
        the coordinating process."""
        tps = [TopicPartition(topic, partition) for topic, partition, _, _ in parts]
        self.consumer.assign(tps)
        self.consumer.pause(*tps)
        self.start = {tp: start for tp, (_, _, start, _) in zip(tps, parts, strict=True)}
        self.stop = {tp: stop for tp, (_, _, _, stop) in zip(tps, parts, strict=True)}
        self.position = dict(self.start)

    # --- the build -------------------------------------------------------------------------

    async def build(
        self,
        progress: ProgressChoice,
        description: str,
        *,
        workers: int,
        dsn: str | None,
        factory: _Factory | None,
    ) -> _Built:
        """Every held partition from its start to its stop offset, here or in ``workers``
        processes; then the dedupe table's key."""
        built = self._totals()
        total = sum(self.stop[tp] - self.start[tp] for tp in self.start)
        began = time.perf_counter()
        with _progress_bar(progress, description, total) as advance:
            if factory is None:
                await self.stream(self.stop, built, advance)
            else:
                assert dsn is not None
                await _run_workers(self, factory, dsn, workers, built, advance)
                self.position = dict(self.stop)
        await self.finish()
        built.seconds = time.perf_counter() - began
        return built

    async def finish(self) -> None:
        """Restores ``projection_events``'s primary key; from now on the dedupe goes
        through that table, as the runner's does."""
        if self._events_key is not None:
            name, definition = self._events_key
            try:
                await self.pool.execute(
                    f"ALTER TABLE {self._events} ADD CONSTRAINT {_quote(name)} {definition}"
                )
            except asyncpg.UniqueViolationError as error:
                raise ReplayError(
                    "the same event id was applied from two partitions by different workers "
                    "(records re-published after the partition count changed?); rebuild "
                    "with workers=1, which dedupes across partitions"
                ) from error
            self._events_key = None
        self._table_dedupe = True
        self._seen = set()

    # --- the switch ------------------------------------------------------------------------

    async def switch_in(
        self, live: str, allow_foreign_tables: bool
    ) -> tuple[str | None, dict[TopicPartitionKey, int] | None, int]:
        """Catches up with the live model, then swaps the schemas (see :func:`rebuild`).
        Returns the old model's new name, the offsets both stood at, the records applied
        after the stop offsets."""
        caught = self._totals()
        if not await _schema_exists(self.pool, live):
            with contextlib.suppress(asyncpg.DuplicateSchemaError):  # unless one just came
                await self.pool.execute(
                    f"ALTER SCHEMA {_quote(self.schema)} RENAME TO {_quote(live)}"
                )
                return None, None, 0
        for attempt in range(1, SWITCH_ATTEMPTS + 1):
            # Outside the switch transaction (readers are not kept waiting) until the live
            # model is only a few records ahead, before each attempt.
            for _ in range(CATCH_UP_PASSES):
                ahead = await self._ahead(self.pool, live)
                lag = sum(offset - self.position[tp] for tp, offset in ahead.items())
                if lag <= SWITCH_TAIL_EVENTS:
                    break
                await self.stream(ahead, caught, lambda n: None)
            old = f"{live}{_OLD_SUFFIX}{datetime.now(UTC):%Y%m%d_%H%M%S}"
            positions = dict(self.position)
            tail = self._totals()
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await self._switch(conn, live, old, allow_foreign_tables, tail)
            except (
                asyncpg.LockNotAvailableError,
                asyncpg.DeadlockDetectedError,
                TimeoutError,
            ) as error:
                self.position = positions
                self._log.warning(
                    "replay.switch_waiting", attempt=attempt, error=type(error).__name__
                )
                await asyncio.sleep(min(2.0**attempt, 10.0))
                continue
            except asyncpg.DuplicateSchemaError:
                self.position = positions
                await asyncio.sleep(1.0)  # an old schema of the same second: the next name
                continue
            except BaseException:
                self.position = positions
                raise
            switched_at = {_key(tp): offset for tp, offset in self.position.items()}
            return old, switched_at, caught.events + tail.events
        raise ReplayError(
            f"could not take the locks of {live!r} to switch in {self.schema!r} "
            f"({SWITCH_ATTEMPTS} attempts); the rebuilt model is left in {self.schema!r}"
        )

    async def _switch(
        self, conn: Any, live: str, old: str, allow_foreign_tables: bool, tail: _Built
    ) -> None:
        """The switch transaction: lock, apply the tail, rename, grant."""
        await conn.execute(f"SET LOCAL lock_timeout = {int(SWITCH_LOCK_TIMEOUT_SECONDS * 1000)}")
        await _check_switchable(conn, live, self.schema, self.name, allow_foreign_tables)
        relations = await _relations(conn, live)
        tables = sorted(
            (t for t, kind in relations.items() if kind in ("r", "p")),
            key=lambda t: (t != "projection_offsets", t),
        )
        if tables:
            await conn.execute(
                "LOCK TABLE "
                + ", ".join(f"{_quote(live)}.{_quote(t)}" for t in tables)
                + " IN ACCESS EXCLUSIVE MODE"
            )
        # The live runner is held at the lock now: its offsets are final.
        ahead = await self._ahead(conn, live)
        if ahead:
            async with asyncio.timeout(SWITCH_TAIL_SECONDS):
                await self.stream(ahead, tail, lambda n: None, conn=conn)
        grants = await _grants(conn, live, await _relations(conn, self.schema))
        await conn.execute(f"ALTER SCHEMA {_quote(live)} RENAME TO {_quote(old)}")
        await conn.execute(f"ALTER SCHEMA {_quote(self.schema)} RENAME TO {_quote(live)}")
        for statement in grants:
            await conn.execute(statement)

    async def _ahead(self, conn: Any, live: str) -> dict[Any, int]:
        """The live model's stored offsets where they are beyond the rebuilt model's."""
        # Checked first, not caught: inside the switch transaction a failed statement would
        # abort everything after it (a live schema without the runtime's tables yet).
        offsets = f"{_quote(live)}.projection_offsets"
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", offsets):
            return {}
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {offsets} WHERE projection = $1",
            self.name,
        )
        ahead: dict[Any, int] = {}
        for row in rows:
            tp = TopicPartition(row["topic"], row["partition"])
            if tp in self.position and row["next_offset"] > self.position[tp]:
                ahead[tp] = row["next_offset"]
        return ahead

    # --- streaming -------------------------------------------------------------------------

    async def stream(
        self,
        targets: Mapping[Any, int],
        built: _Built,
        advance: Callable[[int], None],
        *,
        conn: Any = None,
    ) -> None:
        """Applies the held partitions from their position up to ``targets`` (one batch
        per transaction; one savepoint each on ``conn`` if given)."""
        active = {tp: t for tp, t in targets.items() if self.position[tp] < t}
        if not active:
            return
        self._log.info(
            "replay.streaming",
            group_id=self.group_id,
            events=sum(t - self.position[tp] for tp, t in active.items()),
            up_to={f"{tp.topic}/{tp.partition}": t for tp, t in active.items()},
        )
        for tp in active:
            self.consumer.seek(tp, self.position[tp])
        self.consumer.resume(*active)
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)
        try:
            with _quiet_gc():
                await _together(self._read(queue, active), self._write(queue, built, advance, conn))
        finally:
            self.consumer.pause(*active)

    async def _read(self, queue: asyncio.Queue[_Batch | None], targets: Mapping[Any, int]) -> None:
        """Fetches, trims at the targets, decodes; hands batches to the writer."""
        consumer = self.consumer
        expected = {tp: self.position[tp] for tp in targets}
        remaining = set(targets)
        batch = _Batch([], [], 0, {})
        projection = self.projection
        while remaining:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
            for tp, records in fetched.items():
                if tp not in remaining or not records:
                    continue
                first = records[0].offset
                if first != expected[tp]:
                    if first > expected[tp]:
                        raise ReplayError(
                            f"offset gap in {tp.topic}/{tp.partition}: expected offset "
                            f"{expected[tp]}, the log continues at {first}"
                        )
                    records = [r for r in records if r.offset >= expected[tp]]
                    if not records:
                        continue
                room = targets[tp] - records[0].offset
                if len(records) > room:
                    records = records[:room]
                deliveries = batch.deliveries
                for index, record in enumerate(records, 1):
                    try:
                        deliveries.append(_decode(record, projection))
                    except Exception as error:
                        batch.rejects.append((self._rejected(record, error), error))
                    if not index % _DECODE_SLICE:
                        await asyncio.sleep(0)  # lets the writer talk to PostgreSQL
                batch.consumed += len(records)
                expected[tp] = records[-1].offset + 1
                batch.offsets[_key(tp)] = expected[tp]
                if expected[tp] >= targets[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch.consumed >= self.batch_size or (not remaining and batch.consumed):
                await queue.put(batch)
                batch = _Batch([], [], 0, {})
        await queue.put(None)

    def _rejected(self, record: Any, error: Exception) -> RejectedRecord:
        return RejectedRecord(record.topic, record.partition, record.offset, _reject_kind(error))

    async def _write(
        self,
        queue: asyncio.Queue[_Batch | None],
        built: _Built,
        advance: Callable[[int], None],
        conn: Any,
    ) -> None:
        if conn is None:
            async with self.pool.acquire() as own:
                await self._write_all(queue, built, advance, own, retries=True)
        else:
            await self._write_all(queue, built, advance, conn, retries=False)

    async def _write_all(
        self,
        queue: asyncio.Queue[_Batch | None],
        built: _Built,
        advance: Callable[[int], None],
        conn: Any,
        *,
        retries: bool,
    ) -> None:
        committed_at = time.monotonic()
        while (batch := await queue.get()) is not None:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    applied, duplicates, rejects = await self._write_batch(conn, batch)
                    break
                except INFRASTRUCTURE_ERRORS as error:
                    if not retries or attempt == WRITE_ATTEMPTS:
                        raise
                    self._log.warning(
                        "replay.batch_failed", error=type(error).__name__, attempt=attempt
                    )
                    await asyncio.sleep(min(2.0 ** (attempt - 1), 10.0))
            for key, offset in batch.offsets.items():
                self.position[TopicPartition(*key)] = offset
            built.events += batch.consumed
            built.applied += applied
            built.duplicates += duplicates
            built.rejected += len(rejects)
            for item in rejects:
                if len(built.rejects) < MAX_LISTED_REJECTS:
                    built.rejects.append(item)
            advance(batch.consumed)
            if time.monotonic() - committed_at > KAFKA_COMMIT_INTERVAL_SECONDS:
                committed_at = time.monotonic()
                await self._commit_kafka(batch.offsets)

    async def _commit_kafka(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Best effort, so ``kafka-consumer-groups --describe`` shows the rebuild's progress."""
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(
                self.consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()}),
                5.0,
            )

    async def _write_batch(self, conn: Any, batch: _Batch) -> tuple[int, int, list[RejectedRecord]]:
        """One transaction: dedupe by event id, apply, remember the applied ids, move the
        offsets and counts. A failure rolls it back, and the in-memory dedupe with it."""
        rejects = list(batch.rejects)
        in_memory = not self._table_dedupe
        new = self._dedupe_in_memory(batch.deliveries) if in_memory else []
        try:
            async with conn.transaction():
                # A crash loses at most the last batches, offsets and model together.
                await conn.execute("SET LOCAL synchronous_commit = off")
                if not in_memory:
                    new = await self._dedupe_in_table(conn, batch.deliveries)
                duplicates = len(batch.deliveries) - len(new)
                poisoned = await self._apply(conn, new)
                applied_now = new
                if poisoned:
                    # Forgotten, as the runner forgets dead-lettered events.
                    failed = {id(d) for d, _ in poisoned}
                    applied_now = [d for d in new if id(d) not in failed]
                    if in_memory:
                        self._seen.difference_update(d.event.event_id.int for d, _ in poisoned)
                    else:
                        await conn.execute(
                            f"DELETE FROM {self._events} "
                            "WHERE projection = $1 AND event_id = ANY($2::uuid[])",
                            self.name,
                            [d.event.event_id for d, _ in poisoned],
                        )
                    rejects.extend(
                        (RejectedRecord(d.topic, d.partition, d.offset, "apply-failed"), error)
                        for d, error in poisoned
                    )
                if rejects and self.tuning.strict:
                    item, error = min(
                        rejects, key=lambda r: (r[0].topic, r[0].partition, r[0].offset)
                    )
                    raise PoisonRecord(item.topic, item.partition, item.offset, item.kind, error)
                if in_memory and applied_now:
                    await conn.execute(
                        f"INSERT INTO {self._events} (projection, event_id) "
                        "SELECT $1, unnest($2::uuid[])",
                        self.name,
                        [d.event.event_id for d in applied_now],
                    )
                offsets = batch.offsets
                await conn.execute(
                    f"""
                    UPDATE {self._offsets} AS o SET next_offset = t.next_offset
                    FROM unnest($2::text[], $3::int[], $4::bigint[])
                        AS t(topic, partition, next_offset)
                    WHERE o.projection = $1 AND o.topic = t.topic AND o.partition = t.partition
                    """,
                    self.name,
                    [t for t, _ in offsets],
                    [p for _, p in offsets],
                    list(offsets.values()),
                )
                await conn.execute(
                    f"""
                    INSERT INTO {self._counts} AS c
                        (projection, consumed, applied, duplicates, dead_lettered)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (projection) DO UPDATE SET
                        consumed = c.consumed + EXCLUDED.consumed,
                        applied = c.applied + EXCLUDED.applied,
                        duplicates = c.duplicates + EXCLUDED.duplicates,
                        dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered
                    """,
                    self.name,
                    batch.consumed,
                    len(applied_now),
                    duplicates,
                    len(rejects),
                )
        except BaseException:
            if in_memory:
                self._seen.difference_update(d.event.event_id.int for d in new)
            raise
        for item, error in rejects:
            self._log.warning(
                "replay.rejected",
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                kind=item.kind,
                error=type(error).__name__,
            )
        return len(applied_now), duplicates, [item for item, _ in rejects]

    def _dedupe_in_memory(self, deliveries: list[Delivery]) -> list[Delivery]:
        """The deliveries whose event id this build has not applied yet (first copies)."""
        seen = self._seen
        new: list[Delivery] = []
        for delivery in deliveries:
            key = delivery.event.event_id.int
            if key not in seen:
                seen.add(key)
                new.append(delivery)
        return new

    async def _dedupe_in_table(self, conn: Any, deliveries: list[Delivery]) -> list[Delivery]:
        """As the runner does: remembers the ids, keeps the deliveries whose id is new."""
        if not deliveries:
            return []
        fresh = {
            row["event_id"]
            for row in await conn.fetch(
                f"""
                INSERT INTO {self._events} (projection, event_id)
                SELECT $1, unnest($2::uuid[])
                ON CONFLICT DO NOTHING
                RETURNING event_id
                """,
                self.name,
                list(dict.fromkeys(d.event.event_id for d in deliveries)),
            )
        }
        new: list[Delivery] = []
        for delivery in deliveries:
            if delivery.event.event_id in fresh:
                fresh.discard(delivery.event.event_id)  # a second copy in the batch is a dup
                new.append(delivery)
        return new

    async def _apply(
        self, conn: Any, deliveries: Sequence[Delivery]
    ) -> list[tuple[Delivery, Exception]]:
        """Apply in bulk; when that fails, one by one in savepoints to find the poison ones
        (as the runner does)."""
        if not deliveries:
            return []
        try:
            async with conn.transaction():
                await self.projection.apply(conn, deliveries)
            return []
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            self._log.warning(
                "replay.apply_failed_isolating",
                error=type(error).__name__,
                deliveries=len(deliveries),
            )
        poisoned: list[tuple[Delivery, Exception]] = []
        for delivery in deliveries:
            try:
                async with conn.transaction():
                    await self.projection.apply(conn, [delivery])
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:
                poisoned.append((delivery, error))
        return poisoned


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while batches stream through.

    A batch holds some 20 tracked objects per event (deliveries, envelopes, payloads, their
    dicts) for a fraction of a second; with the default thresholds the collector keeps
    re-scanning them and the process's long-lived objects, which cost more than decoding
    (measured: 2.4 times the CPU of a rebuild). Nothing a rebuild allocates per event forms
    reference cycles, so reference counting frees it all; objects that exist before are
    frozen (left out of collections), and the previous state is restored afterwards, with
    one collection for whatever cycles other tasks made in the meantime.
    """
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
            gc.collect()


def _key(tp: Any) -> TopicPartitionKey:
    return (tp.topic, tp.partition)


async def _together(*steps: Awaitable[None]) -> None:
    """Runs the steps concurrently; the first failure cancels the others and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(cast(Any, step))
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


# --- worker processes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WorkerSpec:
    """What a worker process needs, sent pickled on its stdin (secrets included, so never
    on its command line or in its environment)."""

    dsn: str
    schema: str
    factory: _Factory
    kafka: KafkaSettings
    group_id: str
    tuning: _Tuning
    parts: tuple[tuple[str, int, int, int], ...]
    sys_path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Factory:
    """``make_projection`` pickled for a worker, with the file of the module defining it
    for when that module is not importable by name there: a script run as ``__main__``, a
    test module imported by path."""

    pickled: bytes
    module: str
    module_file: str | None


def _factory(
    make_projection: Callable[[str], Projection], workers: int, dsn: str | None
) -> _Factory | None:
    """None for a build in this process; else what workers need, checked up front."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        return None
    if not dsn:
        raise ValueError("workers > 1 needs the database's dsn (each worker connects itself)")
    try:
        pickled = pickle.dumps(make_projection)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise ValueError(
            "workers > 1 needs make_projection picklable by reference: a module-level class "
            f"or function, or a functools.partial of one; not {make_projection!r}"
        ) from error
    target = getattr(make_projection, "func", make_projection)  # functools.partial
    module = getattr(target, "__module__", None) or ""
    defining = sys.modules.get(module)
    return _Factory(pickled, module, getattr(defining, "__file__", None))


def _load_factory(factory: _Factory) -> Callable[[str], Projection]:
    name = factory.module
    try:
        importable = name != "__main__" and importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        importable = False
    if not importable and factory.module_file is not None:
        # Loaded under a name of its own, so a script's `if __name__ == "__main__"` part
        # does not run, then registered where pickle looks for it.
        alias = "__zhucun_replay_main__" if name == "__main__" else name
        spec = importlib.util.spec_from_file_location(alias, factory.module_file)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return cast(Callable[[str], Projection], pickle.loads(factory.pickled))


def _split(replay: _Replay, workers: int) -> list[list[tuple[str, int, int, int]]]:
    """Partitions dealt to workers, largest first, each to the least loaded."""
    shares: list[list[tuple[str, int, int, int]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for tp in sorted(replay.start, key=lambda t: replay.start[t] - replay.stop[t]):
        index = loads.index(min(loads))
        shares[index].append((tp.topic, tp.partition, replay.start[tp], replay.stop[tp]))
        loads[index] += replay.stop[tp] - replay.start[tp]
    return [share for share in shares if share]


_WORKER_COMMAND = "from zhucun.shared.replay import _worker_main; _worker_main()"


async def _run_workers(
    replay: _Replay,
    factory: _Factory,
    dsn: str,
    workers: int,
    built: _Built,
    advance: Callable[[int], None],
) -> None:
    """Streams the partitions in worker processes, each its share of partitions with its own
    consumer and connection, into ``built``'s totals. A failed worker stops the others."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for parts in _split(replay, workers):
            spec = _WorkerSpec(
                dsn=dsn,
                schema=replay.schema,
                factory=factory,
                kafka=replay.kafka,
                group_id=replay.group_id,
                tuning=replay.tuning,
                parts=tuple(parts),
                sys_path=tuple(sys.path),
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WORKER_COMMAND,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(spec))
            await process.stdin.drain()
            process.stdin.close()
        await _together(*(_watch(process, built, advance) for process in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _watch(
    process: asyncio.subprocess.Process, built: _Built, advance: Callable[[int], None]
) -> None:
    """Follows one worker: progress lines, its result, its log (passed on to stderr)."""
    assert process.stdout is not None
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=40)

    async def relay_log(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace")
            tail.append(text)
            sys.stderr.write(text)

    log_task = asyncio.create_task(relay_log(process.stderr))
    outcome: dict[str, Any] | None = None
    while line := await process.stdout.readline():
        kind, _, payload = line.decode().partition(" ")
        if kind == "progress":
            advance(int(payload))
        elif kind in ("done", "failed"):
            outcome = {"kind": kind, **json.loads(payload)}
    await process.wait()
    await log_task
    if outcome is None or outcome["kind"] == "failed" or process.returncode != 0:
        failure = outcome or {}
        if failure.get("error") == "PoisonRecord":
            raise PoisonRecord(
                failure["topic"],
                failure["partition"],
                failure["offset"],
                failure["poison_kind"],
                Exception(failure.get("message", "")),
            )
        raise ReplayError(
            f"a replay worker failed (exit {process.returncode}): "
            f"{failure.get('error', '')} {failure.get('message', '')}\n" + "".join(tail)
        )
    built.worker_peak_rss_kib = max(built.worker_peak_rss_kib or 0, outcome["peak_rss_kib"])
    built.events += outcome["events"]
    built.applied += outcome["applied"]
    built.duplicates += outcome["duplicates"]
    built.rejected += outcome["rejected"]
    for item in outcome["rejects"]:
        if len(built.rejects) < MAX_LISTED_REJECTS:
            built.rejects.append(RejectedRecord(*item))


def _worker_main() -> None:
    """A worker process: streams its share of partitions (see :func:`_run_workers`). Speaks
    on its original stdout; everything else printed goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    spec: _WorkerSpec = pickle.load(sys.stdin.buffer)
    sys.path[:0] = [entry for entry in spec.sys_path if entry not in sys.path]
    try:
        _event_loop_runner()(_worker(spec, out))
    except PoisonRecord as error:
        out.write(
            "failed "
            + json.dumps(
                {
                    "error": "PoisonRecord",
                    "topic": error.topic,
                    "partition": error.partition,
                    "offset": error.offset,
                    "poison_kind": error.kind,
                    "message": str(error),
                }
            )
            + "\n"
        )
        sys.exit(1)
    except BaseException as error:
        out.write(
            "failed " + json.dumps({"error": type(error).__name__, "message": str(error)}) + "\n"
        )
        raise


def _peak_rss_kib() -> int:
    """This process's peak resident memory. Linux keeps ``ru_maxrss`` across ``execve``
    (a worker would report its parent's peak); ``VmHWM`` belongs to the address space."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _event_loop_runner() -> Callable[[Awaitable[None]], None]:
    """uvloop where installed (as under uvicorn): its I/O costs the Kafka client less CPU."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of zhucun-shared
        return cast(Callable[[Awaitable[None]], None], asyncio.run)
    return cast(Callable[[Awaitable[None]], None], uvloop.run)


async def _worker(spec: _WorkerSpec, out: Any) -> None:
    from zhucun.shared.store import create_pool

    projection = _load_factory(spec.factory)(spec.schema)
    pool = await create_pool(spec.dsn, min_size=1, max_size=2)
    try:
        async with _Replay(
            pool,
            projection,
            spec.kafka,
            schema=spec.schema,
            tuning=spec.tuning,
            group_id=spec.group_id,
        ) as replay:
            replay.assign(spec.parts)
            built = replay._totals()
            # Deduped in this process's memory: every copy of an event is on its key's
            # partition (the coordinator's finish() checks it).
            await replay.stream(replay.stop, built, lambda n: out.write(f"progress {n}\n"))
    finally:
        await pool.close()
    result = {
        "peak_rss_kib": _peak_rss_kib(),
        "events": built.events,
        "applied": built.applied,
        "duplicates": built.duplicates,
        "rejected": built.rejected,
        "rejects": [[r.topic, r.partition, r.offset, r.kind] for r in built.rejects],
    }
    out.write("done " + json.dumps(result) + "\n")


# --- progress ------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    """Events per second, from rich's own moving estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            f"{speed:,.0f} events/s" if speed else "- events/s", style="progress.data.speed"
        )


@contextlib.contextmanager
def _progress_bar(
    choice: ProgressChoice, description: str, total: int
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws a bar on stderr when asked and useful."""
    console = Console(stderr=True, force_terminal=True if choice == "always" else None)
    if choice is False or (choice is True and not console.is_terminal):
        yield lambda n: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        TextColumn("left"),
        console=console,
        speed_estimate_period=10.0,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


__all__ = [
    "RUNTIME_TABLES",
    "RebuildReport",
    "RejectedRecord",
    "ReplayError",
    "digest",
    "drop_schema",
    "model_tables",
    "rebuild",
    "rebuild_as_of",
]
