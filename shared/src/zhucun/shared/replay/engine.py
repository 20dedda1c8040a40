"""The replay engine: reads a projection's topics from fixed offsets and applies them into a
schema of its own through the shared exactly-once pipeline
(:class:`~zhucun.shared.pipeline.BatchPipeline`), in large transactions.

What makes it fast, beyond the pipeline (figures: ``bench/projection_bench.py``):

* one Kafka consumer with the partitions *assigned* (no group membership, no rebalance),
  large fetches, and batches of ``batch_size`` records (10,000 by default) per PostgreSQL
  transaction (``synchronous_commit`` off: a crash loses whole batches, offsets with them);
  ``apply`` is documented to give the same result for any split into batches;
* fetching and decoding overlap with writing: one batch is decoded while the previous one is
  written (PostgreSQL works on another core);
* the pipeline's dedupe runs in memory while building (a fresh schema read from offset zero
  sees each offset once), and ``projection_events`` is filled without its primary key,
  which :meth:`Replay.finish` builds once at the end, so the live runner goes on
  recognising duplicates;
* the cyclic garbage collector is paused while batches stream through (:func:`quiet_gc`).

Memory: about three batches of decoded events are alive at a time (some 4 KB an event:
~130 MB at the default batch size) plus the dedupe's ~70 bytes an event, per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import uuid4

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from zhucun.shared.kafka import client_options
from zhucun.shared.pipeline import Batch, BatchPipeline, Projection, is_permanent
from zhucun.shared.projection import ProjectionRunner
from zhucun.shared.replay.report import Built, RejectedRecord, ReplayError, TopicPartitionKey
from zhucun.shared.replay.schemas import REBUILD_SUFFIX, quote, schema_exists
from zhucun.shared.settings import KafkaSettings

log = structlog.get_logger("zhucun.shared.replay")

DEFAULT_BATCH_SIZE = 10_000
#: Kafka fetch sizes of a rebuild: large enough that a fetch carries thousands of records.
FETCH_MAX_BYTES = 64 * 1024 * 1024
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
#: Attempts at writing one batch when the database fails (back-off doubling from 1 s).
WRITE_ATTEMPTS = 5
#: Records decoded between two yields to the event loop (so the writer is not kept waiting),
#: and taken from the consumer at a time (a batch is several of these: fetched records,
#: with their 16 header tuples each, are freed once decoded).
_DECODE_SLICE = 1000
_FETCH_RECORDS = 2000
#: How often the rebuild's consumer group commits its progress to Kafka (for group tools).
KAFKA_COMMIT_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Tuning:
    """How a rebuild reads and applies the records (``rebuild``, ``rebuild_as_of``)."""

    #: Records applied per transaction.
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Stop at the first rejected record (PoisonRecord) instead of skipping it.
    strict: bool = False
    #: False skips Kafka's CRC check of fetched batches (less CPU; the event store's hash
    #: chain is the tamper evidence).
    check_crcs: bool = True


DEFAULT_TUNING = Tuning()


class Replay:
    """Reads a projection's topics and applies them into ``schema`` through the projection,
    in large transactions: from the beginning up to stop offsets, then on to whatever the
    live model has reached."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        kafka: KafkaSettings,
        *,
        schema: str,
        tuning: Tuning,
        group_id: str | None = None,
    ) -> None:
        if tuning.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if isinstance(projection.topics, str) or not projection.topics:
            raise ValueError(f"projection {projection.name!r}: topics must be a list of names")
        self.pool = pool
        self.projection = projection
        self.kafka = kafka
        self.schema = schema
        self.tuning = tuning
        self.batch_size = tuning.batch_size
        self.name = projection.name
        self.group_id = group_id or f"{projection.name}{REBUILD_SUFFIX}{uuid4().hex[:8]}"
        self.runner = ProjectionRunner(pool, projection, kafka, schema=schema)
        self._log = log.bind(projection=self.name, schema=schema)
        # Rejected records were dead-lettered when the live runner first consumed them:
        # skipped (counted and logged), unless strict.
        self.pipeline = BatchPipeline(
            projection,
            schema=schema,
            skip_rejected=not tuning.strict,
            in_memory_dedupe=True,
            log=self._log,
            events="replay",
        )
        s = quote(schema)
        self._offsets = f"{s}.projection_offsets"
        self._events = f"{s}.projection_events"
        options = client_options(kafka)
        options["client_id"] = f"{kafka.client_id}-replay-{projection.name}"
        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            fetch_max_wait_ms=100,
            check_crcs=tuning.check_crcs,
        )
        #: Per partition held: the first offset of the build, where the build stops, and
        #: the next offset to apply (committed in ``schema``).
        self.start: dict[Any, int] = {}
        self.stop: dict[Any, int] = {}
        self.position: dict[Any, int] = {}
        #: ``projection_events``'s primary key, dropped while loading and added at the end.
        self._events_key: tuple[str, str] | None = None

    async def __aenter__(self) -> Replay:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    def totals(self) -> Built:
        """Empty totals over the held partitions."""
        return Built(
            projection=self.name,
            events=0,
            applied=0,
            duplicates=0,
            rejected=0,
            seconds=0.0,
            start={key(tp): o for tp, o in self.start.items()},
            stop={key(tp): o for tp, o in self.stop.items()},
            rejects=[],
        )

    # --- set-up (the coordinating process) -------------------------------------------------

    async def prepare(self, *, until: datetime | Mapping[TopicPartitionKey, int] | None) -> None:
        """Fixes the start and stop offsets, then creates the schema and its tables."""
        tps = await self._partitions()
        self.consumer.assign(tps)
        self.consumer.pause(*tps)  # nothing is fetched until stream() resumes them
        beginning = await self.consumer.beginning_offsets(tps)
        end = await self.consumer.end_offsets(tps)
        stop = dict(end)
        if isinstance(until, datetime):
            millis = int(until.timestamp() * 1000) + 1  # the first millisecond after until
            found = await self.consumer.offsets_for_times({tp: millis for tp in tps})
            stop = {tp: end[tp] if found[tp] is None else found[tp].offset for tp in tps}
        elif until is not None:
            wanted = {(tp.topic, tp.partition) for tp in tps}
            missing = sorted(wanted - set(until))
            extra = sorted(set(until) - wanted)
            if missing or extra:
                raise ValueError(
                    f"until: offsets must name every partition of {list(self.projection.topics)}"
                    f" (missing {missing}, unknown {extra})"
                )
            stop = {tp: until[(tp.topic, tp.partition)] for tp in tps}
            beyond = sorted(key(tp) for tp in tps if stop[tp] > end[tp])
            if beyond:
                raise ValueError(f"until: offsets beyond the end of {beyond}")
        self.start = {tp: beginning[tp] for tp in tps}
        self.stop = {tp: max(stop[tp], beginning[tp]) for tp in tps}
        self.position = dict(self.start)

        if await schema_exists(self.pool, self.schema):
            raise ReplayError(f"schema {self.schema!r} exists already")
        await self.runner.migrate()
        await self.pool.execute(
            f"""
            INSERT INTO {self._offsets} (projection, topic, partition, next_offset)
            SELECT $1, t.topic, t.partition, t.next_offset
            FROM unnest($2::text[], $3::int[], $4::bigint[]) AS t(topic, partition, next_offset)
            """,
            self.name,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [self.start[tp] for tp in tps],
        )
        # Each id is written once (the build dedupes in memory): maintaining the key for
        # every batch costs more than building it once at the end.
        found = await self.pool.fetchrow(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'p'",
            self._events,
        )
        if found is not None:
            self._events_key = (found["conname"], found["definition"])
            await self.pool.execute(
                f"ALTER TABLE {self._events} DROP CONSTRAINT {quote(found['conname'])}"
            )

    async def _partitions(self) -> list[Any]:
        """Every partition of the projection's topics. A consumer learns a topic's partitions
        from a subscription; a short-lived one without a group asks (as the runner's
        ``lag()`` does), so the replay's own consumer never joins a group."""
        options = client_options(self.kafka)
        options["client_id"] = f"{self.kafka.client_id}-replay-probe-{self.name}"
        topics = list(self.projection.topics)
        existing = await self.consumer.topics()
        missing = [t for t in topics if t not in existing]
        if missing:
            raise ReplayError(f"topics {missing} do not exist")
        probe = AIOKafkaConsumer(*topics, **options, enable_auto_commit=False)
        await probe.start()
        try:
            return [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(probe.partitions_for_topic(topic) or ())
            ]
        finally:
            await probe.stop()

    def assign(self, parts: Sequence[tuple[str, int, int, int]]) -> None:
        """A worker's share: ``(topic, partition, start, stop)`` of partitions prepared by
        the coordinating process."""
        tps = [TopicPartition(topic, partition) for topic, partition, _, _ in parts]
        self.consumer.assign(tps)
        self.consumer.pause(*tps)
        self.start = {tp: start for tp, (_, _, start, _) in zip(tps, parts, strict=True)}
        self.stop = {tp: stop for tp, (_, _, _, stop) in zip(tps, parts, strict=True)}
        self.position = dict(self.start)

    async def finish(self) -> None:
        """Restores ``projection_events``'s primary key; from now on the dedupe goes
        through that table, as the runner's does."""
        if self._events_key is not None:
            name, definition = self._events_key
            try:
                await self.pool.execute(
                    f"ALTER TABLE {self._events} ADD CONSTRAINT {quote(name)} {definition}"
                )
            except asyncpg.UniqueViolationError as error:
                raise ReplayError(
                    "the same event id was applied from two partitions by different workers "
                    "(records re-published after the partition count changed?); rebuild "
                    "with workers=1, which dedupes across partitions"
                ) from error
            self._events_key = None
        self.pipeline.dedupe_in_table()

    # --- streaming -------------------------------------------------------------------------

    async def stream(
        self,
        targets: Mapping[Any, int],
        built: Built,
        advance: Callable[[int], None],
        *,
        conn: Any = None,
    ) -> None:
        """Applies the held partitions from their position up to ``targets`` (one batch
        per transaction; one savepoint each on ``conn`` if given)."""
        active = {tp: t for tp, t in targets.items() if self.position[tp] < t}
        if not active:
            return
        self._log.info(
            "replay.streaming",
            group_id=self.group_id,
            events=sum(t - self.position[tp] for tp, t in active.items()),
            up_to={f"{tp.topic}/{tp.partition}": t for tp, t in active.items()},
        )
        for tp in active:
            self.consumer.seek(tp, self.position[tp])
        self.consumer.resume(*active)
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        try:
            with quiet_gc():
                await together(self._read(queue, active), self._write(queue, built, advance, conn))
        finally:
            self.consumer.pause(*active)

    async def _read(self, queue: asyncio.Queue[Batch | None], targets: Mapping[Any, int]) -> None:
        """Fetches, trims at the targets, decodes; hands batches to the writer."""
        consumer = self.consumer
        pipeline = self.pipeline
        expected = {tp: self.position[tp] for tp in targets}
        remaining = set(targets)
        batch = pipeline.batch()
        while remaining:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
            for tp, records in fetched.items():
                if tp not in remaining or not records:
                    continue
                first = records[0].offset
                if first != expected[tp]:
                    if first > expected[tp]:
                        raise ReplayError(
                            f"offset gap in {tp.topic}/{tp.partition}: expected offset "
                            f"{expected[tp]}, the log continues at {first}"
                        )
                    records = [r for r in records if r.offset >= expected[tp]]
                    if not records:
                        continue
                room = targets[tp] - records[0].offset
                if len(records) > room:
                    records = records[:room]
                for index, record in enumerate(records, 1):
                    pipeline.add(batch, record)
                    if not index % _DECODE_SLICE:
                        await asyncio.sleep(0)  # lets the writer talk to PostgreSQL
                expected[tp] = records[-1].offset + 1
                if expected[tp] >= targets[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch.consumed >= self.batch_size or (not remaining and batch.consumed):
                await queue.put(batch)
                batch = pipeline.batch()
        await queue.put(None)

    async def _write(
        self,
        queue: asyncio.Queue[Batch | None],
        built: Built,
        advance: Callable[[int], None],
        conn: Any,
    ) -> None:
        if conn is None:
            async with self.pool.acquire() as own:
                await self._write_all(queue, built, advance, own, retries=True)
        else:
            await self._write_all(queue, built, advance, conn, retries=False)

    async def _write_all(
        self,
        queue: asyncio.Queue[Batch | None],
        built: Built,
        advance: Callable[[int], None],
        conn: Any,
        *,
        retries: bool,
    ) -> None:
        committed_at = time.monotonic()
        while (batch := await queue.get()) is not None:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    # A crash loses at most the last batches, offsets and model together.
                    outcome = await self.pipeline.commit(conn, batch, synchronous_commit=False)
                    break
                except Exception as error:
                    if is_permanent(error) or not retries or attempt == WRITE_ATTEMPTS:
                        raise
                    self._log.warning(
                        "replay.batch_failed", error=type(error).__name__, attempt=attempt
                    )
                    await asyncio.sleep(min(2.0 ** (attempt - 1), 10.0))
            for (topic, partition), offset in batch.next_offsets.items():
                self.position[TopicPartition(topic, partition)] = offset
            built.add(
                events=batch.consumed,
                applied=outcome.counts.applied,
                duplicates=outcome.counts.duplicates,
                rejected=outcome.counts.dead_lettered,
                rejects=[
                    RejectedRecord(r.topic, r.partition, r.offset, r.kind) for r in outcome.rejected
                ],
            )
            advance(batch.consumed)
            if time.monotonic() - committed_at > KAFKA_COMMIT_INTERVAL_SECONDS:
                committed_at = time.monotonic()
                await self._commit_kafka(batch.next_offsets)

    async def _commit_kafka(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Best effort, so ``kafka-consumer-groups --describe`` shows the rebuild's progress."""
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(
                self.consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()}),
                5.0,
            )


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while batches stream through.

    A batch holds some 20 tracked objects per event (deliveries, envelopes, payloads, their
    dicts) for a fraction of a second; with the default thresholds the collector keeps
    re-scanning them and the process's long-lived objects, which cost more than decoding
    (measured: 2.4 times the CPU of a rebuild). Nothing a rebuild allocates per event forms
    reference cycles, so reference counting frees it all; objects that exist before are
    frozen (left out of collections), and the previous state is restored afterwards, with
    one collection for whatever cycles other tasks made in the meantime.
    """
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
            gc.collect()


def key(tp: Any) -> TopicPartitionKey:
    return (tp.topic, tp.partition)


async def together(*steps: Awaitable[None]) -> None:
    """Runs the steps concurrently; the first failure cancels the others and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(cast(Any, step))
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
