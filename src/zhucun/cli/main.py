"""The ``zhucun`` command: local infrastructure, development helpers and auditors' commands.

Each area is a sub-app (``zhucun infra ...``) or a command of its own (``zhucun verify``, from
``zhucun.cli.audit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zhucun.cli import audit, decisions, demo, simulate
from zhucun.infra._common import InfraError
from zhucun.infra.local import ServerStatus
from zhucun.shared.auth import Role

app = typer.Typer(
    name="zhucun",
    help="Zhucun (驻村): dispatch, manage and assess village-resident cadres.",
    no_args_is_help=True,
    add_completion=False,
)
infra_app = typer.Typer(
    help="Local Kafka and PostgreSQL servers for the demo (real servers, no Docker needed).",
    no_args_is_help=True,
)
app.add_typer(infra_app, name="infra")
services_app = typer.Typer(
    help="Every service as a local process on the infrastructure of `zhucun infra up`.",
    no_args_is_help=True,
)
app.add_typer(services_app, name="services")
app.command("verify")(audit.verify)
app.command("status")(audit.status)
app.command("export")(audit.export)
app.command("replay")(audit.replay)
app.command("what-if")(decisions.what_if)
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)

# Progress and errors go to stderr so stdout carries only a command's result.
stdout = Console()
stderr = Console(stderr=True)


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
app.add_typer(contracts_app, name="contracts")

#: Services that publish a topic and so have a contract module.
CONTRACT_MODULES = (
    "zhucun.dispatch.contract",
    "zhucun.attendance.contract",
    "zhucun.assessment.contract",
    "zhucun.projections.contract",
)


@contracts_app.command("write")
def contracts_write() -> None:
    """Regenerate every service's committed asyncapi.json (from its event classes) and
    openapi.json (from its HTTP app)."""
    import importlib

    from zhucun.shared.asyncapi import render

    for name in CONTRACT_MODULES:
        module = importlib.import_module(name)
        module.DOCUMENT_PATH.write_text(render(module.document()))
        typer.echo(f"wrote {module.DOCUMENT_PATH}")
        if hasattr(module, "OPENAPI_PATH"):
            module.OPENAPI_PATH.write_text(module.render_openapi())
            typer.echo(f"wrote {module.OPENAPI_PATH}")


@app.command("serve")
def serve(
    service: Annotated[str, typer.Argument(help="dispatch, attendance, assessment or projections")],
    port: Annotated[int | None, typer.Option(help="HTTP port (default: ZHUCUN_HTTP_PORT).")] = None,
) -> None:
    """Run one service in the foreground (settings from ZHUCUN_* environment variables)."""
    import importlib

    import uvicorn

    from zhucun.shared.settings import ServiceSettings

    try:
        module = importlib.import_module(f"zhucun.{service}.app")
    except ModuleNotFoundError as error:
        raise _fail(ValueError(f"no service called {service!r}")) from error
    settings = ServiceSettings()
    # log_config=None: the service's own structlog set-up formats uvicorn's lines too.
    uvicorn.run(
        module.create_app,
        factory=True,
        host=settings.http_host,
        port=port or settings.http_port,
        log_config=None,
    )


@app.command("token")
def token(
    role: Annotated[Role, typer.Option(help="The principal's role.")],
    county: Annotated[str | None, typer.Option(help="County id the token is scoped to.")] = None,
    township: Annotated[
        str | None, typer.Option(help="Township id the token is scoped to.")
    ] = None,
    cadre: Annotated[str | None, typer.Option(help="Cadre id (role cadre: themselves).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="The token's subject (default: dev-<role>).")
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
) -> None:
    """Mint a development JWT (HS256, the configured secret) and print only the token."""
    from zhucun.shared.auth import mint_token
    from zhucun.shared.settings import ServiceSettings

    try:
        # The same settings (and ZHUCUN_AUTH__* variables) the services verify tokens with.
        settings = ServiceSettings()
        minted = mint_token(
            settings.auth,
            subject=subject or f"dev-{role.value}",
            role=role.value,
            county=county,
            township=township,
            cadre=cadre,
            ttl_seconds=ttl,
        )
    except ValueError as error:
        raise _fail(error) from error
    typer.echo(minted)


if __name__ == "__main__":
    app()
