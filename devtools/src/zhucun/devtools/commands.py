"""The development commands of ``zhucun``: ``infra`` (local Kafka and PostgreSQL), ``services``
(every service as a local process), ``demo``, ``simulate`` and ``contracts write``.

They reach the product's ``zhucun`` command through the ``zhucun.commands`` entry point of
this package (``register``), so the production install, which lacks this package, lacks them
too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zhucun.devtools import demo, simulate
from zhucun.infra._common import InfraError
from zhucun.infra.local import ServerStatus

infra_app = typer.Typer(
    help="Local Kafka and PostgreSQL servers for the demo (real servers, no Docker needed).",
    no_args_is_help=True,
)
services_app = typer.Typer(
    help="Every service as a local process on the infrastructure of `zhucun infra up`.",
    no_args_is_help=True,
)

# Progress and errors go to stderr so stdout carries only a command's result.
stdout = Console()
stderr = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the development commands to the ``zhucun`` command (the entry point)."""
    app.add_typer(infra_app, name="infra")
    app.add_typer(services_app, name="services")
    app.add_typer(contracts_app, name="contracts")
    app.command("simulate")(simulate.simulate)
    app.command("demo")(demo.demo)


def _fail(error: Exception) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=1)


@infra_app.command("up")
def infra_up(
    kafka_port: Annotated[int, typer.Option(help="Kafka broker port on 127.0.0.1.")] = 19092,
    kafka_controller_port: Annotated[
        int, typer.Option(help="Kafka KRaft controller port on 127.0.0.1.")
    ] = 19093,
    postgres_port: Annotated[int, typer.Option(help="PostgreSQL port on 127.0.0.1.")] = 15432,
    kafka_heap: Annotated[str, typer.Option(help="Kafka JVM heap (-Xms/-Xmx).")] = "1g",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the servers keep their data (default: .cache/infra)."),
    ] = None,
) -> None:
    """Start Kafka and PostgreSQL (idempotent: running servers are left alone)."""
    from zhucun.infra import local

    try:
        kafka, postgres = local.up(
            kafka_port=kafka_port,
            kafka_controller_port=kafka_controller_port,
            postgres_port=postgres_port,
            kafka_heap=kafka_heap,
            data_dir=data_dir,
        )
    except InfraError as error:
        raise _fail(error) from error
    # Plain echo: rich would wrap the long DSN line at the terminal's width.
    typer.echo(f"kafka     {kafka.bootstrap_servers}")
    typer.echo(f"postgres  {postgres.dsn('<database>')}")
    typer.echo(f"databases {', '.join(local.SERVICE_DATABASES)}")


@infra_app.command("down")
def infra_down(
    purge: Annotated[bool, typer.Option(help="Also delete the servers' data.")] = False,
) -> None:
    """Stop the servers started by `zhucun infra up` (data is kept unless --purge)."""
    from zhucun.infra import local

    try:
        stopped = local.down(purge=purge)
    except InfraError as error:
        raise _fail(error) from error
    stdout.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@infra_app.command("status")
def infra_status() -> None:
    """Show each server and whether it really answers. Exits 1 when one is down."""
    from zhucun.infra import local

    _print_status("Zhucun local infrastructure", local.status())


def _print_status(title: str, statuses: list[ServerStatus]) -> None:
    """One row per server or service; exits 1 when any is down."""
    table = Table(title=title)
    for column in ("name", "pid", "address", "state", "detail"):
        table.add_column(column)
    for entry in statuses:
        table.add_row(
            entry.name,
            str(entry.pid) if entry.pid else "-",
            entry.address or "-",
            "[green]up[/]" if entry.up else "[red]down[/]",
            entry.detail,
        )
    stdout.print(table)
    if not all(entry.up for entry in statuses):
        raise typer.Exit(code=1)


@services_app.command("up")
def services_up() -> None:
    """Start every service (idempotent) and wait until each reports ready."""
    from zhucun.infra import services

    try:
        started = services.up()
    except InfraError as error:
        raise _fail(error) from error
    for service in started:
        typer.echo(f"{service.name:<12} {service.url}")


@services_app.command("down")
def services_down() -> None:
    """Stop the services started by `zhucun services up`."""
    from zhucun.infra import services

    stopped = services.down()
    stdout.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@services_app.command("status")
def services_status() -> None:
    """Ask each service's /health/ready. Exits 1 when one is down or not ready."""
    from zhucun.infra import services

    _print_status("Zhucun services", services.status())


contracts_app = typer.Typer(
    help="The published event contracts (AsyncAPI documents) of the services.",
    no_args_is_help=True,
)

#: The contract packages: each publisher's events and AsyncAPI document.
ASYNCAPI_MODULES = (
    "zhucun.contracts.dispatch.asyncapi",
    "zhucun.contracts.attendance.asyncapi",
    "zhucun.contracts.assessment.asyncapi",
    "zhucun.contracts.decisions.asyncapi",
)
#: The services' composition roots: each HTTP API's OpenAPI document.
APP_MODULES = (
    "zhucun.dispatch.app",
    "zhucun.attendance.app",
    "zhucun.assessment.app",
    "zhucun.projections.app",
)


@contracts_app.command("write")
def contracts_write() -> None:
    """Regenerate every contract package's committed asyncapi.json (from its event classes)
    and every service's openapi.json (from its HTTP app)."""
    import importlib

    from zhucun.shared.asyncapi import render
    from zhucun.shared.http import render_openapi

    for name in ASYNCAPI_MODULES:
        module = importlib.import_module(name)
        module.DOCUMENT_PATH.write_text(render(module.document()))
        typer.echo(f"wrote {module.DOCUMENT_PATH}")
    for name in APP_MODULES:
        module = importlib.import_module(name)
        module.OPENAPI_PATH.write_text(render_openapi(module.create_app()))
        typer.echo(f"wrote {module.OPENAPI_PATH}")
