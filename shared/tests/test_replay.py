"""Replay against a real Kafka broker and PostgreSQL server: rebuilds equal the model the
normal runner builds, the switch is atomic for readers, as-of builds stop where asked, and
the digest compares models whatever the order of their rows.

The test projection ``Ledger`` keeps a row per event (written with COPY) and a per-cadre
total (an upsert whose ``last_n`` depends on the order of a cadre's events), in a schema of
its own: ``Ledger(schema, topic=...)``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from zhucun.shared.envelope import KafkaRecord, RecordedEvent, to_kafka
from zhucun.shared.events import GENESIS_HASH, DomainEvent, EventRegistry
from zhucun.shared.kafka import DeadLetterPublisher, ensure_topics, event_topic
from zhucun.shared.projection import Delivery, PoisonRecord, ProjectionRunner
from zhucun.shared.replay import (
    RebuildReport,
    ReplayError,
    Tuning,
    digest,
    drop_schema,
    model_tables,
    rebuild,
    rebuild_as_of,
)
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import create_pool

pytestmark = pytest.mark.integration

PARTITIONS = 4
SOURCE = "/zhucun/test"

registry = EventRegistry()


@registry.register
class Booked(DomainEvent):
    event_type: ClassVar[str] = "test.replay.Booked"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    n: int
    amount: int
    day: date


@registry.register
class Exploded(DomainEvent):
    """Decodes fine, but the projection cannot apply it."""

    event_type: ClassVar[str] = "test.replay.Exploded"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str


class Ledger:
    """The test projection: ``entries`` (a row per event) and ``totals`` (per cadre)."""

    name = "ledger"
    registry = registry
    topics: Sequence[str]

    def __init__(self, schema: str, *, topic: str) -> None:
        self.schema = schema
        self.topics = (topic,)

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS "{self.schema}".entries (
                event_id uuid PRIMARY KEY,
                cadre_id text NOT NULL,
                n int NOT NULL,
                amount int NOT NULL,
                day date NOT NULL,
                recorded_at timestamptz NOT NULL
            );
            CREATE TABLE IF NOT EXISTS "{self.schema}".totals (
                cadre_id text PRIMARY KEY,
                events int NOT NULL,
                amount bigint NOT NULL,
                last_n int NOT NULL
            )
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        if any(isinstance(d.payload, Exploded) for d in deliveries):
            raise ValueError("cannot apply an Exploded event")
        booked = [(d, d.payload) for d in deliveries if isinstance(d.payload, Booked)]
        await conn.copy_records_to_table(
            "entries",
            schema_name=self.schema,
            records=[
                (d.event.event_id, p.cadre_id, p.n, p.amount, p.day, d.event.recorded_at)
                for d, p in booked
            ],
        )
        totals: dict[str, list[int]] = {}
        for _, p in booked:
            total = totals.setdefault(p.cadre_id, [0, 0, 0])
            total[0] += 1
            total[1] += p.amount
            total[2] = p.n
        await conn.execute(
            f"""
            INSERT INTO "{self.schema}".totals AS t (cadre_id, events, amount, last_n)
            SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[])
            ON CONFLICT (cadre_id) DO UPDATE SET
                events = t.events + EXCLUDED.events,
                amount = t.amount + EXCLUDED.amount,
                last_n = EXCLUDED.last_n
            """,
            list(totals),
            [v[0] for v in totals.values()],
            [v[1] for v in totals.values()],
            [v[2] for v in totals.values()],
        )


# --- events and publishing -----------------------------------------------------------------


def booked(cadre: str, n: int, *, causation: bool = True) -> RecordedEvent:
    now = datetime.now(UTC)
    event = Booked(cadre_id=cadre, n=n, amount=n * 7 % 13, day=date(2025, 3, 1 + n % 28))
    return RecordedEvent(
        event_id=uuid4(),
        stream_id=f"cadre-{cadre}",
        stream_version=n,
        global_position=n,
        event_type=event.event_type,
        schema_version=1,
        key=cadre,
        data=event.to_data(),
        occurred_at=now - timedelta(minutes=5),
        recorded_at=now,
        correlation_id=uuid4(),
        causation_id=uuid4() if causation else None,
        actor="tester:service" if causation else None,
        prev_hash=GENESIS_HASH,
        hash="f" * 64,
    )


def other(cadre: str, event_type: str, data: dict[str, Any]) -> RecordedEvent:
    return booked(cadre, 1).model_copy(update={"event_type": event_type, "data": data})


def cadre_events(cadres: int, per_cadre: int, first_n: int = 1) -> list[RecordedEvent]:
    return [
        booked(f"c{c}", n, causation=n % 3 != 0)
        for n in range(first_n, first_n + per_cadre)
        for c in range(cadres)
    ]


def record_of(event: RecordedEvent) -> KafkaRecord:
    return to_kafka(event, source=SOURCE)


async def publish(bootstrap: str, topic: str, events: Iterable[RecordedEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = []
        for event in events:
            r = record_of(event)
            futures.append(
                await producer.send(
                    topic,
                    r.value,
                    key=r.key,
                    headers=[(k, v.encode()) for k, v in r.headers.items()],
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


# --- fixtures and helpers ------------------------------------------------------------------


@dataclass
class Env:
    bootstrap: str
    kafka: KafkaSettings
    dsn: str
    pool: asyncpg.Pool

    async def topic(self) -> str:
        name = f"test.replay.{uuid4().hex[:8]}"
        await ensure_topics(self.kafka, [event_topic(name, self.kafka)])
        return name


@pytest.fixture
async def env(kafka_bootstrap: str, fresh_database: str) -> AsyncIterator[Env]:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=PARTITIONS)
    pool = await create_pool(fresh_database, max_size=8)
    yield Env(kafka_bootstrap, kafka, fresh_database, pool)
    await pool.close()


def ledger(topic: str) -> functools.partial[Ledger]:
    return functools.partial(Ledger, topic=topic)


class HookedLedger(Ledger):
    """Runs ``hook`` (once) before its first batch: something happening mid-rebuild."""

    def __init__(
        self, schema: str, *, topic: str, hook: Callable[[], Awaitable[None]] | None
    ) -> None:
        super().__init__(schema, topic=topic)
        self.hook = hook

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook()
        await super().apply(conn, deliveries)


class DeadLetters:
    """A dead-letter publisher's sink, for the live runner."""

    def __init__(self) -> None:
        self.parked: list[dict[str, str]] = []

    async def publish(self, value: bytes, topic: str, **options: Any) -> None:
        self.parked.append(options["headers"])


@dataclass
class Live:
    runner: ProjectionRunner
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 20)


async def start_live(env: Env, topic: str, schema: str, dead: DeadLetters) -> Live:
    runner = ProjectionRunner(
        env.pool,
        Ledger(schema, topic=topic),
        env.kafka,
        schema=schema,
        group_id=f"g-{uuid4().hex[:8]}",
        batch_size=13,
        dead_letters=DeadLetterPublisher(dead.publish),
    )
    await runner.migrate()
    stop = asyncio.Event()
    return Live(runner, stop, asyncio.create_task(runner.run(stop)))


async def caught_up(env: Env, topic: str, live: Live, seconds: float = 30) -> None:
    end = await end_offsets(env.bootstrap, topic)
    async with asyncio.timeout(seconds):
        while True:
            if live.task.done():
                live.task.result()
                raise AssertionError("the live runner stopped")
            stored = await live.runner.stored_offsets()
            if all(stored.get(key, 0) >= offset for key, offset in end.items()):
                return
            await asyncio.sleep(0.1)


async def model_digest(pool: asyncpg.Pool, schema: str) -> str:
    return await digest(pool, schema, await model_tables(pool, schema))


async def totals(pool: asyncpg.Pool, schema: str) -> dict[str, tuple[int, int]]:
    rows = await pool.fetch(f'SELECT cadre_id, events, last_n FROM "{schema}".totals')
    return {r["cadre_id"]: (r["events"], r["last_n"]) for r in rows}


# --- digest --------------------------------------------------------------------------------


async def test_digest_is_order_independent_and_sees_every_change(env: Env) -> None:
    rows = [(i, f"name {i}", i * 1.5, datetime(2025, 1, 1, i % 24, tzinfo=UTC)) for i in range(50)]

    async def fill(schema: str, ordered: Sequence[tuple[Any, ...]]) -> None:
        await env.pool.execute(
            f"""
            CREATE SCHEMA "{schema}";
            CREATE TABLE "{schema}".items (
                seq bigserial, id int PRIMARY KEY, name text, score float8, at timestamptz
            );
            CREATE TABLE "{schema}".empty (id int)
            """
        )
        for row in ordered:
            await env.pool.execute(
                f'INSERT INTO "{schema}".items (id, name, score, at) VALUES ($1, $2, $3, $4)', *row
            )

    await fill("forward", rows)
    await fill("backward", list(reversed(rows)))
    tables = ["items", "empty"]
    seq = {"items": ["seq"]}
    forward = await digest(env.pool, "forward", tables, ignore_columns=seq)
    assert forward == await digest(env.pool, "backward", ["empty", "items"], ignore_columns=seq)
    # The insertion order shows in the bigserial, which is why it can be left out.
    assert await digest(env.pool, "forward", tables) != await digest(env.pool, "backward", tables)
    # The session's time zone does not change the text form of a timestamptz.
    async with env.pool.acquire() as conn:
        await conn.execute("SET TimeZone = 'Asia/Shanghai'")
    assert await digest(env.pool, "forward", tables, ignore_columns=seq) == forward

    await env.pool.execute("UPDATE backward.items SET name = 'changed' WHERE id = 7")
    assert await digest(env.pool, "backward", tables, ignore_columns=seq) != forward
    await env.pool.execute("UPDATE backward.items SET name = 'name 7' WHERE id = 7")
    assert await digest(env.pool, "backward", tables, ignore_columns=seq) == forward
    # A duplicated row is not cancelled out (a sum, not a XOR).
    await env.pool.execute("INSERT INTO backward.empty VALUES (1), (1)")
    await env.pool.execute("INSERT INTO forward.empty VALUES (2), (2)")
    assert await digest(env.pool, "backward", tables, ignore_columns=seq) != await digest(
        env.pool, "forward", tables, ignore_columns=seq
    )
    await env.pool.execute("DELETE FROM backward.items WHERE id = 3")
    assert await digest(env.pool, "backward", tables, ignore_columns=seq) != forward

    with pytest.raises(ValueError, match="runtime tables"):
        await digest(env.pool, "forward", ["items", "projection_offsets"])
    with pytest.raises(ValueError, match="no table"):
        await digest(env.pool, "forward", ["missing"])


# --- rebuild and switch --------------------------------------------------------------------


async def test_rebuild_equals_the_live_model_and_the_live_runner_carries_on(env: Env) -> None:
    topic = await env.topic()
    events = cadre_events(cadres=15, per_cadre=12)
    again = events[5:9]  # the relay re-publishing after a crash: duplicates
    poison = [
        other("c3", "test.replay.Unknown", {"cadre_id": "c3"}),
        other("c4", Exploded.event_type, {"cadre_id": "c4"}),
        other("c5", Booked.event_type, {"cadre_id": "c5"}),  # violates the contract
    ]
    await publish(env.bootstrap, topic, events[:100])
    await publish(env.bootstrap, topic, [*again, *poison])
    await publish(env.bootstrap, topic, events[100:])
    records = len(events) + len(again) + len(poison)

    dead = DeadLetters()
    live = await start_live(env, topic, "books", dead)
    try:
        await caught_up(env, topic, live)
        assert len(dead.parked) == 3
        before = await model_digest(env.pool, "books")
        assert sum(e for e, _ in (await totals(env.pool, "books")).values()) == len(events)

        # Rebuilt while the live runner keeps running, in small batches. Mid-rebuild, more
        # events arrive and the live runner applies them to the live (soon old) model.
        more = cadre_events(cadres=15, per_cadre=3, first_n=13)

        async def meanwhile() -> None:
            await publish(env.bootstrap, topic, more)
            await caught_up(env, topic, live)

        report = await rebuild(
            env.pool,
            functools.partial(HookedLedger, topic=topic, hook=meanwhile),
            env.kafka,
            live_schema="books",
            tuning=Tuning(batch_size=17),
        )
        assert report.digest == before, "the rebuild stops at the end offsets taken at start"
        assert report.schema == "books"
        assert report.previous_schema is not None
        assert report.previous_schema.startswith("books__old_")
        assert (report.events, report.applied, report.duplicates, report.rejected) == (
            records,
            len(events),
            len(again),
            3,
        )
        assert sorted(r.kind for r in report.rejects) == [
            "apply-failed",
            "contract-violation",
            "unknown-event-type",
        ]
        assert report.tables == ("entries", "totals")
        assert sum(report.stop_offsets.values()) == records
        assert report.events_per_second > 0
        # The old model had gone on with the events that arrived meanwhile.
        assert await totals(env.pool, report.previous_schema) == {
            f"c{c}": (15, 15) for c in range(15)
        }
        old_offsets = await env.pool.fetch(
            f'SELECT * FROM "{report.previous_schema}".projection_offsets ORDER BY partition'
        )

        # Before the switch, the rebuilt model caught up with the live one: the events that
        # arrived meanwhile are in it, at the very offsets the live runner had committed.
        assert report.caught_up_events == len(more)
        assert report.switched_at == await end_offsets(env.bootstrap, topic)
        assert await totals(env.pool, "books") == {f"c{c}": (15, 15) for c in range(15)}
        assert await model_digest(env.pool, "books") == await model_digest(
            env.pool, report.previous_schema
        )
        counts = await env.pool.fetchrow(
            "SELECT consumed, applied, duplicates, dead_lettered FROM books.projection_counts"
        )
        assert counts is not None
        assert dict(counts) == {
            "consumed": records + len(more),
            "applied": len(events) + len(more),
            "duplicates": len(again),
            "dead_lettered": 3,
        }
        assert await env.pool.fetchval("SELECT count(*) FROM books.projection_events") == len(
            events
        ) + len(more)
        # The rebuilt dedupe table is complete: late duplicates are recognised.
        await publish(env.bootstrap, topic, [events[0], events[-1]])
        await caught_up(env, topic, live)
        assert await totals(env.pool, "books") == {f"c{c}": (15, 15) for c in range(15)}
        assert (
            await env.pool.fetch(
                f'SELECT * FROM "{report.previous_schema}".projection_offsets ORDER BY partition'
            )
            == old_offsets
        ), "the live runner no longer writes to the old schema"
    finally:
        await live.halt()

    # And equals a model built from scratch up to the same offsets.
    check = await rebuild_as_of(
        env.pool,
        ledger(topic),
        env.kafka,
        scratch_schema="books_check",
        until=await end_offsets(env.bootstrap, topic),
    )
    assert check.duplicates == len(again) + 2
    assert await model_digest(env.pool, "books") == check.digest
    await drop_schema(env.pool, report.previous_schema)
    assert not await env.pool.fetchval(
        "SELECT 1 FROM pg_namespace WHERE nspname = $1", report.previous_schema
    )


async def test_the_switch_is_atomic_for_readers(env: Env) -> None:
    topic = await env.topic()
    first = cadre_events(cadres=10, per_cadre=20)
    await publish(env.bootstrap, topic, first)
    # No live schema yet: the first build is simply renamed into place.
    initial = await rebuild(env.pool, ledger(topic), env.kafka, live_schema="atomic")
    assert initial.previous_schema is None
    role = f"replay_reader_{uuid4().hex[:8]}"
    await env.pool.execute(f"CREATE ROLE {role}")
    await env.pool.execute(f"GRANT USAGE ON SCHEMA atomic TO {role}")
    await env.pool.execute(f"GRANT SELECT ON atomic.totals TO {role}")
    second = cadre_events(cadres=10, per_cadre=10, first_n=21)
    await publish(env.bootstrap, topic, second)
    old_model, new_model = len(first), len(first) + len(second)

    seen: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    done = asyncio.Event()

    async def reader() -> None:
        # One connection each, its statements prepared and cached by asyncpg.
        async with env.pool.acquire() as conn:
            while not done.is_set():
                try:
                    row = await conn.fetchrow(
                        "SELECT (SELECT count(*) FROM atomic.entries) AS entries,"
                        " (SELECT coalesce(sum(events), 0) FROM atomic.totals) AS totals"
                    )
                    assert row is not None
                    seen.append((row["entries"], row["totals"]))
                    n = await conn.fetchval("SELECT count(*) FROM atomic.totals")
                    assert n == 10
                except Exception as error:
                    failures.append(error)
                await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    try:
        await asyncio.sleep(0.2)
        report = await rebuild(
            env.pool, ledger(topic), env.kafka, live_schema="atomic", tuning=Tuning(batch_size=9)
        )
        await asyncio.sleep(0.3)
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert not failures, failures[:3]
    assert set(seen) == {(old_model, old_model), (new_model, new_model)}, set(seen)
    assert seen[-1] == (new_model, new_model)
    assert report.events == new_model
    # The live schema's grants moved to the rebuilt one.
    assert await env.pool.fetchval(
        "SELECT has_table_privilege($1, 'atomic.totals', 'SELECT')"
        " AND has_schema_privilege($1, 'atomic', 'USAGE')",
        role,
    )
    await env.pool.execute(f'DROP SCHEMA "{report.previous_schema}" CASCADE')
    await env.pool.execute(f"DROP OWNED BY {role}")
    await env.pool.execute(f"DROP ROLE {role}")


async def test_a_schema_shared_with_other_tables_is_not_switched(env: Env) -> None:
    topic = await env.topic()
    await publish(env.bootstrap, topic, cadre_events(cadres=3, per_cadre=2))
    await env.pool.execute("CREATE SCHEMA service; CREATE TABLE service.events (id int)")
    with pytest.raises(ReplayError, match="events"):
        await rebuild(env.pool, ledger(topic), env.kafka, live_schema="service")
    schemas = {r[0] for r in await env.pool.fetch("SELECT nspname FROM pg_namespace")}
    assert "service" in schemas
    assert not any(s.startswith("service__") for s in schemas), "nothing is left behind"
    with pytest.raises(ReplayError, match="projection"):
        await drop_schema(env.pool, "service")


async def test_worker_processes_build_the_same_model(env: Env) -> None:
    topic = await env.topic()
    events = cadre_events(cadres=12, per_cadre=15)
    await publish(env.bootstrap, topic, [*events, *events[10:14]])
    one = await rebuild_as_of(
        env.pool,
        ledger(topic),
        env.kafka,
        scratch_schema="one_process",
        until=await end_offsets(env.bootstrap, topic),
        tuning=Tuning(batch_size=11),
    )
    two = await rebuild(
        env.pool,
        ledger(topic),
        env.kafka,
        live_schema="two_processes",
        tuning=Tuning(batch_size=11),
        workers=2,
        dsn=env.dsn,
    )
    assert two.digest == one.digest
    assert one.worker_peak_rss_mib is None
    assert two.worker_peak_rss_mib is not None
    assert two.worker_peak_rss_mib > 0
    assert (two.events, two.applied, two.duplicates) == (len(events) + 4, len(events), 4)
    with pytest.raises(ValueError, match="dsn"):
        await rebuild(env.pool, ledger(topic), env.kafka, live_schema="x", workers=2)
    with pytest.raises(ValueError, match="picklable"):
        await rebuild(
            env.pool,
            lambda schema: Ledger(schema, topic=topic),
            env.kafka,
            live_schema="x",
            workers=2,
            dsn=env.dsn,
        )


async def test_strict_stops_at_the_first_poison_record(env: Env) -> None:
    topic = await env.topic()
    events = cadre_events(cadres=2, per_cadre=3)
    await publish(env.bootstrap, topic, [*events, other("c1", "test.replay.Unknown", {})])
    with pytest.raises(PoisonRecord, match="unknown-event-type"):
        await rebuild_as_of(
            env.pool,
            ledger(topic),
            env.kafka,
            scratch_schema="strict",
            until=await end_offsets(env.bootstrap, topic),
            tuning=Tuning(strict=True),
        )


# --- as of ---------------------------------------------------------------------------------


async def built_by_the_runner(env: Env, events: Sequence[RecordedEvent], schema: str) -> str:
    """The digest of a model the normal runner builds from only ``events``."""
    topic = await env.topic()
    await publish(env.bootstrap, topic, events)
    live = await start_live(env, topic, schema, DeadLetters())
    try:
        await caught_up(env, topic, live)
    finally:
        await live.halt()
    return await model_digest(env.pool, schema)


async def test_as_of_offsets_and_as_of_a_time_give_the_model_at_that_point(env: Env) -> None:
    topic = await env.topic()
    early = cadre_events(cadres=8, per_cadre=10)
    late = cadre_events(cadres=8, per_cadre=5, first_n=11)
    await publish(env.bootstrap, topic, early)
    at_first = await end_offsets(env.bootstrap, topic)
    await asyncio.sleep(0.05)
    moment = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await publish(env.bootstrap, topic, late)
    expected = await built_by_the_runner(env, early, "reference")
    everything = await built_by_the_runner(env, [*early, *late], "reference_all")

    by_offsets = await rebuild_as_of(
        env.pool, ledger(topic), env.kafka, scratch_schema="audit_offsets", until=at_first
    )
    assert by_offsets.digest == expected
    assert by_offsets.events == len(early)
    assert dict(by_offsets.stop_offsets) == at_first

    told: list[tuple[int, int]] = []
    by_time = await rebuild_as_of(
        env.pool,
        ledger(topic),
        env.kafka,
        scratch_schema="audit_time",
        until=moment,
        progress=lambda done, total: told.append((done, total)),
    )
    assert by_time.digest == expected
    assert dict(by_time.stop_offsets) == at_first
    # Progress was told: from nothing to everything, never backwards.
    assert told[0] == (0, len(early))
    assert told[-1] == (len(early), len(early))
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    # The scratch schema is there to query.
    assert await env.pool.fetchval("SELECT count(*) FROM audit_time.entries") == len(early)

    now = await rebuild_as_of(
        env.pool, ledger(topic), env.kafka, scratch_schema="audit_now", until=datetime.now(UTC)
    )
    assert now.digest == everything
    before = await rebuild_as_of(
        env.pool,
        ledger(topic),
        env.kafka,
        scratch_schema="audit_before",
        until=moment - timedelta(days=1),
    )
    assert before.events == 0
    assert await env.pool.fetchval("SELECT count(*) FROM audit_before.entries") == 0

    with pytest.raises(ReplayError, match="exists"):
        await rebuild_as_of(
            env.pool, ledger(topic), env.kafka, scratch_schema="audit_time", until=moment
        )
    with pytest.raises(ValueError, match="missing"):
        await rebuild_as_of(
            env.pool,
            ledger(topic),
            env.kafka,
            scratch_schema="audit_partial",
            until={(topic, 0): 1},
        )
    with pytest.raises(ValueError, match="naive"):
        await rebuild_as_of(
            env.pool,
            ledger(topic),
            env.kafka,
            scratch_schema="audit_naive",
            until=datetime(2025, 1, 1),
        )


def test_report_rate() -> None:
    report = RebuildReport(
        projection="p",
        schema="s",
        previous_schema=None,
        events=100,
        applied=100,
        duplicates=0,
        rejected=0,
        seconds=2.0,
        digest="d",
        digest_seconds=0.1,
        tables=(),
        start_offsets={},
        stop_offsets={},
    )
    assert report.events_per_second == 50.0
