"""The ``zhucun`` command of operators and auditors: ``serve`` a service, ``verify``,
``status``, ``export``, ``replay``, ``what-if`` and ``token``.

This is what the production install and the image hold. Development tooling (the local
servers, the demo, the simulator, ``contracts write``) adds its commands through the
``zhucun.commands`` entry point group (see ``devtools/``), so those commands exist only where
that package is installed.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Annotated

import typer
from rich.console import Console

from zhucun.cli import audit, decisions
from zhucun.shared.auth import Role


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


#: Entry points of this group are ``register(app: typer.Typer) -> None`` functions.
COMMAND_PLUGINS = "zhucun.commands"

app = typer.Typer(
    name="zhucun",
    help="Zhucun (驻村): dispatch, manage and assess village-resident cadres.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _configure(
    log_level: Annotated[
        LogLevel, typer.Option(help="Log level of the lines written on stderr.")
    ] = LogLevel.WARNING,
) -> None:
    """Results go to stdout; progress and log lines go to stderr (JSON when it is not a
    terminal), so a command's output can be piped or parsed."""
    from zhucun.shared.logging import configure_logging
    from zhucun.shared.settings import LogSettings

    configure_logging(
        LogSettings(level=log_level.value), service_name="zhucun-cli", stream=sys.stderr
    )


app.command("verify")(audit.verify)
app.command("status")(audit.status)
app.command("export")(audit.export)
app.command("replay")(audit.replay)
app.command("what-if")(decisions.what_if)

# Progress and errors go to stderr so stdout carries only a command's result.
stdout = Console()
stderr = Console(stderr=True)


def _fail(error: Exception) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=1)


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


def _register_plugins() -> None:
    for plugin in sorted(entry_points(group=COMMAND_PLUGINS), key=lambda e: e.name):
        plugin.load()(app)


_register_plugins()

if __name__ == "__main__":
    app()
