"""``zhucun what-if``: the recall decisions and promotion pools the history would have given
under another policy pack, compared with the live read model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zhucun.cli.audit import PROJECTIONS_DATABASE, kafka_settings, required_dsn
from zhucun.shared.store import create_pool

stdout = Console()


def what_if(
    policy: Annotated[
        Path, typer.Option("--policy", help="The policy pack (TOML) to replay the history under.")
    ],
    dsn: Annotated[
        str | None,
        typer.Option(help="DSN of the projections database; default: the local demo's."),
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers; default: the local demo's.")
    ] = None,
    schema: Annotated[str, typer.Option(help="The live schema of the decisions.")] = "decisions",
    keep: Annotated[
        bool, typer.Option(help="Keep the scratch schema for queries (printed at the end).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--json", help="Also write the whole report as JSON here.")
    ] = None,
) -> None:
    """Replay the history under another policy pack into a scratch schema and report the
    difference with the live decisions: who would have been recalled or pooled, or not, and
    why."""
    from zhucun.cli.progress import progress_bar
    from zhucun.projections.decisions.whatif import what_if as run_what_if
    from zhucun.projections.domain.policy import DECISION_SECTIONS, DecisionPolicy, LeaveLimit
    from zhucun.shared.policy import PolicyError, load_pack
    from zhucun.shared.settings import ServiceSettings

    try:
        # The sections the read side applies, validated (errors name the file and the field).
        pack = load_pack(policy, DECISION_SECTIONS)
        pack.rules(DecisionPolicy)
        pack.rules(LeaveLimit)
    except PolicyError as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from error
    target = required_dsn(dsn, "--dsn", PROJECTIONS_DATABASE)
    kafka = kafka_settings(bootstrap)

    async def run() -> object:
        pool = await create_pool(target, min_size=1, max_size=4)
        try:
            with progress_bar(f"what-if {pack.version}") as progress:
                return await run_what_if(
                    pool,
                    kafka,
                    pack,
                    live_schema=schema,
                    keep=keep,
                    policies_dir=ServiceSettings().policies_dir,
                    progress=progress,
                )
        finally:
            await pool.close()

    from zhucun.projections.decisions.whatif import WhatIfReport

    report = asyncio.run(run())
    assert isinstance(report, WhatIfReport)
    stdout.print(
        f"replayed {report.events} events under [bold]{report.pack}[/] in {report.seconds:.1f} s:"
        f" {report.what_if_decisions} recall decisions (live {report.live_decisions}),"
        f" {report.what_if_entries} pool entries (live {report.live_entries})"
    )
    if report.decisions:
        table = Table(title="Recall decisions that differ")
        for column in ("change", "cadre", "rule", "key", "live", "what-if", "why"):
            table.add_column(column)
        for d in report.decisions:
            table.add_row(
                d.change, d.cadre_id, str(d.rule), d.key, d.live or "-", d.what_if or "-", d.reason
            )
        stdout.print(table)
    if report.entries:
        table = Table(title="Pool entries that differ")
        for column in ("change", "cadre", "pool", "key", "live", "what-if", "why"):
            table.add_column(column)
        for e in report.entries:
            table.add_row(
                e.change, e.cadre_id, e.pool, e.key, e.live or "-", e.what_if or "-", e.reason
            )
        stdout.print(table)
    if not report.decisions and not report.entries:
        stdout.print("no difference: the same decisions and pool entries")
    if report.kept:
        stdout.print(f"the what-if model is kept in schema {report.scratch_schema}")
    if output is not None:
        output.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str))
        stdout.print(f"wrote {output}")
