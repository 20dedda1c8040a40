"""Helpers for tests of Zhucun services against a real Kafka broker (not used in production
code paths; kept in the library so every service's tests share one version)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from zhucun.shared.envelope import RecordedEvent, from_kafka


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    partition: int
    offset: int
    key: bytes | None
    source: str
    event: RecordedEvent


async def read_topic(
    bootstrap: str, topic: str, *, source: str | None = None
) -> list[PublishedEvent]:
    """Every record on ``topic`` up to its current end, parsed as a CloudEvent, in partition
    then offset order; only those of ``source`` when given (a topic shared by several tests
    of one session)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[PublishedEvent] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                for r in batch:
                    event, origin = from_kafka(r.headers, r.value)
                    if source is None or origin == source:
                        records.append(PublishedEvent(tp.partition, r.offset, r.key, origin, event))
        records.sort(key=lambda p: (p.partition, p.offset))
        return records
    finally:
        await consumer.stop()
