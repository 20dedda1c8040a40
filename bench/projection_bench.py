"""Projection rebuild throughput against the real Kafka and PostgreSQL (run by hand).

    uv run python bench/projection_bench.py [--events 1000000] [--cadres 30000]
        [--partitions 6] [--batch 10000] [--workers 1,2] [--no-crc-check]
        [--runner-seconds 20] [--profile] [--out bench/results]

Starts its own PostgreSQL cluster and Kafka broker with the project's launcher (or uses
ZHUCUN_TEST_POSTGRES_DSN / ZHUCUN_TEST_KAFKA_BOOTSTRAP), publishes ``--events`` attendance
``CheckInRecorded`` events as the relay does (CloudEvents records made by ``to_kafka`` of
``RecordedEvent``s, keyed by cadre over ``--cadres`` cadres, with 0.1 % re-published as the
at-least-once relay does after a crash), then measures in the same run:

1. **raw consume**: one aiokafka consumer reading every record (the ceiling for a consumer in
   one Python process);
2. **rebuild**: ``zhucun.shared.replay.rebuild`` end to end into PostgreSQL, with a
   realistic projection: a row per check-in (the audit trail, COPY) and per-cadre day
   counts (an upsert), the event-id dedupe, offsets and counts in the same transactions;
   once per ``--workers`` value (in this process, or split over worker processes), each
   switched in for the previous one, and every digest must be equal;
3. **normal runner** (``--runner-seconds``, 0 to skip): ``ProjectionRunner`` with its
   default batch of 500 for a while on the same topic, for comparison.

Reports events/s of each, the ratio of the rebuild to the raw consumer, peak memory
(``ru_maxrss`` of this process and of the largest worker process), and where the CPU goes
in each phase: CPU seconds and microseconds per event of the Python processes, of the Kafka
broker, and of the rest of the machine (PostgreSQL, mostly), from ``getrusage``, psutil and
/proc/stat, with the rate the whole machine could reach at that cost per event. With
``--profile``, cProfile of this process (the in-process rebuild: ``--workers 1``) shows
where its Python time goes. Everything shares this machine's cores: the figures depend on
what else runs on it (the load average at the end is in the JSON). Prints the figures and
writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from zhucun.cli.progress import progress_bar
from zhucun.contracts.attendance.events import CheckInRecorded, LocationEvidence
from zhucun.contracts.attendance.events import registry as attendance_registry
from zhucun.shared.envelope import RecordedEvent, to_kafka
from zhucun.shared.events import GENESIS_HASH
from zhucun.shared.kafka import ensure_topics, event_topic
from zhucun.shared.projection import Delivery, ProjectionRunner
from zhucun.shared.replay import Tuning, digest, model_tables, rebuild
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import create_pool

TOPIC = "attendance.events.v1"
SOURCE = "/zhucun/attendance"
TARGET_EVENTS_PER_SECOND = 50_000


class CheckInLedger:
    """The bench's projection: the audit trail of check-ins (a row per event, written with
    COPY) and per-cadre day counts (one upsert per batch, folded in memory first)."""

    topics: Sequence[str] = (TOPIC,)
    registry = attendance_registry

    def __init__(self, schema: str, *, name: str = "check-in-ledger") -> None:
        self.name = name
        self.schema = schema
        self.days = f'"{schema}".cadre_days'

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS "{self.schema}".check_ins (
                event_id uuid PRIMARY KEY,
                check_in_id text NOT NULL,
                cadre_id text NOT NULL,
                village_id text NOT NULL,
                day date NOT NULL,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL,
                presence boolean NOT NULL,
                distance_m integer,
                kafka_partition integer NOT NULL,
                kafka_offset bigint NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {self.days} (
                cadre_id text NOT NULL,
                day date NOT NULL,
                check_ins integer NOT NULL,
                presence integer NOT NULL,
                PRIMARY KEY (cadre_id, day)
            )
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        rows = []
        days: dict[tuple[str, date], list[int]] = {}
        for d in deliveries:
            event = d.payload
            if not isinstance(event, CheckInRecorded):
                continue
            location = event.location
            presence = location is None or location.inside_geofence
            rows.append(
                (
                    d.event.event_id,
                    event.check_in_id,
                    event.cadre_id,
                    event.village_id,
                    event.day,
                    event.occurred_at,
                    d.event.recorded_at,
                    presence,
                    None if location is None else location.distance_m,
                    d.partition,
                    d.offset,
                )
            )
            counts = days.get((event.cadre_id, event.day))
            if counts is None:
                days[(event.cadre_id, event.day)] = [1, int(presence)]
            else:
                counts[0] += 1
                counts[1] += presence
        if rows:
            await conn.copy_records_to_table(
                "check_ins", schema_name=self.schema, records=rows, columns=CHECK_IN_COLUMNS
            )
        if days:
            await conn.execute(
                f"""
                INSERT INTO {self.days} AS d (cadre_id, day, check_ins, presence)
                SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::int[])
                ON CONFLICT (cadre_id, day) DO UPDATE SET
                    check_ins = d.check_ins + EXCLUDED.check_ins,
                    presence = d.presence + EXCLUDED.presence
                """,
                [k[0] for k in days],
                [k[1] for k in days],
                [v[0] for v in days.values()],
                [v[1] for v in days.values()],
            )


CHECK_IN_COLUMNS = [
    "event_id",
    "check_in_id",
    "cadre_id",
    "village_id",
    "day",
    "occurred_at",
    "recorded_at",
    "presence",
    "distance_m",
    "kafka_partition",
    "kafka_offset",
]


# --- producing -----------------------------------------------------------------------------


def check_in_event(n: int, cadre: int, version: int, moment: datetime) -> RecordedEvent:
    """The n-th stored event: one check-in of ``cadre`` (its ``version``-th event)."""
    inside = n % 10 != 0
    event = CheckInRecorded(
        check_in_id=uuid4().hex,
        cadre_id=f"c{cadre:05d}",
        assignment_id=f"a{cadre:05d}",
        village_id=f"v{cadre // 3:05d}",
        occurred_at=moment,
        day=moment.date(),
        location=(
            None
            if n % 5 == 0
            else LocationEvidence(inside_geofence=inside, distance_m=(n % 97) * 10)
        ),
    )
    return RecordedEvent.model_construct(
        event_id=uuid4(),
        stream_id=f"attendance-cadre-c{cadre:05d}",
        stream_version=version,
        global_position=n + 1,
        event_type=event.event_type,
        schema_version=event.schema_version,
        key=event.kafka_key(),
        data=event.to_data(),
        occurred_at=moment,
        recorded_at=moment + timedelta(seconds=2),
        correlation_id=uuid4(),
        causation_id=None,
        actor=f"c{cadre:05d}:cadre",
        prev_hash=GENESIS_HASH,
        hash=f"{n:064x}",
    )


async def produce(bootstrap: str, events: int, cadres: int, duplicates: float) -> dict[str, Any]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    rng = random.Random(7)
    versions = [0] * cadres
    start = datetime(2025, 3, 1, tzinfo=UTC)
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    began = time.perf_counter()
    try:
        for n in range(events):
            cadre = rng.randrange(cadres)
            versions[cadre] += 1
            moment = start + timedelta(seconds=n * 20)
            record = to_kafka(check_in_event(n, cadre, versions[cadre], moment), source=SOURCE)
            copies = 2 if rng.random() < duplicates else 1  # the relay re-publishing
            for _ in range(copies):
                pending.append(
                    await producer.send(
                        TOPIC,
                        record.value,
                        key=record.key,
                        headers=[(k, v.encode()) for k, v in record.headers.items()],
                    )
                )
                sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - began
    print(f"produced {sent:,} records ({events:,} events) in {seconds:.1f} s")
    return {"records": sent, "events": events, "seconds": round(seconds, 2)}


# --- measuring -----------------------------------------------------------------------------


async def raw_consume(bootstrap: str) -> dict[str, Any]:
    """Every record read by one plain consumer with the rebuild's fetch settings."""
    probe = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    partitions = sorted(probe.partitions_for_topic(TOPIC))
    await probe.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in partitions]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        for tp, offset in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, offset)  # (seek_to_beginning sometimes never fetched here)
        total = 0
        began = time.perf_counter()
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                total += len(records)
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        seconds = time.perf_counter() - began
    finally:
        await consumer.stop()
    figure = {
        "case": "raw aiokafka consume",
        "events": total,
        "seconds": round(seconds, 3),
        "events_per_second": round(total / seconds, 1),
    }
    print(f"raw consume: {total:,} records in {seconds:.2f} s = {total / seconds:,.0f}/s")
    return figure


async def run_rebuild(
    pool: asyncpg.Pool,
    dsn: str,
    kafka: KafkaSettings,
    *,
    batch: int,
    workers: int,
    check_crcs: bool,
    profile: bool,
) -> tuple[dict[str, Any], str | None]:
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    with progress_bar("rebuild ledger") as progress:
        report = await rebuild(
            pool,
            CheckInLedger,
            kafka,
            live_schema="ledger",
            progress=progress,
            tuning=Tuning(batch_size=batch, check_crcs=check_crcs),
            workers=workers,
            dsn=dsn,
        )
    profile_text = None
    if profiler is not None:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        profile_text = out.getvalue()
    rows = await pool.fetchval("SELECT count(*) FROM ledger.check_ins")
    case = f"rebuild into PostgreSQL (end to end), {workers} worker process(es)"
    figure = {
        "case": case,
        "workers": workers,
        "check_crcs": check_crcs,
        "events": report.events,
        "applied": report.applied,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "rows": rows,
        "batch_size": batch,
        "seconds": round(report.seconds, 3),
        "events_per_second": round(report.events_per_second, 1),
        "digest": report.digest,
        "digest_seconds": round(report.digest_seconds, 3),
        "previous_schema": report.previous_schema,
        "caught_up_events": report.caught_up_events,
        "worker_peak_rss_mib": report.worker_peak_rss_mib,
        "profiled": profile,
    }
    print(
        f"rebuild ({workers} worker(s), check_crcs={check_crcs}): {report.events:,} records "
        f"({report.applied:,} applied, {report.duplicates:,} duplicates) in "
        f"{report.seconds:.2f} s = {report.events_per_second:,.0f}/s; "
        f"digest {report.digest[:16]} in {report.digest_seconds:.2f} s"
    )
    return figure, profile_text


async def run_runner(pool: asyncpg.Pool, kafka: KafkaSettings, seconds: float) -> dict[str, Any]:
    """The normal runner (batch 500) on the same topic for ``seconds``."""
    runner = ProjectionRunner(
        pool, CheckInLedger("runner_ledger"), kafka, schema="runner_ledger", group_id="bench"
    )
    await runner.migrate()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    # Starts counting once the first batch is in (the group join is not throughput).
    while runner.counts.consumed == 0:  # noqa: ASYNC110 - the runner offers no event
        await asyncio.sleep(0.05)
    first, began = runner.counts.consumed, time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = runner.counts.consumed, time.perf_counter() - began
    stop.set()
    await task
    events = done - first
    print(f"normal runner: {events:,} records in {elapsed:.1f} s = {events / elapsed:,.0f}/s")
    return {
        "case": "normal ProjectionRunner (batch 500)",
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1),
    }


class CpuMeter:
    """Where the CPU goes during a phase, across processes: this one and its finished
    children (the worker processes), the Kafka broker, and the whole machine (from
    /proc/stat; the rest is PostgreSQL, the kernel, and whatever else runs here)."""

    def __init__(self, kafka_pid: int | None) -> None:
        self.kafka = psutil.Process(kafka_pid) if kafka_pid else None
        self.cores = os.cpu_count() or 1

    def snapshot(self) -> tuple[float, float, float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        python = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        broker = 0.0
        if self.kafka is not None:
            times = self.kafka.cpu_times()
            broker = times.user + times.system
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / tick
        return time.perf_counter(), python, broker, busy

    def figures(self, before: tuple[float, ...], events: int) -> dict[str, Any]:
        after = self.snapshot()
        wall, python, broker, busy = (b - a for a, b in zip(before, after, strict=True))
        rest = max(0.0, busy - python - broker)

        def per_event(seconds: float) -> float:
            return round(seconds / events * 1e6, 2) if events else 0.0

        return {
            "wall_seconds": round(wall, 2),
            "machine_busy_percent": round(100 * busy / (wall * self.cores), 1),
            "cpu_seconds": {
                "python_processes": round(python, 2),
                "kafka_broker": round(broker, 2),
                "postgres_and_rest": round(rest, 2),
                "all": round(busy, 2),
            },
            "cpu_us_per_event": {
                "python_processes": per_event(python),
                "kafka_broker": per_event(broker),
                "postgres_and_rest": per_event(rest),
                "all": per_event(busy),
            },
            "ceiling_events_per_second_at_full_machine": (
                round(events / busy * self.cores) if busy else None
            ),
        }


def peak_rss_mib() -> float:
    """This process's peak resident memory (``ru_maxrss``, KiB on Linux) in MiB. (Worker
    processes report theirs in the rebuild report: ``RUSAGE_CHILDREN`` would also count
    the JVM that formatted the broker's storage.)"""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def bench(
    args: argparse.Namespace, dsn: str, bootstrap: str, kafka_pid: int | None
) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_partitions=args.partitions)
    await ensure_topics(kafka, [event_topic(TOPIC, kafka)])
    produced = await produce(bootstrap, args.events, args.cadres, args.duplicates)
    memory_after_produce = peak_rss_mib()
    meter = CpuMeter(kafka_pid)
    before = meter.snapshot()
    raw = await raw_consume(bootstrap)
    raw["cpu"] = meter.figures(before, raw["events"])
    figures = [raw]
    rebuilds = []
    pool = await create_pool(dsn, max_size=4)
    try:
        for workers in args.workers:
            before = meter.snapshot()
            rebuilt, profile_text = await run_rebuild(
                pool,
                dsn,
                kafka,
                batch=args.batch,
                workers=workers,
                check_crcs=not args.no_crc_check,
                profile=args.profile,
            )
            # The digest (read by PostgreSQL after the build) is in this phase too.
            rebuilt["cpu"] = meter.figures(before, rebuilt["events"])
            cpu = rebuilt["cpu"]["cpu_us_per_event"]
            print(
                f"  CPU per event: Python {cpu['python_processes']} us, Kafka broker "
                f"{cpu['kafka_broker']} us, PostgreSQL and the rest {cpu['postgres_and_rest']}"
                f" us; machine busy {rebuilt['cpu']['machine_busy_percent']} % of "
                f"{meter.cores} cores"
            )
            rebuilt["peak_rss_mib_self"] = peak_rss_mib()
            rebuilt["profile_top"] = profile_text
            if profile_text:
                print(profile_text)
            figures.append(rebuilt)
            rebuilds.append(rebuilt)
        tables = await model_tables(pool, "ledger")
        assert await digest(pool, "ledger", tables) == rebuilds[-1]["digest"]
        digests = {r["digest"] for r in rebuilds}
        assert len(digests) == 1, "every rebuild gives the same model"
        if args.runner_seconds > 0:
            figures.append(await run_runner(pool, kafka, args.runner_seconds))
    finally:
        await pool.close()
    best = max(rebuilds, key=lambda r: r["events_per_second"])
    ratio = best["events_per_second"] / raw["events_per_second"]
    met = best["events_per_second"] >= TARGET_EVENTS_PER_SECOND
    workers_peak = max((r["worker_peak_rss_mib"] or 0 for r in rebuilds), default=0) or None
    print(
        f"best rebuild ({best['workers']} worker(s)) / raw consume = {ratio:.2f}; peak RSS "
        f"{peak_rss_mib()} MiB in this process (after producing: {memory_after_produce} MiB),"
        f" {workers_peak} MiB in the largest worker process; target "
        f"{TARGET_EVENTS_PER_SECOND:,}/s: {'met' if met else 'NOT met'}"
    )
    return {
        "produced": produced,
        "figures": figures,
        "best_rebuild_to_raw_ratio": round(ratio, 3),
        "target_met": met,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_mib_after_produce": memory_after_produce,
        "peak_rss_mib_largest_worker": workers_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cadres", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--duplicates", type=float, default=0.001, help="re-published share")
    parser.add_argument("--batch", type=int, default=10_000, help="rebuild batch size")
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="worker processes of each rebuild, e.g. 1,2 (one rebuild per value)",
    )
    parser.add_argument("--no-crc-check", action="store_true", help="rebuild with check_crcs=False")
    parser.add_argument("--runner-seconds", type=float, default=20.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the rebuild")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    # A SIGTERM (timeout, CI) still stops the servers this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    dsn = os.environ.get("ZHUCUN_TEST_POSTGRES_DSN")
    bootstrap = os.environ.get("ZHUCUN_TEST_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="zhucun-bench-") as tmp:
        #: How to stop the servers this run started, in the order they started.
        stops: list[Callable[[], None]] = []
        kafka_pid: int | None = None
        if not dsn:
            from zhucun.infra.postgres import PostgresServer

            pg = PostgresServer(Path(tmp) / "pg")
            pg.start()
            stops.append(pg.stop)
            pg.create_database("projection_bench")
            dsn = pg.dsn("projection_bench")
        if not bootstrap:
            from zhucun.infra.kafka import KafkaServer

            kafka = KafkaServer(Path(tmp) / "kafka", heap="1g")
            kafka.start()
            stops.append(kafka.stop)
            bootstrap = kafka.bootstrap_servers
            kafka_pid = kafka.pid
        try:
            outcome = asyncio.run(bench(args, dsn, bootstrap, kafka_pid))
        finally:
            for stop in reversed(stops):
                stop()

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "projection_rebuild",
        "at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "command": " ".join(["uv run python", *sys.argv]),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        **outcome,
        "targets": {"rebuild_events_per_second": TARGET_EVENTS_PER_SECOND},
    }
    path = args.out / f"projection_bench_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
