"""The projection runtime against a real Kafka broker and PostgreSQL server.

The test projection ``Tally`` records every applied event (id, cadre, sequence number, where
it came from, which worker applied it) and keeps a per-cadre count, so each test can check
the read model event by event: everything applied, nothing twice, each cadre in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, generate_latest

from zhucun.shared.envelope import KafkaRecord, RecordedEvent, to_kafka
from zhucun.shared.events import GENESIS_HASH, DomainEvent, EventRegistry
from zhucun.shared.kafka import (
    DeadLetterPublisher,
    dlq_topic,
    ensure_topics,
    event_topic,
    make_broker,
)
from zhucun.shared.projection import (
    Delivery,
    PoisonRecord,
    Projection,
    ProjectionCounts,
    ProjectionRunner,
)
from zhucun.shared.replica import Table
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import create_pool

pytestmark = pytest.mark.integration

PARTITIONS = 4
SCHEMA = "readside"
SOURCE = "/zhucun/test"
PROJECTION_PROCESS = Path(__file__).parent / "processes" / "projection_process.py"

registry = EventRegistry()


@registry.register
class Tallied(DomainEvent):
    event_type: ClassVar[str] = "test.projection.Tallied"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    n: int


@registry.register
class Exploded(DomainEvent):
    """Decodes fine, but the projection cannot apply it."""

    event_type: ClassVar[str] = "test.projection.Exploded"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str


class Tally:
    """The test projection: one row per applied event, one counter per cadre."""

    topics: Sequence[str]

    def __init__(
        self,
        topic: str,
        *,
        worker: str = "w",
        name: str = "tally",
        fail_once: Iterable[UUID] = (),
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.topics = (topic,)
        self.registry = registry
        self.worker = worker
        #: Events whose first apply fails like a dropped database connection.
        self.fail_once = set(fail_once)
        self.delay = delay

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {SCHEMA}.tally_applied (
                seq bigserial PRIMARY KEY,
                event_id uuid NOT NULL,
                cadre_id text NOT NULL,
                n int NOT NULL,
                topic text NOT NULL,
                partition int NOT NULL,
                kafka_offset bigint NOT NULL,
                worker text NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {SCHEMA}.tally (
                cadre_id text PRIMARY KEY,
                events int NOT NULL,
                last_n int NOT NULL
            );
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        failing = self.fail_once & {d.event.event_id for d in deliveries}
        if failing:
            self.fail_once -= failing
            raise ConnectionResetError("the database went away (simulated)")
        payloads = [d.payload for d in deliveries]
        if any(isinstance(p, Exploded) for p in payloads):
            raise ValueError("cannot apply an Exploded event")
        tallied = [(d, d.payload) for d in deliveries if isinstance(d.payload, Tallied)]
        await conn.execute(
            f"""
            INSERT INTO {SCHEMA}.tally_applied
                (event_id, cadre_id, n, topic, partition, kafka_offset, worker)
            SELECT event_id, cadre_id, n, topic, partition, kafka_offset, $7
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::bigint[])
                WITH ORDINALITY AS t(event_id, cadre_id, n, topic, partition, kafka_offset, ord)
            ORDER BY ord
            """,
            [d.event.event_id for d, _ in tallied],
            [p.cadre_id for _, p in tallied],
            [p.n for _, p in tallied],
            [d.topic for d, _ in tallied],
            [d.partition for d, _ in tallied],
            [d.offset for d, _ in tallied],
            self.worker,
        )
        per_cadre: dict[str, tuple[int, int]] = {}
        for _, p in tallied:
            events, _last = per_cadre.get(p.cadre_id, (0, 0))
            per_cadre[p.cadre_id] = (events + 1, p.n)
        await conn.execute(
            f"""
            INSERT INTO {SCHEMA}.tally (cadre_id, events, last_n)
            SELECT * FROM unnest($1::text[], $2::int[], $3::int[])
            ON CONFLICT (cadre_id) DO UPDATE
            SET events = tally.events + EXCLUDED.events, last_n = EXCLUDED.last_n
            """,
            list(per_cadre),
            [v[0] for v in per_cadre.values()],
            [v[1] for v in per_cadre.values()],
        )


# --- building and publishing events --------------------------------------------------------


def recorded(
    cadre: str, n: int, *, event_type: str = Tallied.event_type, data: dict[str, Any] | None = None
) -> RecordedEvent:
    now = datetime.now(UTC)
    return RecordedEvent(
        event_id=uuid4(),
        stream_id=f"cadre-{cadre}",
        stream_version=n,
        global_position=n,
        event_type=event_type,
        schema_version=1,
        key=cadre,
        data={"cadre_id": cadre, "n": n} if data is None else data,
        occurred_at=now,
        recorded_at=now,
        correlation_id=uuid4(),
        causation_id=None,
        actor="tester:service",
        prev_hash=GENESIS_HASH,
        hash="f" * 64,
    )


def record_of(event: RecordedEvent) -> KafkaRecord:
    return to_kafka(event, source=SOURCE)


@dataclass(frozen=True, slots=True)
class Sent:
    partition: int
    offset: int


async def publish(
    bootstrap: str, topic: str, records: Iterable[KafkaRecord], *, partition: int | None = None
) -> list[Sent]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                r.value,
                key=r.key,
                headers=[(k, v.encode()) for k, v in r.headers.items()],
                partition=partition,
            )
            for r in records
        ]
        return [Sent(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def cadre_events(cadres: Iterable[str], per_cadre: int, first_n: int = 1) -> list[RecordedEvent]:
    return [recorded(c, n) for n in range(first_n, first_n + per_cadre) for c in cadres]


# --- fixtures and helpers ------------------------------------------------------------------


@dataclass
class Env:
    bootstrap: str
    settings: KafkaSettings
    topic: str
    pool: asyncpg.Pool


@pytest.fixture
async def env(kafka_bootstrap: str, fresh_database: str) -> AsyncIterator[Env]:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=PARTITIONS)
    topic = f"test.projection.{uuid4().hex[:8]}"
    await ensure_topics(settings, [event_topic(topic, settings), dlq_topic(topic, settings)])
    pool = await create_pool(fresh_database, max_size=6)
    yield Env(kafka_bootstrap, settings, topic, pool)
    await pool.close()


def make_runner(env: Env, projection: Projection, **options: Any) -> ProjectionRunner:
    options.setdefault("group_id", f"g-{uuid4().hex[:8]}")
    return ProjectionRunner(env.pool, projection, env.settings, schema=SCHEMA, **options)


@dataclass
class Running:
    runner: ProjectionRunner
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 20)


def start(runner: ProjectionRunner) -> Running:
    stop = asyncio.Event()
    return Running(runner, stop, asyncio.create_task(runner.run(stop)))


async def end_offsets(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[Any, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 25) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.1)


async def caught_up(env: Env, runner: ProjectionRunner, *watch: Running) -> None:
    """Waits until the stored offsets equal the topic's end offsets (failing fast if a
    runner died)."""
    end = {
        (tp.topic, tp.partition): o
        for tp, o in (await end_offsets(env.bootstrap, env.topic)).items()
    }

    async def check() -> bool:
        for running in watch:
            if running.task.done():
                running.task.result()
                raise AssertionError("the runner stopped")
        stored = await runner.stored_offsets()
        return all(stored.get(key, 0) >= offset for key, offset in end.items())

    await eventually(check)


async def applied_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT * FROM {SCHEMA}.tally_applied ORDER BY seq")


def assert_exactly_once_in_order(
    rows: Sequence[asyncpg.Record], events: Sequence[RecordedEvent]
) -> None:
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an event was applied twice"
    assert set(ids) == {e.event_id for e in events}
    by_cadre: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_cadre[r["cadre_id"]].append(r["n"])
    for cadre, ns in by_cadre.items():
        assert ns == sorted(ns), f"cadre {cadre} applied out of order"


async def processed_counts(pool: asyncpg.Pool, name: str = "tally") -> ProjectionCounts:
    row = await pool.fetchrow(
        f"SELECT consumed, applied, duplicates, dead_lettered FROM {SCHEMA}.projection_counts "
        "WHERE projection = $1",
        name,
    )
    assert row is not None
    return ProjectionCounts(**dict(row))


def metric(registry: CollectorRegistry, line: str) -> bool:
    return line.encode() in generate_latest(registry)


async def read_dlq(bootstrap: str, topic: str) -> list[Any]:
    dlq = TopicPartition(topic + ".dlq", 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([dlq])
        await consumer.seek_to_beginning(dlq)
        end = (await consumer.end_offsets([dlq]))[dlq]
        records: list[Any] = []
        async with asyncio.timeout(15):
            while await consumer.position(dlq) < end:
                records.extend((await consumer.getmany(dlq, timeout_ms=1000)).get(dlq, []))
        return records
    finally:
        await consumer.stop()


# --- the tests -----------------------------------------------------------------------------


async def test_applies_every_event_once_across_partitions(env: Env) -> None:
    events = cadre_events([f"c{i}" for i in range(40)], per_cadre=5)
    await publish(env.bootstrap, env.topic, map(record_of, events))
    metrics = CollectorRegistry()
    runner = make_runner(env, Tally(env.topic), batch_size=50, metrics=metrics)
    await runner.migrate()
    await runner.migrate()  # idempotent

    end = await end_offsets(env.bootstrap, env.topic)
    assert all(offset > 0 for offset in end.values()), "every partition has events"
    before = await runner.lag()
    assert before == {(tp.topic, tp.partition): o for tp, o in end.items()}

    running = start(runner)
    try:
        await caught_up(env, runner, running)
        await eventually(lambda: _async(runner.counts.consumed == 200))
    finally:
        await running.halt()

    assert await runner.stored_offsets() == {(tp.topic, tp.partition): o for tp, o in end.items()}
    assert await runner.lag() == {(tp.topic, tp.partition): 0 for tp in end}
    assert_exactly_once_in_order(await applied_rows(env.pool), events)
    tallies = await env.pool.fetch(f"SELECT events, last_n FROM {SCHEMA}.tally")
    assert len(tallies) == 40
    assert all(t["events"] == 5 and t["last_n"] == 5 for t in tallies)
    assert runner.counts == ProjectionCounts(consumed=200, applied=200)
    assert await processed_counts(env.pool) == runner.counts
    assert not runner.stuck(0)
    assert metric(
        metrics, 'zhucun_projection_events_total{outcome="applied",projection="tally"} 200.0'
    )
    assert metric(metrics, "zhucun_projection_last_progress_timestamp{")

    # Kafka's committed offsets follow (the optimisation for group-watching tools).
    admin = AIOKafkaAdminClient(bootstrap_servers=env.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(runner.group_id)
    finally:
        await admin.close()
    assert {tp: meta.offset for tp, meta in committed.items()} == end


async def _async(value: bool) -> bool:
    return value


async def test_lag_gauge_and_stuck_while_running(env: Env) -> None:
    metrics = CollectorRegistry()
    runner = make_runner(env, Tally(env.topic), metrics=metrics)
    await runner.migrate()
    running = start(runner)

    def lag_lines() -> list[str]:
        text = generate_latest(metrics).decode()
        return [line for line in text.splitlines() if line.startswith("zhucun_projection_lag")]

    try:
        events = cadre_events(["a", "b", "c", "d", "e", "f", "g", "h"], per_cadre=4)
        await publish(env.bootstrap, env.topic, map(record_of, events))
        await caught_up(env, runner, running)
        await eventually(
            lambda: _async(
                len(lag_lines()) == PARTITIONS and all(x.endswith(" 0.0") for x in lag_lines())
            )
        )
        assert not runner.stuck(0)
        assert await runner.lag() == {(env.topic, p): 0 for p in range(PARTITIONS)}
    finally:
        await running.halt()
    assert lag_lines() == []  # a stopped runner reports no partitions it gave up


async def test_restart_resumes_from_postgres_offsets_not_kafka_commits(env: Env) -> None:
    first = cadre_events([f"c{i}" for i in range(20)], per_cadre=5)
    await publish(env.bootstrap, env.topic, map(record_of, first))
    group = f"g-{uuid4().hex[:8]}"
    runner = make_runner(env, Tally(env.topic), group_id=group, batch_size=30)
    await runner.migrate()
    running = start(runner)
    await caught_up(env, runner, running)
    await running.halt()
    assert runner.counts == ProjectionCounts(consumed=100, applied=100)

    # A new group id: Kafka knows no offsets for it; PostgreSQL does.
    second = cadre_events([f"c{i}" for i in range(10)], per_cadre=5, first_n=6)
    await publish(env.bootstrap, env.topic, map(record_of, second))
    fresh_group = make_runner(env, Tally(env.topic), group_id=f"g-{uuid4().hex[:8]}")
    await fresh_group.migrate()
    assert fresh_group.counts == ProjectionCounts(consumed=100, applied=100)  # survived
    running = start(fresh_group)
    await caught_up(env, fresh_group, running)
    await running.halt()
    assert fresh_group.counts == ProjectionCounts(consumed=150, applied=150)

    # The original group with its Kafka offsets rewound to zero: still resumes from PostgreSQL.
    rewind = AIOKafkaConsumer(
        bootstrap_servers=env.bootstrap, group_id=group, enable_auto_commit=False
    )
    await rewind.start()
    try:
        tps = [TopicPartition(env.topic, p) for p in range(PARTITIONS)]
        rewind.assign(tps)
        await rewind.commit(dict.fromkeys(tps, 0))
    finally:
        await rewind.stop()
    third = cadre_events([f"c{i}" for i in range(6)], per_cadre=5, first_n=11)
    await publish(env.bootstrap, env.topic, map(record_of, third))
    rewound = make_runner(env, Tally(env.topic), group_id=group)
    running = start(rewound)
    await caught_up(env, rewound, running)
    await running.halt()

    assert_exactly_once_in_order(await applied_rows(env.pool), first + second + third)
    # Nothing was read twice: a re-read would show as consumed duplicates.
    assert await processed_counts(env.pool) == ProjectionCounts(consumed=180, applied=180)
    assert rewound.counts == ProjectionCounts(consumed=180, applied=180)


async def test_the_same_event_id_twice_is_applied_once(env: Env) -> None:
    events = cadre_events([f"c{i}" for i in range(6)], per_cadre=5)
    sent = await publish(env.bootstrap, env.topic, map(record_of, events))
    # Re-published (the relay's at-least-once): same partition, later offsets ...
    again = await publish(env.bootstrap, env.topic, map(record_of, events[:4]))
    assert [s.partition for s in again] == [s.partition for s in sent[:4]]
    # ... and once on another partition.
    other = (sent[4].partition + 1) % PARTITIONS
    await publish(env.bootstrap, env.topic, [record_of(events[4])], partition=other)

    metrics = CollectorRegistry()
    runner = make_runner(env, Tally(env.topic), metrics=metrics)
    await runner.migrate()
    running = start(runner)
    await caught_up(env, runner, running)
    await running.halt()
    assert runner.counts == ProjectionCounts(consumed=35, applied=30, duplicates=5)

    # A duplicate arriving after a restart is recognised too.
    await publish(env.bootstrap, env.topic, map(record_of, events[10:12]))
    runner = make_runner(env, Tally(env.topic), group_id=runner.group_id, metrics=metrics)
    running = start(runner)
    await caught_up(env, runner, running)
    await running.halt()

    assert_exactly_once_in_order(await applied_rows(env.pool), events)
    assert runner.counts == ProjectionCounts(consumed=37, applied=30, duplicates=7)
    assert await processed_counts(env.pool) == runner.counts
    assert metric(
        metrics, 'zhucun_projection_events_total{outcome="duplicate",projection="tally"} 7.0'
    )
    assert await read_dlq(env.bootstrap, env.topic) == []


async def test_poison_records_go_to_the_dead_letter_topic(env: Env) -> None:
    good = cadre_events(["c1", "c2", "c3"], per_cadre=6)
    not_json = record_of(recorded("c1", 100))
    not_json = KafkaRecord(not_json.key, b"{not json", not_json.headers)
    no_headers = KafkaRecord(b"c2", b'{"cadre_id": "c2", "n": 1}', {"x-origin": "legacy"})
    unknown = record_of(recorded("c3", 101, event_type="test.projection.Unknown"))
    invalid = record_of(recorded("c1", 102, data={"cadre_id": "c1", "n": "many"}))
    exploded_event = recorded("c2", 103, event_type=Exploded.event_type, data={"cadre_id": "c2"})
    exploded = record_of(exploded_event)
    poison = {
        "not json": not_json,
        "no headers": no_headers,
        "unknown": unknown,
        "invalid": invalid,
        "exploded": exploded,
    }
    # Interleaved: poison in the middle of each cadre's events, in the same batches.
    records = (
        [record_of(e) for e in good[:9]] + list(poison.values()) + [record_of(e) for e in good[9:]]
    )
    sent = await publish(env.bootstrap, env.topic, records)
    where = dict(zip(poison, sent[9:14], strict=True))

    metrics = CollectorRegistry()
    broker = make_broker(env.settings)
    await broker.connect()
    try:
        runner = make_runner(
            env, Tally(env.topic), metrics=metrics, dead_letters=DeadLetterPublisher(broker.publish)
        )
        await runner.migrate()
        running = start(runner)
        await caught_up(env, runner, running)
        await running.halt()
    finally:
        await broker.stop()

    assert_exactly_once_in_order(await applied_rows(env.pool), good)
    assert runner.counts == ProjectionCounts(consumed=23, applied=18, dead_lettered=5)
    assert await processed_counts(env.pool) == runner.counts
    assert metric(
        metrics, 'zhucun_projection_events_total{outcome="dead_lettered",projection="tally"} 5.0'
    )

    dead = await read_dlq(env.bootstrap, env.topic)
    assert len(dead) == 5
    by_source = {}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["x-dlq-source-topic"] == env.topic
        by_source[(int(headers["x-dlq-source-partition"]), int(headers["x-dlq-source-offset"]))] = (
            record,
            headers,
        )
    expected_reason = {
        "not json": ("body is not JSON", "CloudEventError"),
        "no headers": ("ce_specversion", "CloudEventError"),
        "unknown": ("unknown event type 'test.projection.Unknown'", "UnknownEventType"),
        "invalid": ("does not match its contract", "EventContractError"),
        "exploded": ("could not apply the event: ValueError", "ValueError"),
    }
    for label, original in poison.items():
        record, headers = by_source[(where[label].partition, where[label].offset)]
        assert record.value == original.value  # kept byte for byte
        assert record.key == original.key
        reason, error = expected_reason[label]
        assert reason in headers["x-dlq-reason"], label
        assert error in headers["x-dlq-error"], label
    assert (
        by_source[(where["no headers"].partition, where["no headers"].offset)][1]["x-origin"]
        == "legacy"
    )

    # The exploded event is not remembered as applied: once fixed, re-publishing applies it.
    remembered = await env.pool.fetchval(
        f"SELECT count(*) FROM {SCHEMA}.projection_events WHERE event_id = $1",
        exploded_event.event_id,
    )
    assert remembered == 0


async def test_without_a_dead_letter_publisher_a_poison_record_stops_the_runner(env: Env) -> None:
    before, after = recorded("c1", 1), recorded("c1", 3)
    poison = KafkaRecord(b"c1", b"garbage", record_of(recorded("c1", 2)).headers)
    sent = await publish(env.bootstrap, env.topic, [record_of(before), poison, record_of(after)])
    runner = make_runner(env, Tally(env.topic))
    await runner.migrate()
    with pytest.raises(PoisonRecord) as raised:
        await asyncio.wait_for(runner.run(asyncio.Event()), 20)
    assert (raised.value.partition, raised.value.offset) == (sent[1].partition, sent[1].offset)
    assert "garbage" not in str(raised.value)
    stored = await runner.stored_offsets()
    assert stored[(env.topic, sent[1].partition)] <= sent[1].offset  # never moved past it
    assert [r["event_id"] for r in await applied_rows(env.pool)] in ([], [before.event_id])
    assert runner.stuck(0)


async def test_infrastructure_failures_are_retried_without_skipping(env: Env) -> None:
    events = cadre_events([f"c{i}" for i in range(8)], per_cadre=5)
    await publish(env.bootstrap, env.topic, map(record_of, events))
    broker = make_broker(env.settings)
    await broker.connect()
    try:
        projection = Tally(env.topic, fail_once=[events[3].event_id, events[-1].event_id])
        runner = make_runner(
            env, projection, batch_size=10, dead_letters=DeadLetterPublisher(broker.publish)
        )
        await runner.migrate()
        running = start(runner)
        await caught_up(env, runner, running)
        await running.halt()
    finally:
        await broker.stop()
    assert projection.fail_once == set()  # both failures happened
    assert_exactly_once_in_order(await applied_rows(env.pool), events)
    assert runner.counts == ProjectionCounts(consumed=40, applied=40)
    assert await read_dlq(env.bootstrap, env.topic) == []


async def test_two_runners_share_the_partitions_and_one_takes_over(env: Env) -> None:
    group = f"g-{uuid4().hex[:8]}"
    cadres = [f"c{i}" for i in range(40)]
    published: list[RecordedEvent] = cadre_events(cadres, per_cadre=5)
    await publish(env.bootstrap, env.topic, map(record_of, published))

    a = make_runner(env, Tally(env.topic, worker="A", delay=0.02), group_id=group, batch_size=20)
    b = make_runner(env, Tally(env.topic, worker="B", delay=0.02), group_id=group, batch_size=20)
    await a.migrate()
    running_a = start(a)

    async def applied_by(worker: str) -> int:
        return int(
            await env.pool.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.tally_applied WHERE worker = $1", worker
            )
        )

    await eventually(lambda: _async_gt(applied_by("A"), 0))
    running_b = start(b)

    async def publish_round() -> None:
        batch = cadre_events(cadres, per_cadre=1, first_n=len(published) // len(cadres) + 1)
        published.extend(batch)
        await publish(env.bootstrap, env.topic, map(record_of, batch))

    # Keep events coming while the group rebalances, until B has applied some (and then
    # for a while more, so both work side by side).
    async with asyncio.timeout(30):
        while await applied_by("B") == 0:
            await publish_round()
            await asyncio.sleep(0.25)
    for _ in range(8):
        await publish_round()
        await asyncio.sleep(0.25)
    await caught_up(env, a, running_a, running_b)
    a_partitions = {
        r["partition"]
        for r in await env.pool.fetch(
            f"SELECT DISTINCT partition FROM {SCHEMA}.tally_applied WHERE worker = 'A' "
            f"AND seq > (SELECT min(seq) FROM {SCHEMA}.tally_applied WHERE worker = 'B')"
        )
    }
    assert a_partitions, "A kept some partitions after B joined"
    assert len(a_partitions) < PARTITIONS, "the partitions were split"

    await running_a.halt()  # leaves the group: B takes over A's partitions
    for _ in range(5):
        await publish_round()
    await caught_up(env, b, running_b)
    await running_b.halt()

    rows = await applied_rows(env.pool)
    assert_exactly_once_in_order(rows, published)
    last_a = max(r["seq"] for r in rows if r["worker"] == "A")
    b_after = {r["partition"] for r in rows if r["worker"] == "B" and r["seq"] > last_a}
    assert b_after == set(range(PARTITIONS)), "B took over every partition"
    total, per_cadre = len(published), len(published) // len(cadres)
    # Offsets made it exact on their own: no record was processed twice, not even as a dup.
    assert await processed_counts(env.pool) == ProjectionCounts(consumed=total, applied=total)
    tallies = await env.pool.fetch(f"SELECT events, last_n FROM {SCHEMA}.tally")
    assert len(tallies) == len(cadres)
    assert all(t["events"] == per_cadre and t["last_n"] == per_cadre for t in tallies)


async def _async_gt(value: Awaitable[int], bound: int) -> bool:
    return await value > bound


async def test_two_owners_of_a_partition_at_once_never_apply_twice(env: Env) -> None:
    """The worst case of a rebalance: two workers both consuming every partition (here two
    groups, so neither ever gives one up). The offset rows' locks serialise them; the offset
    check alone drops what the other committed, so not even the event-id dedupe is needed."""
    events = cadre_events([f"c{i}" for i in range(25)], per_cadre=12)
    await publish(env.bootstrap, env.topic, map(record_of, events))
    x = make_runner(env, Tally(env.topic, worker="X", delay=0.01), batch_size=7)
    y = make_runner(env, Tally(env.topic, worker="Y", delay=0.01), batch_size=13)
    await x.migrate()
    running = [start(x), start(y)]
    try:
        await caught_up(env, x, *running)
    finally:
        for r in running:
            await r.halt()
    rows = await applied_rows(env.pool)
    assert_exactly_once_in_order(rows, events)
    assert {r["worker"] for r in rows} == {"X", "Y"}, "both did some of the work"
    total = len(events)
    assert await processed_counts(env.pool) == ProjectionCounts(consumed=total, applied=total)


def start_process(env: Env, dsn: str, worker: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PROJ_DSN": dsn,
        "PROJ_BOOTSTRAP": env.bootstrap,
        "PROJ_TOPIC": env.topic,
        # A new group each time: the dead member of the last one cannot delay the join, and
        # it shows again that positions come from PostgreSQL, not from the group.
        "PROJ_GROUP": f"g-{uuid4().hex[:8]}",
        "PROJ_WORKER": worker,
        "PROJ_BATCH_SIZE": "20",
        "PROJ_DELAY": "0.03",
    }
    return subprocess.Popen(
        [sys.executable, str(PROJECTION_PROCESS)], env=environment, stdout=subprocess.PIPE
    )


async def wait_for_exit(process: subprocess.Popen[bytes], seconds: float) -> int:
    async with asyncio.timeout(seconds):
        while process.poll() is None:
            await asyncio.sleep(0.05)
    return process.returncode


@pytest.mark.slow
async def test_kill_9_mid_batch_neither_loses_nor_repeats(env: Env, fresh_database: str) -> None:
    cadres = [f"c{i}" for i in range(30)]
    events = cadre_events(cadres, per_cadre=20)
    await publish(env.bootstrap, env.topic, map(record_of, events))
    observer = make_runner(env, Tally(env.topic))
    await observer.migrate()

    async def progress() -> int:
        return sum((await observer.stored_offsets()).values())

    for attempt in range(4):
        process = start_process(env, fresh_database, worker=f"k{attempt}")
        before = await progress()
        async with asyncio.timeout(30):
            while await progress() == before:
                await asyncio.sleep(0.02)
        # Batches take ~30 ms of apply each: a kill now most likely lands inside one.
        await asyncio.sleep(random.uniform(0.0, 0.2))
        process.send_signal(signal.SIGKILL)
        assert await wait_for_exit(process, 10) == -signal.SIGKILL
        if attempt == 0:
            assert await progress() < len(events), "killed with work left"
        if await progress() == len(events):
            break

    final = start_process(env, fresh_database, worker="final")
    try:
        await caught_up(env, observer)
    finally:
        final.send_signal(signal.SIGTERM)
        assert await wait_for_exit(final, 30) == 0
    assert_exactly_once_in_order(await applied_rows(env.pool), events)
    total = len(events)
    assert await processed_counts(env.pool) == ProjectionCounts(consumed=total, applied=total)


villages = EventRegistry()


@villages.register
class VillageSurveyed(DomainEvent):
    event_type: ClassVar[str] = "test.projection.VillageSurveyed"
    key_field: ClassVar[str] = "village_id"
    village_id: str
    name: str
    radius_m: int


class Villages:
    """A replica with an ``integer`` column, as the services' replicas of dispatch have; it
    records which transactions (deliveries) saw each event."""

    name = "villages"
    topics: Sequence[str]

    def __init__(self, topic: str) -> None:
        self.topics = (topic,)
        self.registry = villages
        self.table = Table(
            f"{SCHEMA}.villages",
            {"village_id": "text", "name": "text", "radius_m": "integer"},
            key=("village_id",),
        )
        #: Event id -> the ids of the transactions whose apply was given it: one per
        #: delivery (the bulk attempt and the one-by-one pass share their transaction).
        self.deliveries: defaultdict[UUID, set[int]] = defaultdict(set)

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(self.table.create())

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        transaction = await conn.fetchval("SELECT txid_current()")
        for delivery in deliveries:
            self.deliveries[delivery.event.event_id].add(transaction)
        rows = [
            (p.village_id, p.name, p.radius_m)
            for p in (d.payload for d in deliveries)
            if isinstance(p, VillageSurveyed)
        ]
        await self.table.insert(conn, rows, on_conflict="update")


def surveyed(village_id: str, *, name: str = "村", radius_m: int = 500) -> RecordedEvent:
    data = {"village_id": village_id, "name": name, "radius_m": radius_m}
    event = recorded(village_id, 1, event_type=VillageSurveyed.event_type, data=data)
    return event.model_copy(update={"key": village_id, "stream_id": f"village-{village_id}"})


async def test_a_value_the_database_refuses_is_dead_lettered_on_its_first_delivery(
    env: Env,
) -> None:
    """Issue 15: a radius beyond ``integer`` was retried for minutes, holding its partition.
    Now each refused value is dead-lettered at once, with the error in its reason, and its
    good neighbours (same partition, same batch) are applied."""
    good_before, good_after = surveyed("v-1", radius_m=500), surveyed("v-4", radius_m=800)
    overflow = surveyed("v-2", radius_m=10**12)  # asyncpg refuses to encode it as int4
    nul = surveyed("v-3", name="a\x00b")  # PostgreSQL refuses a NUL in text
    events = [good_before, overflow, nul, good_after]
    sent = await publish(env.bootstrap, env.topic, map(record_of, events), partition=0)
    broker = make_broker(env.settings)
    await broker.connect()
    projection = Villages(env.topic)
    try:
        runner = make_runner(env, projection, dead_letters=DeadLetterPublisher(broker.publish))
        await runner.migrate()
        running = start(runner)
        await caught_up(env, runner, running)
        health = runner.health(stall_seconds=120)
        await running.halt()
    finally:
        await broker.stop()

    rows = await env.pool.fetch(f"SELECT * FROM {SCHEMA}.villages ORDER BY village_id")
    assert [tuple(r) for r in rows] == [("v-1", "村", 500), ("v-4", "村", 800)]
    assert runner.counts == ProjectionCounts(consumed=4, applied=2, dead_lettered=2)
    assert await processed_counts(env.pool, "villages") == runner.counts
    assert await runner.lag() == {(env.topic, p): 0 for p in range(PARTITIONS)}
    assert (health.state, health.lag, health.error) == ("ok", 0, None)
    # Each bad record was delivered once: never retried.
    assert len(projection.deliveries[overflow.event_id]) == 1
    assert len(projection.deliveries[nul.event_id]) == 1

    dead = await read_dlq(env.bootstrap, env.topic)
    assert len(dead) == 2
    headers = [{k: v.decode() for k, v in record.headers} for record in dead]
    assert [(h["x-dlq-source-partition"], h["x-dlq-source-offset"]) for h in headers] == [
        ("0", str(sent[1].offset)),
        ("0", str(sent[2].offset)),
    ]
    assert [record.value for record in dead] == [record_of(overflow).value, record_of(nul).value]
    assert [h["ce_id"] for h in headers] == [str(overflow.event_id), str(nul.event_id)]
    reason = "projection villages could not apply the event: "
    assert headers[0]["x-dlq-reason"].startswith(reason + "DataError: "), headers[0]
    assert "int32" in headers[0]["x-dlq-reason"]
    assert headers[1]["x-dlq-reason"].startswith(reason + "CharacterNotInRepertoireError: ")
    assert "CharacterNotInRepertoireError" in headers[1]["x-dlq-error"]
    assert all(h["x-dlq-source-topic"] == env.topic for h in headers)


class Flaky(Tally):
    """Fails every apply like a database that is away, until ``failing`` is cleared."""

    failing = True

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        if self.failing:
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        await super().apply(conn, deliveries)


async def test_a_transient_failure_is_retried_with_backoff_and_reported_retrying(
    env: Env,
) -> None:
    events = cadre_events(["c1", "c2"], per_cadre=3)
    await publish(env.bootstrap, env.topic, map(record_of, events))
    broker = make_broker(env.settings)
    await broker.connect()
    projection = Flaky(env.topic)
    try:
        runner = make_runner(env, projection, dead_letters=DeadLetterPublisher(broker.publish))
        await runner.migrate()
        running = start(runner)
        try:

            async def retried_thrice() -> bool:
                error = runner.health(stall_seconds=120).error
                return error is not None and error["attempts"] >= 3

            await eventually(retried_thrice, seconds=15)
            health = runner.health(stall_seconds=120)
            assert health.state == "retrying"
            assert health.error is not None
            assert health.error["kind"] == "projection.batch_failed"
            assert health.error["error"].startswith("CannotConnectNowError")
            assert datetime.fromisoformat(health.error["since"]) <= datetime.now(UTC)
            assert health.error["retry_in"] > 0.1  # backing off
            assert runner.health(stall_seconds=0.001).state == "stalled"
            assert await applied_rows(env.pool) == []
            projection.failing = False
            await caught_up(env, runner, running)
        finally:
            await running.halt()
    finally:
        await broker.stop()
    assert_exactly_once_in_order(await applied_rows(env.pool), events)
    assert runner.counts == ProjectionCounts(consumed=6, applied=6)
    assert await read_dlq(env.bootstrap, env.topic) == []


def test_delivery_payload_is_the_decoded_event() -> None:
    event = recorded("c9", 7)
    payload = event.decode(registry)
    delivery = Delivery("t", 0, 0, event, SOURCE, payload)
    assert delivery.payload == Tallied(cadre_id="c9", n=7)
    assert json.loads(record_of(event).value) == {"cadre_id": "c9", "n": 7}
