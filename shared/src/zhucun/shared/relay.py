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

``Relay.health`` tells an operator the truth about it from the store itself, so every
replica, leader or standby, gives the same answer: how many events wait, since when nothing
was published, and — when it has made no progress for a while although events wait — that it
is ``stalled``, on which event (its stream and version) and, on the leader, with which error.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import asyncpg.pool
import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from zhucun.shared.envelope import to_kafka
from zhucun.shared.errors import describe_error
from zhucun.shared.store import PostgresEventStore, advisory_lock_key

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WaitingEvent:
    """The next event to publish: the one a stalled relay is stuck on."""

    event_id: str
    stream_id: str
    stream_version: int
    global_position: int
    recorded_at: datetime
    #: Why the last attempt to publish it failed (known to the leading replica only).
    error: str | None


@dataclass(frozen=True, slots=True)
class RelayHealth:
    relay: str
    #: ``ok``: nothing waits; ``behind``: events wait and are being published; ``stalled``:
    #: events wait and nothing was published for longer than the stall time.
    state: Literal["ok", "behind", "stalled"]
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
                "stream_id": waiting.stream_id,
                "stream_version": waiting.stream_version,
                "global_position": waiting.global_position,
                "recorded_at": waiting.recorded_at.isoformat(),
                "error": waiting.error,
            },
        }


class RelayPublishError(Exception):
    """An event could not be published; the relay publishes nothing after it until it is."""

    def __init__(self, event_id: str, stream_id: str, stream_version: int, error: BaseException):
        super().__init__(
            f"could not publish event {event_id} ({stream_id} v{stream_version}): "
            f"{describe_error(error)}"
        )
        self.event_id = event_id


class Relay:
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
    ) -> None:
        self.store = store
        self.broker = broker
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
        #: (global position, error) of the last event this process failed to publish.
        self._failure: tuple[int, str] | None = None
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
        last publishing error; also updates the relay's gauges."""
        row = await self.store.pool.fetchrow(
            f"""
            SELECT h.head, coalesce(c.position, 0) AS position, c.updated_at, now() AS now,
                   e.event_id::text AS event_id, e.stream_id, e.stream_version,
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
        state: Literal["ok", "behind", "stalled"] = "ok"
        if lag and row["event_id"] is not None:
            failure = self._failure
            waiting = WaitingEvent(
                event_id=row["event_id"],
                stream_id=row["stream_id"],
                stream_version=row["stream_version"],
                global_position=row["global_position"],
                recorded_at=row["recorded_at"],
                error=failure[1] if failure and failure[0] == row["global_position"] else None,
            )
            # Waiting too long counts from the later of the last progress and the arrival
            # of the waiting event: a relay idle for a day is not stalled by a new append.
            since = max(filter(None, (row["updated_at"], row["recorded_at"])))
            stalled = (row["now"] - since).total_seconds() > stall_seconds
            state = "stalled" if stalled else "behind"
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

    async def publish_batch(self) -> int:
        """Publish the next batch after the checkpoint; returns how many events it published."""
        after = self._position if self._position is not None else await self.published_position()
        events = await self.store.read_all(after=after, limit=self.batch_size)
        if not events:
            self._lag.set(0)
            return 0
        deliveries: list[asyncio.Future[Any]] = []
        refused: BaseException | None = None
        for event in events:
            try:
                record = to_kafka(event, source=self.source)
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
        # Everything before the first failure is acknowledged: the checkpoint moves there,
        # so the event that fails is the next one to publish and health can name it.
        published = next(
            (i for i, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)),
            len(outcomes),
        )
        if published:
            await self._save_checkpoint(events[published - 1].global_position)
            if self._position is not None:
                self._position = events[published - 1].global_position
            self._published.inc(published)
        if published < len(events):
            failed = events[published]
            outcome = outcomes[published] if published < len(outcomes) else refused
            assert isinstance(outcome, BaseException)
            self._failure = (failed.global_position, describe_error(outcome))
            raise RelayPublishError(
                str(failed.event_id), failed.stream_id, failed.stream_version, outcome
            ) from outcome
        self._failure = None
        if len(events) < self.batch_size:
            self._lag.set(0)  # everything stored when the batch was read is published
        return len(events)

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
        try:
            log.info("relay.leading", relay=self.name, topic=self.topic)
            while not stop.is_set():
                wake.clear()
                try:
                    published = await self.publish_batch()
                except Exception:
                    # Kafka or the database is away: keep the lag gauge telling the truth
                    # while the supervisor retries.
                    with contextlib.suppress(Exception):
                        await self.lag()
                    raise
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
