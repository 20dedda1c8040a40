"""The HTTP edge of recall decisions and promotion pools.

Reads (``org_admin`` of the county, ``auditor``; an auditor whose token names a county reads
that county only):

* ``GET /counties/{county}/decisions`` — the county's decisions, open ones by default
  (``status=recommended``), with their rule, reason and evidence;
* ``GET /cadres/{cadre_id}/decisions`` — one cadre's decisions and pool entries, each with
  its evidence: the facts (month closes, grades, lists...) the rule read;
* ``GET /decisions/{decision_id}`` — one decision, with its evidence;
* ``GET /counties/{county}/pools/{pool}`` — a promotion pool (四个一批), active entries by
  default.

Command (``org_admin`` of the cadre's county): ``POST /decisions/{decision_id}/dismiss``
with a reason. Executing a decision is dispatch's recall citing it
(``POST .../assignments/{id}/recall`` with ``decision_id``), which the projection sees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from zhucun.contracts.decisions.events import decision_stream
from zhucun.contracts.decisions.events import registry as decisions_registry
from zhucun.projections.decisions.lifecycle import (
    DecisionRefused,
    DecisionState,
    DismissRecall,
    decide_dismissal,
    evolve,
)
from zhucun.shared.auth import Principal, Role, Scope, require_roles
from zhucun.shared.commands import StreamModel, execute
from zhucun.shared.http import command_metadata
from zhucun.shared.problems import ProblemError
from zhucun.shared.service import ServiceRuntime

#: The schema of the decisions read model in the projections database.
DECISIONS_SCHEMA = "decisions"
SHANGHAI = ZoneInfo("Asia/Shanghai")

Reader = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
County = Annotated[str, Path(pattern=r"^\d{6}$", description="County code (GB/T 2260)")]
CadreId = Annotated[str, Path(min_length=1, max_length=100)]
DecisionId = Annotated[str, Path(min_length=1, max_length=100)]
PoolName = Literal["reserve", "promote", "publicise", "commend"]

router = APIRouter(tags=["decisions"])


class Evidence(BaseModel):
    """A fact a rule read: which event, what kind, its period and figures."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    kind: str
    period: str
    on: date
    grade: str | None = None
    shortfall: int | None = None
    leave_days: int | None = None
    unexcused_absences: int | None = None
    satisfaction: float | None = None


class RecallDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision_id: str
    cadre_id: str
    county: str | None
    rule: int
    key: str
    triggered_on: date
    reason: str
    policy_version: str
    status: Literal["recommended", "executed", "dismissed"]
    #: When it was executed (dispatch's recall) or dismissed, by which event, and why.
    status_on: date | None
    status_event_id: str | None
    dismissal_reason: str | None
    evidence_event_ids: list[str]
    evidence: list[Evidence] = []


class PoolEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    cadre_id: str
    pool: PoolName
    key: str
    county: str
    qualified_on: date
    reason: str
    policy_version: str
    status: Literal["active", "withdrawn", "barred"]
    status_on: date | None
    status_reason: str | None
    status_evidence: str | None
    evidence_event_ids: list[str]
    evidence: list[Evidence] = []


class DecisionList(BaseModel):
    items: list[RecallDecision]


class PoolList(BaseModel):
    items: list[PoolEntry]


class CadreDecisions(BaseModel):
    cadre_id: str
    county: str | None
    decisions: list[RecallDecision]
    pool_entries: list[PoolEntry]


class Dismissal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=5_000, description="Why, for the record")


class DismissalAccepted(BaseModel):
    decision_id: str
    status: Literal["dismissed"]
    duplicate: bool
    event_ids: list[str]


# --- reading -------------------------------------------------------------------------------


def _pool(request: Request) -> asyncpg.Pool:
    runtime: ServiceRuntime = request.app.state.runtime
    if runtime.pool is None:
        raise RuntimeError("the service is not started")
    return runtime.pool


def _table(name: str) -> str:
    return f'"{DECISIONS_SCHEMA}".{name}'


def _reach(principal: Principal, county: str | None) -> None:
    """Every read and command is about one county's cadres: a principal restricted to a
    county reaches that county's only (and not a cadre whose county is not known yet)."""
    principal.ensure_covers(Scope(county=county))


_DECISION_SELECT = f"""
    SELECT d.*, c.county FROM {_table("recall_decisions")} AS d
    LEFT JOIN {_table("decision_cadres")} AS c USING (cadre_id)
"""


async def _evidence(pool: asyncpg.Pool, ids: set[str]) -> dict[str, Evidence]:
    if not ids:
        return {}
    rows = await pool.fetch(
        f"""
        SELECT DISTINCT ON (event_id) * FROM {_table("decision_facts")}
        WHERE event_id = ANY($1::text[]) ORDER BY event_id
        """,
        sorted(ids),
    )
    found = {}
    for r in rows:
        kind = r["kind"]
        found[r["event_id"]] = Evidence(
            event_id=r["event_id"],
            kind=kind,
            period=r["period"],
            on=r["on_day"],
            grade=r["grade"],
            shortfall=r["shortfall"] if kind == "month_close" else None,
            leave_days=r["leave_days"] if kind == "month_close" else None,
            unexcused_absences=r["absences"] if kind == "month_close" else None,
            satisfaction=r["satisfaction"] if kind == "villagers" else None,
        )
    return found


def _decision(row: asyncpg.Record, evidence: dict[str, Evidence]) -> RecallDecision:
    ids = list(row["evidence"])
    return RecallDecision(
        decision_id=row["decision_id"],
        cadre_id=row["cadre_id"],
        county=row["county"],
        rule=row["rule"],
        key=row["key"],
        triggered_on=row["triggered_on"],
        reason=row["reason"],
        policy_version=row["policy_version"],
        status=row["status"],
        status_on=row["status_on"],
        status_event_id=row["status_event"],
        dismissal_reason=row["status_note"],
        evidence_event_ids=ids,
        evidence=_in_order(ids, evidence),
    )


def _entry(row: asyncpg.Record, evidence: dict[str, Evidence]) -> PoolEntry:
    ids = list(row["evidence"])
    return PoolEntry(
        cadre_id=row["cadre_id"],
        pool=row["pool"],
        key=row["key"],
        county=row["county"],
        qualified_on=row["qualified_on"],
        reason=row["reason"],
        policy_version=row["policy_version"],
        status=row["status"],
        status_on=row["status_on"],
        status_reason=row["status_reason"],
        status_evidence=row["status_evidence"],
        evidence_event_ids=ids,
        evidence=_in_order(ids, evidence),
    )


def _in_order(ids: list[str], evidence: dict[str, Evidence]) -> list[Evidence]:
    """The evidence found, in business-date order."""
    return sorted((evidence[i] for i in ids if i in evidence), key=lambda e: (e.on, e.event_id))


def _ids(rows: list[asyncpg.Record]) -> set[str]:
    return {event_id for row in rows for event_id in row["evidence"]}


@router.get(
    "/counties/{county}/decisions",
    summary="A county's recall decisions (召回), open ones by default",
)
async def county_decisions(
    request: Request,
    county: County,
    principal: Reader,
    status: Annotated[
        Literal["recommended", "executed", "dismissed", "all"],
        Query(description="recommended (open, the default), executed, dismissed or all"),
    ] = "recommended",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> DecisionList:
    _reach(principal, county)
    pool = _pool(request)
    rows = await pool.fetch(
        _DECISION_SELECT
        + " WHERE c.county = $1 AND ($2 = 'all' OR d.status = $2)"
        + " ORDER BY d.triggered_on, d.cadre_id, d.rule LIMIT $3",
        county,
        status,
        limit,
    )
    evidence = await _evidence(pool, _ids(rows))
    return DecisionList(items=[_decision(r, evidence) for r in rows])


@router.get(
    "/cadres/{cadre_id}/decisions",
    summary="A cadre's recall decisions and pool entries, with their evidence",
)
async def cadre_decisions(request: Request, cadre_id: CadreId, principal: Reader) -> CadreDecisions:
    pool = _pool(request)
    county = await pool.fetchval(
        f"SELECT county FROM {_table('decision_cadres')} WHERE cadre_id = $1", cadre_id
    )
    decisions = await pool.fetch(
        _DECISION_SELECT + " WHERE d.cadre_id = $1 ORDER BY d.triggered_on, d.rule", cadre_id
    )
    entries = await pool.fetch(
        f"SELECT * FROM {_table('pool_entries')} WHERE cadre_id = $1"
        " ORDER BY qualified_on, pool, key",
        cadre_id,
    )
    if county is None and not decisions and not entries:
        raise ProblemError(
            404,
            "decisions/unknown-cadre",
            "Unknown cadre",
            f"no event about cadre {cadre_id!r} has reached the decisions read model",
        )
    _reach(principal, county)
    evidence = await _evidence(pool, _ids(decisions) | _ids(entries))
    return CadreDecisions(
        cadre_id=cadre_id,
        county=county,
        decisions=[_decision(r, evidence) for r in decisions],
        pool_entries=[_entry(r, evidence) for r in entries],
    )


async def _one_decision(pool: asyncpg.Pool, decision_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(_DECISION_SELECT + " WHERE d.decision_id = $1", decision_id)
    if row is None:
        raise ProblemError(
            404,
            "decisions/unknown-decision",
            "Unknown recall decision",
            f"no recall decision {decision_id!r} in the read model",
        )
    return row


@router.get("/decisions/{decision_id}", summary="One recall decision, with its evidence")
async def read_decision(
    request: Request, decision_id: DecisionId, principal: Reader
) -> RecallDecision:
    pool = _pool(request)
    row = await _one_decision(pool, decision_id)
    _reach(principal, row["county"])
    return _decision(row, await _evidence(pool, set(row["evidence"])))


@router.get(
    "/counties/{county}/pools/{pool_name}",
    summary="A promotion pool of a county (四个一批), active entries by default",
)
async def county_pool(
    request: Request,
    county: County,
    pool_name: PoolName,
    principal: Reader,
    status: Annotated[
        Literal["active", "withdrawn", "barred", "all"],
        Query(description="active (the default), withdrawn, barred or all"),
    ] = "active",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> PoolList:
    _reach(principal, county)
    pool = _pool(request)
    rows = await pool.fetch(
        f"""
        SELECT * FROM {_table("pool_entries")}
        WHERE county = $1 AND pool = $2 AND ($3 = 'all' OR status = $3)
        ORDER BY qualified_on, cadre_id, key LIMIT $4
        """,
        county,
        pool_name,
        status,
        limit,
    )
    evidence = await _evidence(pool, _ids(rows))
    return PoolList(items=[_entry(r, evidence) for r in rows])


# --- the command ---------------------------------------------------------------------------


@router.post(
    "/decisions/{decision_id}/dismiss",
    summary="Dismiss an open recall decision after review, with a reason",
)
async def dismiss_decision(
    request: Request, decision_id: DecisionId, body: Dismissal, principal: Admin
) -> DismissalAccepted:
    runtime: ServiceRuntime = request.app.state.runtime
    row = await _one_decision(_pool(request), decision_id)
    _reach(principal, row["county"])
    model = StreamModel(decision_stream(decision_id), DecisionState(decision_id), evolve)
    command = DismissRecall(decision_id, body.reason, datetime.now(UTC).astimezone(SHANGHAI).date())
    try:
        result = await execute(
            runtime.event_store(),
            streams=[model],
            registry=decisions_registry,
            decide=lambda states: {model.stream_id: decide_dismissal(command, states[0])},
            metadata=command_metadata(principal),
        )
    except DecisionRefused as error:
        raise ProblemError(
            error.status, f"decisions/{error.code}", "Recall decision not dismissed", error.message
        ) from error
    events: list[Any] = result.events if result is not None else []
    return DismissalAccepted(
        decision_id=decision_id,
        status="dismissed",
        duplicate=result is None or result.duplicate,
        event_ids=[str(e.event_id) for e in events],
    )
