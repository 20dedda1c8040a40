"""Rebuild and switch: a projection rebuilt from offset zero into a fresh schema while the
live model keeps serving, caught up with it, and swapped in for it in one transaction, its
grants carried over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import structlog
from aiokafka import TopicPartition

from zhucun.shared.pipeline import Projection
from zhucun.shared.replay.digest import digest_of
from zhucun.shared.replay.engine import DEFAULT_TUNING, Replay, Tuning, key
from zhucun.shared.replay.report import (
    Built,
    Progress,
    RebuildReport,
    ReplayError,
    TopicPartitionKey,
)
from zhucun.shared.replay.schemas import (
    OLD_SUFFIX,
    REBUILD_SUFFIX,
    check_schema,
    quote,
    relations,
    schema_exists,
)
from zhucun.shared.replay.workers import build, factory
from zhucun.shared.settings import KafkaSettings

log = structlog.get_logger("zhucun.shared.replay")

#: How long the switch waits for the live model's locks before it tries again.
SWITCH_LOCK_TIMEOUT_SECONDS = 2.0
SWITCH_ATTEMPTS = 8
#: Catching up with the live model before the switch: passes at most, and the lag (events)
#: small enough to be applied inside the switch transaction, while readers wait.
CATCH_UP_PASSES = 5
SWITCH_TAIL_EVENTS = 1_000
#: The longest the switch transaction may spend applying that tail (readers wait meanwhile).
SWITCH_TAIL_SECONDS = 5.0


async def rebuild(
    pool: asyncpg.Pool,
    make_projection: Callable[[str], Projection],
    kafka: KafkaSettings,
    *,
    live_schema: str,
    progress: Progress | None = None,
    tuning: Tuning = DEFAULT_TUNING,
    workers: int = 1,
    dsn: str | None = None,
    ignore_columns: Mapping[str, Collection[str]] | None = None,
    allow_foreign_tables: bool = False,
) -> RebuildReport:
    """Rebuild the projection from offset zero and switch it in for ``live_schema``.

    1. ``make_projection(fresh)`` builds the projection for a fresh schema
       ``<live_schema>__rebuild_<8 hex>``; its runtime and model tables are created there.
    2. The end offsets of every partition of every topic are taken now; the rebuild reads
       from each partition's beginning up to them, with a consumer group id of its own
       (``<name>__rebuild_<8 hex>``, partitions assigned, never joining the live group),
       while the live runner keeps serving and consuming ``live_schema`` undisturbed.
    3. The rebuilt model's :func:`~zhucun.shared.replay.digest` is taken
       (``RebuildReport.digest``).
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
    :func:`~zhucun.shared.replay.drop_schema` or ``DROP SCHEMA "<name>" CASCADE``. A failed
    rebuild leaves its fresh schema and never touches the live one; drop it the same way.

    The live schema must hold this projection only: the switch moves the whole schema, so a
    schema shared with an event store or another projection is refused (:class:`ReplayError`,
    before any work) unless ``allow_foreign_tables``. Grants are copied; default privileges
    (``ALTER DEFAULT PRIVILEGES IN SCHEMA``) and objects referring to the schema's tables
    by OID from outside it (foreign keys, views in other schemas) stay with the old schema.

    ``progress``: told how far the build is (records done of the total), such as the
    ``zhucun`` command's progress bar. ``workers > 1`` builds in that many processes
    (partitions split between them; ``make_projection`` must be picklable, e.g. a
    module-level class or a ``functools.partial`` of one, and ``dsn`` names the database of
    ``pool``); every copy of an event is on its key's partition, so each process dedupes its
    own, and should that not hold (events re-published after the partition count changed)
    the dedupe table's key fails to build and the rebuild stops instead of switching.
    ``tuning`` (:class:`~zhucun.shared.replay.Tuning`): the batch size; ``check_crcs=False``
    skips Kafka's CRC check of fetched batches (less CPU; the event store's hash chain is the
    tamper evidence); ``strict=True`` stops at the first rejected record
    (:class:`~zhucun.shared.projection.PoisonRecord`) instead of skipping it.
    """
    check_schema(live_schema, max(len(OLD_SUFFIX) + 15, len(REBUILD_SUFFIX) + 8))
    fresh = f"{live_schema}{REBUILD_SUFFIX}{uuid4().hex[:8]}"
    workers_factory = factory(make_projection, workers, dsn)
    projection = make_projection(fresh)
    async with Replay(pool, projection, kafka, schema=fresh, tuning=tuning) as replay:
        await replay.prepare(until=None)
        if await schema_exists(pool, live_schema):
            try:  # refused before any work
                await check_switchable(
                    pool, live_schema, fresh, projection.name, allow_foreign_tables
                )
            except ReplayError:
                await pool.execute(f"DROP SCHEMA {quote(fresh)} CASCADE")
                raise
        built = await build(replay, progress, workers=workers, dsn=dsn, factory=workers_factory)
        tables, value, digest_seconds = await digest_of(pool, fresh, ignore_columns)
        began = time.perf_counter()
        previous, switched_at, caught_up = await switch_in(
            replay, live_schema, allow_foreign_tables
        )
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


async def switch_in(
    replay: Replay, live: str, allow_foreign_tables: bool
) -> tuple[str | None, dict[TopicPartitionKey, int] | None, int]:
    """Catches up with the live model, then swaps the schemas (see :func:`rebuild`).
    Returns the old model's new name, the offsets both stood at, the records applied
    after the stop offsets."""
    pool = replay.pool
    caught = replay.totals()
    if not await schema_exists(pool, live):
        with contextlib.suppress(asyncpg.DuplicateSchemaError):  # unless one just came
            await pool.execute(f"ALTER SCHEMA {quote(replay.schema)} RENAME TO {quote(live)}")
            return None, None, 0
    for attempt in range(1, SWITCH_ATTEMPTS + 1):
        # Outside the switch transaction (readers are not kept waiting) until the live
        # model is only a few records ahead, before each attempt.
        for _ in range(CATCH_UP_PASSES):
            ahead = await _ahead(replay, pool, live)
            lag = sum(offset - replay.position[tp] for tp, offset in ahead.items())
            if lag <= SWITCH_TAIL_EVENTS:
                break
            await replay.stream(ahead, caught, lambda n: None)
        old = f"{live}{OLD_SUFFIX}{datetime.now(UTC):%Y%m%d_%H%M%S}"
        positions = dict(replay.position)
        tail = replay.totals()
        try:
            async with pool.acquire() as conn, conn.transaction():
                await _switch(replay, conn, live, old, allow_foreign_tables, tail)
        except (
            asyncpg.LockNotAvailableError,
            asyncpg.DeadlockDetectedError,
            TimeoutError,
        ) as error:
            replay.position = positions
            log.warning(
                "replay.switch_waiting",
                projection=replay.name,
                schema=replay.schema,
                attempt=attempt,
                error=type(error).__name__,
            )
            await asyncio.sleep(min(2.0**attempt, 10.0))
            continue
        except asyncpg.DuplicateSchemaError:
            replay.position = positions
            await asyncio.sleep(1.0)  # an old schema of the same second: the next name
            continue
        except BaseException:
            replay.position = positions
            raise
        switched_at = {key(tp): offset for tp, offset in replay.position.items()}
        return old, switched_at, caught.events + tail.events
    raise ReplayError(
        f"could not take the locks of {live!r} to switch in {replay.schema!r} "
        f"({SWITCH_ATTEMPTS} attempts); the rebuilt model is left in {replay.schema!r}"
    )


async def _switch(
    replay: Replay, conn: Any, live: str, old: str, allow_foreign_tables: bool, tail: Built
) -> None:
    """The switch transaction: lock, apply the tail, rename, grant."""
    await conn.execute(f"SET LOCAL lock_timeout = {int(SWITCH_LOCK_TIMEOUT_SECONDS * 1000)}")
    await check_switchable(conn, live, replay.schema, replay.name, allow_foreign_tables)
    live_relations = await relations(conn, live)
    tables = sorted(
        (t for t, kind in live_relations.items() if kind in ("r", "p")),
        key=lambda t: (t != "projection_offsets", t),
    )
    if tables:
        await conn.execute(
            "LOCK TABLE "
            + ", ".join(f"{quote(live)}.{quote(t)}" for t in tables)
            + " IN ACCESS EXCLUSIVE MODE"
        )
    # The live runner is held at the lock now: its offsets are final.
    ahead = await _ahead(replay, conn, live)
    if ahead:
        async with asyncio.timeout(SWITCH_TAIL_SECONDS):
            await replay.stream(ahead, tail, lambda n: None, conn=conn)
    grants = await _grants(conn, live, await relations(conn, replay.schema))
    await conn.execute(f"ALTER SCHEMA {quote(live)} RENAME TO {quote(old)}")
    await conn.execute(f"ALTER SCHEMA {quote(replay.schema)} RENAME TO {quote(live)}")
    for statement in grants:
        await conn.execute(statement)


async def _ahead(replay: Replay, conn: Any, live: str) -> dict[Any, int]:
    """The live model's stored offsets where they are beyond the rebuilt model's."""
    # Checked first, not caught: inside the switch transaction a failed statement would
    # abort everything after it (a live schema without the runtime's tables yet).
    offsets = f"{quote(live)}.projection_offsets"
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", offsets):
        return {}
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {offsets} WHERE projection = $1",
        replay.name,
    )
    ahead: dict[Any, int] = {}
    for row in rows:
        tp = TopicPartition(row["topic"], row["partition"])
        if tp in replay.position and row["next_offset"] > replay.position[tp]:
            ahead[tp] = row["next_offset"]
    return ahead


async def check_switchable(
    conn: Any, live: str, fresh: str, name: str, allow_foreign_tables: bool
) -> None:
    """Refuses to move a schema that holds more than this projection (``conn``: a pool or a
    connection)."""
    live_relations = await relations(conn, live)
    fresh_relations = await relations(conn, fresh)
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
            f"SELECT DISTINCT projection FROM {quote(live)}.projection_offsets "
            "WHERE projection <> $1",
            name,
        )
        if others:
            raise ReplayError(
                f"schema {live!r} also holds projections "
                f"{sorted(r['projection'] for r in others)}: they would be switched too"
            )


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
            f"GRANT {row['privilege_type']} ON SCHEMA {quote(live)} TO "
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
            f"GRANT {row['privilege_type']} ON TABLE {quote(live)}.{quote(row['relname'])} "
            f"TO {await _grantee(conn, row['grantee'])}"
            + (" WITH GRANT OPTION" if row["is_grantable"] else "")
        )
    return statements


async def _grantee(conn: Any, oid: int) -> str:
    if oid == 0:
        return "PUBLIC"
    return quote(str(await conn.fetchval("SELECT pg_get_userbyid($1)", oid)))
