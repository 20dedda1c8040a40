"""The relay (transactional outbox) against a real Kafka broker and PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from zhucun.shared.asyncapi import CLOUDEVENT_HEADERS
from zhucun.shared.envelope import EventMetadata, NewEvent, RecordedEvent, from_kafka
from zhucun.shared.events import DomainEvent
from zhucun.shared.kafka import ensure_topics, event_topic, make_broker
from zhucun.shared.relay import Relay
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import ANY_VERSION, PostgresEventStore, create_pool

pytestmark = pytest.mark.integration

PARTITIONS = 3
RELAY_PROCESS = Path(__file__).parent / "processes" / "relay_process.py"


class DiaryWritten(DomainEvent):
    event_type: ClassVar[str] = "test.DiaryWritten"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    entry: int


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
