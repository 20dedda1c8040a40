"""The relay (transactional outbox) against a real Kafka broker and PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry, generate_latest

from zhucun.shared.asyncapi import CLOUDEVENT_HEADERS
from zhucun.shared.envelope import EventMetadata, NewEvent, RecordedEvent, from_kafka
from zhucun.shared.events import DomainEvent
from zhucun.shared.http import create_http_app
from zhucun.shared.kafka import TopicSpec, ensure_topics, event_topic, make_broker
from zhucun.shared.relay import Relay, RelayHealth
from zhucun.shared.settings import KafkaSettings, ServiceSettings
from zhucun.shared.store import (
    ANY_VERSION,
    MAX_EVENT_BYTES,
    PostgresEventStore,
    create_pool,
    kafka_record_bytes,
)

pytestmark = pytest.mark.integration

PARTITIONS = 3
RELAY_PROCESS = Path(__file__).parent / "processes" / "relay_process.py"


class DiaryWritten(DomainEvent):
    event_type: ClassVar[str] = "test.DiaryWritten"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    entry: int


class NoteFiled(DomainEvent):
    event_type: ClassVar[str] = "test.NoteFiled"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    text: str


def diary(cadre_id: str, entry: int) -> NewEvent:
    return NewEvent(
        event=DiaryWritten(cadre_id=cadre_id, entry=entry),
        metadata=EventMetadata(occurred_at=datetime.now(UTC), causation_id=uuid4()),
    )


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[PostgresEventStore]:
    pool = await create_pool(fresh_database, max_size=5)
    store = PostgresEventStore(pool, schema="attendance")
    await store.migrate()
    yield store
    await pool.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"test.relay.{uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=PARTITIONS)
    assert await ensure_topics(settings, [event_topic(name, settings)]) == [name]
    return name


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, RecordedEvent]]:
    """Every record on the topic, as (partition, event), in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[tuple[int, RecordedEvent]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                for r in batch:
                    event, source = from_kafka(r.headers, r.value)
                    assert source == "/zhucun/test"
                    # Every header the record carries is in the AsyncAPI documents.
                    headers = {name: value.decode() for name, value in r.headers}
                    assert set(headers) <= set(CLOUDEVENT_HEADERS), set(headers)
                    assert headers["correlation_id"] == headers["ce_correlationid"]
                    assert r.key == event.key.encode()
                    records.append((tp.partition, event))
        return records
    finally:
        await consumer.stop()


def assert_complete_and_ordered(
    stored: list[RecordedEvent], published: list[tuple[int, RecordedEvent]]
) -> int:
    """Every stored event is on the topic; per key, first deliveries follow stream order.
    Returns the number of duplicates (allowed: at-least-once)."""
    assert {e.event_id for _, e in published} == {e.event_id for e in stored}
    by_id = {e.event_id: e for e in stored}
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[object] = set()
    for partition, event in published:
        assert event == by_id[event.event_id]  # byte-for-byte the stored event, hash included
        partitions_of_key[event.key].add(partition)
        if event.event_id not in seen:
            seen.add(event.event_id)
            first_seen[event.key].append(event.global_position)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key spans partitions"
    for key, positions in first_seen.items():
        assert positions == sorted(positions), f"order broken for key {key}"
    return len(published) - len(seen)


async def test_relay_publishes_every_event_keyed_with_cloudevents_headers(
    store: PostgresEventStore, topic: str, kafka_bootstrap: str
) -> None:
    for cadre in range(10):
        for entry in range(3):
            await store.append(
                f"cadre-{cadre}", [diary(f"c{cadre}", entry)], expected_version=ANY_VERSION
            )
    registry = CollectorRegistry()
    broker = make_broker(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await broker.connect()
    try:
        relay = Relay(
            store, broker, topic=topic, source="/zhucun/test", batch_size=7, registry=registry
        )
        assert await relay.lag() == 30
        published = 0
        while batch := await relay.publish_batch():
            published += batch
        assert published == 30
        assert await relay.lag() == 0
        assert await relay.published_position() == 30
        assert b'zhucun_relay_lag_events{relay="relay"} 0.0' in generate_latest(registry)
    finally:
        await broker.stop()

    stored = await store.read_all(limit=100)
    on_topic = await read_topic(kafka_bootstrap, topic)
    assert assert_complete_and_ordered(stored, on_topic) == 0
    first = on_topic[0][1]
    assert first.causation_id is not None
    assert first.hash == first.computed_hash()


async def test_relay_wakes_on_append_and_a_second_relay_stands_by(
    store: PostgresEventStore, topic: str, kafka_bootstrap: str
) -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await broker.connect()
    stop = asyncio.Event()
    leader = Relay(store, broker, topic=topic, source="/zhucun/test", poll_interval=30)
    standby = Relay(store, broker, topic=topic, source="/zhucun/test", poll_interval=0.1)
    tasks = [asyncio.create_task(leader.run(stop))]
    await asyncio.sleep(0.5)
    tasks.append(asyncio.create_task(standby.run(stop)))
    try:
        await store.append("cadre-1", [diary("c1", 1)], expected_version=0)
        # The poll interval is 30 s: only the notification can make this quick.
        async with asyncio.timeout(10):
            while await leader.lag():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await broker.stop()
    on_topic = await read_topic(kafka_bootstrap, topic)
    assert len(on_topic) == 1  # the standby published nothing


def start_relay(dsn: str, bootstrap: str, topic: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELAY_DSN": dsn,
        "RELAY_SCHEMA": "attendance",
        "RELAY_BOOTSTRAP": bootstrap,
        "RELAY_TOPIC": topic,
        **extra,
    }
    return subprocess.Popen([sys.executable, str(RELAY_PROCESS)], env=env, stdout=subprocess.PIPE)


async def until_ready(process: subprocess.Popen[bytes]) -> None:
    """Waits for the relay's "ready" line: a SIGTERM before its handler exists would kill it."""
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
    assert line.strip() == b"relay ready", line


async def wait_for_exit(process: subprocess.Popen[bytes], seconds: float) -> int:
    async with asyncio.timeout(seconds):
        while process.poll() is None:
            await asyncio.sleep(0.05)
    return process.returncode


@pytest.mark.slow
async def test_kill_9_between_kafka_ack_and_checkpoint_loses_nothing(
    store: PostgresEventStore, topic: str, kafka_bootstrap: str, fresh_database: str
) -> None:
    for entry in range(20):
        await store.append("cadre-1", [diary("c1", entry)], expected_version=ANY_VERSION)
    dying = start_relay(fresh_database, kafka_bootstrap, topic, RELAY_DIE_BEFORE_CHECKPOINT="1")
    assert await wait_for_exit(dying, 60) == -signal.SIGKILL
    relay = Relay(store, make_broker(KafkaSettings()), topic=topic, source="/zhucun/test")
    assert await relay.published_position() == 0  # the checkpoint never moved...
    assert len(await read_topic(kafka_bootstrap, topic)) == 20  # ...though Kafka has them all

    healthy = start_relay(fresh_database, kafka_bootstrap, topic)
    await until_ready(healthy)
    try:
        async with asyncio.timeout(60):
            while await relay.lag():
                await asyncio.sleep(0.1)
    finally:
        healthy.send_signal(signal.SIGTERM)
        assert await wait_for_exit(healthy, 30) == 0
    stored = await store.read_all(limit=100)
    duplicates = assert_complete_and_ordered(stored, await read_topic(kafka_bootstrap, topic))
    assert duplicates == 20  # re-published once, same ids: consumers drop them


@pytest.mark.slow
async def test_kill_9_at_random_points_while_appending_loses_nothing(
    store: PostgresEventStore, topic: str, kafka_bootstrap: str, fresh_database: str
) -> None:
    cadres, kills = 25, 5
    kills_done = asyncio.Event()

    async def write() -> None:
        # Keeps appending until the last kill, so every relay process has work when killed.
        entry = 0
        while not kills_done.is_set():
            for cadre in range(cadres):
                batch = [diary(f"c{cadre}", entry * 10 + k) for k in range(random.randint(1, 3))]
                await store.append(f"cadre-{cadre}", batch, expected_version=ANY_VERSION)
            entry += 1
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(write())
    relay = Relay(store, make_broker(KafkaSettings()), topic=topic, source="/zhucun/test")
    for _ in range(kills):
        process = start_relay(fresh_database, kafka_bootstrap, topic, RELAY_BATCH_SIZE="20")
        before = await relay.published_position()
        # Let it get going (it must have published something), then kill it mid-stream.
        async with asyncio.timeout(60):
            while await relay.published_position() == before:
                await asyncio.sleep(0.02)
        await asyncio.sleep(random.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        assert await wait_for_exit(process, 10) == -signal.SIGKILL
    kills_done.set()
    await writer
    final = start_relay(fresh_database, kafka_bootstrap, topic)
    await until_ready(final)
    try:
        async with asyncio.timeout(120):
            while await relay.lag():
                await asyncio.sleep(0.1)
    finally:
        final.send_signal(signal.SIGTERM)
        assert await wait_for_exit(final, 30) == 0

    stored = await store.read_all(limit=1_000_000)
    assert len(stored) >= cadres * kills
    assert_complete_and_ordered(stored, await read_topic(kafka_bootstrap, topic))


#: The topic's ``max.message.bytes`` in the stall test: far below the store's limit.
SMALL_TOPIC_LIMIT = 20_000


async def set_topic_limit(bootstrap: str, topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)}
        )
        (response,) = await admin.alter_configs([resource])
        assert [r[0] for r in response.resources] == [0], response
    finally:
        await admin.close()


async def until_health(
    relay: Relay, check: Callable[[RelayHealth], bool], seconds: float = 30
) -> RelayHealth:
    async with asyncio.timeout(seconds):
        while not check(health := await relay.health(stall_seconds=120)):
            await asyncio.sleep(0.05)
    return health


async def readiness(relay: Relay) -> dict[str, Any]:
    """``/health/ready`` of an app whose relay report is ``relay``'s (as a service's is)."""
    app = create_http_app(ServiceSettings(), title="relay-test")

    async def report() -> dict[str, Any]:
        return (await relay.health(stall_seconds=120)).to_json()

    app.state.health_reports["relay"] = report
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_a_refused_event_stalls_the_relay_on_it_and_nothing_behind_it_overtakes(
    store: PostgresEventStore, kafka_bootstrap: str
) -> None:
    """The broker refuses an event (larger than the topic's ``max.message.bytes``, smaller
    than the store's limit): the relay reports itself stalled on exactly that event at once,
    retries it, publishes nothing stored after it, and carries on in order once the topic
    takes it."""
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=PARTITIONS)
    topic = f"test.relay.small.{uuid4().hex[:8]}"
    spec = TopicSpec(topic, PARTITIONS, config={"max.message.bytes": str(SMALL_TOPIC_LIMIT)})
    assert await ensure_topics(settings, [spec]) == [topic]

    big = NewEvent(
        event=NoteFiled(cadre_id="c1", text="x" * 30_000),
        metadata=EventMetadata(occurred_at=datetime.now(UTC)),
    )
    size = kafka_record_bytes("note-1", big, big.event.to_data())
    assert SMALL_TOPIC_LIMIT < size < MAX_EVENT_BYTES
    # Stored before the relay starts, so the refused event is read in one batch with the
    # events around it; c1's events share its partition (the producer's sequence there).
    (before,) = (await store.append("cadre-1", [diary("c1", 0)], expected_version=0)).events
    (refused,) = (await store.append("note-1", [big], expected_version=0)).events
    after: list[RecordedEvent] = []
    for cadre in ("c1", "c2", "c3", "c1", "c4"):
        appended = await store.append(
            f"cadre-{cadre}", [diary(cadre, len(after) + 1)], expected_version=ANY_VERSION
        )
        after.extend(appended.events)

    registry = CollectorRegistry()
    broker = make_broker(settings)
    await broker.connect()
    relay = Relay(store, broker, topic=topic, source="/zhucun/test", registry=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        # Stalled at once (the stall time is 120 s): a refusal needs a person.
        health = await until_health(relay, lambda h: h.state == "stalled", seconds=20)
        waiting = health.next_event
        assert waiting is not None
        assert (waiting.event_id, waiting.event_type, waiting.global_position) == (
            str(refused.event_id),
            "test.NoteFiled",
            2,
        )
        assert waiting.error is not None
        assert waiting.error.startswith("MessageSizeTooLargeError"), waiting.error
        assert waiting.refused
        assert waiting.failing_since is not None
        assert waiting.failing_since <= datetime.now(UTC)
        assert (health.lag, health.published_position) == (1 + len(after), 1)
        # It keeps trying (with a back-off from 0.1 s), and only that event.
        health = await until_health(
            relay, lambda h: bool(h.next_event and h.next_event.attempts >= 3)
        )
        assert health.state == "stalled"
        assert health.next_event is not None
        assert health.next_event.failing_since == waiting.failing_since  # since the first
        body = await readiness(relay)
        assert body["attention"] == ["relay"]
        report = body["components"]["relay"]
        assert report["state"] == "stalled"
        assert report["next_event"]["event_id"] == str(refused.event_id)
        assert report["next_event"]["event_type"] == "test.NoteFiled"
        assert report["next_event"]["global_position"] == 2
        assert report["next_event"]["error"].startswith("MessageSizeTooLargeError")
        assert report["next_event"]["failing_since"] == waiting.failing_since.isoformat()
        assert b'zhucun_relay_stalled{relay="relay"} 1.0' in generate_latest(registry)
        # Nothing behind the refused event reached the topic.
        assert [e.event_id for _, e in await read_topic(kafka_bootstrap, topic)] == [
            before.event_id
        ]

        await set_topic_limit(kafka_bootstrap, topic, 1_000_000)
        health = await until_health(relay, lambda h: h.lag == 0)
        assert (health.state, health.next_event, health.published_position) == ("ok", None, 7)
        assert b'zhucun_relay_stalled{relay="relay"} 0.0' in generate_latest(registry)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await broker.stop()

    stored = await store.read_all(limit=100)
    on_topic = await read_topic(kafka_bootstrap, topic)
    assert assert_complete_and_ordered(stored, on_topic) == 0  # each once, each key in order
    partition_of_c1 = {p for p, e in on_topic if e.key == "c1"}
    assert len(partition_of_c1) == 1
    assert [e.global_position for p, e in on_topic if p in partition_of_c1] == sorted(
        e.global_position for p, e in on_topic if p in partition_of_c1
    )
