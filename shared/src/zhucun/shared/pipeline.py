"""The exactly-once batch pipeline: Kafka records into a read model, one transaction a batch.

The live runner (:class:`~zhucun.shared.projection.ProjectionRunner`) and the rebuild
(:mod:`zhucun.shared.replay`) both apply records through :class:`BatchPipeline`, so the two
read models they build cannot drift apart. A batch goes through these steps:

1. **Decode** (:meth:`BatchPipeline.add`): the CloudEvents envelope
   (:func:`~zhucun.shared.envelope_fast.decode_kafka`, ``from_kafka``'s result faster) and
   the payload through the projection's registry (upcasters included: the contract is not
   relaxed). A record that fails is *rejected*: ``invalid-cloudevent``,
   ``unknown-event-type``, ``contract-violation`` or ``undecodable``.
2. **Dedupe** by event id: the relay publishes at least once, so one event can be at several
   offsets. ``projection_events`` remembers applied ids (one ``INSERT ... ON CONFLICT DO
   NOTHING RETURNING`` a batch tells the new from the repeated), or, for a rebuild reading
   a fresh schema from offset zero, a set in memory does (``in_memory_dedupe``) and the ids
   are written without the table's key, which the rebuild builds once at the end.
3. **Apply** the new deliveries in bulk, in a savepoint; when that raises a *permanent*
   failure (:func:`is_permanent`), each delivery is applied alone in its own savepoint to
   find the poison ones, which are rejected (``apply-failed``, the error in the reason) and
   their ids forgotten, so re-publishing a dead letter once the cause is fixed applies it;
   their good neighbours are applied in the same transaction. A *transient* failure
   propagates: the caller rolls the batch back and retries it after a back-off.
4. **Reject**, before COMMIT, in consumption order: to the dead-letter topic when there is a
   :class:`~zhucun.shared.kafka.DeadLetterPublisher` (a crash re-sends, never loses); by
   stopping with :class:`PoisonRecord` when there is none (nothing of the batch commits);
   or, for a rebuild (``skip_rejected``: they were dead-lettered when first consumed), by
   counting and logging them.
5. **Offsets and counts** in the same transaction as the read model: ``projection_offsets``
   (the next offset per topic and partition, only ever moved forward) and
   ``projection_counts`` (``consumed == applied + duplicates + dead_lettered``).

Where a batch's records come from, which offsets they start at, and what happens around the
transaction (locks, rewinds, retries, progress) are the callers' business.

Why failures are classified
---------------------------
A record is either wrong or unlucky. A wrong one (it does not decode, breaks its contract,
or holds a value the read model's database refuses: a number beyond an ``integer`` column,
a NUL in a text, a broken constraint) fails the same way on every delivery: retrying it
only holds its partition, and every record behind it, for as long as the retries last. So
it is dead-lettered on its first delivery. An unlucky one (the database or the network
away, a deadlock, a serialization failure) will apply once the cause has passed, so the
batch is retried, with a back-off, and nothing is dead-lettered. :func:`is_permanent` is the
one place that tells them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, cast

import asyncpg
import asyncpg.exceptions._base
import structlog
from aiokafka.errors import BrokerResponseError, KafkaError

from zhucun.shared.envelope import CloudEventError, RecordedEvent
from zhucun.shared.envelope_fast import decode_kafka
from zhucun.shared.errors import describe_error
from zhucun.shared.events import DomainEvent, EventContractError, EventRegistry, UnknownEventType
from zhucun.shared.kafka import DeadLetterPublisher

#: The longest ``x-dlq-reason`` header written.
_MAX_REASON = 500

TopicPartitionKey = tuple[str, int]


# --- the contract between the pipeline and a projection ------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed record, parsed and decoded."""

    topic: str
    partition: int
    offset: int
    #: The envelope: event id, stream and version, times, actor, correlation, type, data...
    event: RecordedEvent
    #: The CloudEvents ``source`` (the producing service).
    source: str
    #: ``event.data`` decoded (and upcast) with the projection's registry.
    payload: DomainEvent


class Projection(Protocol):
    """A read model fed from Kafka topics."""

    #: Identifies the projection: its key in the runtime tables and its default group id.
    name: str
    topics: Sequence[str]
    #: Decodes every event type on ``topics``; a type it does not know is dead-lettered.
    registry: EventRegistry

    async def migrate(self, conn: asyncpg.Connection) -> None:
        """Create the read-model tables (idempotent; runs inside a transaction)."""
        ...

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        """Apply new deliveries (duplicates removed) in consumption order, in bulk.

        Runs inside the batch's transaction (in a savepoint). Raising a permanent error
        (:func:`is_permanent`: a value the database refuses, ``ValueError``...) makes the
        runtime apply each delivery alone to find the poison ones, which are dead-lettered;
        raising a transient one (a lost connection) retries the whole batch later. Must give
        the same result for any split of the same deliveries into consecutive batches.
        """
        ...


@dataclass(frozen=True, slots=True)
class ProjectionCounts:
    """Records processed, across restarts and workers: ``consumed == applied + duplicates
    + dead_lettered``. Records re-read after a rebalance or a retry are not counted again."""

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class ProjectionError(Exception):
    """Base of the runtime's errors."""


class PoisonRecord(ProjectionError):
    """A record cannot be applied and there is no dead-letter publisher to park it with.

    The runner stops rather than skip it; nothing at or after it in its partition has been
    applied. The message names the record and the kind of failure, never its data.
    """

    def __init__(self, topic: str, partition: int, offset: int, kind: str, error: Exception):
        super().__init__(
            f"poison record {topic}/{partition}@{offset}: {kind} ({type(error).__name__}); "
            "no dead-letter publisher is configured, so the projection stops here"
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.kind = kind


class DeadLetterError(ProjectionError):
    """Publishing a dead letter failed; the batch is rolled back and retried."""


#: Failures that pass: the database, the network or Kafka away or busy. A batch that meets
#: one is rolled back and retried, never dead-lettered (see :func:`is_permanent`).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # a connection reset or refused
    TimeoutError,
    asyncpg.InterfaceError,  # the client's connection state (not its DataError: see below)
    asyncpg.PostgresConnectionError,
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock: a race, lost
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.OperatorInterventionError,  # query canceled, admin shutdown, cannot connect now
    asyncpg.PostgresSystemError,
    asyncpg.ReadOnlySQLTransactionError,  # connected to a standby after a failover
    asyncpg.LockNotAvailableError,
    asyncpg.InFailedSQLTransactionError,
    # A missing table or column, a permission: the code or the schema is wrong, not one
    # record. Dead-lettering would drain the whole topic into the DLQ; waiting is right.
    asyncpg.SyntaxOrAccessError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InternalServerError,
)

#: asyncpg's client-side ``DataError`` ("invalid query input"): an ``InterfaceError`` (and a
#: ``ValueError``), yet about a value, not the connection. asyncpg 0.32 raises the server's
#: class, ``asyncpg.DataError``, when it cannot encode a parameter (an ``int`` beyond an
#: ``integer``); this one is checked first so that no version's refusal of a value is
#: mistaken for a broken connection and retried.
_CLIENT_DATA_ERROR: type[Exception] = asyncpg.exceptions._base.DataError


def is_permanent(error: BaseException) -> bool:
    """True when the record being applied can never apply as it is: dead-letter it on its
    first delivery. False when retrying may succeed (:data:`TRANSIENT_ERRORS`): roll back and
    retry the batch after a back-off, dead-lettering nothing.

    Permanent: the record's decoding or contract (``CloudEventError``, ``EventContractError``,
    ``UnknownEventType``); a value the database refuses (``asyncpg.DataError`` and its
    subclasses such as ``NumericValueOutOfRangeError``, ``StringDataRightTruncationError``,
    ``CharacterNotInRepertoireError``, ``UntranslatableCharacterError``,
    ``InvalidTextRepresentationError``, and asyncpg's own refusal to encode a parameter);
    a broken constraint (``IntegrityConstraintViolationError``: two writers racing for a row
    show as a serialization failure or a deadlock, which are transient, and two owners of a
    partition never apply at once); ``ValueError``, ``TypeError`` or any other error of a
    projection's own ``apply``; and a broker's refusal for good (a non-retriable
    ``BrokerResponseError``).

    Transient: :data:`TRANSIENT_ERRORS` (connections, timeouts, deadlocks, serialization
    failures, resources, a wrong schema), Kafka errors that pass (retriable ones, timeouts)
    and :class:`DeadLetterError`: a record that cannot be parked is held, never dropped.
    """
    if isinstance(error, DeadLetterError):
        return False
    if isinstance(error, _CLIENT_DATA_ERROR):
        return True
    if isinstance(error, KafkaError):
        return isinstance(error, BrokerResponseError) and not error.retriable
    return not isinstance(error, TRANSIENT_ERRORS)


# --- decoding ------------------------------------------------------------------------------


def decode_record(record: Any, registry: EventRegistry) -> Delivery:
    """One Kafka record (aiokafka's ``ConsumerRecord`` or alike) as a :class:`Delivery`;
    raises what ``from_kafka`` and the registry raise."""
    value = record.value if record.value is not None else b""
    event, source = decode_kafka(record.headers, value)
    payload = event.decode(registry)
    return Delivery(record.topic, record.partition, record.offset, event, source, payload)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not applied: dead-lettered, skipped, or the one that stops a batch."""

    topic: str
    partition: int
    offset: int
    kind: str
    #: For the dead letter's ``x-dlq-reason``: what failed, never the event's data.
    reason: str
    error: Exception
    #: The record as consumed (aiokafka's), to dead-letter byte for byte; None where no
    #: dead-letter publisher needs it.
    record: Any
    #: Its index in its batch's consumption order.
    position: int


@dataclass(slots=True)
class Batch:
    """The records of one transaction, decoded, in consumption order."""

    deliveries: list[Delivery] = field(default_factory=list)
    #: The records that failed to decode, in consumption order.
    rejected: list[Rejected] = field(default_factory=list)
    consumed: int = 0
    #: Next offset per partition of the batch: one past its last record.
    next_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    #: The consumed records of ``deliveries`` by (topic, partition, offset), kept only to
    #: dead-letter those whose apply fails (a rebuild's batches need not hold them).
    records: dict[tuple[str, int, int], Any] | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    #: This batch's counts.
    counts: ProjectionCounts
    #: ``projection_counts`` after this batch (every worker's batches included).
    totals: ProjectionCounts
    #: Dead-lettered or skipped, in consumption order.
    rejected: list[Rejected]
    #: The deliveries applied (first copies, poison ones left out).
    applied: list[Delivery]


def _pg(conn: Any) -> asyncpg.Connection:
    """A pooled connection as the projection sees it (the proxy behaves as a connection)."""
    return cast(asyncpg.Connection, conn)


# --- the pipeline --------------------------------------------------------------------------


class BatchPipeline:
    """Decodes, dedupes, applies, rejects and moves the offsets of one projection's batches,
    in ``schema``'s runtime tables (created by ``ProjectionRunner.migrate``).

    ``dead_letters``: where rejected records go; without it a rejected record stops the
    batch with :class:`PoisonRecord`, unless ``skip_rejected`` (a rebuild, whose rejected
    records were dead-lettered when first consumed: counted as dead-lettered and logged).
    ``in_memory_dedupe``: see step 2 of the module's description, until
    :meth:`dedupe_in_table`. ``events`` prefixes the log events (``<events>.dead_lettered``,
    ``<events>.rejected``, ``<events>.apply_failed_isolating``).
    """

    def __init__(
        self,
        projection: Projection,
        *,
        schema: str,
        dead_letters: DeadLetterPublisher | None = None,
        skip_rejected: bool = False,
        in_memory_dedupe: bool = False,
        log: Any = None,
        events: str = "projection",
    ) -> None:
        if dead_letters is not None and skip_rejected:
            raise ValueError("rejected records are either dead-lettered or skipped")
        self.projection = projection
        self.name = projection.name
        self.dead_letters = dead_letters
        self.skip_rejected = skip_rejected
        self._log = log if log is not None else structlog.get_logger(__name__)
        self._events_prefix = events
        s = f'"{schema}"'
        self._offsets = f"{s}.projection_offsets"
        self._events = f"{s}.projection_events"
        self._counts = f"{s}.projection_counts"
        #: Event ids applied and committed so far (as 128-bit ints: ~70 bytes an event), when
        #: the dedupe runs in memory.
        self._seen: set[int] | None = set() if in_memory_dedupe else None

    @property
    def _stops(self) -> bool:
        return self.dead_letters is None and not self.skip_rejected

    def dedupe_in_table(self) -> None:
        """From now on, dedupe through ``projection_events`` (with its key in place)."""
        self._seen = None

    # --- decoding --------------------------------------------------------------------------

    def batch(self, records: Iterable[Any] = ()) -> Batch:
        """A new batch, with ``records`` decoded into it."""
        batch = Batch(records={} if self.dead_letters is not None else None)
        for record in records:
            self.add(batch, record)
        return batch

    def add(self, batch: Batch, record: Any) -> None:
        """Decodes one more record (the next one in consumption order) into ``batch``."""
        position = batch.consumed
        batch.consumed += 1
        batch.next_offsets[(record.topic, record.partition)] = record.offset + 1
        try:
            delivery = decode_record(record, self.projection.registry)
        except Exception as error:
            batch.rejected.append(self._rejection(record, error, position))
            return
        batch.deliveries.append(delivery)
        if batch.records is not None:
            batch.records[(record.topic, record.partition, record.offset)] = record

    def _rejection(self, record: Any, error: Exception, position: int) -> Rejected:
        if isinstance(error, CloudEventError):
            kind, reason = "invalid-cloudevent", f"not a Zhucun CloudEvent: {error}"
        elif isinstance(error, UnknownEventType):
            kind, reason = "unknown-event-type", f"unknown event type {error.event_type!r}"
        elif isinstance(error, EventContractError):
            kind, reason = "contract-violation", f"event does not match its contract: {error}"
        else:
            kind, reason = "undecodable", f"event cannot be decoded: {type(error).__name__}"
        kept = record if self.dead_letters is not None else None
        return Rejected(
            record.topic,
            record.partition,
            record.offset,
            kind,
            reason[:_MAX_REASON],
            error,
            kept,
            position,
        )

    # --- one transaction -------------------------------------------------------------------

    async def commit(
        self, conn: Any, batch: Batch, *, synchronous_commit: bool = True
    ) -> BatchOutcome:
        """Applies ``batch`` in a transaction of its own (a savepoint inside one), and commits.

        ``synchronous_commit=False``: the commit does not wait for the WAL flush, so a crash
        may lose the last batches, their offsets with them (a rebuild repeats them).
        """
        async with conn.transaction():
            if not synchronous_commit:
                await conn.execute("SET LOCAL synchronous_commit = off")
            outcome = await self._write(conn, batch)
        # Only now: a rolled-back batch must not count as seen.
        if self._seen is not None:
            self._seen.update(d.event.event_id.int for d in outcome.applied)
        if self.skip_rejected:
            for item in outcome.rejected:
                self._log.warning(
                    f"{self._events_prefix}.rejected",
                    topic=item.topic,
                    partition=item.partition,
                    offset=item.offset,
                    kind=item.kind,
                    error=type(item.error).__name__,
                )
        return outcome

    async def write(self, conn: Any, batch: Batch) -> BatchOutcome:
        """Applies ``batch`` inside the caller's transaction (which the caller commits)."""
        if self._seen is not None:
            raise RuntimeError("an in-memory dedupe learns what is committed only in commit()")
        return await self._write(conn, batch)

    async def _write(self, conn: Any, batch: Batch) -> BatchOutcome:
        if batch.rejected and self._stops:
            self._poison(batch.rejected[0])  # before any work: nothing of it would commit
        new = await self._fresh(conn, batch.deliveries)
        duplicates = len(batch.deliveries) - len(new)
        poisoned = await self._apply(conn, new)
        rejected = batch.rejected
        applied = new
        if poisoned:
            failed = {id(delivery) for delivery, _ in poisoned}
            applied = [d for d in new if id(d) not in failed]
            if self._seen is None:
                # Forget them, so re-publishing a dead letter after a fix applies it.
                await conn.execute(
                    f"DELETE FROM {self._events} "
                    "WHERE projection = $1 AND event_id = ANY($2::uuid[])",
                    self.name,
                    [delivery.event.event_id for delivery, _ in poisoned],
                )
            rejected = sorted(
                [*rejected, *self._apply_failures(batch, poisoned)], key=lambda r: r.position
            )
        if rejected and self._stops:
            self._poison(rejected[0])
        if self._seen is not None and applied:
            # Each id is written once (the dedupe is in memory), without the table's key.
            await conn.execute(
                f"INSERT INTO {self._events} (projection, event_id) SELECT $1, unnest($2::uuid[])",
                self.name,
                [d.event.event_id for d in applied],
            )
        if self.dead_letters is not None:
            for item in rejected:
                await self._dead_letter(item)  # before COMMIT: a crash now re-sends, never loses
        counts = ProjectionCounts(
            consumed=batch.consumed,
            applied=len(applied),
            duplicates=duplicates,
            dead_lettered=len(rejected),
        )
        totals = await self._move_offsets(conn, batch.next_offsets, counts)
        return BatchOutcome(counts, totals, rejected, applied)

    async def _fresh(self, conn: Any, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """The deliveries whose event id is not applied yet (first copies), remembered in
        ``projection_events`` (when the dedupe is not in memory)."""
        if self._seen is not None:
            seen, batch_seen = self._seen, set()
            new: list[Delivery] = []
            for delivery in deliveries:
                key = delivery.event.event_id.int
                if key not in seen and key not in batch_seen:
                    batch_seen.add(key)
                    new.append(delivery)
            return new
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
        new = []
        for delivery in deliveries:
            if delivery.event.event_id in fresh:
                fresh.discard(delivery.event.event_id)  # a second copy in this batch is a dup
                new.append(delivery)
        return new

    async def _apply(
        self, conn: Any, deliveries: Sequence[Delivery]
    ) -> list[tuple[Delivery, Exception]]:
        """Apply in bulk; after a permanent failure, one by one to find the poison deliveries
        (a transient failure propagates: the whole batch is retried)."""
        if not deliveries:
            return []
        try:
            async with conn.transaction():  # a savepoint
                await self.projection.apply(_pg(conn), deliveries)
            return []
        except Exception as error:
            if not is_permanent(error):
                raise
            if len(deliveries) == 1:
                return [(deliveries[0], error)]  # nothing to isolate: it is the one
            self._log.warning(
                f"{self._events_prefix}.apply_failed_isolating",
                error=type(error).__name__,
                deliveries=len(deliveries),
            )
        poisoned: list[tuple[Delivery, Exception]] = []
        for delivery in deliveries:
            try:
                async with conn.transaction():
                    await self.projection.apply(_pg(conn), [delivery])
            except Exception as error:
                if not is_permanent(error):
                    raise
                poisoned.append((delivery, error))
        return poisoned

    def _apply_failures(
        self, batch: Batch, poisoned: Sequence[tuple[Delivery, Exception]]
    ) -> list[Rejected]:
        positions = _delivery_positions(batch)
        reason = f"projection {self.name} could not apply the event: "
        return [
            Rejected(
                delivery.topic,
                delivery.partition,
                delivery.offset,
                "apply-failed",
                # The error's class and text (a database's refusal names the column type).
                (reason + describe_error(error))[:_MAX_REASON],
                error,
                None
                if batch.records is None
                else batch.records[(delivery.topic, delivery.partition, delivery.offset)],
                positions[id(delivery)],
            )
            for delivery, error in poisoned
        ]

    @staticmethod
    def _poison(item: Rejected) -> NoReturn:
        raise PoisonRecord(
            item.topic, item.partition, item.offset, item.kind, item.error
        ) from item.error

    async def _dead_letter(self, item: Rejected) -> None:
        assert self.dead_letters is not None
        record = item.record
        try:
            await self.dead_letters.send(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=[(name, raw if raw is not None else b"") for name, raw in record.headers],
                reason=item.reason,
                error=item.error,
            )
        except Exception as error:
            raise DeadLetterError(
                f"could not dead-letter {record.topic}/{record.partition}@{record.offset}"
            ) from error
        self._log.warning(
            f"{self._events_prefix}.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=item.kind,
            error=type(item.error).__name__,
        )

    async def _move_offsets(
        self, conn: Any, next_offsets: dict[TopicPartitionKey, int], counts: ProjectionCounts
    ) -> ProjectionCounts:
        """The batch's offsets and counts, in its transaction; returns the new totals."""
        if next_offsets:
            await conn.execute(
                f"""
                INSERT INTO {self._offsets} (projection, topic, partition, next_offset)
                SELECT $1, t.topic, t.partition, t.next_offset
                FROM unnest($2::text[], $3::int[], $4::bigint[])
                    AS t(topic, partition, next_offset)
                ON CONFLICT (projection, topic, partition) DO UPDATE
                SET next_offset = EXCLUDED.next_offset
                WHERE {self._offsets}.next_offset < EXCLUDED.next_offset
                """,
                self.name,
                [topic for topic, _ in next_offsets],
                [partition for _, partition in next_offsets],
                list(next_offsets.values()),
            )
        # Last, so the one row every worker updates is locked only until COMMIT.
        totals = await conn.fetchrow(
            f"""
            INSERT INTO {self._counts} AS c
                (projection, consumed, applied, duplicates, dead_lettered)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (projection) DO UPDATE SET
                consumed = c.consumed + EXCLUDED.consumed,
                applied = c.applied + EXCLUDED.applied,
                duplicates = c.duplicates + EXCLUDED.duplicates,
                dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered
            RETURNING consumed, applied, duplicates, dead_lettered
            """,
            self.name,
            counts.consumed,
            counts.applied,
            counts.duplicates,
            counts.dead_lettered,
        )
        assert totals is not None
        return ProjectionCounts(**dict(totals))


def _delivery_positions(batch: Batch) -> dict[int, int]:
    """``id(delivery) -> its index in the batch's consumption order``: the deliveries and
    the decode rejections are each in that order, so merging them gives it."""
    rejected = iter(r.position for r in batch.rejected)
    next_rejected = next(rejected, None)
    positions: dict[int, int] = {}
    position = 0
    for delivery in batch.deliveries:
        while position == next_rejected:
            position += 1
            next_rejected = next(rejected, None)
        positions[id(delivery)] = position
        position += 1
    return positions


__all__ = [
    "TRANSIENT_ERRORS",
    "Batch",
    "BatchOutcome",
    "BatchPipeline",
    "DeadLetterError",
    "Delivery",
    "PoisonRecord",
    "Projection",
    "ProjectionCounts",
    "ProjectionError",
    "Rejected",
    "decode_record",
    "is_permanent",
]
