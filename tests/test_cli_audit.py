"""The auditors' commands against real PostgreSQL (and Kafka for ``status``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, cast

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy
from typer.testing import CliRunner

from zhucun.cli.main import app
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.projection import Delivery
from zhucun.shared.store import NO_STREAM, PostgresEventStore, create_pool

pytestmark = pytest.mark.integration

runner = CliRunner()


class Noted(DomainEvent):
    event_type: ClassVar[str] = "test.Noted"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    note: str


async def fill_store(dsn: str, events: int) -> list[str]:
    pool = await create_pool(dsn)
    try:
        store = PostgresEventStore(pool)
        await store.migrate()
        result = await store.append(
            "cadre-c1",
            [
                NewEvent(
                    event=Noted(cadre_id="c1", note=f"n{n}"),
                    metadata=EventMetadata(occurred_at=datetime.now(UTC), actor="t:auditor"),
                )
                for n in range(events)
            ],
            expected_version=NO_STREAM,
        )
        return [str(e.event_id) for e in result.events]
    finally:
        await pool.close()


async def tamper(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # What an intruder with the table owner's rights would do: bypass the guard trigger.
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(
            """UPDATE events SET data = jsonb_set(data, '{note}', '"changed"')
               WHERE stream_version = 2"""
        )
    finally:
        await conn.close()


async def audit_trail_with(dsn: str, event_ids: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE audit_trail (cadre_id text, event_id uuid)")
        await conn.executemany(
            "INSERT INTO audit_trail VALUES ('c1', $1::uuid)", [(i,) for i in event_ids]
        )
    finally:
        await conn.close()


def test_verify_reports_intact_chains_and_a_complete_audit_trail(
    make_database: Callable[[], str],
) -> None:
    store, projections = make_database(), make_database()
    ids = asyncio.run(fill_store(store, 3))
    asyncio.run(audit_trail_with(projections, ids))
    result = runner.invoke(
        app, ["verify", "--store", f"dispatch={store}", "--audit-dsn", projections]
    )
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    assert "all 3 stored events about cadres" in result.output


def test_verify_names_the_first_broken_link_and_missing_audit_rows(
    make_database: Callable[[], str],
) -> None:
    store, projections = make_database(), make_database()
    ids = asyncio.run(fill_store(store, 3))
    asyncio.run(tamper(store))
    asyncio.run(audit_trail_with(projections, ids[:1]))
    result = runner.invoke(
        app, ["verify", "--store", f"dispatch={store}", "--audit-dsn", projections]
    )
    assert result.exit_code == 1
    assert "broken" in result.output
    assert "v2" in result.output
    assert "2 of 3" in result.output


def test_verify_refuses_a_malformed_store_option() -> None:
    result = runner.invoke(app, ["verify", "--store", "no-equals-sign"])
    assert result.exit_code == 2


class NoProjection:
    """The smallest projection: the runtime's tables and nothing of its own."""

    name: str = "status-probe"
    topics: Sequence[str] = ("dispatch.events.v1",)

    def __init__(self) -> None:
        self.registry = EventRegistry()

    async def migrate(self, conn: asyncpg.Connection) -> None:
        return None

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        return None


def as_connection(conn: PoolConnectionProxy[asyncpg.Record]) -> asyncpg.Connection:
    """A pooled connection as a projection takes it: the proxy forwards every method to its
    connection, which the stubs cannot say (the runtime casts the same way)."""
    return cast(asyncpg.Connection, conn)


async def status_fixture(projections_dsn: str, store_dsn: str, bootstrap: str, topic: str) -> None:
    """A topic of 2 partitions holding 5 and 2 records, of which the projection has read 2 of
    partition 0 and none of partition 1 (lag 3 + 2); 4 records on its dead-letter topic; a
    store of 3 events whose relay has published 1 (lag 2)."""
    from aiokafka import AIOKafkaProducer

    from zhucun.shared.kafka import dlq_topic, ensure_topics, event_topic
    from zhucun.shared.projection import ProjectionRunner
    from zhucun.shared.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_partitions=2)
    await ensure_topics(kafka, [event_topic(topic, kafka), dlq_topic(topic, kafka)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, records in ((0, 5), (1, 2)):
            for n in range(records):
                await producer.send_and_wait(topic, b"x", partition=partition, key=b"%d" % n)
        for _ in range(4):
            await producer.send_and_wait(f"{topic}.dlq", b"bad")
    finally:
        await producer.stop()
    pool = await create_pool(projections_dsn)
    try:
        await ProjectionRunner(pool, NoProjection(), kafka).migrate()
        await pool.execute("INSERT INTO projection_counts VALUES ('status-probe', 7, 5, 1, 1)")
        await pool.execute(
            "INSERT INTO projection_offsets VALUES ('status-probe', $1, 0, 2)", topic
        )
    finally:
        await pool.close()
    await fill_store(store_dsn, 3)
    conn = await asyncpg.connect(store_dsn)
    try:
        await conn.execute("INSERT INTO relay_checkpoints (relay, position) VALUES ('relay', 1)")
    finally:
        await conn.close()


@pytest.fixture
def status_setup(make_database: Callable[[], str], kafka_bootstrap: str) -> tuple[list[str], str]:
    """``zhucun status`` arguments over the fixture above, and its topic."""
    import uuid

    projections, store = make_database(), make_database()
    topic = f"status-{uuid.uuid4().hex[:8]}.events.v1"
    asyncio.run(status_fixture(projections, store, kafka_bootstrap, topic))
    args = [
        "status",
        f"--database=probe={projections}",
        f"--store=dispatch={store}",
        f"--bootstrap={kafka_bootstrap}",
    ]
    return args, topic


def test_status_shows_true_lag_relay_lag_and_dead_letter_sizes(
    status_setup: tuple[list[str], str],
) -> None:
    import json

    args, topic = status_setup
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (projection,) = document["projections"]
    assert projection["projection"] == "status-probe"
    assert (projection["consumed"], projection["applied"]) == (7, 5)
    assert projection["lag"] == 5
    partitions = {p["partition"]: p for p in projection["partitions"]}
    assert partitions[0] == {"topic": topic, "partition": 0, "stored": 2, "end": 5, "lag": 3}
    assert partitions[1] == {"topic": topic, "partition": 1, "stored": None, "end": 2, "lag": 2}
    assert [(r["store"], r["head"], r["published"], r["lag"]) for r in document["relays"]] == [
        ("dispatch", 3, 1, 2)
    ]
    sizes = {d["topic"]: d["records"] for d in document["dead_letter_topics"]}
    assert sizes[f"{topic}.dlq"] == 4

    tables = runner.invoke(app, args)
    assert tables.exit_code == 0, tables.output
    row = next(line for line in tables.stdout.splitlines() if f"{topic}.dlq" in line)
    assert row.split("│")[2].strip() == "4"
    lag_row = next(
        line for line in tables.stdout.splitlines() if "│ 0 " in line and topic[:8] in line
    )
    assert [cell.strip() for cell in lag_row.split("│")[5:8]] == ["2", "5", "3"]


def test_status_fails_on_lag_and_dead_letters_when_asked(
    status_setup: tuple[list[str], str],
) -> None:
    args, topic = status_setup
    within = runner.invoke(app, [*args, "--json", "--fail-on-lag=3"])
    assert within.exit_code == 0, within.output
    over = runner.invoke(app, [*args, "--json", "--fail-on-lag=2"])
    assert over.exit_code == 1
    assert over.stderr.splitlines() == [
        f"zhucun status: projection status-probe (probe) is 3 events behind on {topic}[0]"
    ]
    relay = runner.invoke(app, [*args, "--json", "--fail-on-lag=1"])
    assert relay.exit_code == 1
    assert "zhucun status: relay relay of store dispatch is 2 events behind" in relay.stderr
    dead = runner.invoke(app, [*args, "--json", "--fail-on-dead-letters"])
    assert dead.exit_code == 1
    assert f"zhucun status: {topic}.dlq holds 4 records" in dead.stderr.splitlines()


async def one_file(dsn: str) -> list[str]:
    """An audit trail with two events in cadre c1's file, as the projection writes them."""
    import uuid
    from datetime import date, timedelta

    from zhucun.contracts.dispatch.events import AssignmentKind, CadreAssigned, Role
    from zhucun.projections.audit import AuditTrail
    from zhucun.shared.envelope import RecordedEvent

    trail = AuditTrail("public")
    deliveries = []
    for n in (1, 2):
        event = CadreAssigned(
            assignment_id=f"a{n}", cadre_id="c1", team_id="t", round_id="r", county="530102",
            village_id="v", role=Role.MEMBER, kind=AssignmentKind.INITIAL,
            term_start=date(2025, n, 1), term_end=date(2027, n, 1), policy_version="p",
        )  # fmt: skip
        now = datetime.now(UTC) + timedelta(seconds=n)
        recorded = RecordedEvent(
            event_id=uuid.uuid4(), stream_id="s", stream_version=n, global_position=n,
            event_type=event.event_type, schema_version=1, key="c1", data=event.to_data(),
            occurred_at=now, recorded_at=now, correlation_id=uuid.uuid4(), causation_id=None,
            actor="t:org_admin", prev_hash="0" * 64, hash="f" * 64,
        )  # fmt: skip
        deliveries.append(Delivery("dispatch.events.v1", 0, n, recorded, "/zhucun/dispatch", event))
    pool = await create_pool(dsn)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await trail.migrate(as_connection(conn))
            await trail.apply(as_connection(conn), deliveries)
    finally:
        await pool.close()
    return [str(d.event.event_id) for d in deliveries]


def test_export_writes_one_cadres_file_as_csv_or_json(
    make_database: Callable[[], str], tmp_path: object
) -> None:
    import csv
    import json
    from pathlib import Path

    dsn = make_database()
    ids = asyncio.run(one_file(dsn))
    target = Path(str(tmp_path)) / "c1.csv"
    result = runner.invoke(
        app, ["export", "c1", "--dsn", dsn, "--format", "csv", "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["event_id"] for row in rows] == ids
    assert all(row["summary"] for row in rows)

    as_json = runner.invoke(app, ["export", "c1", "--dsn", dsn])
    assert as_json.exit_code == 0, as_json.output
    assert [entry["event_id"] for entry in json.loads(as_json.stdout)] == ids

    unknown = runner.invoke(app, ["export", "nobody", "--dsn", dsn])
    assert unknown.exit_code == 1


def test_replay_rebuilds_and_switches_then_builds_as_of(
    make_database: Callable[[], str], kafka_bootstrap: str
) -> None:
    from zhucun.shared.kafka import ensure_topics, event_topic
    from zhucun.shared.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    asyncio.run(ensure_topics(kafka, [event_topic("dispatch.events.v1", kafka)]))
    dsn = make_database()
    base = ["--dsn", dsn, "--bootstrap", kafka_bootstrap]
    rebuilt = runner.invoke(
        app, ["--log-level", "INFO", "replay", "attendance-dispatch-replica", *base]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "into schema public" in rebuilt.stdout
    # The report on stdout, the log lines (JSON: stderr is not a terminal) on stderr only.
    logged = [json.loads(line) for line in rebuilt.stderr.splitlines() if line.startswith("{")]
    assert "replay.rebuilt" in {line["event"] for line in logged}, logged
    assert not [line for line in rebuilt.stdout.splitlines() if line.startswith("{")]
    digest = rebuilt.output.split("digest ")[1].split()[0]
    as_of = runner.invoke(
        app,
        ["replay", "attendance-dispatch-replica", *base, "--as-of", "2999-01-01T00:00:00",
         "--scratch-schema", "audit_scratch"],
    )  # fmt: skip
    assert as_of.exit_code == 0, as_of.output
    assert "audit_scratch" in as_of.output
    # Nothing was published in between: the model as of the far future is the same model.
    assert as_of.output.split("digest ")[1].split()[0] == digest
    unknown = runner.invoke(app, ["replay", "no-such-projection", *base])
    assert unknown.exit_code == 2
