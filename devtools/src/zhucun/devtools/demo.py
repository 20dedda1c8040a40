"""``zhucun demo``: a simulated county through the whole running system, then the recall
decisions and promotion pools the read side derived, with their reasons, and where to query
them.

It expects the local servers and services (``zhucun infra up``, ``zhucun services up``; ``make
demo`` runs all three). The county is seeded, so running it again sends the same commands,
which the services answer as repeats.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from zhucun.cli.audit import PROJECTIONS_DATABASE, kafka_settings, local_dsn
from zhucun.infra.services import SERVICE_PORTS

stdout = Console()
if not stdout.is_terminal:  # a log or a pipe: wide enough for the reasons on one line
    stdout = Console(width=180)
stderr = Console(stderr=True)

POOLS = ("reserve", "promote", "publicise", "commend")
RULES = {
    1: "short months",
    2: "leave",
    3: "absences",
    4: "grade",
    5: "一般 twice",
    6: "sanction",
}
#: The decisions projection is caught up when its stored offsets reach the topics' ends.
CATCH_UP_SECONDS = 180.0


async def _decisions_lag(dsn: str, bootstrap: str | None) -> int:
    """Records on the four topics the decisions projection has not applied yet."""
    from zhucun.cli.audit import EVENT_TOPICS, _projection_status, topic_offsets

    statuses = await _projection_status(PROJECTIONS_DATABASE, dsn, "decisions")
    stored = {key: offset for s in statuses for key, offset in s.offsets.items()}
    offsets = await topic_offsets(kafka_settings(bootstrap), list(EVENT_TOPICS))
    return sum(
        max(0, end - stored.get(key, beginning)) for key, (beginning, end) in offsets.items()
    )


async def _wait_for_read_side(dsn: str, bootstrap: str | None) -> None:
    """Until the decisions projection has applied everything (twice in a row: the relays
    may still publish the last commands' events)."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    quiet = 0
    while quiet < 2:
        lag = await _decisions_lag(dsn, bootstrap)
        quiet = quiet + 1 if lag == 0 else 0
        if time.monotonic() > deadline:
            stderr.print(f"[yellow]the read side is still {lag} events behind; showing it now[/]")
            return
        await asyncio.sleep(1.5)


def _get(client: httpx.Client, path: str, token: str) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


def _all_pages(client: httpx.Client, path: str, token: str) -> list[Any]:
    """Every item of a paginated list (``?limit=&after=``, following ``next``)."""
    items: list[Any] = []
    after: str | None = None
    while True:
        cursor = f"&after={after}" if after else ""
        page = _get(client, f"{path}&limit=500{cursor}", token)
        items.extend(page["items"])
        after = page["next"]
        if after is None:
            return items


def demo(
    seed: Annotated[int, typer.Option(help="Seed of the simulated county.")] = 2026,
    cadres: Annotated[
        int, typer.Option(help="Cadres in the county (a real county has about 500).", min=3)
    ] = 40,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1)] = 24,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers; default: the local demo's.")
    ] = None,
) -> None:
    """Run a simulated county's two-year term through the running services, then print the
    recall decisions and promotion pools with their reasons, and where to query them."""
    from zhucun.shared.auth import mint_token
    from zhucun.shared.settings import AuthSettings
    from zhucun.sim import generate, run_http

    dsn = local_dsn(PROJECTIONS_DATABASE)
    if dsn is None:
        raise typer.BadParameter("the local PostgreSQL is not running: run `make demo`")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in SERVICE_PORTS.items()}
    scenario = generate(seed, cadres, counties=1)
    county = scenario.county_codes[0]
    stderr.print(
        f"simulating county {county}: {cadres} cadres "
        f"({', '.join(f'{n} {b}' for b, n in scenario.behaviour_counts().items())}), term "
        f"{scenario.calendar.term_start} to {scenario.calendar.term_end}, through the services"
    )
    began = time.perf_counter()
    report = asyncio.run(run_http(scenario, urls, concurrency=concurrency))
    stderr.print(
        f"sent {sum(report.commands.values()):,} commands, {sum(report.events.values()):,} "
        f"events stored, in {time.perf_counter() - began:.0f} s; waiting for the read side"
    )
    asyncio.run(_wait_for_read_side(dsn, bootstrap))

    token = mint_token(AuthSettings(), subject="demo", role="org_admin", county=county)
    base = urls["projections"]
    with httpx.Client(base_url=base, timeout=30) as client:
        decisions = _all_pages(client, f"/counties/{county}/decisions?status=all", token)
        # Pages come in id order; people read decisions by the day they were triggered.
        decisions.sort(key=lambda d: (d.get("triggered_on") or "", d["decision_id"]))
        pools = {
            pool: _all_pages(client, f"/counties/{county}/pools/{pool}?status=all", token)
            for pool in POOLS
        }

    table = Table(title=f"Recall decisions (召回), county {county}")
    for column in ("cadre", "rule", "period", "status", "pack", "why"):
        table.add_column(column)
    for d in decisions:
        why = d["reason"].split("): ", 1)[-1]  # the rule's name is in its own column
        rule = f"{d['rule']} {RULES.get(d['rule'], '')}"
        table.add_row(d["cadre_id"], rule, d["key"], d["status"], d["policy_version"], why)
    stdout.print(table)
    names = {
        "reserve": "发现储备",
        "promote": "提拔使用",
        "publicise": "宣传推介",
        "commend": "表彰奖励",
    }
    for pool, entries in pools.items():
        table = Table(title=f"Promotion pool {pool} ({names[pool]}), county {county}")
        for column in ("cadre", "key", "status", "why"):
            table.add_column(column)
        for e in entries:
            status = e["status"]
            if status != "active":
                status += f" ({e['status_reason']}, {e['status_on']})"
            table.add_row(e["cadre_id"], e["key"], status, e["reason"])
        stdout.print(table)
    open_ = sum(1 for d in decisions if d["status"] == "recommended")
    active = {
        pool: sum(1 for e in entries if e["status"] == "active") for pool, entries in pools.items()
    }
    stdout.print(
        f"\n{len(decisions)} recall decisions ({open_} open); active pool entries: "
        + ", ".join(f"{pool} {n}" for pool, n in active.items())
    )
    stdout.print(
        "\nQuery them (an org_admin token of the county):\n"
        f"  TOKEN=$(uv run zhucun token --role org_admin --county {county})\n"
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/counties/{county}/decisions\n'
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/counties/{county}/pools/reserve\n'
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/cadres/CADRE/decisions  # evidence\n'
        f"  {base}/docs   (OpenAPI)\n"
        "  uv run zhucun what-if --policy policies/liangshan-2025.toml   # under another pack\n"
        "  uv run zhucun status                                           # lag, counts, DLQs"
    )
