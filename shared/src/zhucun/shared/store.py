"""The event store: one append-only ``events`` table in each service's own database.

Guarantees, each backed by the database rather than by process memory:

* **Optimistic concurrency** — an append names the stream version it expects; if another
  writer got there first the append fails with ``WrongExpectedVersion`` and stores nothing.
  ``UNIQUE (stream_id, stream_version)`` is the backstop.
* **Idempotency by event id** — re-appending events whose ids are stored is a no-op success
  when the content (stream, type, schema version, key, data) is the same, and an
  ``EventIdConflict`` when it is not. ``UNIQUE (event_id)`` is the backstop.
* **Tamper evidence** — each event's ``hash`` covers its canonical encoding and the previous
  event's hash in the same stream; ``verify()`` walks the chains and names the first broken
  link. Global positions are dense (1, 2, 3, ...), so a deleted row shows as a gap.
* **Gap-safe global order** — see "Why a lock for the global order" below.
* **Bounded events** — an append whose events include one larger than ``MAX_EVENT_BYTES``
  (measured as the Kafka record the relay will publish) stores nothing and raises
  ``EventTooLarge``: see "Why the store bounds an event's size" below.

Why a lock for the global order
-------------------------------
A position taken from a sequence can commit *after* a higher one, so a reader tailing
``global_position > last_seen`` would skip it for ever (the bug that Marten, Axon, Eventuous,
SQLStreamStore and prooph all shipped). We serialise appends per database with a
transaction-scoped advisory lock and take ``max(global_position) + 1`` under it: PostgreSQL
makes a transaction visible before it releases its locks, so when an append can allocate
position *n + 1*, position *n* is already visible to everyone. Readers need no snapshot
tricks and the position is a plain dense number an auditor can reason about.

The cost is that appends to one service's store do not run in parallel: throughput is bound
by commit latency, which batching amortises (see ``bench/``). One database per service keeps
the lock local. The alternative — a transaction-id high-water mark with ``pg_snapshot_xmin`` —
lets writers run concurrently but turns the reader's cursor into a pair ``(xid, position)``
and allows gaps; it is the upgrade path if a single service ever needs more.

Why the store bounds an event's size
------------------------------------
The events table is the relay's outbox, and the relay publishes in store order: an event the
broker refuses holds back every event stored after it (the relay reports itself ``stalled``
on it and never skips it). An event Kafka would refuse must therefore never be stored. The
store measures each new event as its Kafka record (``kafka_record_bytes``: the JSON value,
the key and every ``ce_*`` header) before it writes anything, and refuses the whole append
when one is above ``MAX_EVENT_BYTES``; the HTTP layer answers 413. Both stores check the
same way (``check_event_sizes``), before any other work of the append.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

import asyncpg
import asyncpg.pool

from zhucun.shared.envelope import KafkaRecord, NewEvent, RecordedEvent, to_kafka
from zhucun.shared.events import GENESIS_HASH, JsonObject

#: ``expected_version`` for "append whatever the stream's version is".
ANY_VERSION: Final = -1
#: ``expected_version`` for "the stream must not exist yet".
NO_STREAM: Final = 0
#: Tries of an append whose ``ANY_VERSION`` streams keep moving under it.
_APPEND_ATTEMPTS: Final = 20
#: The largest event the store accepts, in bytes of the Kafka record the relay will publish
#: for it: the JSON value, the key, and the names and values of its ``ce_*`` headers.
#:
#: Half of what Kafka takes with its defaults. A broker's ``message.max.bytes`` (1,048,588)
#: bounds a record batch and aiokafka's ``max_request_size`` (1,048,576) a single record;
#: both are about 1 MiB. The other half is room for what the store cannot measure: the
#: ``ce_source`` header the relay adds, the client's own headers (FastStream's
#: ``correlation_id``), the record and batch framing (tens of bytes), many times over. So
#: every stored event is one the broker accepts on its defaults, and no Zhucun event comes
#: near it (the longest free text, ``Text``, is 10,000 characters: at most 40 KB of UTF-8).
MAX_EVENT_BYTES: Final = 512 * 1024

_COLUMNS = (
    "global_position, event_id, stream_id, stream_version, event_type, schema_version, key, "
    "data, occurred_at, recorded_at, correlation_id, causation_id, actor, prev_hash, hash"
)


class EventStoreError(Exception):
    """Base of the store's typed errors."""


class WrongExpectedVersion(EventStoreError):
    """Another writer appended to the stream first (HTTP 409)."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventIdConflict(EventStoreError):
    """An event id is already stored with different content, or a batch mixes stored and new
    ids (a retry always resends the same batch, so that is a client bug)."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id


class EventTooLarge(EventStoreError):
    """An event of the append is larger than ``MAX_EVENT_BYTES`` as a Kafka record (HTTP
    413): nothing of the append is stored."""

    def __init__(self, event_type: str, size: int, limit: int = MAX_EVENT_BYTES) -> None:
        super().__init__(
            f"event {event_type} is {size} bytes as a Kafka record, above the limit of "
            f"{limit} bytes"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class AppendResult:
    events: list[RecordedEvent]
    #: True when every event was already stored (an idempotent retry): nothing was written.
    duplicate: bool

    @property
    def stream_version(self) -> int:
        return self.events[-1].stream_version

    @property
    def last_position(self) -> int:
        return self.events[-1].global_position


@dataclass(frozen=True, slots=True)
class StreamWrite:
    """One stream's part of an ``append_streams``: its events after ``expected_version``;
    no events makes it a guard on the version alone."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int


@dataclass(frozen=True, slots=True)
class BrokenLink:
    stream_id: str
    stream_version: int
    global_position: int
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    events_checked: int
    streams_checked: int
    first_broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


class EventStore(Protocol):
    """What the command path, the relay and the auditors need of an event store.

    Two implementations keep the same contract (``shared/tests/test_store.py`` runs one
    suite against both): ``PostgresEventStore``, the product's, and
    ``zhucun.shared.memory_store.InMemoryEventStore``, for fast tests of application handlers.
    """

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int
    ) -> AppendResult: ...

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult: ...

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...

    async def head_position(self) -> int: ...

    async def stream_version(self, stream_id: str) -> int: ...

    async def verify(self, *, batch_size: int = 2000) -> VerificationReport: ...


def advisory_lock_key(schema: str, purpose: str) -> int:
    """A stable signed 64-bit advisory-lock key per schema and purpose."""
    digest = hashlib.sha256(f"zhucun:{schema}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _record(row: asyncpg.Record) -> RecordedEvent:
    # The row's types are the model's (asyncpg decodes uuid, timestamptz and jsonb): skipping
    # validation keeps long stream reads cheap.
    return RecordedEvent.model_construct(**dict(row))


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Hand a released connection back as it is (asyncpg still rolls back an open
    transaction). The default reset costs a round trip on every release; the only code that
    changes session state, the relay's leader connection, restores it itself."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool whose connections read and write ``jsonb`` as Python objects."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )
    assert pool is not None
    return pool


class PostgresEventStore:
    """Append to and read from the ``events`` table of one schema."""

    def __init__(self, pool: asyncpg.Pool, *, schema: str = "public") -> None:
        if not schema.isidentifier() or schema.lower() != schema:
            raise ValueError(f"invalid schema name {schema!r}")
        self.pool = pool
        self.schema = schema
        self.table = f'"{schema}".events'
        self.notify_channel = f"zhucun_events_{schema}"
        self._append_lock = advisory_lock_key(schema, "append")

    # --- schema ------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the tables and the append-only guard (idempotent, safe to run concurrently)."""
        s = f'"{self.schema}"'
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", advisory_lock_key(self.schema, "ddl")
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self.table} (
                    global_position bigint PRIMARY KEY CHECK (global_position > 0),
                    event_id uuid NOT NULL UNIQUE,
                    stream_id text NOT NULL,
                    stream_version integer NOT NULL CHECK (stream_version > 0),
                    event_type text NOT NULL,
                    schema_version integer NOT NULL,
                    key text NOT NULL,
                    data jsonb NOT NULL,
                    occurred_at timestamptz NOT NULL,
                    recorded_at timestamptz NOT NULL,
                    correlation_id uuid NOT NULL,
                    causation_id uuid,
                    actor text,
                    prev_hash text NOT NULL,
                    hash text NOT NULL,
                    UNIQUE (stream_id, stream_version)
                )
                """
            )
            # Stored events are facts: the application never updates or deletes them. The
            # trigger stops accidents; a superuser can still bypass it, which verify() detects.
            await conn.execute(
                f"""
                CREATE OR REPLACE FUNCTION {s}.events_are_append_only() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
                END $$
                """
            )
            await conn.execute(
                f"""
                CREATE OR REPLACE TRIGGER events_append_only
                BEFORE UPDATE OR DELETE ON {self.table}
                FOR EACH STATEMENT EXECUTE FUNCTION {s}.events_are_append_only()
                """
            )
            # The locked part of an append, in one round trip (see ``append_streams``).
            await conn.execute(
                f"""
                CREATE OR REPLACE FUNCTION {s}.append_events(
                    lock_key bigint, channel text, check_streams text[], check_versions int[],
                    ids uuid[], streams text[], versions int[], types text[],
                    schema_versions int[], keys text[], datas jsonb[],
                    occurred timestamptz[], recorded timestamptz[], correlations uuid[],
                    causations uuid[], actors text[], prev_hashes text[], hashes text[])
                RETURNS TABLE (moved_stream text, actual_version int, first_position bigint)
                LANGUAGE plpgsql AS $$
                DECLARE
                    head bigint;
                BEGIN
                    PERFORM pg_advisory_xact_lock(lock_key);
                    -- Each statement below sees every append committed before the lock.
                    RETURN QUERY
                        SELECT c.stream_id, coalesce(last.stream_version, 0), NULL::bigint
                        FROM unnest(check_streams, check_versions) AS c(stream_id, version)
                        LEFT JOIN LATERAL (
                            SELECT e.stream_version FROM {self.table} AS e
                            WHERE e.stream_id = c.stream_id
                            ORDER BY e.stream_version DESC LIMIT 1
                        ) AS last ON true
                        WHERE coalesce(last.stream_version, 0) <> c.version;
                    IF FOUND THEN
                        RETURN;
                    END IF;
                    SELECT coalesce(max(global_position), 0) INTO head FROM {self.table};
                    INSERT INTO {self.table} ({_COLUMNS})
                    SELECT head + t.n, t.id, t.stream, t.version, t.type, t.schema_version,
                           t.key, t.data, t.occurred, t.recorded, t.correlation, t.causation,
                           t.actor, t.prev_hash, t.hash
                    FROM unnest(ids, streams, versions, types, schema_versions, keys, datas,
                                occurred, recorded, correlations, causations, actors,
                                prev_hashes, hashes)
                        WITH ORDINALITY AS t(id, stream, version, type, schema_version, key,
                                             data, occurred, recorded, correlation,
                                             causation, actor, prev_hash, hash, n);
                    -- Wakes relays and tailing readers at commit instead of at their poll.
                    PERFORM pg_notify(channel, (head + cardinality(ids))::text);
                    RETURN QUERY SELECT NULL::text, NULL::int, head + 1;
                END $$
                """
            )
            # The relay's record of what it has published (the events table is the outbox).
            await conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {s}.relay_checkpoints (
                    relay text PRIMARY KEY,
                    position bigint NOT NULL CHECK (position >= 0),
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )

    # --- writing -----------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically, after version ``expected_version``
        (``NO_STREAM`` for a new stream, ``ANY_VERSION`` to skip the check). An event above
        ``MAX_EVENT_BYTES`` refuses the whole append with ``EventTooLarge``."""
        if not events:
            raise ValueError("append needs at least one event")
        return await self.append_streams([StreamWrite(stream_id, events, expected_version)])

    async def append_streams(
        self, writes: Sequence[StreamWrite], *, conn: asyncpg.Connection | None = None
    ) -> AppendResult:
        """Append to several streams in one transaction: all or nothing.

        Each write names the version its stream must still be at. A write without events is
        a *guard*: nothing is appended to that stream, but the append fails with
        ``WrongExpectedVersion`` if it moved (a decision that read two streams and writes one
        stays consistent with both). Events are positioned in the order of ``writes``.

        ``conn``: append on this connection, inside the transaction it is in (a savepoint),
        so the events commit or roll back with the caller's other writes (a projection that
        publishes what it decides). The append lock is then held until the caller commits;
        keep such transactions short.
        """
        new_events = check_append(writes)
        streams = [write.stream_id for write in writes]
        ids = [new.event_id for _, new in new_events]
        payloads = [new.event.to_data() for _, new in new_events]
        check_event_sizes(new_events, payloads)
        for _ in range(_APPEND_ATTEMPTS):
            if conn is not None:
                outcome = await self._try_append(conn, writes, new_events, payloads, ids, streams)
            else:
                async with self.pool.acquire() as acquired:
                    outcome = await self._try_append(
                        acquired, writes, new_events, payloads, ids, streams
                    )
            if outcome is not None:
                return outcome
        raise WrongExpectedVersion(streams[0], ANY_VERSION, -1)  # pragma: no cover

    async def _try_append(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        writes: Sequence[StreamWrite],
        new_events: list[tuple[StreamWrite, NewEvent]],
        payloads: list[JsonObject],
        ids: list[UUID],
        streams: list[str],
    ) -> AppendResult | None:
        """One attempt. The expensive part (reading the heads, hashing) runs without the
        lock; the locked part is one call of ``append_events``, which re-checks that no
        stream moved meanwhile. ``None`` when a stream appended with ``ANY_VERSION`` moved
        (the caller tries again on the new head)."""
        # What the append must know, outside the lock: ids already stored (a retry) and the
        # head of each stream.
        known = await conn.fetch(
            f"""
            SELECT s.stream_id, last.stream_version, last.hash,
                   (SELECT count(*) FROM {self.table} WHERE event_id = ANY($1::uuid[]))
                       AS stored
            FROM unnest($2::text[]) WITH ORDINALITY AS s(stream_id, n)
            LEFT JOIN LATERAL (
                SELECT stream_version, hash FROM {self.table}
                WHERE stream_id = s.stream_id ORDER BY stream_version DESC LIMIT 1
            ) AS last ON true
            ORDER BY s.n
            """,
            ids,
            streams,
        )
        if known[0]["stored"]:
            return await self._replay(conn, new_events, payloads, ids)
        head = {
            row["stream_id"]: (row["stream_version"] or NO_STREAM, row["hash"] or GENESIS_HASH)
            for row in known
        }
        for write in writes:
            version = head[write.stream_id][0]
            expected = write.expected_version
            if expected != ANY_VERSION and version != expected:
                raise WrongExpectedVersion(write.stream_id, expected, version)
        # Every stream must still be at the version read when the lock is held: for guards and
        # expected versions that is the rule; for the others, the chain was hashed on it.
        check_versions = [head[stream][0] for stream in streams]
        # Global positions are allocated under the lock; they are not part of the hash.
        recorded = chain_events(new_events, payloads, head, first_position=0)
        columns = _columns_of(recorded)[1:]  # without the global position
        try:
            async with conn.transaction():
                rows = await conn.fetch(
                    f'SELECT * FROM "{self.schema}".append_events('
                    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
                    " $17, $18)",
                    self._append_lock,
                    self.notify_channel,
                    streams,
                    check_versions,
                    *columns,
                )
        except asyncpg.UniqueViolationError:
            # The same event id was appended concurrently (a client retrying at once).
            return await self._replay(conn, new_events, payloads, ids)
        moved = [row for row in rows if row["moved_stream"] is not None]
        if moved:
            by_stream = {write.stream_id: write for write in writes}
            for row in moved:
                write = by_stream[row["moved_stream"]]
                if write.expected_version != ANY_VERSION:
                    raise WrongExpectedVersion(
                        write.stream_id, write.expected_version, row["actual_version"]
                    )
            if await self._stored_count(conn, ids):
                return await self._replay(conn, new_events, payloads, ids)
            return None
        first = rows[0]["first_position"]
        return AppendResult(
            [
                event.model_copy(update={"global_position": first + n})
                for n, event in enumerate(recorded)
            ],
            duplicate=False,
        )

    async def _stored_count(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        ids: list[UUID],
    ) -> int:
        value = await conn.fetchval(
            f"SELECT count(*) FROM {self.table} WHERE event_id = ANY($1::uuid[])", ids
        )
        return int(value)

    async def _replay(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        new_events: list[tuple[StreamWrite, NewEvent]],
        payloads: list[JsonObject],
        ids: list[UUID],
    ) -> AppendResult:
        stored = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE event_id = ANY($1::uuid[])", ids
        )
        by_id = {row["event_id"]: _record(row) for row in stored}
        return AppendResult(replayed(new_events, payloads, by_id), duplicate=True)

    # --- reading -----------------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        rows = await self.pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM {self.table}
            WHERE stream_id = $1 AND stream_version >= $2
              AND ($3::int IS NULL OR stream_version <= $3)
            ORDER BY stream_version
            """,
            stream_id,
            from_version,
            to_version,
        )
        return [_record(r) for r in rows]

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with ``global_position > after`` in position order. Safe to tail: a position
        is only allocated once every lower one is visible (see the module docstring)."""
        rows = await self.pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM {self.table}
            WHERE global_position > $1 ORDER BY global_position LIMIT $2
            """,
            after,
            limit,
        )
        return [_record(r) for r in rows]

    async def head_position(self) -> int:
        value = await self.pool.fetchval(
            f"SELECT coalesce(max(global_position), 0) FROM {self.table}"
        )
        return int(value)

    async def stream_version(self, stream_id: str) -> int:
        value = await self.pool.fetchval(
            f"SELECT coalesce(max(stream_version), 0) FROM {self.table} WHERE stream_id = $1",
            stream_id,
        )
        return int(value)

    # --- auditing ----------------------------------------------------------------------

    async def verify(self, *, batch_size: int = 2000) -> VerificationReport:
        """Walk every hash chain in global order and name the first broken link
        (``verify_chains``)."""
        return await verify_chains(self._scan(batch_size))

    async def _scan(self, batch_size: int) -> AsyncIterator[RecordedEvent]:
        after = 0
        while True:
            batch = await self.read_all(after=after, limit=batch_size)
            for event in batch:
                yield event
            if len(batch) < batch_size:
                return
            after = batch[-1].global_position


def chain_events(
    new_events: Sequence[tuple[StreamWrite, NewEvent]],
    payloads: Sequence[JsonObject],
    head: dict[str, tuple[int, str]],
    *,
    first_position: int,
) -> list[RecordedEvent]:
    """The recorded form of an append's new events: versions after each stream's ``head``
    (version, hash), each hash chained to the one before it in its stream, global positions
    from ``first_position`` on (0: allocated later). ``head`` is advanced in place."""
    recorded_at = datetime.now(UTC)
    recorded: list[RecordedEvent] = []
    for n, ((write, new), data) in enumerate(zip(new_events, payloads, strict=True)):
        version, prev_hash = head[write.stream_id]
        meta = new.metadata
        # Built from typed values the store itself produced: no validation needed.
        event = RecordedEvent.model_construct(
            event_id=new.event_id,
            stream_id=write.stream_id,
            stream_version=version + 1,
            global_position=first_position + n if first_position else 0,
            event_type=new.event.event_type,
            schema_version=new.event.schema_version,
            key=new.event.kafka_key(),
            data=data,
            occurred_at=meta.occurred_at,
            recorded_at=recorded_at,
            correlation_id=meta.correlation_id,
            causation_id=meta.causation_id,
            actor=meta.actor,
            prev_hash=prev_hash,
            hash="",
        )
        digest = event.computed_hash()
        recorded.append(event.model_copy(update={"hash": digest}))
        head[write.stream_id] = (version + 1, digest)
    return recorded


def check_append(writes: Sequence[StreamWrite]) -> list[tuple[StreamWrite, NewEvent]]:
    """The rules of an append that hold before any store is asked: some events, each stream
    once, each event id once. The new events in append order."""
    if not any(write.events for write in writes):
        raise ValueError("append needs at least one event")
    streams = [write.stream_id for write in writes]
    if len(set(streams)) != len(streams):
        raise ValueError("a stream appears twice in one append")
    new_events = [(write, new) for write in writes for new in write.events]
    ids = [new.event_id for _, new in new_events]
    if len(set(ids)) != len(ids):
        raise EventIdConflict(str(ids[0]), "the same event id appears twice in one append")
    return new_events


def record_bytes(record: KafkaRecord) -> int:
    """A Kafka record's size as ``MAX_EVENT_BYTES`` counts it: value, key, header names and
    values."""
    headers = sum(
        len(name.encode()) + len(value.encode()) for name, value in record.headers.items()
    )
    return len(record.value) + len(record.key) + headers


def _fixed_record_bytes() -> int:
    """What every event's record carries besides its variable parts: ``to_kafka`` of an event
    whose strings are empty, its data ``{}``, every optional header present and every
    number, time and hash at its widest."""
    moment = datetime(2000, 1, 1, tzinfo=UTC)  # format_time always writes the same width
    template = RecordedEvent.model_construct(
        event_id=UUID(int=0),
        stream_id="",
        stream_version=2**31 - 1,  # an ``integer`` column
        global_position=2**63 - 1,  # a ``bigint``
        event_type="",
        schema_version=0,
        key="",
        data={},
        occurred_at=moment,
        recorded_at=moment,
        correlation_id=UUID(int=0),
        causation_id=UUID(int=0),
        actor="",
        prev_hash="0" * 64,  # SHA-256, hex
        hash="0" * 64,
    )
    return record_bytes(to_kafka(template, source="")) - len(b"{}") - len(b"0")


_FIXED_RECORD_BYTES: Final = _fixed_record_bytes()


def kafka_record_bytes(stream_id: str, new: NewEvent, data: JsonObject) -> int:
    """The size of the Kafka record the relay will publish for ``new`` appended to
    ``stream_id`` (``data``: its JSON body), as ``record_bytes`` counts it, never less: the
    value encoded as ``to_kafka`` encodes it, plus the strings that vary (stream id and key
    twice each: key and headers; type, actor, schema version) and the fixed part at its
    widest. Cheaper than encoding the whole record, and ``ce_source``, the relay's, is left
    to ``MAX_EVENT_BYTES``'s margin."""
    value = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    event, actor = new.event, new.metadata.actor or ""
    return (
        _FIXED_RECORD_BYTES
        + len(value)
        + 2 * len(stream_id.encode())
        + 2 * len(event.kafka_key().encode())
        + len(event.event_type.encode())
        + len(actor.encode())
        + len(str(event.schema_version))
    )


def check_event_sizes(
    new_events: Sequence[tuple[StreamWrite, NewEvent]], payloads: Sequence[JsonObject]
) -> None:
    """Raise ``EventTooLarge`` for the first event above ``MAX_EVENT_BYTES``: run before an
    append hashes or writes anything, so a refused append stores nothing."""
    for (write, new), data in zip(new_events, payloads, strict=True):
        size = kafka_record_bytes(write.stream_id, new, data)
        if size > MAX_EVENT_BYTES:
            raise EventTooLarge(new.event.event_type, size)


async def verify_chains(events: AsyncIterator[RecordedEvent]) -> VerificationReport:
    """Walk every hash chain in global order and name the first broken link.

    Checks per event: positions are dense (a deleted row leaves a gap), versions follow
    each other within the stream, ``prev_hash`` is the previous event's ``hash``, and
    ``hash`` matches the recomputed hash of the stored content.
    """
    last_hash: dict[str, str] = {}
    last_version: dict[str, int] = {}
    checked = 0
    expected_position = 1
    async for event in events:
        checked += 1
        stream = event.stream_id
        reason = None
        if event.global_position != expected_position:
            reason = (
                f"global positions {expected_position}..{event.global_position - 1} are missing"
            )
        elif event.stream_version != last_version.get(stream, 0) + 1:
            reason = f"version {event.stream_version} follows {last_version.get(stream, 0)}"
        elif event.prev_hash != last_hash.get(stream, GENESIS_HASH):
            reason = "prev_hash does not match the previous event's hash"
        elif event.computed_hash() != event.hash:
            reason = "content does not match its hash (altered after it was stored)"
        if reason is not None:
            broken = BrokenLink(stream, event.stream_version, event.global_position, reason)
            return VerificationReport(checked, len(last_hash), broken)
        expected_position = event.global_position + 1
        last_hash[stream] = event.hash
        last_version[stream] = event.stream_version
    return VerificationReport(checked, len(last_hash), None)


def replayed(
    new_events: Sequence[tuple[StreamWrite, NewEvent]],
    payloads: Sequence[JsonObject],
    by_id: dict[UUID, RecordedEvent],
) -> list[RecordedEvent]:
    """Decide an append whose event ids are (partly) stored (``by_id``): all the same → the
    stored events, unchanged; anything else → ``EventIdConflict``."""
    for (write, new), data in zip(new_events, payloads, strict=True):
        existing = by_id.get(new.event_id)
        if existing is None:
            raise EventIdConflict(
                str(new.event_id), "part of this batch is already stored and part is not"
            )
        same = (
            existing.stream_id == write.stream_id
            and existing.event_type == new.event.event_type
            and existing.schema_version == new.event.schema_version
            and existing.key == new.event.kafka_key()
            and existing.data == data
        )
        if not same:
            raise EventIdConflict(str(new.event_id), "already stored with different content")
    return [by_id[new.event_id] for _, new in new_events]


def _columns_of(events: list[RecordedEvent]) -> list[list[Any]]:
    return [
        [e.global_position for e in events],
        [e.event_id for e in events],
        [e.stream_id for e in events],
        [e.stream_version for e in events],
        [e.event_type for e in events],
        [e.schema_version for e in events],
        [e.key for e in events],
        [e.data for e in events],
        [e.occurred_at for e in events],
        [e.recorded_at for e in events],
        [e.correlation_id for e in events],
        [e.causation_id for e in events],
        [e.actor for e in events],
        [e.prev_hash for e in events],
        [e.hash for e in events],
    ]
