"""The relay: publishes stored events to the service's Kafka topic (transactional outbox).

The events table *is* the outbox. The relay reads events after its checkpoint in global
order, publishes them with the idempotent producer keyed per DESIGN.md, waits until Kafka
has acknowledged every one, and only then moves its checkpoint
(``relay_checkpoints`` in the store's schema). A crash anywhere — even ``kill -9`` between
the acknowledgement and the checkpoint — means the next run publishes some events again:
duplicates carry the same ``ce_id``, so consumers drop them, and nothing is ever lost.

Exactly one relay per store publishes at a time: it holds a session-level advisory lock on
its own connection (standby replicas wait for it). The lock dies with the process, so a
killed relay is replaced at once. That connection also LISTENs for the store's
notifications, so an append is published without waiting for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import asyncpg.pool
import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from zhucun.shared.envelope import to_kafka
from zhucun.shared.store import EventStore, advisory_lock_key

log = structlog.get_logger(__name__)


class Relay:
    def __init__(
        self,
        store: EventStore,
        broker: KafkaBroker,
        *,
        topic: str,
        source: str,
        name: str = "relay",
        batch_size: int = 500,
        poll_interval: float = 1.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.topic = topic
        self.source = source
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._checkpoints = f'"{store.schema}".relay_checkpoints'
        self._leader_key = advisory_lock_key(store.schema, f"relay:{name}")
        registry = registry or CollectorRegistry()
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

    async def publish_batch(self) -> int:
        """Publish the next batch after the checkpoint; returns how many events it published."""
        after = await self.published_position()
        events = await self.store.read_all(after=after, limit=self.batch_size)
        if not events:
            self._lag.set(0)
            return 0
        deliveries: list[asyncio.Future[Any]] = []
        for event in events:
            record = to_kafka(event, source=self.source)
            # Sent one by one (not publish_batch, which would put the whole batch on one
            # partition); aiokafka keeps at most one batch in flight per partition, so the
            # order within a key is the order of the events table.
            deliveries.append(
                await self.broker.publish(
                    record.value,
                    self.topic,
                    key=record.key,
                    headers=record.headers,
                    correlation_id=str(event.correlation_id),
                    no_confirm=True,
                )
            )
        await asyncio.gather(*deliveries)
        await self._save_checkpoint(events[-1].global_position)
        self._published.inc(len(events))
        return len(events)

    async def _save_checkpoint(self, position: int) -> None:
        await self.store.pool.execute(
            f"""
            INSERT INTO {self._checkpoints} (relay, position) VALUES ($1, $2)
            ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
            WHERE {self._checkpoints}.position < EXCLUDED.position
            """,
            self.name,
            position,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set. Waits as a standby while another relay leads."""
        async with self.store.pool.acquire() as conn:
            await self._become_leader(conn, stop)
            if stop.is_set():
                return
            wake = asyncio.Event()

            def on_notify(*_: object) -> None:
                wake.set()

            await conn.add_listener(self.store.notify_channel, on_notify)
            try:
                log.info("relay.leading", relay=self.name, topic=self.topic)
                while not stop.is_set():
                    wake.clear()
                    published = await self.publish_batch()
                    if published == self.batch_size:
                        continue  # more are waiting: no pause while catching up
                    await self.lag()
                    await _wait_any(stop, wake, seconds=self.poll_interval)
            finally:
                await conn.remove_listener(self.store.notify_channel, on_notify)
                await conn.execute("SELECT pg_advisory_unlock($1)", self._leader_key)

    async def _become_leader(
        self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._leader_key):
                return
            log.info("relay.standby", relay=self.name)
            await _wait_any(stop, seconds=self.poll_interval)


async def _wait_any(*events: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
