"""Commands for auditors: ``zhucun verify``, ``zhucun status``, ``zhucun export`` (and
``zhucun replay``).

They talk to the databases directly, read-only unless a command says otherwise: an auditor
runs them with credentials of their own against the services' stores and the projections
database. Defaults point at the local demo (``zhucun infra up``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import zhucun.contracts.assessment
import zhucun.contracts.attendance
import zhucun.contracts.decisions
import zhucun.contracts.dispatch
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import PostgresEventStore, VerificationReport, create_pool

if TYPE_CHECKING:
    from zhucun.shared.projection import Projection

#: The services with an event store, in the order they are checked: name -> (database, schema
#: of the store; ``None``: the --schema option). The read side keeps the recall decisions it
#: publishes in a store of its own.
STORE_SERVICES: dict[str, tuple[str, str | None]] = {
    "dispatch": ("dispatch", None),
    "attendance": ("attendance", None),
    "assessment": ("assessment", None),
    "decisions": ("projections", "decision_store"),
}
PROJECTIONS_DATABASE = "projections"

stdout = Console()
stderr = Console(stderr=True)


def _local_demo_absent(what: str) -> str:
    """Why the local demo's ``what`` (PostgreSQL, Kafka) cannot serve as a default here."""
    if importlib.util.find_spec("zhucun.infra") is None:
        return (
            f"the local demo's {what} is development tooling (zhucun-devtools), "
            "not part of this installation"
        )
    return f"the local demo's {what} is not running (start it with `zhucun infra up`)"


def local_dsn(database: str) -> str | None:
    """The DSN of ``database`` on the local demo's PostgreSQL, when it runs here (only the
    development environment has the local demo)."""
    if importlib.util.find_spec("zhucun.infra") is None:
        return None
    from zhucun.infra.local import postgres_state_file
    from zhucun.infra.postgres import PostgresServer

    server = PostgresServer.from_state(postgres_state_file())
    if server is None or not server.is_running():
        return None
    return server.dsn(database)


def required_dsn(dsn: str | None, option: str, database: str) -> str:
    """``dsn``, else the local demo's ``database``, else a clear error naming ``option``."""
    found = dsn or local_dsn(database)
    if found is None:
        raise typer.BadParameter(
            f"no {option} given, and {_local_demo_absent('PostgreSQL')}: "
            f"pass {option} with the DSN of the {database} database"
        )
    return found


def parse_stores(stores: list[str], *, option: str = "--store") -> dict[str, str]:
    """``NAME=DSN`` options, or the local demo's stores."""
    if not stores:
        found = {name: local_dsn(database) for name, (database, _) in STORE_SERVICES.items()}
        if any(dsn is None for dsn in found.values()):
            raise typer.BadParameter(
                f"no {option} given, and {_local_demo_absent('PostgreSQL')}: pass "
                + " ".join(f"{option} {name}=DSN" for name in STORE_SERVICES)
            )
        return {name: dsn for name, dsn in found.items() if dsn is not None}
    return parse_named_dsns(stores, option=option)


def parse_named_dsns(options: list[str], *, option: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in options:
        name, sep, dsn = value.partition("=")
        if not sep or not name or not dsn:
            raise typer.BadParameter(f"{option} wants NAME=DSN, got {value!r}")
        parsed[name] = dsn
    return parsed


@dataclass(frozen=True)
class AuditCoverage:
    """Stored events about a cadre, and those the audit trail does not hold."""

    about_cadres: int
    missing: list[str]


async def _verify_store(dsn: str, schema: str) -> tuple[VerificationReport, list[str]]:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        report = await PostgresEventStore(pool, schema=schema).verify()
        rows = await pool.fetch(
            f"""
            SELECT event_id::text FROM "{schema}".events
            WHERE data ? 'cadre_id' OR data ? 'predecessor_cadre_id'
               OR data ? 'successor_cadre_id'
            ORDER BY global_position
            """
        )
        return report, [row["event_id"] for row in rows]
    finally:
        await pool.close()


async def _audit_coverage(dsn: str, schema: str, event_ids: list[str]) -> AuditCoverage:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        present: set[str] = set()
        for start in range(0, len(event_ids), 10_000):
            chunk = event_ids[start : start + 10_000]
            rows = await pool.fetch(
                f"""
                SELECT DISTINCT event_id::text FROM "{schema}".audit_trail
                WHERE event_id = ANY($1::uuid[])
                """,
                chunk,
            )
            present.update(row["event_id"] for row in rows)
        return AuditCoverage(len(event_ids), [i for i in event_ids if i not in present])
    finally:
        await pool.close()


def verify(
    store: Annotated[
        list[str],
        typer.Option(
            "--store",
            help="NAME=DSN of a service's event store (repeatable); default: the local demo's "
            "dispatch, attendance, assessment and decisions (projections database) stores.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    audit_dsn: Annotated[
        str | None,
        typer.Option(help="DSN of the projections database; default: the local demo's."),
    ] = None,
    schema: Annotated[str, typer.Option(help="Schema of the stores and the audit trail.")] = (
        "public"
    ),
    skip_audit: Annotated[
        bool, typer.Option("--skip-audit", help="Only walk the hash chains.")
    ] = False,
) -> None:
    """Walk the hash chains of the services' event stores and report the first broken link;
    then check that the audit trail holds every stored event about a cadre.

    Exits with 1 when a chain is broken or the audit trail misses events (which can also be
    lag: compare with `zhucun status`)."""
    stores = parse_stores(store)
    table = Table(title="Event stores")
    for column in ("store", "events", "streams", "hash chains"):
        table.add_column(column)
    failed = False
    about_cadres: list[str] = []
    for name, dsn in stores.items():
        store_schema = STORE_SERVICES.get(name, (name, None))[1] or schema
        report, ids = asyncio.run(_verify_store(dsn, store_schema))
        about_cadres.extend(ids)
        if report.ok:
            verdict = "[green]intact[/]"
        else:
            failed = True
            link = report.first_broken
            assert link is not None
            verdict = (
                f"[red]broken[/] at {link.stream_id} v{link.stream_version} "
                f"(position {link.global_position}): {link.reason}"
            )
        table.add_row(name, str(report.events_checked), str(report.streams_checked), verdict)
    stdout.print(table)
    if not skip_audit:
        projections = required_dsn(audit_dsn, "--audit-dsn", PROJECTIONS_DATABASE)
        coverage = asyncio.run(_audit_coverage(projections, schema, about_cadres))
        if coverage.missing:
            failed = True
            first = ", ".join(coverage.missing[:5])
            stdout.print(
                f"[red]audit trail incomplete[/]: {len(coverage.missing)} of "
                f"{coverage.about_cadres} stored events about cadres are missing (first: {first})"
            )
        else:
            stdout.print(
                f"[green]audit trail complete[/]: all {coverage.about_cadres} stored events "
                "about cadres are in it"
            )
    if failed:
        raise typer.Exit(code=1)


# --- status ---------------------------------------------------------------------------------

#: The databases that keep projections (read models and replicas) by default.
PROJECTION_DATABASES = ("attendance", "assessment", "projections")
EVENT_TOPICS = (
    zhucun.contracts.dispatch.TOPIC,
    zhucun.contracts.attendance.TOPIC,
    zhucun.contracts.assessment.TOPIC,
    zhucun.contracts.decisions.TOPIC,
)
#: Read models kept in a schema of their own, looked up besides --schema.
OWN_SCHEMAS = ("decisions",)


@dataclass(frozen=True)
class ProjectionStatus:
    database: str
    projection: str
    consumed: int
    applied: int
    duplicates: int
    dead_lettered: int
    #: (topic, partition) -> next offset to read, as stored with the read model.
    offsets: dict[tuple[str, int], int]


async def _projection_status(database: str, dsn: str, schema: str) -> list[ProjectionStatus]:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        exists = await pool.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f'"{schema}".projection_counts'
        )
        if not exists:
            return []
        counts = await pool.fetch(f'SELECT * FROM "{schema}".projection_counts ORDER BY 1')
        offsets = await pool.fetch(
            f'SELECT projection, topic, partition, next_offset FROM "{schema}".projection_offsets'
        )
        return [
            ProjectionStatus(
                database=database,
                projection=row["projection"],
                consumed=row["consumed"],
                applied=row["applied"],
                duplicates=row["duplicates"],
                dead_lettered=row["dead_lettered"],
                offsets={
                    (o["topic"], o["partition"]): o["next_offset"]
                    for o in offsets
                    if o["projection"] == row["projection"]
                },
            )
            for row in counts
        ]
    finally:
        await pool.close()


#: (topic, partition) -> (beginning offset, end offset): the records a partition holds now.
TopicOffsets = dict[tuple[str, int], tuple[int, int]]


async def topic_offsets(kafka: KafkaSettings, topics: list[str]) -> TopicOffsets:
    """Beginning and end offsets of every partition of those ``topics`` that exist.

    The partitions come from the cluster's metadata (a consumer that is not subscribed knows
    none), the offsets from ``ListOffsets``: the end is the next offset to be written, so
    ``end - beginning`` is the number of records the partition holds."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from zhucun.shared.kafka import client_options

    options = client_options(kafka)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = sorted(existing.intersection(topics))
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], p["partition"])
        for topic in described
        for p in topic["partitions"]
    ]
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): (beginnings[tp], ends[tp]) for tp in partitions}


@dataclass(frozen=True)
class PartitionLag:
    """How far one projection is behind on one partition."""

    database: str
    projection: str
    topic: str
    partition: int
    #: The next offset to read as stored with the read model; ``None``: never read, so it
    #: starts at the partition's beginning (the runners read from the earliest offset).
    stored: int | None
    beginning: int
    end: int

    @property
    def lag(self) -> int:
        start = self.stored if self.stored is not None else self.beginning
        return max(0, self.end - start)


def partition_lags(statuses: list[ProjectionStatus], offsets: TopicOffsets) -> list[PartitionLag]:
    """Every partition of every topic a projection has read, those it has not reached yet
    included (a new partition, or one its first records have not come to)."""
    lags: list[PartitionLag] = []
    for s in statuses:
        topics = {topic for topic, _ in s.offsets}
        partitions = set(s.offsets) | {key for key in offsets if key[0] in topics}
        for topic, partition in sorted(partitions):
            beginning, end = offsets.get((topic, partition), (0, 0))
            stored = s.offsets.get((topic, partition))
            lags.append(
                PartitionLag(s.database, s.projection, topic, partition, stored, beginning, end)
            )
    return lags


@dataclass(frozen=True)
class RelayStatus:
    """A store's relay: the last global position stored, and the last one Kafka has."""

    store: str
    relay: str
    head: int
    published: int
    updated_at: datetime | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.published)


async def _relay_status(store: str, dsn: str, schema: str) -> list[RelayStatus]:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        if not await pool.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f'"{schema}".relay_checkpoints'
        ):
            return []
        head = await pool.fetchval(
            f'SELECT coalesce(max(global_position), 0) FROM "{schema}".events'
        )
        rows = await pool.fetch(
            f'SELECT relay, position, updated_at FROM "{schema}".relay_checkpoints ORDER BY 1'
        )
        if not rows:  # the relay has not published anything yet
            return [RelayStatus(store, "relay", int(head), 0, None)]
        return [
            RelayStatus(store, r["relay"], int(head), int(r["position"]), r["updated_at"])
            for r in rows
        ]
    finally:
        await pool.close()


def kafka_settings(bootstrap: str | None) -> KafkaSettings:
    """Kafka for a command: the ``ZHUCUN_KAFKA__*`` environment (security protocol, SASL,
    TLS files: what a Job in the cluster is given), with ``--bootstrap`` taking precedence,
    then the environment's servers, then the local demo's broker."""
    import os

    from zhucun.shared.settings import ServiceSettings

    configured = ServiceSettings().kafka
    servers = bootstrap
    if servers is None and "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS" not in os.environ:
        servers = local_bootstrap()
        if servers is None:
            raise typer.BadParameter(
                "no --bootstrap and no ZHUCUN_KAFKA__BOOTSTRAP_SERVERS, and "
                f"{_local_demo_absent('Kafka')}: pass --bootstrap HOST:PORT"
            )
    return configured.model_copy(update={"bootstrap_servers": servers}) if servers else configured


def local_bootstrap() -> str | None:
    if importlib.util.find_spec("zhucun.infra") is None:
        return None
    from zhucun.infra.kafka import KafkaServer
    from zhucun.infra.local import kafka_state_file

    server = KafkaServer.from_state(kafka_state_file())
    if server is None or not server.is_running():
        return None
    return server.bootstrap_servers


def status(
    database: Annotated[
        list[str],
        typer.Option(
            "--database",
            help="NAME=DSN of a database keeping projections (repeatable); default: the local "
            "demo's attendance, assessment and projections databases.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    store: Annotated[
        list[str],
        typer.Option(
            "--store",
            help="NAME=DSN of a service's event store, for its relay lag (repeatable); "
            "default: the local demo's stores, when it runs.",
        ),
    ] = [],  # noqa: B006
    bootstrap: Annotated[
        str | None,
        typer.Option(help="Kafka bootstrap servers; default: the local demo's broker."),
    ] = None,
    schema: Annotated[str, typer.Option(help="Schema of the read models and stores.")] = ("public"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    fail_on_lag: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Exit with 1 when a projection partition or a relay is more than this many "
            "events behind.",
        ),
    ] = None,
    fail_on_dead_letters: Annotated[
        bool,
        typer.Option(
            "--fail-on-dead-letters", help="Exit with 1 when a dead-letter topic holds records."
        ),
    ] = False,
) -> None:
    """Lag per projection and partition (end offset minus the offset stored with the read
    model), the counts of consumed, applied, duplicate and dead-lettered events, the relay
    lag of every store (events stored but not yet on Kafka) and the number of records every
    dead-letter topic holds.

    Exits with 1 (the reason on stderr) when --fail-on-lag or --fail-on-dead-letters is
    given and exceeded, so that a scheduled Job can alert."""
    databases = (
        parse_named_dsns(database, option="--database")
        if database
        else {name: dsn for name in PROJECTION_DATABASES if (dsn := local_dsn(name)) is not None}
    )
    if not databases:
        raise typer.BadParameter(
            f"no --database given, and {_local_demo_absent('PostgreSQL')}: pass "
            + " ".join(f"--database {name}=DSN" for name in PROJECTION_DATABASES)
        )
    stores = parse_named_dsns(store, option="--store") if store else _local_stores()
    kafka = kafka_settings(bootstrap)
    statuses = [
        s
        for name, dsn in databases.items()
        for where in dict.fromkeys((schema, *OWN_SCHEMAS))
        for s in asyncio.run(_projection_status(name, dsn, where))
    ]
    relays = [
        r
        for name, dsn in stores.items()
        for r in asyncio.run(
            _relay_status(name, dsn, STORE_SERVICES.get(name, (name, None))[1] or schema)
        )
    ]
    topics = sorted({topic for s in statuses for topic, _ in s.offsets} | set(EVENT_TOPICS))
    offsets = asyncio.run(topic_offsets(kafka, [*topics, *(f"{t}.dlq" for t in topics)]))
    lags = partition_lags(statuses, offsets)
    dead_letters = {
        f"{topic}.dlq": sum(
            end - beginning for (t, _), (beginning, end) in offsets.items() if t == f"{topic}.dlq"
        )
        for topic in topics
    }
    if as_json:
        _print_status_json(statuses, lags, relays, dead_letters)
    else:
        _print_status_tables(statuses, lags, relays, dead_letters, stores_given=bool(stores))
    reasons: list[str] = []
    if fail_on_lag is not None:
        reasons += [
            f"projection {p.projection} ({p.database}) is {p.lag} events behind on "
            f"{p.topic}[{p.partition}]"
            for p in lags
            if p.lag > fail_on_lag
        ]
        reasons += [
            f"relay {r.relay} of store {r.store} is {r.lag} events behind"
            for r in relays
            if r.lag > fail_on_lag
        ]
    if fail_on_dead_letters:
        reasons += [f"{topic} holds {size} records" for topic, size in dead_letters.items() if size]
    for reason in reasons:  # one unwrapped line each, for the Job's log and for scripts
        sys.stderr.write(f"zhucun status: {reason}\n")
    if reasons:
        raise typer.Exit(code=1)


def _local_stores() -> dict[str, str]:
    """The local demo's stores, when it runs (the relay section is left out otherwise)."""
    found = {name: local_dsn(database) for name, (database, _) in STORE_SERVICES.items()}
    return {name: dsn for name, dsn in found.items() if dsn is not None}


def _print_status_json(
    statuses: list[ProjectionStatus],
    lags: list[PartitionLag],
    relays: list[RelayStatus],
    dead_letters: dict[str, int],
) -> None:
    import json

    document = {
        "projections": [
            {
                "database": s.database,
                "projection": s.projection,
                "consumed": s.consumed,
                "applied": s.applied,
                "duplicates": s.duplicates,
                "dead_lettered": s.dead_lettered,
                "lag": sum(p.lag for p in lags if (p.database, p.projection) == key),
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "stored": p.stored,
                        "end": p.end,
                        "lag": p.lag,
                    }
                    for p in lags
                    if (p.database, p.projection) == key
                ],
            }
            for s in statuses
            for key in [(s.database, s.projection)]
        ],
        "relays": [
            {
                "store": r.store,
                "relay": r.relay,
                "head": r.head,
                "published": r.published,
                "lag": r.lag,
                "updated_at": r.updated_at.isoformat() if r.updated_at else None,
            }
            for r in relays
        ],
        "dead_letter_topics": [
            {"topic": topic, "records": size} for topic, size in dead_letters.items()
        ],
    }
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _print_status_tables(
    statuses: list[ProjectionStatus],
    lags: list[PartitionLag],
    relays: list[RelayStatus],
    dead_letters: dict[str, int],
    *,
    stores_given: bool,
) -> None:
    counts = Table(title="Projections: events")
    for column in ("database", "projection", "consumed", "applied", "duplicates", "dead-lettered"):
        counts.add_column(column)
    for s in statuses:
        counts.add_row(
            s.database,
            s.projection,
            str(s.consumed),
            str(s.applied),
            str(s.duplicates),
            str(s.dead_lettered),
        )
    lag = Table(title="Projections: lag per partition")
    for column in ("database", "projection", "topic", "partition", "stored", "end", "lag"):
        lag.add_column(column)
    for p in lags:
        lag.add_row(
            p.database,
            p.projection,
            p.topic,
            str(p.partition),
            "-" if p.stored is None else str(p.stored),
            str(p.end),
            f"[yellow]{p.lag}[/]" if p.lag else "0",
        )
    relay = Table(title="Relays: stored events not yet on Kafka")
    for column in ("store", "relay", "stored up to", "published up to", "lag"):
        relay.add_column(column)
    for r in relays:
        shown = f"[yellow]{r.lag}[/]" if r.lag else "0"
        relay.add_row(r.store, r.relay, str(r.head), str(r.published), shown)
    dlq = Table(title="Dead-letter topics")
    for column in ("topic", "records"):
        dlq.add_column(column)
    for topic, size in dead_letters.items():
        dlq.add_row(topic, f"[red]{size}[/]" if size else "0")
    stdout.print(counts)
    stdout.print(lag)
    if stores_given:
        stdout.print(relay)
    else:
        stderr.print("relay lag not shown: pass --store NAME=DSN for each event store")
    stdout.print(dlq)


# --- export ---------------------------------------------------------------------------------


async def _export(
    dsn: str, schema: str, cadre_id: str, output: str, as_of: datetime | None, out: Path | None
) -> int:
    from zhucun.projections.audit import AuditTrailReader, export_csv, export_json

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        reader = AuditTrailReader(pool, schema)
        exists, _ = await reader.presence(cadre_id, None)
        if not exists:
            return 0
        rows = reader.export_rows(cadre_id, as_of)
        chunks = export_csv(rows) if output == "csv" else export_json(rows)
        sink = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
        try:
            async for chunk in chunks:
                sink.write(chunk)
        finally:
            if out:
                sink.close()
        return 1
    finally:
        await pool.close()


def export(
    cadre_id: Annotated[str, typer.Argument(help="The cadre whose file (一人一档) to export.")],
    output: Annotated[
        str, typer.Option("--format", help="json (an array) or csv (with a header row).")
    ] = "json",
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Only what the file held then (events recorded by this instant, UTC)."),
    ] = None,
    dsn: Annotated[
        str | None, typer.Option(help="DSN of the projections database; default: the local demo's.")
    ] = None,
    schema: Annotated[str, typer.Option(help="Schema of the audit trail.")] = "public",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Export one cadre's file from the audit trail: every event about them from every
    service, in order, with source, type, business and recorded time, actor, correlation and
    causation ids and a readable summary."""
    if output not in ("json", "csv"):
        raise typer.BadParameter("--format must be json or csv")
    projections = required_dsn(dsn, "--dsn", PROJECTIONS_DATABASE)
    instant = as_of.replace(tzinfo=UTC) if as_of and as_of.tzinfo is None else as_of
    if not asyncio.run(_export(projections, schema, cadre_id, output, instant, out)):
        stderr.print(f"[bold red]error:[/] no file for cadre {cadre_id!r}", highlight=False)
        raise typer.Exit(code=1)


# --- replay ---------------------------------------------------------------------------------


def _projections() -> dict[str, tuple[str, Callable[[str], Projection]]]:
    """Every projection the CLI can replay: name -> (its database, how to build it for a
    schema)."""
    from zhucun.assessment.replicas.attendance import AttendanceFactsReplica
    from zhucun.assessment.replicas.dispatch import DispatchReplica
    from zhucun.attendance.replicas.posts import dispatch_replica
    from zhucun.projections.app import STORE_SCHEMA
    from zhucun.projections.audit import AuditTrail
    from zhucun.projections.decisions.projection import DecisionsProjection
    from zhucun.shared.settings import ServiceSettings

    return {
        "audit-trail": ("projections", AuditTrail),
        # Publishes (idempotently) to the decisions' store what the rebuilt model decides.
        "decisions": (
            "projections",
            partial(
                DecisionsProjection,
                store_schema=STORE_SCHEMA,
                policies_dir=ServiceSettings().policies_dir,
            ),
        ),
        "attendance-dispatch-replica": ("attendance", dispatch_replica),
        # partial, not lambdas: a rebuild with --workers pickles the factory for each worker.
        "assessment-dispatch-replica": (
            "assessment",
            partial(DispatchReplica, name="assessment-dispatch-replica"),
        ),
        "assessment-attendance-facts": (
            "assessment",
            partial(AttendanceFactsReplica, name="assessment-attendance-facts"),
        ),
    }


def _offsets(text: str) -> dict[tuple[str, int], int]:
    """``topic:partition=offset,...`` -> {(topic, partition): offset}."""
    parsed: dict[tuple[str, int], int] = {}
    for item in text.split(","):
        where, sep, offset = item.strip().rpartition("=")
        topic, colon, partition = where.rpartition(":")
        if not (sep and colon and topic and partition.isdigit() and offset.isdigit()):
            raise typer.BadParameter(f"--offsets wants topic:partition=offset,..., got {item!r}")
        parsed[(topic, int(partition))] = int(offset)
    return parsed


def replay(
    projection: Annotated[
        str,
        typer.Argument(
            help="audit-trail, decisions, attendance-dispatch-replica, "
            "assessment-dispatch-replica or assessment-attendance-facts."
        ),
    ],
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Build the model as of this instant (UTC unless given) instead."),
    ] = None,
    offsets: Annotated[
        str | None,
        typer.Option(help="Build the model up to these offsets: topic:partition=offset,..."),
    ] = None,
    scratch_schema: Annotated[
        str | None,
        typer.Option(help="Schema of an as-of build (default: <live>__as_of_<time>)."),
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option(help="DSN of the projection's database; default: the local demo's."),
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers; default: the local demo's.")
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            help="The live schema of the read model (default: public; decisions: decisions)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes for the rebuild.", min=1)] = 1,
) -> None:
    """Rebuild a read model from offset zero into a fresh schema while the live one keeps
    serving, then switch it in atomically (the old model is kept, renamed, for comparison);
    or, with --as-of or --offsets, build it as of that point into a scratch schema for
    auditors to query. Prints the digest of the built model."""
    from zhucun.cli.progress import progress_bar
    from zhucun.shared.replay import rebuild, rebuild_as_of

    known = _projections()
    if projection not in known:
        raise typer.BadParameter(f"unknown projection {projection!r}; one of {sorted(known)}")
    if as_of is not None and offsets is not None:
        raise typer.BadParameter("give --as-of or --offsets, not both")
    database, make = known[projection]
    schema = schema or (projection if projection == "decisions" else "public")
    target = required_dsn(dsn, "--dsn", database)
    kafka = kafka_settings(bootstrap)

    async def run() -> Any:
        pool = await create_pool(target, min_size=1, max_size=4)
        try:
            if as_of is None and offsets is None:
                with progress_bar(f"rebuild {schema}") as progress:
                    return await rebuild(
                        pool,
                        make,
                        kafka,
                        live_schema=schema,
                        workers=workers,
                        dsn=target,
                        progress=progress,
                    )
            until: datetime | dict[tuple[str, int], int]
            if offsets is not None:
                until = _offsets(offsets)
            else:
                assert as_of is not None
                until = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of
            label = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
            scratch = scratch_schema or f"{schema}__as_of_{label}"
            with progress_bar(f"as of: {scratch}") as progress:
                return await rebuild_as_of(
                    pool,
                    make,
                    kafka,
                    scratch_schema=scratch,
                    until=until,
                    workers=workers,
                    dsn=target,
                    progress=progress,
                )
        finally:
            await pool.close()

    report = asyncio.run(run())
    stdout.print(
        f"{report.projection}: {report.events} events ({report.applied} applied, "
        f"{report.duplicates} duplicates, {report.rejected} rejected) in "
        f"{report.seconds:.1f} s ({report.events_per_second:,.0f}/s) into schema "
        f"[bold]{report.schema}[/]"
    )
    if report.previous_schema:
        stdout.print(f"the previous model is kept as schema {report.previous_schema}")
    stdout.print(f"digest {report.digest}")
