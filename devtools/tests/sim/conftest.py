"""Fixtures of the simulator's integration tests: ``key_reader``, the records of a topic by
key. ``running_system`` (the services started for real) is the root ``conftest.py``'s, from
``running_services``.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sim_system import KeyReader

from zhucun.shared.envelope import from_kafka
from zhucun.shared.testing import PublishedEvent


async def read_keys(
    bootstrap: str, topic: str, *, prefix: str, keys: frozenset[str] = frozenset()
) -> list[PublishedEvent]:
    """The records of ``topic`` whose key starts with ``prefix`` or is one of ``keys``, in
    partition then offset order: ``zhucun.shared.testing.read_topic`` filtered on the raw
    key before parsing, since the session's topics also hold every other test's records."""
    wanted = prefix.encode()
    exact = {k.encode() for k in keys}
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
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            for tp, batch in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).items():
                for r in batch:
                    if r.key is not None and (r.key.startswith(wanted) or r.key in exact):
                        event, origin = from_kafka(r.headers, r.value)
                        records.append(PublishedEvent(tp.partition, r.offset, r.key, origin, event))
        records.sort(key=lambda p: (p.partition, p.offset))
        return records
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
def key_reader() -> KeyReader:
    """``read_keys`` (above), for test modules: ``await key_reader(bootstrap, topic,
    prefix=..., keys=...)``."""
    return read_keys
