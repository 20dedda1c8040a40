"""``zhucun simulate``: a seeded county or province and its two-year term, through the
services' HTTP APIs (``--mode http``) or straight onto the topics (``--mode topics``).

The generator is ``zhucun.sim``; this module only reads the options, runs a driver and prints
the report (progress on stderr, the summary on stdout, ``--json FILE`` for the whole of it).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zhucun.infra.services import SERVICE_PORTS
from zhucun.shared.settings import KafkaSettings
from zhucun.sim.world import DEFAULT_MIX_TEXT

stderr = Console(stderr=True)


class Mode(StrEnum):
    HTTP = "http"
    TOPICS = "topics"


def _url(service: str) -> str:
    return f"http://127.0.0.1:{SERVICE_PORTS[service]}"


def simulate(
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same world.", min=0)] = 1,
    cadres: Annotated[int, typer.Option(help="Cadres in the world.", min=3)] = 500,
    counties: Annotated[
        int | None, typer.Option(help="Counties (default: one per 500 cadres).", min=1)
    ] = None,
    mode: Annotated[
        Mode, typer.Option(help="http: the services' APIs; topics: Kafka.")
    ] = Mode.HTTP,
    mix: Annotated[str, typer.Option(help="Shares of the behaviours.")] = DEFAULT_MIX_TEXT,
    start: Annotated[
        str | None,
        typer.Option(
            help="First day of the term, YYYY-MM-DD (default: the first of the month 26 months"
            " ago, so the two-year term is over)."
        ),
    ] = None,
    province: Annotated[str, typer.Option(help="Two-digit province code of the counties.")] = "53",
    county_codes: Annotated[
        str | None, typer.Option(help="Comma-separated county codes instead of the seed's.")
    ] = None,
    policies: Annotated[
        Path | None, typer.Option(help="Folder of policy packs (default: the repository's).")
    ] = None,
    dispatch_url: Annotated[str, typer.Option(help="Dispatch service.")] = _url("dispatch"),
    attendance_url: Annotated[str, typer.Option(help="Attendance service.")] = _url("attendance"),
    assessment_url: Annotated[str, typer.Option(help="Assessment service.")] = _url("assessment"),
    concurrency: Annotated[int, typer.Option(help="HTTP requests in flight at most.", min=1)] = 32,
    bootstrap: Annotated[
        str, typer.Option(help="Kafka bootstrap servers (topics mode).")
    ] = KafkaSettings().bootstrap_servers,
    check_ins: Annotated[
        bool, typer.Option(help="Topics mode: also write every daily check-in.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(help="Topics mode: processes, each writing a share of the counties.", min=1),
    ] = 1,
    compression: Annotated[
        str, typer.Option(help="Topics mode: none or gzip (aiokafka's codecs available here).")
    ] = "none",
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
) -> None:
    """Simulate a county or a province over a two-year term: villages, cadres of every kind
    of sending unit, a dispatch round and its teams, then daily presence, leave, spot checks,
    diaries, visits, month closes, quarterly and annual assessments, red and blue lists,
    term-end assessments and sanctions, with a mix of behaviours that triggers the recall
    and promotion rules. Prints what was sent or written."""
    from zhucun.sim import MixError, generate

    try:
        first_day = date.fromisoformat(start) if start else None
    except ValueError as error:
        raise typer.BadParameter(f"--start {start!r} is not YYYY-MM-DD") from error
    if compression not in ("none", "gzip"):
        raise typer.BadParameter("--compression is none or gzip")
    codes = [c.strip() for c in county_codes.split(",") if c.strip()] if county_codes else None
    began = time.perf_counter()
    try:
        scenario = generate(
            seed,
            cadres,
            counties,
            mix,
            first_day,
            province=province,
            codes=codes,
            policies=policies,
        )
    except (MixError, ValueError) as error:
        stderr.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(code=2) from error

    def progress(message: str) -> None:
        if not quiet:
            stderr.print(f"[dim]{time.perf_counter() - began:8.1f}s[/] {message}", highlight=False)

    cal = scenario.calendar
    progress(
        f"seed {seed}: {cadres} cadres in {len(scenario.counties)} "
        f"count{'y' if len(scenario.counties) == 1 else 'ies'} "
        f"({', '.join(scenario.county_codes[:5])}{'...' if len(scenario.counties) > 5 else ''}),"
        f" term {cal.term_start}..{cal.term_end}, as of {cal.today}"
    )
    try:
        if mode is Mode.HTTP:
            from zhucun.sim.http import SimulationRefused, run_http

            urls = {
                "dispatch": dispatch_url,
                "attendance": attendance_url,
                "assessment": assessment_url,
            }
            try:
                report = asyncio.run(
                    run_http(scenario, urls, concurrency=concurrency, progress=progress)
                )
            except SimulationRefused as error:
                stderr.print(f"[bold red]refused:[/] {error}", highlight=False)
                raise typer.Exit(code=1) from error
        else:
            from zhucun.sim.topics import write_topics

            report = asyncio.run(
                write_topics(
                    scenario,
                    bootstrap,
                    check_ins=check_ins,
                    workers=workers,
                    compression=None if compression == "none" else compression,
                    progress=progress,
                )
            )
    except (TimeoutError, OSError) as error:
        stderr.print(f"[bold red]error:[/] {type(error).__name__}: {error}", highlight=False)
        raise typer.Exit(code=1) from error
    report.extra["generate_and_run_seconds"] = round(time.perf_counter() - began, 3)
    for line in report.lines():
        typer.echo(line)
    if json_file is not None:
        report.write_json(json_file)
        progress(f"report written to {json_file}")
    sys.stdout.flush()
