"""The relay: publishes stored events to the service's Kafka topic (transactional outbox).

The events table *is* the outbox. The relay reads events after its checkpoint in global
order, publishes them with the idempotent producer keyed as docs/adr/0006 says, waits until Kafka
has acknowledged every one, and only then moves its checkpoint
(``relay_checkpoints`` in the store's schema). A crash anywhere — even ``kill -9`` between
the acknowledgement and the checkpoint — means the next run publishes some events again:
duplicates carry the same ``ce_id``, so consumers drop them, and nothing is ever lost.

Exactly one relay per store publishes at a time: it holds a session-level advisory lock on
its own connection (standby replicas wait for it). The lock dies with the process, so a
killed relay is replaced at once. That connection also LISTENs for the store's
notifications, so an append is published without waiting for the next poll.

The relay never skips an event. When one cannot be published, the checkpoint stays just
before it and the leader keeps it at the head: it retries that event alone, with a back-off
(``RETRY_SECONDS``), and publishes nothing stored after it until Kafka has acknowledged it,
so the topic keeps the store's order. Two details make that hold:

* **A large record is published alone** (``SOLO_RECORD_BYTES``): the records before it are
  acknowledged first, and none after it is sent before it is acknowledged. A broker refuses
  records for their size (a topic's ``max.message.bytes`` below the store's
  ``MAX_EVENT_BYTES``, say); without this, the records sent with the refused one in the same
  burst would reach the topic ahead of it, out of its key's order.
* **After a refused delivery the producer is renewed** (``reconnect``). aiokafka's
  idempotent producer has spent a sequence number the broker never took: every later record
  to that partition would be refused with ``OutOfOrderSequenceNumber``, so even the fixed
  topic would never take the event. A new producer has a new producer id and fresh sequences.

``Relay.health`` tells an operator the truth about it from the store itself, so every
replica, leader or standby, gives the same answer: how many events wait, since when nothing
was published, and which event waits at the head (id, type, stream, version, position). The
leader adds what it knows: the error of its last attempt, since when that event fails and how
many attempts failed. States: ``ok``, ``behind`` (events wait and are being published),
``retrying`` (the head failed for a reason that passes, such as Kafka away, and the stall
time is not over), ``stalled`` (the broker *refused* the head event, which needs a person:
at once; or no progress for longer than the stall time). ``stalled`` is listed under the
readiness report's ``attention``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

import asyncpg
import asyncpg.pool
import structlog
from aiokafka.errors import BrokerResponseError
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from zhucun.shared.envelope import KafkaRecord, RecordedEvent, to_kafka
from zhucun.shared.errors import describe_error
from zhucun.shared.store import PostgresEventStore, advisory_lock_key

log = structlog.get_logger(__name__)

#: A record larger than this is published alone (see the module's description). aiokafka's
#: default batch size (``max_batch_size``): such a record is a produce batch of its own
#: anyway, so waiting for it costs one round trip, and Zhucun's events are far smaller.
SOLO_RECORD_BYTES: Final = 16 * 1024
#: The leader's back-off while the event at the head fails: doubles from the first value
#: up to the second, and starts again at the first once it is published.
RETRY_SECONDS: Final = (0.1, 30.0)

RelayState = Literal["ok", "behind", "retrying", "stalled"]


def refused_by_broker(error: BaseException) -> bool:
    """True when the broker refused the record for good (too large for the topic, invalid,
    not authorised...), or the producer did for a reason the broker would (larger than its
    ``max_request_size``): publishing it again cannot succeed until a person changes
    something. aiokafka retries the passing broker errors itself; timeouts and lost
    connections are not refusals."""
    return isinstance(error, BrokerResponseError) and not error.retriable


@dataclass(frozen=True, slots=True)
class _Failure:
    """The leader's failed attempts at the event at ``position``."""

    position: int
    error: str
    refused: bool
    since: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class WaitingEvent:
    """The next event to publish: the one a stalled relay is stuck on."""

    event_id: str
    event_type: str
    stream_id: str
    stream_version: int
    global_position: int
    recorded_at: datetime
    #: Why the last attempt to publish it failed (known to the leading replica only).
    error: str | None
    #: When the first of the failed attempts at it was made (leader only).
    failing_since: datetime | None = None
    #: Failed attempts at it in a row (leader only; 0 when none is known).
    attempts: int = 0
    #: True when the broker refused it for good (``refused_by_broker``): a person must act.
    refused: bool = False


@dataclass(frozen=True, slots=True)
class RelayHealth:
    relay: str
    #: ``ok``: nothing waits; ``behind``: events wait and are being published; ``retrying``:
    #: the event at the head failed for a passing reason and is retried; ``stalled``: the
    #: broker refused it, or nothing was published for longer than the stall time.
    state: RelayState
    lag: int
    published_position: int
    #: When the checkpoint last moved (``None``: never).
    last_progress_at: datetime | None
    next_event: WaitingEvent | None

    def to_json(self) -> dict[str, Any]:
        waiting = self.next_event
        return {
            "state": self.state,
            "lag": self.lag,
            "published_position": self.published_position,
            "last_progress_at": self.last_progress_at.isoformat()
            if self.last_progress_at
            else None,
            "next_event": None
            if waiting is None
            else {
                "event_id": waiting.event_id,
                "event_type": waiting.event_type,
                "stream_id": waiting.stream_id,
                "stream_version": waiting.stream_version,
                "global_position": waiting.global_position,
                "recorded_at": waiting.recorded_at.isoformat(),
                "error": waiting.error,
                "failing_since": waiting.failing_since.isoformat()
                if waiting.failing_since
                else None,
                "attempts": waiting.attempts,
                "refused": waiting.refused,
            },
        }


class RelayPublishError(Exception):
    """An event could not be published; the relay publishes nothing after it until it is."""

    def __init__(self, event: RecordedEvent, error: BaseException):
        super().__init__(
            f"could not publish event {event.event_id} ({event.event_type}, "
            f"{event.stream_id} v{event.stream_version}, position {event.global_position}): "
            f"{describe_error(error)}"
        )
        self.event_id = str(event.event_id)
        self.global_position = event.global_position
        self.refused = refused_by_broker(error)


class Relay:
    """Publishes ``store``'s events to ``topic`` through ``broker``'s producer.

    ``reconnect``: how to get a fresh producer after a refused delivery (see the module's
    description); by default ``broker`` is stopped and connected again, which suits a
    broker that only publishes (a service's). A broker with subscribers needs its own.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        broker: KafkaBroker,
        *,
        topic: str,
        source: str,
        name: str = "relay",
        batch_size: int = 500,
        poll_interval: float = 1.0,
        coalesce_seconds: float = 0.005,
        registry: CollectorRegistry | None = None,
        reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self._reconnect = reconnect or self._reconnect_broker
        self.topic = topic
        self.source = source
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        #: After a notification, wait this long for more appends to publish them together:
        #: under load one wake-up then carries many events instead of one.
        self.coalesce_seconds = coalesce_seconds
        #: The checkpoint while this relay leads (only the leader moves it), so a wake-up
        #: does not read it back from the database.
        self._position: int | None = None
        #: The leader's own connection: checkpoints are written on it, with
        #: ``synchronous_commit`` off for the session (see ``_save_checkpoint``).
        self._conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = None
        self._checkpoints = f'"{store.schema}".relay_checkpoints'
        self._leader_key = advisory_lock_key(store.schema, f"relay:{name}")
        #: The failed attempts at the event at the head (this process's), until it passes.
        self._failure: _Failure | None = None
        #: A delivery was refused: the producer's sequence numbers are spoilt (see above).
        self._renew_producer = False
        registry = registry or CollectorRegistry()
        self._stalled = Gauge(
            "zhucun_relay_stalled",
            "1 when events wait and the relay published nothing for longer than the stall time",
            ["relay"],
            registry=registry,
        ).labels(name)
        self._progress = Gauge(
            "zhucun_relay_last_progress_timestamp",
            "Unix time at which the relay's checkpoint last moved",
            ["relay"],
            registry=registry,
        ).labels(name)
        self._lag = Gauge(
            "zhucun_relay_lag_events",
            "Stored events not yet published to Kafka",
            ["relay"],
            registry=registry,
        ).labels(name)
        self._published = Counter(
            "zhucun_relay_published_events",
            "Events published to Kafka (re-publications after a crash included)",
            ["relay"],
            registry=registry,
        ).labels(name)

    async def published_position(self) -> int:
        """The global position up to which every event is acknowledged by Kafka."""
        value = await self.store.pool.fetchval(
            f"SELECT position FROM {self._checkpoints} WHERE relay = $1", self.name
        )
        return int(value or 0)

    async def lag(self) -> int:
        """Stored events not yet published (also exported as ``zhucun_relay_lag_events``)."""
        lag = await self.store.head_position() - await self.published_position()
        self._lag.set(lag)
        return lag

    async def health(self, stall_seconds: float) -> RelayHealth:
        """The relay's state from the store (the same on every replica) and this process's
        failed attempts at the event at the head; also updates the relay's gauges."""
        row = await self.store.pool.fetchrow(
            f"""
            SELECT h.head, coalesce(c.position, 0) AS position, c.updated_at, now() AS now,
                   e.event_id::text AS event_id, e.event_type, e.stream_id, e.stream_version,
                   e.global_position, e.recorded_at
            FROM (SELECT coalesce(max(global_position), 0) AS head FROM {self.store.table}) h
            LEFT JOIN {self._checkpoints} c ON c.relay = $1
            LEFT JOIN {self.store.table} e ON e.global_position = coalesce(c.position, 0) + 1
            """,
            self.name,
        )
        assert row is not None
        lag = max(0, int(row["head"]) - int(row["position"]))
        waiting: WaitingEvent | None = None
        state: RelayState = "ok"
        if lag and row["event_id"] is not None:
            waiting = self._waiting(row)
            # Waiting too long counts from the later of the last progress and the arrival
            # of the waiting event: a relay idle for a day is not stalled by a new append.
            since = max(filter(None, (row["updated_at"], row["recorded_at"])))
            slow = (row["now"] - since).total_seconds() > stall_seconds
            if waiting.refused or slow:
                state = "stalled"
            else:
                state = "retrying" if waiting.error is not None else "behind"
        elif lag:
            state = "behind"  # the next position is missing: a gap (a deleted row)
        self._lag.set(lag)
        self._stalled.set(1 if state == "stalled" else 0)
        if row["updated_at"] is not None:
            self._progress.set(row["updated_at"].timestamp())
        return RelayHealth(
            relay=self.name,
            state=state,
            lag=lag,
            published_position=int(row["position"]),
            last_progress_at=row["updated_at"],
            next_event=waiting,
        )

    def _waiting(self, row: asyncpg.Record) -> WaitingEvent:
        """The event at the head, with this process's failed attempts at it."""
        failure = self._failure
        if failure is not None and failure.position != row["global_position"]:
            failure = None  # about an event another leader has published since
        return WaitingEvent(
            event_id=row["event_id"],
            event_type=row["event_type"],
            stream_id=row["stream_id"],
            stream_version=row["stream_version"],
            global_position=row["global_position"],
            recorded_at=row["recorded_at"],
            error=failure.error if failure else None,
            failing_since=failure.since if failure else None,
            attempts=failure.attempts if failure else 0,
            refused=failure.refused if failure else False,
        )

    async def publish_batch(self) -> int:
        """Publish the next batch after the checkpoint; returns how many events it published.

        While an event fails, only that event is tried, alone (``RelayPublishError`` names
        it); the events before it in the batch are published and checkpointed."""
        after = self._position if self._position is not None else await self.published_position()
        # After a failure nothing behind the failing event may be sent: it goes alone.
        limit = 1 if self._failure is not None else self.batch_size
        events = await self.store.read_all(after=after, limit=limit)
        if not events:
            self._failure = None
            self._lag.set(0)
            return 0
        published, error = await self._publish(events)
        # Everything before the first failure is acknowledged: the checkpoint moves there,
        # so the event that fails is the next one to publish and health can name it.
        if published:
            await self._save_checkpoint(events[published - 1].global_position)
            if self._position is not None:
                self._position = events[published - 1].global_position
            self._published.inc(published)
        if error is not None:
            failed = events[published]
            self._failed(failed, error)
            raise RelayPublishError(failed, error) from error
        self._failure = None
        if len(events) < self.batch_size:
            self._lag.set(0)  # everything stored when the batch was read is published
        return len(events)

    async def _publish(self, events: Sequence[RecordedEvent]) -> tuple[int, BaseException | None]:
        """Send ``events`` in order and wait for Kafka's acknowledgements: how many, from the
        first, are acknowledged, and the error of the first that is not."""
        if self._renew_producer:
            try:
                await self._reconnect()
            except Exception as unreachable:
                return 0, unreachable
            self._renew_producer = False
        published = 0
        for burst in _bursts([(event, to_kafka(event, source=self.source)) for event in events]):
            acknowledged, failure = await self._send(burst)
            published += acknowledged
            if failure is not None:
                return published, failure
        return published, None

    async def _send(
        self, burst: Sequence[tuple[RecordedEvent, KafkaRecord]]
    ) -> tuple[int, BaseException | None]:
        deliveries: list[asyncio.Future[Any]] = []
        refused: BaseException | None = None
        for event, record in burst:
            try:
                # Sent one by one (not publish_batch, which would put the whole batch on one
                # partition); aiokafka keeps at most one batch in flight per partition, so
                # the order within a key is the order of the events table.
                delivery = await self.broker.publish(
                    record.value,
                    self.topic,
                    key=record.key,
                    headers=record.headers,
                    correlation_id=str(event.correlation_id),
                    no_confirm=True,
                )
            except Exception as error:  # refused before sending (too large, say)
                refused = error
                break
            deliveries.append(delivery)
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        for n, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                # Sent and refused: the producer's sequence for that partition is spoilt.
                self._renew_producer = True
                return n, outcome
        return len(outcomes), refused

    def _failed(self, event: RecordedEvent, error: BaseException) -> None:
        """Remember a failed attempt at ``event`` (for ``health``) and log it."""
        failure = self._failure
        if failure is not None and failure.position == event.global_position:
            failure = replace(
                failure,
                error=describe_error(error),
                refused=refused_by_broker(error),
                attempts=failure.attempts + 1,
            )
        else:
            failure = _Failure(
                position=event.global_position,
                error=describe_error(error),
                refused=refused_by_broker(error),
                since=datetime.now(UTC),
                attempts=1,
            )
        self._failure = failure
        log.warning(
            "relay.publish_failed",
            relay=self.name,
            event_id=str(event.event_id),
            event_type=event.event_type,
            global_position=event.global_position,
            error=failure.error,
            refused=failure.refused,
            attempts=failure.attempts,
        )

    async def _reconnect_broker(self) -> None:
        await self.broker.stop()
        await self.broker.connect()

    async def _save_checkpoint(self, position: int) -> None:
        # Losing the last checkpoints in a database crash only re-publishes events, which
        # at-least-once delivery allows (consumers dedupe by event id): so the commit need not
        # wait for the WAL flush, and publishing does not double the store's fsyncs.
        statement = f"""
            INSERT INTO {self._checkpoints} (relay, position) VALUES ($1, $2)
            ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
            WHERE {self._checkpoints}.position < EXCLUDED.position
        """
        if self._conn is not None:
            await self._conn.execute(statement, self.name, position)
            return
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit TO OFF")
            await conn.execute(statement, self.name, position)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set. Waits as a standby while another relay leads."""
        async with self.store.pool.acquire() as conn:
            try:
                await self._become_leader(conn, stop)
                if not stop.is_set():
                    await self._lead(conn, stop)
            finally:
                await _end_session(conn)

    async def _lead(
        self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], stop: asyncio.Event
    ) -> None:
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        await conn.add_listener(self.store.notify_channel, on_notify)
        await conn.execute("SET synchronous_commit TO OFF")  # for the checkpoints only
        self._conn = conn
        self._position = await self.published_position()
        retry_in = RETRY_SECONDS[0]
        try:
            log.info("relay.leading", relay=self.name, topic=self.topic)
            while not stop.is_set():
                wake.clear()
                try:
                    published = await self.publish_batch()
                except RelayPublishError:
                    # The event stays at the head; this leader keeps it and tries again.
                    await _wait_any(stop, seconds=retry_in)
                    retry_in = min(retry_in * 2, RETRY_SECONDS[1])
                    continue
                except Exception:
                    # The database is away: keep the lag gauge telling the truth while the
                    # supervisor retries.
                    with contextlib.suppress(Exception):
                        await self.lag()
                    raise
                retry_in = RETRY_SECONDS[0]
                if published == self.batch_size:
                    continue  # more are waiting: no pause while catching up
                await _wait_any(stop, wake, seconds=self.poll_interval)
                if wake.is_set() and not stop.is_set():
                    await asyncio.sleep(self.coalesce_seconds)
        finally:
            self._conn = None
            self._position = None
            await conn.remove_listener(self.store.notify_channel, on_notify)

    async def _become_leader(
        self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._leader_key):
                return
            log.info("relay.standby", relay=self.name)
            await _wait_any(stop, seconds=self.poll_interval)


def _bursts(
    records: Sequence[tuple[RecordedEvent, KafkaRecord]],
) -> Iterator[Sequence[tuple[RecordedEvent, KafkaRecord]]]:
    """``records`` in consecutive bursts to send together: the small ones between two large
    ones (a value above ``SOLO_RECORD_BYTES``: the headers are small and bounded), and each
    large one alone."""
    start = 0
    for n, (_, record) in enumerate(records):
        if len(record.value) > SOLO_RECORD_BYTES:
            if start < n:
                yield records[start:n]
            yield records[n : n + 1]
            start = n + 1
    if start < len(records):
        yield records[start:]


async def _end_session(conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
    """Undo what leading changed in the session (the lock, LISTEN, ``synchronous_commit``)
    before the connection goes back to the pool, which does not reset sessions; a
    connection that cannot be cleaned is closed instead."""
    try:
        await conn.execute("SELECT pg_advisory_unlock_all(); UNLISTEN *; RESET ALL")
    except Exception:
        conn.terminate()


async def _wait_any(*events: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
