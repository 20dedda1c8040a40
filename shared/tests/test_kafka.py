"""Kafka plumbing against the real broker: topics, a FastStream consumer of the relay's
CloudEvents, and dead letters with their reasons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import ClassVar
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from zhucun.shared.envelope import (
    CloudEventError,
    EventMetadata,
    NewEvent,
    RecordedEvent,
    from_kafka,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.kafka import (
    DeadLetterPublisher,
    dlq_topic,
    ensure_topics,
    event_topic,
    make_broker,
)
from zhucun.shared.relay import Relay
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import NO_STREAM, PostgresEventStore, create_pool

pytestmark = pytest.mark.integration


class VisitMade(DomainEvent):
    event_type: ClassVar[str] = "test.VisitMade"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    households: int


async def test_event_topics_keep_everything_and_creation_is_idempotent(
    kafka_bootstrap: str,
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=4)
    name = f"test.topics.{uuid4().hex[:8]}"
    specs = [event_topic(name, settings), dlq_topic(name, settings)]
    assert sorted(await ensure_topics(settings, specs)) == sorted([name, name + ".dlq"])
    assert await ensure_topics(settings, specs) == []  # second run: nothing to do

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([name])
        assert len(described[0]["partitions"]) == 4
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        values = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
        assert values["retention.ms"] == "-1"
        assert values["retention.bytes"] == "-1"
    finally:
        await admin.close()


async def test_round_trip_through_kafka_and_dead_letters(
    kafka_bootstrap: str, fresh_database: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=2)
    topic = f"test.roundtrip.{uuid4().hex[:8]}"
    await ensure_topics(settings, [event_topic(topic, settings), dlq_topic(topic, settings)])

    pool = await create_pool(fresh_database)
    store = PostgresEventStore(pool, schema="assessment")
    await store.migrate()
    correlation = uuid4()
    appended = await store.append(
        "cadre-7",
        [
            NewEvent(
                event=VisitMade(cadre_id="c7", households=12),
                metadata=EventMetadata(
                    occurred_at=datetime.now(UTC), correlation_id=correlation, actor="u1:cadre"
                ),
            )
        ],
        expected_version=NO_STREAM,
    )

    broker = make_broker(settings)
    dead_letters = DeadLetterPublisher(broker.publish)
    received: list[RecordedEvent] = []
    got_both = asyncio.Event()

    @broker.subscriber(
        topic,
        group_id=f"g-{uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def consume(msg: KafkaMessage) -> None:
        record = msg.raw_message
        # One aiokafka ConsumerRecord per message; a tuple only reaches batch subscribers.
        assert not isinstance(record, tuple)
        try:
            event, _ = from_kafka(record.headers, record.value)
        except CloudEventError as exc:
            await dead_letters.send(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=record.headers,
                reason=str(exc),
                error=exc,
            )
        else:
            received.append(event)
        processed.append(record.offset)
        if len(processed) == 2:
            got_both.set()

    processed: list[int] = []
    await broker.start()
    try:
        relay = Relay(store, broker, topic=topic, source="/zhucun/assessment")
        assert await relay.publish_batch() == 1
        await broker.publish(b'{"not": "a cloudevent"}', topic, key=b"c7", headers={"x": "1"})
        await asyncio.wait_for(got_both.wait(), timeout=30)
    finally:
        await broker.stop()
        await pool.close()

    assert received == appended.events
    assert received[0].correlation_id == correlation

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        partition = TopicPartition(topic + ".dlq", 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        batch = await consumer.getmany(partition, timeout_ms=10_000)
        records = batch.get(partition, [])
    finally:
        await consumer.stop()
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert records[0].value == b'{"not": "a cloudevent"}'  # kept byte for byte
    assert records[0].key == b"c7"
    assert headers["x"] == "1"
    assert "ce_specversion" in headers["x-dlq-reason"]
    assert headers["x-dlq-source-topic"] == topic
    assert int(headers["x-dlq-source-offset"]) >= 0
    assert "CloudEventError" in headers["x-dlq-error"]
