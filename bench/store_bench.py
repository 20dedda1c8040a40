"""Event-store and relay throughput against the real PostgreSQL and Kafka (run by hand).

    uv run python bench/store_bench.py [--events 5000] [--writers 4] [--out bench/results]

Starts its own PostgreSQL cluster and Kafka broker with the project's launcher (or uses
ZHUCUN_TEST_POSTGRES_DSN / ZHUCUN_TEST_KAFKA_BOOTSTRAP), then measures:

* single-event appends, one writer and several concurrent writers (each append its own
  transaction: commit latency bounds it, as the store serialises appends);
* appends of batches of 100 events;
* relay publish throughput: stored events to the topic, acknowledged by the broker.

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.kafka import ensure_topics, event_topic, make_broker
from zhucun.shared.relay import Relay
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import ANY_VERSION, PostgresEventStore, create_pool


class PresenceRecorded(DomainEvent):
    """Shaped like the commonest event in production: one day of presence evidence."""

    event_type: ClassVar[str] = "bench.PresenceRecorded"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    village_id: str
    day: str
    source: str = "township_confirmation"
    inside_geofence: bool = True
    distance_m: int = 120


def presence(cadre: int, n: int) -> NewEvent:
    return NewEvent(
        event=PresenceRecorded(cadre_id=f"c-{cadre}", village_id=f"v-{cadre % 97}", day=f"d{n}"),
        metadata=EventMetadata(occurred_at=datetime.now(UTC), actor="bench:service"),
    )


async def timed(label: str, events: int, run: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    start = time.perf_counter()
    await run()
    seconds = time.perf_counter() - start
    figure = {
        "case": label,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1),
    }
    rate = figure["events_per_second"]
    print(f"{label:<44} {events:>8} events {seconds:>8.2f} s {rate:>10,.0f} ev/s")
    return figure


async def bench(dsn: str, bootstrap: str, total: int, writers: int) -> list[dict[str, Any]]:
    pool = await create_pool(dsn, max_size=writers + 4)
    schema = f"bench_{uuid4().hex[:8]}"
    store = PostgresEventStore(pool, schema=schema)
    await store.migrate()
    figures = []

    async def singles_one_writer() -> None:
        for n in range(total):
            await store.append(
                f"cadre-{n % 500}", [presence(n % 500, n)], expected_version=ANY_VERSION
            )

    figures.append(await timed("append 1 event, 1 writer", total, singles_one_writer))

    async def singles_many_writers() -> None:
        async def writer(w: int) -> None:
            for n in range(total // writers):
                cadre = w * 1000 + n % 100
                await store.append(
                    f"cadre-{cadre}", [presence(cadre, n)], expected_version=ANY_VERSION
                )

        await asyncio.gather(*(writer(w) for w in range(writers)))

    figures.append(
        await timed(
            f"append 1 event, {writers} writers", total // writers * writers, singles_many_writers
        )
    )

    batches = max(total // 100, 1)

    async def batches_of_100() -> None:
        for b in range(batches):
            cadre = b % 500
            await store.append(
                f"cadre-{cadre}",
                [presence(cadre, b * 100 + k) for k in range(100)],
                expected_version=ANY_VERSION,
            )

    figures.append(await timed("append batches of 100, 1 writer", batches * 100, batches_of_100))

    stored = await store.head_position()
    topic = f"bench.relay.{uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topics(kafka, [event_topic(topic, kafka)])
    broker = make_broker(kafka, linger_ms=5)
    await broker.connect()
    relay = Relay(store, broker, topic=topic, source="/zhucun/bench", batch_size=1000)

    async def publish_all() -> None:
        while await relay.publish_batch():
            pass

    figures.append(await timed("relay publish to Kafka (batch 1000)", stored, publish_all))
    assert await relay.lag() == 0
    await broker.stop()
    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await pool.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000, help="events per append case")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    dsn = os.environ.get("ZHUCUN_TEST_POSTGRES_DSN")
    bootstrap = os.environ.get("ZHUCUN_TEST_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="zhucun-bench-") as tmp:
        #: How to stop the servers this run started, in the order they started.
        stops: list[Callable[[], None]] = []
        if not dsn:
            from zhucun.infra.postgres import PostgresServer

            pg = PostgresServer(Path(tmp) / "pg")
            pg.start()
            stops.append(pg.stop)
            pg.create_database("bench")
            dsn = pg.dsn("bench")
        if not bootstrap:
            from zhucun.infra.kafka import KafkaServer

            kafka = KafkaServer(Path(tmp) / "kafka")
            kafka.start()
            stops.append(kafka.stop)
            bootstrap = kafka.bootstrap_servers
        try:
            figures = asyncio.run(bench(dsn, bootstrap, args.events, args.writers))
        finally:
            for stop in reversed(stops):
                stop()

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "store_and_relay",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "figures": figures,
    }
    path = args.out / f"store_bench_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
