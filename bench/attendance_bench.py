"""Check-in ingest of the attendance service over real HTTP, PostgreSQL and Kafka (run by hand).

    uv run python bench/attendance_bench.py [--cadres 40] [--batch 500] [--rate 200]
                                            [--seconds 30] [--out bench/results]

Starts its own PostgreSQL cluster and Kafka broker with the project's launcher (or uses
ZHUCUN_TEST_POSTGRES_DSN / ZHUCUN_TEST_KAFKA_BOOTSTRAP), runs the attendance service as its
own process (uvicorn, one worker), and publishes a county's villages and assignments on
``dispatch.events.v1`` for the service's replica to learn. Then:

1. **Batch ingest** — every cadre uploads its offline check-ins in batches of ``--batch``
   through ``POST /cadres/{id}/check-ins/batch`` (four uploads in flight). The clock stops
   when every check-in is stored *and* the relay has published it to
   ``attendance.events.v1`` (the relay's lag is back to 0).
2. **Single check-ins** — an open-loop load of ``--rate`` requests per second for
   ``--seconds``, each one check-in of a random cadre among ``--single-cadres`` with a
   location: latency percentiles of the whole HTTP round trip, the rate actually achieved,
   and the service's own histogram (``/metrics``) for comparison.

Everything runs on this machine (the service, PostgreSQL, Kafka and the load generator
share its cores). Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg
from aiokafka import AIOKafkaProducer

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    CadreAssigned,
    Geofence,
    Role,
    VillageCategory,
    VillageRegistered,
)
from zhucun.shared.auth import mint_token
from zhucun.shared.envelope import RecordedEvent, to_kafka
from zhucun.shared.events import GENESIS_HASH, DomainEvent
from zhucun.shared.kafka import ensure_topics, event_topic
from zhucun.shared.settings import AuthSettings, KafkaSettings

COUNTY = "530102"
CENTRE = (25.04, 102.71)
TERM_START = date(2025, 1, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def publish_dispatch(bootstrap: str, cadres: int) -> None:
    """The county's villages (one per three cadres) and assignments, as dispatch publishes
    them; the attendance replica consumes them."""
    await ensure_topics(
        KafkaSettings(bootstrap_servers=bootstrap),
        [event_topic("dispatch.events.v1", KafkaSettings(bootstrap_servers=bootstrap))],
    )
    events: list[DomainEvent] = []
    for v in range(cadres // 3 + 1):
        events.append(
            VillageRegistered(
                village_id=f"v{v}",
                county=COUNTY,
                name="村",
                township=f"t{v % 5}",
                categories=(VillageCategory.KEY_ASSISTANCE,),
                geofence=Geofence(latitude=CENTRE[0], longitude=CENTRE[1], radius_m=1500),
                households=200,
                monitored_population=50,
            )
        )
    for c in range(cadres):
        events.append(
            CadreAssigned(
                assignment_id=f"a{c}",
                cadre_id=f"c{c}",
                team_id=f"team{c // 3}",
                round_id="r1",
                county=COUNTY,
                village_id=f"v{c // 3}",
                role=Role.MEMBER,
                kind=AssignmentKind.INITIAL,
                term_start=TERM_START,
                term_end=TERM_START + timedelta(days=730),
                policy_version="reference-2021",
            )
        )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for position, event in enumerate(events, 1):
            recorded = RecordedEvent(
                event_id=uuid4(),
                stream_id=f"dispatch-county-{COUNTY}",
                stream_version=position,
                global_position=position,
                event_type=event.event_type,
                schema_version=event.schema_version,
                key=event.kafka_key(),
                data=event.to_data(),
                occurred_at=now,
                recorded_at=now,
                correlation_id=uuid4(),
                causation_id=None,
                actor="bench:service",
                prev_hash=GENESIS_HASH,
                hash=GENESIS_HASH,
            )
            record = to_kafka(recorded, source="/zhucun/dispatch")
            await producer.send(
                "dispatch.events.v1",
                record.value,
                key=record.key,
                headers=[(k, v.encode()) for k, v in record.headers.items()],
            )
        await producer.flush()
    finally:
        await producer.stop()


def cadre_token(cadre: int) -> str:
    return mint_token(
        AuthSettings(), subject=f"bench-{cadre}", role="cadre", county=COUNTY, cadre=f"c{cadre}"
    )


def check_in(n: int, moment: datetime) -> dict[str, Any]:
    # A point within ~300 m of the centre: inside the 1500 m geofence.
    offset = (n % 7) * 0.0004
    return {
        "check_in_id": uuid4().hex,
        "occurred_at": moment.isoformat(),
        "location": {"latitude": CENTRE[0] + offset, "longitude": CENTRE[1]},
    }


async def wait_replicated(client: aiohttp.ClientSession, cadres: int) -> None:
    headers = {"Authorization": f"Bearer {cadre_token(cadres - 1)}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with client.get(f"/cadres/c{cadres - 1}/leave", headers=headers) as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.5)
    raise SystemExit("the replica never learnt the assignments")


async def relay_lag(pool: asyncpg.Pool) -> int:
    head = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM public.events")
    done = await pool.fetchval("SELECT coalesce(max(position), 0) FROM public.relay_checkpoints")
    return int(head) - int(done)


async def batch_ingest(
    client: aiohttp.ClientSession, pool: asyncpg.Pool, cadres: int, batch: int
) -> dict[str, Any]:
    """Each cadre uploads ``batch`` check-ins spread over 100 days (five a day) at once."""
    uploads = []
    for c in range(cadres):
        start = datetime(2025, 2, 1, 1, 0, tzinfo=UTC) + timedelta(days=100 * (c % 3))
        items = [check_in(n, start + timedelta(hours=4.8 * n)) for n in range(batch)]
        uploads.append((c, items))
    semaphore = asyncio.Semaphore(4)
    recorded = 0

    async def upload(c: int, items: list[dict[str, Any]]) -> None:
        nonlocal recorded
        async with (
            semaphore,
            client.post(
                f"/cadres/c{c}/check-ins/batch",
                json={"items": items},
                headers={"Authorization": f"Bearer {cadre_token(c)}"},
            ) as response,
        ):
            response.raise_for_status()
            recorded += (await response.json())["recorded"]

    began = time.perf_counter()
    await asyncio.gather(*(upload(c, items) for c, items in uploads))
    stored_at = time.perf_counter()
    while await relay_lag(pool) > 0:  # noqa: ASYNC110 - polling another process's progress
        await asyncio.sleep(0.05)
    published_at = time.perf_counter()
    total = cadres * batch
    figure = {
        "case": "batch ingest (stored and published)",
        "check_ins": total,
        "recorded": recorded,
        "batch_size": batch,
        "seconds_to_store": round(stored_at - began, 3),
        "seconds_to_publish": round(published_at - began, 3),
        "stored_per_second": round(total / (stored_at - began), 1),
        "stored_and_published_per_second": round(total / (published_at - began), 1),
    }
    print(
        f"batch ingest: {total} check-ins in batches of {batch}: stored in "
        f"{figure['seconds_to_store']} s ({figure['stored_per_second']:,.0f}/s), stored and "
        f"published in {figure['seconds_to_publish']} s "
        f"({figure['stored_and_published_per_second']:,.0f}/s)"
    )
    return figure


CHECK_IN_ROUTE = 'method="POST",route="/cadres/{cadre_id}/check-ins",status="201"'


async def server_buckets(client: aiohttp.ClientSession) -> dict[str, float]:
    """The service's own latency histogram of single check-ins (``/metrics``): cumulative
    counts per upper bound, so the server's share of the latency can be told apart from the
    load generator's."""
    async with client.get("/metrics") as response:
        text = await response.text()
    buckets: dict[str, float] = {}
    prefix = "http_request_duration_seconds_bucket{"
    for line in text.splitlines():
        if line.startswith(prefix) and CHECK_IN_ROUTE in line:
            bound = line.split('le="')[1].split('"')[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets


async def single_latency(
    client: aiohttp.ClientSession, cadres: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Open loop: a request every 1/rate s whatever the answers' latency."""
    latencies: list[float] = []
    errors: list[int] = []
    tokens = {c: cadre_token(c) for c in range(cadres)}
    day0 = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)

    async def one(n: int) -> None:
        c = random.randrange(cadres)
        # The run's check-ins spread over September.
        moment = day0 + timedelta(seconds=n * 29 * 86_400 / (rate * seconds))
        began = time.perf_counter()
        try:
            async with client.post(
                f"/cadres/c{c}/check-ins",
                json=check_in(n, moment),
                headers={"Authorization": f"Bearer {tokens[c]}"},
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = -1  # no answer in time: counted as an error, and its latency kept
        latencies.append(time.perf_counter() - began)
        if status != 201:
            errors.append(status)

    before = await server_buckets(client)
    # The load generator's own garbage collections would pause its event loop and show up
    # as request latency: keep them out of the measured window.
    gc.collect()
    gc.freeze()
    gc.disable()
    tasks = []
    began = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    gc.enable()
    latencies.sort()
    after = await server_buckets(client)
    served = after.get("+Inf", 0) - before.get("+Inf", 0)
    server_within = {
        f"le_{bound}s": round((after[bound] - before.get(bound, 0)) / served, 4)
        for bound in ("0.025", "0.05", "0.1")
        if bound in after and served
    }

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    figure = {
        "case": "single check-ins, open loop",
        "target_rate": rate,
        "requests": total,
        "achieved_rate": round(total / elapsed, 1),
        "errors": len(errors),
        "error_statuses": {str(k): errors.count(k) for k in sorted(set(errors))},
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2),
        "server_side_share_within": server_within,
    }
    print(
        f"single check-ins at {rate}/s for {seconds} s: achieved {figure['achieved_rate']}/s, "
        f"p50 {figure['p50_ms']} ms, p95 {figure['p95_ms']} ms, p99 {figure['p99_ms']} ms, "
        f"max {figure['max_ms']} ms, errors {len(errors)}; measured in the service: "
        f"{server_within}"
    )
    return figure


async def bench(args: argparse.Namespace, dsn: str, bootstrap: str) -> list[dict[str, Any]]:
    await publish_dispatch(bootstrap, max(args.cadres, args.single_cadres))
    port = free_port()
    env = {
        **os.environ,
        "ZHUCUN_SERVICE_NAME": "attendance",
        "ZHUCUN_HTTP_PORT": str(port),
        "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "ZHUCUN_POSTGRES__DSN": dsn,
        "ZHUCUN_LOG__LEVEL": "WARNING",
        "ZHUCUN_LOG__FORMAT": "json",
    }
    service = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "zhucun.cli.main", "serve", "attendance", "--port", str(port)],
        env=env,
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        # aiohttp rather than httpx: on a 2-core machine the load generator's own CPU cost
        # competes with the service it measures, and aiohttp's is several times lower.
        async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{port}",
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(limit=400),
        ) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with client.get("/health/ready") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the attendance service did not become ready")
                await asyncio.sleep(0.5)
            await wait_replicated(client, max(args.cadres, args.single_cadres))
            figures = [await batch_ingest(client, pool, args.cadres, args.batch)]
            figures.append(
                await single_latency(client, args.single_cadres, args.rate, args.seconds)
            )
            return figures
    finally:
        await pool.close()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cadres", type=int, default=40, help="cadres (one batch each)")
    parser.add_argument(
        "--single-cadres",
        type=int,
        default=2000,
        help="cadres the single check-ins are spread over (a county has ~500, a province 30,000)",
    )
    parser.add_argument("--batch", type=int, default=500, help="check-ins per upload")
    parser.add_argument("--rate", type=float, default=200.0, help="single check-ins per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the single run")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    dsn = os.environ.get("ZHUCUN_TEST_POSTGRES_DSN")
    bootstrap = os.environ.get("ZHUCUN_TEST_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="zhucun-bench-") as tmp:
        #: How to stop the servers this run started, in the order they started.
        stops: list[Callable[[], None]] = []
        if not dsn:
            from zhucun.infra.postgres import PostgresServer

            pg = PostgresServer(Path(tmp) / "pg")
            pg.start()
            stops.append(pg.stop)
            pg.create_database("attendance_bench")
            dsn = pg.dsn("attendance_bench")
        if not bootstrap:
            from zhucun.infra.kafka import KafkaServer

            kafka = KafkaServer(Path(tmp) / "kafka")
            kafka.start()
            stops.append(kafka.stop)
            bootstrap = kafka.bootstrap_servers
        try:
            figures = asyncio.run(bench(args, dsn, bootstrap))
        finally:
            for stop in reversed(stops):
                stop()

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "attendance_check_ins",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "figures": figures,
        "targets": {"batch_ingest_per_second": 2000, "single_p99_ms_at_200_rps": 50},
    }
    path = args.out / f"attendance_bench_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
