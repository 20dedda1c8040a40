"""Commands for auditors: ``zhucun verify`` (and, with the read side, replay, export, status).

They talk to the databases directly, read-only unless a command says otherwise: an auditor
runs them with credentials of their own against the services' stores and the projections
database. Defaults point at the local demo (``zhucun infra up``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zhucun.shared.store import EventStore, VerificationReport, create_pool

#: The services with an event store, in the order they are checked.
STORE_SERVICES = ("dispatch", "attendance", "assessment")
PROJECTIONS_DATABASE = "projections"

stdout = Console()
stderr = Console(stderr=True)


def local_dsn(database: str) -> str | None:
    """The DSN of ``database`` on the local demo's PostgreSQL, when it runs."""
    from zhucun.infra.local import postgres_state_file
    from zhucun.infra.postgres import PostgresServer

    server = PostgresServer.from_state(postgres_state_file())
    if server is None or not server.is_running():
        return None
    return server.dsn(database)


def parse_stores(stores: list[str]) -> dict[str, str]:
    """``NAME=DSN`` options, or the local demo's stores."""
    if not stores:
        found = {name: local_dsn(name) for name in STORE_SERVICES}
        missing = [name for name, dsn in found.items() if dsn is None]
        if missing:
            raise typer.BadParameter(
                "no --store given and the local demo's PostgreSQL is not running "
                "(start it with `zhucun infra up`, or pass --store NAME=DSN)"
            )
        return {name: dsn for name, dsn in found.items() if dsn is not None}
    parsed: dict[str, str] = {}
    for option in stores:
        name, sep, dsn = option.partition("=")
        if not sep or not name or not dsn:
            raise typer.BadParameter(f"--store wants NAME=DSN, got {option!r}")
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
        report = await EventStore(pool, schema=schema).verify()
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
            "dispatch, attendance and assessment databases.",
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
        report, ids = asyncio.run(_verify_store(dsn, schema))
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
        projections = audit_dsn or local_dsn(PROJECTIONS_DATABASE)
        if projections is None:
            raise typer.BadParameter("no --audit-dsn and the local demo is not running")
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
