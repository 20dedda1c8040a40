"""The projection runtime: Kafka topics of Zhucun events into a PostgreSQL read model, with
exactly-once effects.

A *projection* (anything matching :class:`Projection`) names its topics, the registry that
decodes their events, how to create its tables and how to apply a batch of deliveries. A
:class:`ProjectionRunner` does the rest (each batch through
:class:`~zhucun.shared.pipeline.BatchPipeline`, the exactly-once pipeline it shares with the
rebuild of :mod:`zhucun.shared.replay`):

* **Offsets live in the read model's database.** Every batch is applied in ONE PostgreSQL
  transaction that also moves ``projection_offsets`` (the next offset to read per topic and
  partition) and ``projection_counts``. Either the read-model change and the offsets are both
  committed or neither is, so a crash anywhere (``kill -9`` included) repeats nothing and
  loses nothing. Kafka's committed offsets are only an optimisation for tools that watch the
  group; they are written after the PostgreSQL commit and their failures are ignored.
* **Positions come from PostgreSQL.** The consumer (aiokafka, ``enable_auto_commit=False``)
  has a rebalance listener that pauses each newly assigned partition, reads its stored offset
  and seeks there (to the log's beginning when none is stored, recording that as the
  partition's starting point) before fetching resumes. A group whose Kafka offsets are lost,
  behind, or brand new therefore resumes exactly where the read model is.
* **Two owners of one partition are serialised.** During a rebalance a partition can briefly
  be processed by two workers. Each batch locks its partitions' offset rows
  (``SELECT ... FOR UPDATE``, in a fixed order) and drops records below the stored offset,
  so the second worker sees what the first committed and applies nothing twice.
* **Duplicates by event id are dropped.** The relay publishes at least once, so the same event
  can appear at several offsets. ``projection_events`` remembers applied event ids; one
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per batch tells the new from the repeated.
* **Failures are classified** (:func:`~zhucun.shared.pipeline.is_permanent`), so one bad
  record never holds a partition: a record that can never apply goes to the dead-letter
  topic on its first delivery, and only failures that pass are retried.
* **Poison records go to the dead-letter topic at once, never silently away.** A record
  that is not a Zhucun CloudEvent, has an unknown type or data that fails its contract, or
  whose ``apply`` fails permanently (a value the database refuses, such as a number beyond
  an ``integer`` column; a broken constraint; a ``ValueError``) is published to
  ``<topic>.dlq`` (the reason, naming the error, in ``x-dlq-reason``; the error in
  ``x-dlq-error``; where it came from in ``x-dlq-source-*``) *before* the transaction
  commits; the rest of the batch is applied. When ``apply`` fails for a batch, each delivery
  is applied alone in its own savepoint to find the poison ones, so their neighbours are not
  dead-lettered. A dead-lettered event's id is not remembered, so re-publishing it once the
  cause is fixed applies it. Without a :class:`~zhucun.shared.kafka.DeadLetterPublisher` a
  poison record stops the runner with :class:`PoisonRecord` instead.
* **Transient failures are retried, never skipped.** A lost database connection, a
  deadlock, a Kafka error while dead-lettering: the transaction rolls back, every partition
  of the batch is sought back to its stored offset and the batch is retried after a back-off
  (``BACKOFF_SECONDS``: 0.1 s doubling to 30 s), dead-lettering nothing; meanwhile
  :meth:`ProjectionRunner.health` says ``retrying`` (``stalled`` after the stall time), with
  the error, since when and how many attempts failed.

Within a partition records are applied in offset order; Zhucun keys events by cadre id, so
one cadre's events reach ``apply`` in the order they were stored.

Offsets are expected to be dense: the topics are written by idempotent, non-transactional
producers (the relay) and never compacted. A partition whose first fetched record lies
beyond its stored offset (a "gap": records lost to retention, say) is not applied; the
runner logs an error, seeks back and keeps retrying, and :meth:`ProjectionRunner.stuck`
reports it, because skipping would silently lose events.

Metrics (``prometheus_client``): ``zhucun_projection_events_total{projection,outcome}``
(``applied``, ``duplicate``, ``dead_lettered``), ``zhucun_projection_lag_events{projection,
topic,partition}`` for the partitions this process holds, and
``zhucun_projection_last_progress_timestamp{projection}`` and
``zhucun_projection_stalled{projection}`` (set by :meth:`ProjectionRunner.health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from weakref import WeakKeyDictionary

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from zhucun.shared.errors import describe_error
from zhucun.shared.kafka import DeadLetterPublisher, client_options

# The contract between the runtime and a projection, and the batch pipeline the runner and
# the rebuild share; re-exported: projections import them from here.
from zhucun.shared.pipeline import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from zhucun.shared.pipeline import BatchOutcome, BatchPipeline
from zhucun.shared.pipeline import DeadLetterError as DeadLetterError
from zhucun.shared.pipeline import Delivery as Delivery
from zhucun.shared.pipeline import PoisonRecord as PoisonRecord
from zhucun.shared.pipeline import Projection as Projection
from zhucun.shared.pipeline import ProjectionCounts as ProjectionCounts
from zhucun.shared.pipeline import ProjectionError as ProjectionError
from zhucun.shared.pipeline import is_permanent as is_permanent
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import advisory_lock_key

log = structlog.get_logger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Back-off after a transient failure: doubles from the first value up to the second. Short
#: at first (a dropped connection is usually back at once), bounded so a long outage costs a
#: retry every half minute.
BACKOFF_SECONDS = (0.1, 30.0)
#: How long a best-effort Kafka offset commit may take before it is abandoned.
KAFKA_COMMIT_TIMEOUT_SECONDS = 5.0


# --- metrics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Metrics:
    events: Counter
    lag: Gauge
    progress: Gauge
    stalled: Gauge


#: One set of metric families per registry, shared by every runner using it.
_METRICS: WeakKeyDictionary[CollectorRegistry, _Metrics] = WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> _Metrics:
    found = _METRICS.get(registry)
    if found is None:
        found = _Metrics(
            events=Counter(
                "zhucun_projection_events",
                "Records processed by a projection, by outcome",
                ["projection", "outcome"],
                registry=registry,
            ),
            lag=Gauge(
                "zhucun_projection_lag_events",
                "Records on a partition not yet applied (partitions held by this process)",
                ["projection", "topic", "partition"],
                registry=registry,
            ),
            progress=Gauge(
                "zhucun_projection_last_progress_timestamp",
                "Unix time of the projection's last committed batch",
                ["projection"],
                registry=registry,
            ),
            stalled=Gauge(
                "zhucun_projection_stalled",
                "1 when records wait (or the runner fails) and no batch was committed for "
                "longer than the stall time",
                ["projection"],
                registry=registry,
            ),
        )
        _METRICS[registry] = found
    return found


# --- health --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectionHealth:
    projection: str
    #: ``ok``: caught up; ``behind``: records wait and batches are being committed;
    #: ``retrying``: a transient failure is being retried (the stall time is not over);
    #: ``stalled``: records wait (or every attempt fails) and nothing was committed for
    #: longer than the stall time; ``stopped``: the runner is not consuming.
    state: Literal["ok", "behind", "retrying", "stalled", "stopped"]
    #: Records not yet applied on the partitions this process holds.
    lag: int
    last_progress_at: datetime | None
    #: The last failure while records wait: what failed (``kind``), why (``error``), where
    #: when it is known (``topic``, ``partition``, ``offset``), since when (``since``) and
    #: how many attempts in a row failed (``attempts``).
    error: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "lag": self.lag,
            "last_progress_at": self.last_progress_at.isoformat()
            if self.last_progress_at
            else None,
            "error": self.error,
        }


# --- the runner ----------------------------------------------------------------------------


class _Backoff:
    def __init__(self) -> None:
        self.seconds = BACKOFF_SECONDS[0]

    def reset(self) -> None:
        self.seconds = BACKOFF_SECONDS[0]

    async def wait(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.seconds)
        self.seconds = min(self.seconds * 2, BACKOFF_SECONDS[1])


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions newly assigned partitions from PostgreSQL; forgets revoked ones."""

    def __init__(self, runner: ProjectionRunner, consumer: Any) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        self._runner._forget(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self._runner._on_assigned(self._consumer, assigned)


def _key(tp: Any) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def _pg(conn: Any) -> asyncpg.Connection:
    """A pooled connection as the projection sees it (the proxy behaves as a connection)."""
    return cast(asyncpg.Connection, conn)


class ProjectionRunner:
    """Consumes a projection's topics and applies them to its read model, exactly once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        kafka: KafkaSettings,
        *,
        schema: str = "public",
        group_id: str | None = None,
        batch_size: int = 500,
        dead_letters: DeadLetterPublisher | None = None,
        metrics: CollectorRegistry | None = None,
        idle_timeout_ms: int = 500,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if isinstance(projection.topics, str) or not projection.topics:
            raise ValueError(f"projection {projection.name!r}: topics must be a list of names")
        self.pool = pool
        self.projection = projection
        self.kafka = kafka
        self.schema = schema
        self.name = projection.name
        self.group_id = group_id or projection.name
        self.batch_size = batch_size
        self.dead_letters = dead_letters
        self.idle_timeout_ms = idle_timeout_ms
        #: Totals as of the last batch this runner committed (or read at start).
        self.counts = ProjectionCounts()

        s = f'"{schema}"'
        self._offsets = f"{s}.projection_offsets"
        self._events = f"{s}.projection_events"
        self._counts = f"{s}.projection_counts"
        self._log = log.bind(projection=self.name)
        self._pipeline = BatchPipeline(
            projection, schema=schema, dead_letters=dead_letters, log=self._log
        )

        family = _metrics(metrics if metrics is not None else CollectorRegistry())
        self._lag_gauge = family.lag
        self._progress_gauge = family.progress.labels(self.name)
        self._stalled_gauge = family.stalled.labels(self.name)
        self._outcomes = {
            outcome: family.events.labels(self.name, outcome)
            for outcome in ("applied", "duplicate", "dead_lettered")
        }

        self._running = False
        self._consumer: Any = None
        #: Next offset to read per held partition, as last read or written in PostgreSQL.
        self._stored: dict[Any, int] = {}
        #: Last computed lag per held partition.
        self._lag_now: dict[Any, int] = {}
        #: Held partitions whose position is not established from PostgreSQL yet (paused).
        self._unpositioned: set[Any] = set()
        self._positioning = asyncio.Lock()
        self._progress_at = time.monotonic()
        #: Wall-clock time of the last committed batch, for health reports.
        self._progress_wall: float | None = None
        self._failing_since: float | None = None
        #: Wall-clock time of the first of the failures in a row, and how many there were.
        self._failing_wall: float | None = None
        self._attempts = 0
        #: The last failure (kind, error, since, attempts, and the first record concerned
        #: when known).
        self._last_error: dict[str, Any] | None = None

    # --- schema and state ------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the runtime tables and the projection's own (idempotent, concurrency-safe)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", advisory_lock_key(self.schema, "ddl")
            )
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self._offsets} (
                    projection text NOT NULL,
                    topic text NOT NULL,
                    partition int NOT NULL,
                    next_offset bigint NOT NULL CHECK (next_offset >= 0),
                    PRIMARY KEY (projection, topic, partition)
                );
                CREATE TABLE IF NOT EXISTS {self._events} (
                    projection text NOT NULL,
                    event_id uuid NOT NULL,
                    PRIMARY KEY (projection, event_id)
                );
                CREATE TABLE IF NOT EXISTS {self._counts} (
                    projection text PRIMARY KEY,
                    consumed bigint NOT NULL DEFAULT 0,
                    applied bigint NOT NULL DEFAULT 0,
                    duplicates bigint NOT NULL DEFAULT 0,
                    dead_lettered bigint NOT NULL DEFAULT 0
                );
                """
            )
            await self.projection.migrate(_pg(conn))
        await self._load_counts()

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per ``(topic, partition)``, as committed in PostgreSQL."""
        rows = await self.pool.fetch(
            f"SELECT topic, partition, next_offset FROM {self._offsets} WHERE projection = $1",
            self.name,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records not applied yet per partition of every topic: end offset minus stored
        offset (minus the log's beginning where nothing is stored)."""
        stored = await self.stored_offsets()
        consumer = self._consumer
        if consumer is not None:
            return await self._lag_from(consumer, stored)
        probe = AIOKafkaConsumer(
            *self.projection.topics, **self._client_options("lag"), enable_auto_commit=False
        )
        await probe.start()
        try:
            return await self._lag_from(probe, stored)
        finally:
            await probe.stop()

    async def _lag_from(
        self, consumer: Any, stored: Mapping[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        tps = [
            TopicPartition(topic, partition)
            for topic in self.projection.topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        end = await consumer.end_offsets(tps)
        unknown = [tp for tp in tps if _key(tp) not in stored]
        beginning = await consumer.beginning_offsets(unknown) if unknown else {}
        return {
            _key(tp): max(0, end[tp] - stored.get(_key(tp), beginning.get(tp, 0))) for tp in tps
        }

    def stuck(self, seconds: float) -> bool:
        """True when events are waiting (or the runner is failing) and no batch has been
        committed for ``seconds``: for a readiness check."""
        behind = (
            any(lag > 0 for lag in self._lag_now.values())
            or bool(self._unpositioned)
            or self._failing_since is not None
        )
        return behind and time.monotonic() - self._progress_at > seconds

    def health(self, stall_seconds: float) -> ProjectionHealth:
        """The runner's state for ``/health/ready`` and its metrics (updates the gauge)."""
        lag = sum(self._lag_now.values())
        waiting = lag > 0 or bool(self._unpositioned) or self._failing_since is not None
        state: Literal["ok", "behind", "retrying", "stalled", "stopped"]
        if self.stuck(stall_seconds):
            state = "stalled"
        elif not self._running:
            state = "stopped"
        elif self._failing_since is not None:
            state = "retrying"
        else:
            state = "behind" if waiting else "ok"
        self._stalled_gauge.set(1 if state == "stalled" else 0)
        return ProjectionHealth(
            projection=self.name,
            state=state,
            lag=lag,
            last_progress_at=datetime.fromtimestamp(self._progress_wall, UTC)
            if self._progress_wall is not None
            else None,
            error=self._last_error if waiting or state == "stopped" else None,
        )

    async def _load_counts(self) -> None:
        row = await self.pool.fetchrow(
            f"SELECT consumed, applied, duplicates, dead_lettered FROM {self._counts} "
            "WHERE projection = $1",
            self.name,
        )
        self.counts = ProjectionCounts(**dict(row)) if row else ProjectionCounts()

    # --- the consume loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then commit to Kafka and leave the group cleanly.

        Raises :class:`PoisonRecord` (without a dead-letter publisher) and errors that
        prevent consuming at all (Kafka unreachable at start); a supervisor restarts it.
        """
        if self._running:
            raise RuntimeError(f"projection {self.name} is already running in this runner")
        self._running = True
        try:
            await self._run(stop)
        finally:
            self._running = False

    async def _run(self, stop: asyncio.Event) -> None:
        await self._load_counts()
        consumer = AIOKafkaConsumer(
            **self._client_options("projection"),
            group_id=self.group_id,
            enable_auto_commit=False,
            # Only used when a stored offset is out of range: the gap check then holds the
            # partition back rather than skip anything.
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
        )
        consumer.subscribe(list(self.projection.topics), listener=_Rebalance(self, consumer))
        self._log.info("projection.starting", group_id=self.group_id)
        try:
            await consumer.start()
            self._consumer = consumer
            await self._consume(consumer, stop)
        except BaseException as error:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                self._failing_wall = time.time()
            self._last_error = {
                "kind": "projection.failed",
                "error": describe_error(error),
                "since": datetime.fromtimestamp(self._failing_wall or time.time(), UTC).isoformat(),
            }
            if isinstance(error, PoisonRecord):
                self._last_error.update(
                    topic=error.topic, partition=error.partition, offset=error.offset
                )
            raise
        finally:
            self._consumer = None
            await self._leave(consumer)
        self._log.info("projection.stopped", **_counts_log(self.counts))

    async def _consume(self, consumer: Any, stop: asyncio.Event) -> None:
        backoff = _Backoff()
        while not stop.is_set():
            if self._unpositioned:
                try:
                    await self._position(consumer, set(self._unpositioned))
                except Exception as error:
                    if is_permanent(error):
                        raise
                    self._failing(error, "projection.positioning_failed", backoff)
                    await backoff.wait(stop)
                    continue
            try:
                batch = await consumer.getmany(
                    timeout_ms=self.idle_timeout_ms, max_records=self.batch_size
                )
            except KafkaError as error:
                self._failing(error, "projection.fetch_failed", backoff)
                await backoff.wait(stop)
                continue
            if batch:
                await self._consume_batch(consumer, batch, backoff, stop)
            self._update_lag(consumer)

    async def _consume_batch(
        self,
        consumer: Any,
        batch: Mapping[Any, Sequence[Any]],
        backoff: _Backoff,
        stop: asyncio.Event,
    ) -> None:
        """Process one fetched batch: committed, or, after a transient failure, rewound and
        retried after the back-off. A permanent failure outside ``apply`` (poison records
        are handled inside) stops the runner."""
        stored: dict[Any, int] = {}
        try:
            held_back = await self._process(consumer, batch, stored)
        except PoisonRecord as error:
            self._rewind(consumer, batch, stored)
            self._log.error(
                "projection.poison_record",
                topic=error.topic,
                partition=error.partition,
                offset=error.offset,
                kind=error.kind,
            )
            raise
        except Exception as error:
            self._rewind(consumer, batch, stored)
            if is_permanent(error):
                raise
            self._failing(error, "projection.batch_failed", backoff, _first(batch))
            await backoff.wait(stop)
            return
        if held_back:
            await backoff.wait(stop)
        else:
            backoff.reset()
            self._recovered()

    def _failing(
        self,
        error: BaseException,
        event: str,
        backoff: _Backoff,
        at: tuple[str, int, int] | None = None,
    ) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self._failing_wall = time.time()
        self._attempts += 1
        self._last_error = {
            "kind": event,
            "error": describe_error(error),
            "since": datetime.fromtimestamp(self._failing_wall or time.time(), UTC).isoformat(),
            "attempts": self._attempts,
            "retry_in": backoff.seconds,
        }
        if at is not None:
            self._last_error.update(topic=at[0], partition=at[1], offset=at[2])
        # The error's class and text name the failing component; they carry no event data.
        self._log.warning(
            event,
            error=type(error).__name__,
            detail=str(error)[:200],
            retry_in=backoff.seconds,
            attempts=self._attempts,
        )

    def _recovered(self) -> None:
        self._failing_since = None
        self._failing_wall = None
        self._attempts = 0
        self._last_error = None

    def _rewind(self, consumer: Any, batch: Mapping[Any, Sequence[Any]], stored: Any) -> None:
        """After a failed batch: every partition of it back to its stored offset (its first
        record's offset where the stored one was not read), so nothing is skipped."""
        assigned = consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned and tp not in self._unpositioned:
                consumer.seek(tp, stored.get(tp, records[0].offset))

    async def _leave(self, consumer: Any) -> None:
        with contextlib.suppress(Exception):
            assigned = consumer.assignment()
            await self._commit_kafka(
                consumer, {tp: self._stored[tp] for tp in assigned if tp in self._stored}
            )
        self._forget(set(self._stored) | set(self._lag_now) | self._unpositioned)
        try:
            await consumer.stop()  # leaves the group: the partitions move at once
        except Exception as error:
            self._log.warning("projection.leave_failed", error=type(error).__name__)

    # --- one batch -------------------------------------------------------------------------

    async def _process(
        self, consumer: Any, batch: Mapping[Any, Sequence[Any]], stored: dict[Any, int]
    ) -> bool:
        """Apply one batch in one transaction. Fills ``stored`` with the offsets read under
        lock (for a rewind). Returns True when a partition had to be held back."""
        tps = sorted(
            (tp for tp, records in batch.items() if records and tp not in self._unpositioned),
            key=_key,
        )
        if not tps:
            return False
        missing: list[Any] = []
        gaps: list[Any] = []
        outcome: BatchOutcome | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""
                SELECT topic, partition, next_offset FROM {self._offsets}
                WHERE projection = $1
                  AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
                ORDER BY topic, partition
                FOR UPDATE
                """,
                self.name,
                [tp.topic for tp in tps],
                [tp.partition for tp in tps],
            )
            stored.update(
                {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            )
            todo: list[Any] = []
            next_offsets: dict[Any, int] = {}
            for tp in (tp for tp in batch if tp in tps):  # consumption order
                if tp not in stored:
                    missing.append(tp)  # the row vanished: position the partition again
                    continue
                records = [r for r in batch[tp] if r.offset >= stored[tp]]
                if not records:
                    continue  # all applied already (re-read after a rebalance or a retry)
                if records[0].offset > stored[tp]:
                    gaps.append(tp)
                    continue
                todo.extend(records)
                next_offsets[tp] = records[-1].offset + 1
            if todo:
                # Decode, dedupe, apply, dead-letter, move offsets and counts: one transaction.
                outcome = await self._pipeline.write(conn, self._pipeline.batch(todo))

        # Committed.
        assigned = consumer.assignment()
        self._stored.update({tp: o for tp, o in (stored | next_offsets).items() if tp in assigned})
        if outcome is not None:
            self.counts = outcome.totals
            self._outcomes["applied"].inc(outcome.counts.applied)
            self._outcomes["duplicate"].inc(outcome.counts.duplicates)
            self._outcomes["dead_lettered"].inc(outcome.counts.dead_lettered)
            self._progress_at = time.monotonic()
            self._progress_wall = time.time()
            self._progress_gauge.set(self._progress_wall)
            self._log.debug("projection.batch", **_counts_log(outcome.counts))
            await self._commit_kafka(consumer, next_offsets)
        for tp in gaps:
            first_offset = min(r.offset for r in batch[tp] if r.offset >= stored[tp])
            self._log.error(
                "projection.offset_gap",
                topic=tp.topic,
                partition=tp.partition,
                stored_offset=stored[tp],
                first_offset=first_offset,
            )
            self._last_error = {
                "kind": "projection.offset_gap",
                "error": f"records {stored[tp]}..{first_offset - 1} are not on the topic",
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": stored[tp],
            }
            if tp in assigned:
                consumer.seek(tp, stored[tp])
        for tp in missing:
            self._log.warning(
                "projection.offset_row_missing", topic=tp.topic, partition=tp.partition
            )
            if tp in assigned:
                consumer.pause(tp)
                self._unpositioned.add(tp)
        return bool(gaps or missing)

    async def _commit_kafka(self, consumer: Any, offsets: Mapping[Any, int]) -> None:
        """Best effort: PostgreSQL holds the truth; this only keeps group tools informed."""
        assigned = consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            await asyncio.wait_for(consumer.commit(owned), KAFKA_COMMIT_TIMEOUT_SECONDS)
        except (KafkaError, TimeoutError) as error:
            self._log.debug("projection.kafka_commit_skipped", error=type(error).__name__)

    # --- partition positions ---------------------------------------------------------------

    async def _on_assigned(self, consumer: Any, assigned: set[Any]) -> None:
        if not assigned:
            return
        # Nothing is fetched for them until they are positioned from PostgreSQL.
        consumer.pause(*assigned)
        self._unpositioned |= assigned
        try:
            await self._position(consumer, assigned)
        except Exception as error:
            self._log.warning(
                "projection.positioning_deferred",
                error=type(error).__name__,
                partitions=sorted(_key(tp) for tp in assigned),
            )
        else:
            self._log.info(
                "projection.assigned",
                partitions={f"{tp.topic}/{tp.partition}": self._stored.get(tp) for tp in assigned},
            )

    async def _position(self, consumer: Any, tps: Iterable[Any]) -> None:
        """Seek each partition to its stored offset; where none is stored, store the log's
        beginning as its starting point and seek there."""
        async with self._positioning:
            wanted = sorted((tp for tp in tps if tp in consumer.assignment()), key=_key)
            self._unpositioned.difference_update(set(tps) - set(wanted))
            if not wanted:
                return
            stored = await self._read_offsets(wanted)
            unknown = [tp for tp in wanted if tp not in stored]
            if unknown:
                beginning = await consumer.beginning_offsets(unknown)
                await self.pool.execute(
                    f"""
                    INSERT INTO {self._offsets} (projection, topic, partition, next_offset)
                    SELECT $1, t.topic, t.partition, t.next_offset
                    FROM unnest($2::text[], $3::int[], $4::bigint[])
                        AS t(topic, partition, next_offset)
                    ON CONFLICT (projection, topic, partition) DO NOTHING
                    """,
                    self.name,
                    [tp.topic for tp in unknown],
                    [tp.partition for tp in unknown],
                    [beginning[tp] for tp in unknown],
                )
                stored.update(await self._read_offsets(unknown))
            assigned = consumer.assignment()
            positioned = [tp for tp in wanted if tp in assigned]
            for tp in positioned:
                consumer.seek(tp, stored[tp])
                self._stored[tp] = stored[tp]
            consumer.resume(*positioned)
            self._unpositioned.difference_update(wanted)

    async def _read_offsets(self, tps: Sequence[Any]) -> dict[Any, int]:
        rows = await self.pool.fetch(
            f"""
            SELECT topic, partition, next_offset FROM {self._offsets}
            WHERE projection = $1
              AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
            """,
            self.name,
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def _forget(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self._unpositioned.discard(tp)
            self._stored.pop(tp, None)
            self._lag_now.pop(tp, None)
            with contextlib.suppress(KeyError):
                self._lag_gauge.remove(self.name, tp.topic, str(tp.partition))

    def _update_lag(self, consumer: Any) -> None:
        for tp in consumer.assignment():
            highwater, stored = consumer.highwater(tp), self._stored.get(tp)
            if highwater is None or stored is None:
                continue
            lag = max(0, highwater - stored)
            self._lag_now[tp] = lag
            self._lag_gauge.labels(self.name, tp.topic, str(tp.partition)).set(lag)
        if not self._unpositioned and not any(self._lag_now.values()):
            self._progress_at = time.monotonic()  # caught up: idle is not stuck
            self._recovered()

    def _client_options(self, role: str) -> dict[str, Any]:
        options = client_options(self.kafka)
        options["client_id"] = f"{self.kafka.client_id}-{role}-{self.name}"
        return options


def _first(batch: Mapping[Any, Sequence[Any]]) -> tuple[str, int, int] | None:
    """The first record of a batch, as (topic, partition, offset)."""
    for tp, records in sorted(batch.items(), key=lambda item: _key(item[0])):
        if records:
            return (tp.topic, tp.partition, records[0].offset)
    return None


def _counts_log(counts: ProjectionCounts) -> dict[str, int]:
    return {
        "consumed": counts.consumed,
        "applied": counts.applied,
        "duplicates": counts.duplicates,
        "dead_lettered": counts.dead_lettered,
    }
