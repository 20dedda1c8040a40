"""Reliability of the projection runtime against the real Kafka broker and PostgreSQL server.

What the issue "Read side" requires of a projection, tried the hard way:

1. ``kill -9`` at random moments, 3 to 5 times, while 50,000 events are consumed: the read
   model ends exactly as one uninterrupted run builds it (an order-independent digest
   computed by PostgreSQL), nothing applied twice, nothing lost;
2. poison records mixed into a larger stream over every partition: each dead-lettered once
   with its reason, everything else applied, the counts reconciling exactly;
3. the Kafka broker restarted in the middle of consumption, down for longer than the
   consumer's session timeout: the runner resumes on its own and loses nothing, events
   published after the restart (and dead letters) included;
4. two workers in one group, one killed with SIGKILL: the survivor takes over its partitions,
   and every event is applied exactly once.

The projection is ``Tally`` of ``test_projection.py``: one row per applied event (event id,
cadre, sequence number, topic, partition, offset and the worker that applied it; the event
id is deliberately not unique there, so an event applied twice leaves two rows instead of
failing) and one counter per cadre, which is off by one for every event applied twice or
lost. Each test prints its timings (and the random seed: ``ZHUCUN_TEST_SEED`` repeats a run)
with ``-s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).parent))

from test_projection import (
    SCHEMA,
    Exploded,
    Tally,
    assert_exactly_once_in_order,
    cadre_events,
    read_dlq,
    record_of,
    recorded,
)

from zhucun.infra import KafkaServer
from zhucun.shared.envelope import KafkaRecord, RecordedEvent
from zhucun.shared.kafka import (
    DeadLetterPublisher,
    dlq_topic,
    ensure_topics,
    event_topic,
    make_broker,
)
from zhucun.shared.projection import ProjectionCounts, ProjectionRunner
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import create_pool

pytestmark = pytest.mark.integration

PARTITIONS = 6
PROJECTION_PROCESS = Path(__file__).parent / "processes" / "projection_process.py"


def report(message: str) -> None:
    """Timings and seeds: shown with ``-s``, and in the captured output of a failure."""
    print(f"[reliability] {message}", flush=True)


def seeded() -> random.Random:
    seed = int(os.environ.get("ZHUCUN_TEST_SEED", random.randrange(1 << 32)))
    report(f"seed {seed} (ZHUCUN_TEST_SEED={seed} repeats this run)")
    return random.Random(seed)


def _nothing() -> None:
    pass


async def _now(value: bool) -> bool:
    return value


# --- producing fast ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    partition: int
    offset: int


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[KafkaRecord, int | None]]
) -> list[Sent]:
    """Publishes in bulk, in the given order (idempotent producer; batches filled during a
    linger); a ``None`` partition lets the key choose it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
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
            for r, partition in records
        ]
        return [Sent(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: Sequence[RecordedEvent]) -> None:
    started = time.monotonic()
    await produce(bootstrap, topic, ((record_of(e), None) for e in events))
    report(f"produced {len(events)} events in {time.monotonic() - started:.1f}s")


# --- fixtures and helpers ------------------------------------------------------------------


@dataclass
class Stage:
    """A topic (and its dead-letter topic) and a read-model database."""

    bootstrap: str
    settings: KafkaSettings
    topic: str
    dsn: str
    pool: asyncpg.Pool
    #: A runner that never runs: reads the stored offsets.
    observer: ProjectionRunner

    async def progress(self) -> int:
        """Records processed so far: the sum of the stored offsets (the topic is new)."""
        return sum((await self.observer.stored_offsets()).values())

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            end = await consumer.end_offsets(tps)
            return {(tp.topic, tp.partition): offset for tp, offset in end.items()}
        finally:
            await consumer.stop()


@pytest.fixture
async def stage(kafka_bootstrap: str, fresh_database: str) -> AsyncIterator[Stage]:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=PARTITIONS)
    topic = f"test.reliability.{uuid4().hex[:8]}"
    await ensure_topics(settings, [event_topic(topic, settings), dlq_topic(topic, settings)])
    pool = await create_pool(fresh_database, max_size=6)
    observer = ProjectionRunner(pool, Tally(topic), settings, schema=SCHEMA)
    await observer.migrate()
    yield Stage(kafka_bootstrap, settings, topic, fresh_database, pool, observer)
    await pool.close()


def make_runner(stage: Stage, projection: Tally, **options: Any) -> ProjectionRunner:
    options.setdefault("group_id", f"g-{uuid4().hex[:8]}")
    return ProjectionRunner(stage.pool, projection, stage.settings, schema=SCHEMA, **options)


@dataclass
class Running:
    """A runner consuming in this process."""

    runner: ProjectionRunner
    stop: asyncio.Event
    task: asyncio.Task[None]

    def alive(self) -> None:
        if self.task.done():
            self.task.result()
            raise AssertionError("the runner stopped")

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


def start(runner: ProjectionRunner) -> Running:
    stop = asyncio.Event()
    return Running(runner, stop, asyncio.create_task(runner.run(stop)))


async def until(
    check: Callable[[], Awaitable[bool]],
    seconds: float,
    what: str,
    *,
    alive: Callable[[], None] = _nothing,
) -> float:
    """Polls ``check`` until it is true (``alive`` raises when a worker died meanwhile);
    returns the seconds it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            while True:
                alive()
                if await check():
                    break
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {seconds}s: {what}") from None
    return time.monotonic() - started


async def caught_up(stage: Stage, seconds: float, *, alive: Callable[[], None] = _nothing) -> float:
    """Waits until the stored offsets reach the topic's end offsets; returns the seconds."""
    end = await stage.end_offsets()

    async def done() -> bool:
        stored = await stage.observer.stored_offsets()
        return all(stored.get(key, 0) >= offset for key, offset in end.items())

    return await until(done, seconds, "the projection caught up with the topic", alive=alive)


async def counts(pool: asyncpg.Pool) -> ProjectionCounts:
    row = await pool.fetchrow(
        f"SELECT consumed, applied, duplicates, dead_lettered FROM {SCHEMA}.projection_counts "
        "WHERE projection = 'tally'"
    )
    assert row is not None
    found = ProjectionCounts(**dict(row))
    assert found.consumed == found.applied + found.duplicates + found.dead_lettered, found
    return found


async def applied_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT * FROM {SCHEMA}.tally_applied ORDER BY seq")


async def assert_tallies(pool: asyncpg.Pool, events: Sequence[RecordedEvent]) -> None:
    """The per-cadre counters: an event applied twice (or lost) leaves one off by one."""
    expected: dict[str, tuple[int, int]] = {}
    for e in events:
        seen, last = expected.get(e.key, (0, 0))
        expected[e.key] = (seen + 1, max(last, e.data["n"]))
    rows = await pool.fetch(f"SELECT cadre_id, events, last_n FROM {SCHEMA}.tally")
    assert {r["cadre_id"]: (r["events"], r["last_n"]) for r in rows} == expected


async def read_model_digest(pool: asyncpg.Pool) -> dict[str, Any]:
    """An order-independent digest of the whole read model, computed by PostgreSQL: every
    table's rows in a fixed order, hashed (leaving out what depends on timing: the
    insertion sequence and the worker's name)."""
    row = await pool.fetchrow(
        f"""
        SELECT
            (SELECT md5(string_agg(
                        concat_ws('|', event_id, cadre_id, n, topic, partition, kafka_offset),
                        ';' ORDER BY topic, partition, kafka_offset, event_id))
             FROM {SCHEMA}.tally_applied) AS applied,
            (SELECT count(*) FROM {SCHEMA}.tally_applied) AS applied_rows,
            (SELECT md5(string_agg(concat_ws('|', cadre_id, events, last_n), ';'
                                   ORDER BY cadre_id))
             FROM {SCHEMA}.tally) AS tally,
            (SELECT md5(string_agg(event_id::text, ';' ORDER BY event_id))
             FROM {SCHEMA}.projection_events) AS remembered,
            (SELECT md5(string_agg(concat_ws('|', projection, topic, partition, next_offset),
                                   ';' ORDER BY projection, topic, partition))
             FROM {SCHEMA}.projection_offsets) AS offsets,
            (SELECT md5(string_agg(
                        concat_ws('|', projection, consumed, applied, duplicates, dead_lettered),
                        ';' ORDER BY projection))
             FROM {SCHEMA}.projection_counts) AS counts
        """
    )
    assert row is not None
    return dict(row)


async def open_transactions(pool: asyncpg.Pool, application_name: str) -> int:
    """The sessions of a worker (by their ``application_name``) inside a transaction: the
    worker applying a batch."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND xact_start IS NOT NULL",
            application_name,
        )
    )


# --- projection processes ------------------------------------------------------------------


@dataclass
class Worker:
    """A runner in its own OS process (``processes/projection_process.py``)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    #: Names its PostgreSQL sessions in ``pg_stat_activity``.
    application_name: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker {self.name} exited with {self.process.returncode}:\n{self.output()}"
            )

    async def ready(self, seconds: float = 30) -> None:
        """Waits for the "projection ready" line (a SIGTERM before it would kill it)."""

        async def printed() -> bool:
            return "projection ready" in self.log.read_text(errors="replace")

        await until(printed, seconds, f"worker {self.name} ready", alive=self.alive)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert await self.exit_code(10) == -signal.SIGKILL

    async def kill_inside_a_transaction(self, pool: asyncpg.Pool, seconds: float = 2) -> bool:
        """SIGKILL as soon as the worker is inside a transaction (applying a batch); after
        ``seconds`` anyway. Returns whether it was seen inside one."""
        found = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not (found := await open_transactions(pool, self.application_name) > 0):
                    self.alive()
        await self.kill()
        return found

    async def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        code = await self.exit_code(30)
        assert code == 0, f"worker {self.name} exited with {code}:\n{self.output()}"

    async def exit_code(self, seconds: float) -> int:
        async with asyncio.timeout(seconds):
            while self.process.poll() is None:
                await asyncio.sleep(0.02)
        return self.process.returncode


@dataclass
class Workers:
    stage: Stage
    logs: Path
    started: list[Worker] = field(default_factory=list)

    def spawn(
        self, name: str, *, group: str | None = None, batch_size: int = 500, delay: float = 0.0
    ) -> Worker:
        """Starts a worker; its output goes to a file, so a chatty log never fills a pipe
        and blocks it. ``delay`` is slept in every ``apply`` (inside the transaction)."""
        log = self.logs / f"worker-{name}.log"
        application_name = f"projection-{name}-{uuid4().hex[:6]}"
        dsn = urlsplit(self.stage.dsn)
        query = urlencode([*parse_qsl(dsn.query), ("application_name", application_name)])
        environment = {
            **os.environ,
            "PROJ_DSN": urlunsplit(dsn._replace(query=query)),
            "PROJ_BOOTSTRAP": self.stage.bootstrap,
            "PROJ_TOPIC": self.stage.topic,
            "PROJ_GROUP": group or f"g-{uuid4().hex[:8]}",
            "PROJ_WORKER": name,
            "PROJ_BATCH_SIZE": str(batch_size),
            "PROJ_DELAY": str(delay),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(PROJECTION_PROCESS)],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(name, process, log, application_name)
        self.started.append(worker)
        return worker


@pytest.fixture
def workers(stage: Stage, tmp_path: Path) -> Iterator[Workers]:
    """Spawns projection processes; whatever is left running after the test is killed."""
    spawned = Workers(stage, tmp_path)
    yield spawned
    for worker in spawned.started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(10)


# --- 1. kill -9 at random points -----------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_at_random_points_builds_the_same_read_model_as_an_uninterrupted_run(
    stage: Stage, workers: Workers, make_database: Callable[[], str]
) -> None:
    rng = seeded()
    cadres = [f"c{i:04d}" for i in range(2_500)]
    events = cadre_events(cadres, per_cadre=20)
    total = len(events)
    assert total == 50_000
    await produce_events(stage.bootstrap, stage.topic, events)
    assert all(offset > 0 for offset in (await stage.end_offsets()).values())

    # Killed 3 to 5 times: once at a random moment of its start (joining the group,
    # positioning its partitions, its first batches); then each time after a random share of
    # the work and a random moment, as soon as a batch's transaction is open (the workers
    # sleep 20 ms inside each ``apply``, so the kill lands inside it: the worst moment).
    kills = rng.randint(3, 5)
    marks = sorted(rng.uniform(0.05, 0.85) * total for _ in range(kills - 1))
    started = time.monotonic()
    worker = workers.spawn("k0", delay=0.02)
    await worker.ready()
    await asyncio.sleep(rng.uniform(0.0, 1.0))
    await worker.kill()
    killed_at = [await stage.progress()]
    in_flight = 0
    for attempt, mark in enumerate(marks, start=1):
        worker = workers.spawn(f"k{attempt}", delay=0.02)
        before = await stage.progress()

        async def far_enough(mark: float = mark, before: int = before) -> bool:
            done = await stage.progress()
            return done > before and done >= mark  # this worker committed something

        await until(far_enough, 40, f"worker k{attempt} past {mark:.0f}", alive=worker.alive)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        in_flight += await worker.kill_inside_a_transaction(stage.pool)
        killed_at.append(await stage.progress())
        assert killed_at[-1] < total, "killed with work left"
    report(
        f"killed {kills} times, with {killed_at} of {total} committed; "
        f"{in_flight} of {kills - 1} mid-stream kills hit an open batch transaction"
    )

    final = workers.spawn("final")
    try:
        await caught_up(stage, 60, alive=final.alive)
    finally:
        await final.terminate()
    report(f"the interrupted runs took {time.monotonic() - started:.1f}s")

    # Every event once, in each cadre's order; the per-cadre counters agree; and not one
    # record was processed twice, not even as a duplicate: the offsets alone made it exact.
    assert_exactly_once_in_order(await applied_rows(stage.pool), events)
    await assert_tallies(stage.pool, events)
    assert await counts(stage.pool) == ProjectionCounts(consumed=total, applied=total)

    # The same read model, digest for digest, as one uninterrupted run into another database.
    reference_pool = await create_pool(make_database(), max_size=6)
    try:
        reference = ProjectionRunner(
            reference_pool,
            Tally(stage.topic, worker="reference"),
            stage.settings,
            schema=SCHEMA,
            group_id=f"g-{uuid4().hex[:8]}",
            batch_size=500,
        )
        await reference.migrate()
        running = start(reference)
        try:
            seconds = await until(
                lambda: _now(reference.counts.consumed >= total),
                60,
                "the uninterrupted run finished",
                alive=running.alive,
            )
        finally:
            await running.halt()
        report(f"the uninterrupted run took {seconds:.1f}s")
        expected = await read_model_digest(reference_pool)
    finally:
        await reference_pool.close()
    assert expected["applied_rows"] == total
    assert await read_model_digest(stage.pool) == expected


# --- 2. poison mixed into a larger stream --------------------------------------------------

#: Per kind of poison: how to build one, what its ``x-dlq-reason`` says, its error's class.
POISON: dict[str, tuple[Callable[[str, int], KafkaRecord], str, str]] = {
    "not json": (
        lambda cadre, n: KafkaRecord(
            cadre.encode(), b"{not json", record_of(recorded(cadre, n)).headers
        ),
        "body is not JSON",
        "CloudEventError",
    ),
    "no headers": (
        lambda cadre, n: KafkaRecord(
            cadre.encode(), f'{{"cadre_id": "{cadre}", "n": {n}}}'.encode(), {"x-origin": "x"}
        ),
        "ce_specversion",
        "CloudEventError",
    ),
    "unknown type": (
        lambda cadre, n: record_of(recorded(cadre, n, event_type="test.projection.Unknown")),
        "unknown event type 'test.projection.Unknown'",
        "UnknownEventType",
    ),
    "contract": (
        lambda cadre, n: record_of(recorded(cadre, n, data={"cadre_id": cadre, "n": "many"})),
        "does not match its contract",
        "EventContractError",
    ),
    "apply fails": (
        lambda cadre, n: record_of(
            recorded(cadre, n, event_type=Exploded.event_type, data={"cadre_id": cadre})
        ),
        "could not apply the event: ValueError",
        "ValueError",
    ),
}


async def test_poison_mixed_into_a_large_stream_is_dead_lettered_and_the_counts_reconcile(
    stage: Stage,
) -> None:
    rng = seeded()
    cadres = [f"p{i:03d}" for i in range(300)]
    good = cadre_events(cadres, per_cadre=20)
    good_records = [record_of(e) for e in good]
    stream: list[tuple[KafkaRecord, int | None, str | None]] = [
        (r, None, None) for r in good_records
    ]
    # 12 of each kind at random places, spread over every partition ...
    for kind, (build, _, _) in POISON.items():
        for _ in range(12):
            number = sum(k is not None for _, _, k in stream)
            record = build(rng.choice(cadres), 1000 + number)
            stream.insert(rng.randrange(len(stream) + 1), (record, number % PARTITIONS, kind))
    # ... and 100 good events published again (the relay's at-least-once) after their first
    # copy, on the same partition (the key chooses it).
    for index in rng.sample(range(len(good)), 100):
        original = good_records[index]
        first = next(i for i, (r, _, _) in enumerate(stream) if r is original)
        stream.insert(rng.randrange(first + 1, len(stream) + 1), (original, None, None))
    sent = await produce(stage.bootstrap, stage.topic, ((r, p) for r, p, _ in stream))
    poison = {
        (s.partition, s.offset): (record, kind)
        for s, (record, _, kind) in zip(sent, stream, strict=True)
        if kind is not None
    }
    assert len(poison) == 60
    assert {partition for partition, _ in poison} == set(range(PARTITIONS))

    broker = make_broker(stage.settings)
    await broker.connect()
    try:
        runner = make_runner(
            stage,
            Tally(stage.topic),
            batch_size=250,
            dead_letters=DeadLetterPublisher(broker.publish),
        )
        running = start(runner)
        try:
            seconds = await caught_up(stage, 60, alive=running.alive)
        finally:
            await running.halt()
    finally:
        await broker.stop()
    report(f"{len(stream)} records, 60 of them poison, consumed in {seconds:.1f}s")

    assert_exactly_once_in_order(await applied_rows(stage.pool), good)
    await assert_tallies(stage.pool, good)
    expected = ProjectionCounts(
        consumed=len(stream), applied=len(good), duplicates=100, dead_lettered=60
    )
    assert await counts(stage.pool) == expected
    assert runner.counts == expected

    # The dead-letter topic holds exactly the poison records, each once, with its reason,
    # byte for byte.
    dead = await read_dlq(stage.bootstrap, stage.topic)
    by_source: dict[tuple[int, int], tuple[Any, dict[str, str]]] = {}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["x-dlq-source-topic"] == stage.topic
        where = (int(headers["x-dlq-source-partition"]), int(headers["x-dlq-source-offset"]))
        assert where not in by_source, f"dead-lettered twice: {where}"
        by_source[where] = (record, headers)
    assert len(dead) == 60
    assert set(by_source) == set(poison)
    for where, (original, kind) in poison.items():
        record, headers = by_source[where]
        _, reason, error = POISON[kind]
        assert reason in headers["x-dlq-reason"], kind
        assert error in headers["x-dlq-error"], kind
        assert (record.key, record.value) == (original.key, original.value), kind
    # A record whose ``apply`` failed is not remembered as applied: re-publishing it once the
    # cause is fixed applies it.
    remembered = await stage.pool.fetchval(
        f"SELECT count(*) FROM {SCHEMA}.projection_events WHERE event_id = ANY($1::uuid[])",
        [r.headers["ce_id"] for r, kind in poison.values() if kind == "apply fails"],
    )
    assert remembered == 0


# --- 3. the broker restarted mid-consumption -----------------------------------------------

#: The broker stays down at least this long: beyond the consumer's session timeout (10 s).
DOWN_SECONDS = 12
#: How long the runner may take to finish once the broker is back.
RECOVERY_SECONDS = 90


@pytest.mark.slow
async def test_a_broker_restart_mid_consumption_is_survived_without_loss(
    stage: Stage, kafka_server: KafkaServer
) -> None:
    cadres = [f"b{i:04d}" for i in range(1_000)]
    first = cadre_events(cadres, per_cadre=20)
    await produce_events(stage.bootstrap, stage.topic, first)
    broker = make_broker(stage.settings)
    await broker.connect()
    runner = make_runner(
        stage,
        Tally(stage.topic, delay=0.05),  # about 2,500 events a second: the stop lands mid-way
        batch_size=200,
        dead_letters=DeadLetterPublisher(broker.publish),
    )
    running = start(runner)
    try:
        await until(
            lambda: _at_least(stage.progress(), 4_000), 30, "a fifth applied", alive=running.alive
        )
        stopping = time.monotonic()
        await kafka_server.astop()
        at_stop = await stage.progress()
        report(f"broker stopped in {time.monotonic() - stopping:.1f}s with {at_stop} applied")
        assert at_stop < len(first), "stopped with work left"
        # The runner sees it (events waiting, no progress) ...
        await until(lambda: _now(runner.stuck(1.0)), 30, "reported stuck", alive=running.alive)
        # ... and the broker stays down past the consumer's session timeout.
        await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - stopping)))
        starting = time.monotonic()
        await kafka_server.astart()
        back = time.monotonic()
        report(f"broker started in {back - starting:.1f}s, down {back - stopping:.1f}s in all")

        # New events after the restart, poison among them: the consumer has to fetch again
        # (not just drain what it had prefetched) and the dead-letter producer publish again.
        second = cadre_events(cadres, per_cadre=2, first_n=21)
        poison = [POISON[k][0](c, 999) for k in ("not json", "unknown type") for c in cadres[:3]]
        await produce(
            stage.bootstrap,
            stage.topic,
            [(record_of(e), None) for e in second] + [(p, None) for p in poison],
        )
        await caught_up(stage, RECOVERY_SECONDS, alive=running.alive)
        report(f"caught up {time.monotonic() - back:.1f}s after the broker was back")
        await until(lambda: _now(not runner.stuck(0)), 10, "no longer stuck", alive=running.alive)
    finally:
        await running.halt()
        await broker.stop()

    events = first + second
    assert_exactly_once_in_order(await applied_rows(stage.pool), events)
    await assert_tallies(stage.pool, events)
    total = len(events) + len(poison)
    expected = ProjectionCounts(consumed=total, applied=len(events), dead_lettered=len(poison))
    assert await counts(stage.pool) == expected
    dead = await read_dlq(stage.bootstrap, stage.topic)
    assert sorted(r.value for r in dead) == sorted(p.value for p in poison)


async def _at_least(value: Awaitable[int], bound: int) -> bool:
    return await value >= bound


# --- 4. two workers, one killed ------------------------------------------------------------


@pytest.mark.slow
async def test_a_killed_worker_s_partitions_are_taken_over_without_loss_or_repeats(
    stage: Stage, workers: Workers
) -> None:
    rng = seeded()
    cadres = [f"w{i:04d}" for i in range(1_000)]
    first = cadre_events(cadres, per_cadre=20)
    await produce_events(stage.bootstrap, stage.topic, first)
    group = f"g-{uuid4().hex[:8]}"
    # Slowed down (50 ms per batch of 100, inside its transaction), so both still have work
    # when A dies, and A dies inside a batch.
    a = workers.spawn("A", group=group, batch_size=100, delay=0.05)
    b = workers.spawn("B", group=group, batch_size=100, delay=0.05)
    await a.ready()
    await b.ready()

    def both_alive() -> None:
        a.alive()
        b.alive()

    async def applied_by(worker: str) -> int:
        return int(
            await stage.pool.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.tally_applied WHERE worker = $1", worker
            )
        )

    # Both have applied a few batches: the group has settled on its split.
    async def settled() -> bool:
        return min(await applied_by("A"), await applied_by("B")) >= 300

    await until(settled, 40, "both workers applied events", alive=both_alive)
    split_at = int(await stage.pool.fetchval(f"SELECT max(seq) FROM {SCHEMA}.tally_applied"))

    # A has committed since the split (on a loaded machine a batch may take longer than the
    # random pause below): it holds partitions when it dies.
    async def a_applied_since_the_split() -> bool:
        return bool(
            await stage.pool.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.tally_applied WHERE worker = 'A' AND seq > $1",
                split_at,
            )
        )

    await until(a_applied_since_the_split, 40, "A applying after the split", alive=both_alive)
    await asyncio.sleep(rng.uniform(0.1, 0.6))
    inside = await a.kill_inside_a_transaction(stage.pool)
    killed = time.monotonic()
    at_kill = await stage.progress()
    report(f"A killed with {at_kill} of {len(first)} applied (inside a transaction: {inside})")
    assert at_kill < len(first), "killed with work left"

    # More events on every partition: B must consume A's partitions, not just finish its own.
    second = cadre_events(cadres, per_cadre=2, first_n=21)
    await produce(stage.bootstrap, stage.topic, [(record_of(e), None) for e in second])
    await caught_up(stage, 60, alive=b.alive)
    report(f"B caught up {time.monotonic() - killed:.1f}s after A was killed")
    await b.terminate()

    events = first + second
    rows = await applied_rows(stage.pool)
    assert_exactly_once_in_order(rows, events)
    await assert_tallies(stage.pool, events)
    total = len(events)
    # Not one record processed twice, not even as a duplicate: the offsets made it exact.
    assert await counts(stage.pool) == ProjectionCounts(consumed=total, applied=total)

    # The partitions A held when it died: B applied everything after A's last event there.
    last_of_a: dict[int, int] = {}
    for r in rows:
        if r["worker"] == "A" and r["seq"] > split_at:
            last_of_a[r["partition"]] = max(last_of_a.get(r["partition"], -1), r["kafka_offset"])
    assert last_of_a, "A held partitions when it was killed"
    assert len(last_of_a) < PARTITIONS, "the partitions were split between A and B"
    for partition, offset in last_of_a.items():
        after = [r for r in rows if r["partition"] == partition and r["kafka_offset"] > offset]
        assert after, f"partition {partition}: nothing after A's last event"
        assert {r["worker"] for r in after} == {"B"}, f"partition {partition} not taken over"
