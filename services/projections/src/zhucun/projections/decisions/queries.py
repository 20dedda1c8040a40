"""Queries of the decisions read model: its typed answers, and :class:`DecisionsReader`, which
reads them from the tables :class:`~zhucun.projections.decisions.projection.DecisionsProjection`
keeps (``recall_decisions``, ``pool_entries``, ``decision_cadres``, ``decision_facts``).

Every decision and pool entry comes with its evidence: the facts (month closes, grades,
lists...) its rule read, in business-date order. A county's decisions and a pool's entries
are read a page at a time (``zhucun.shared.pages``), in the order of their ids: a decision's
``decision_id``, an entry's ``entry_id`` (derived from its cadre, pool and key).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from zhucun.projections.domain.rules import DecisionStatus, EntryStatus, Pool
from zhucun.shared.pages import Page, paginate

#: One of the four promotion pools (四个一批), as a path segment.
PoolName = Pool

#: Which decisions a county's list holds: one status, or all.
DecisionFilter = Literal["recommended", "executed", "dismissed", "all"]
#: Which entries a pool's list holds: one status, or all.
EntryFilter = Literal["active", "withdrawn", "barred", "all"]


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
    status: DecisionStatus
    #: When it was executed (dispatch's recall) or dismissed, by which event, and why.
    status_on: date | None
    status_event_id: str | None
    dismissal_reason: str | None
    evidence_event_ids: list[str]
    evidence: list[Evidence] = []


#: An entry's id in SQL: its cadre, pool and key, digested (an id of 32 hex digits; the key
#: of a term's entry is itself up to an id long).
_ENTRY_ID = "md5(cadre_id || '|' || pool || '|' || key)"


class PoolEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: The entry's id: one per cadre, pool and key (the page order of a pool).
    entry_id: str
    cadre_id: str
    pool: PoolName
    key: str
    county: str
    qualified_on: date
    reason: str
    policy_version: str
    status: EntryStatus
    status_on: date | None
    status_reason: str | None
    status_evidence: str | None
    evidence_event_ids: list[str]
    evidence: list[Evidence] = []


class CadreDecisions(BaseModel):
    """A cadre's decisions and pool entries; ``county`` is where dispatch registered or last
    assigned the cadre (null until the read model has seen either)."""

    model_config = ConfigDict(frozen=True)

    cadre_id: str
    county: str | None
    decisions: list[RecallDecision]
    pool_entries: list[PoolEntry]

    def is_empty(self) -> bool:
        """Nothing about the cadre has reached the read model."""
        return self.county is None and not self.decisions and not self.pool_entries


class DecisionsReader:
    """The decisions read model of ``schema`` in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.decisions = f'"{schema}".recall_decisions'
        self.entries = f'"{schema}".pool_entries'
        self.cadres = f'"{schema}".decision_cadres'
        self.facts = f'"{schema}".decision_facts'
        #: A decision with its cadre's county (per-county lists, jurisdiction).
        self._select_decisions = f"""
            SELECT d.*, c.county FROM {self.decisions} AS d
            LEFT JOIN {self.cadres} AS c USING (cadre_id)
        """

    async def decision(self, decision_id: str) -> RecallDecision | None:
        row = await self.pool.fetchrow(
            self._select_decisions + " WHERE d.decision_id = $1", decision_id
        )
        if row is None:
            return None
        (decision,) = await self._decisions([row])
        return decision

    async def county_decisions(
        self, county: str, status: DecisionFilter, limit: int, after: str | None = None
    ) -> Page[RecallDecision]:
        """A page of the county's decisions in ``status``, by decision id, after ``after``."""
        rows = await self.pool.fetch(
            self._select_decisions
            + " WHERE c.county = $1 AND ($2 = 'all' OR d.status = $2)"
            # Byte order (COLLATE "C"), the order ``paginate`` and the clients compare in.
            + ' AND ($3::text IS NULL OR d.decision_id COLLATE "C" > $3)'
            + ' ORDER BY d.decision_id COLLATE "C" LIMIT $4',
            county,
            status,
            after,
            limit + 1,
        )
        decisions = await self._decisions(rows)
        return paginate(decisions, lambda d: d.decision_id, after, limit)

    async def cadre(self, cadre_id: str) -> CadreDecisions:
        county = await self.pool.fetchval(
            f"SELECT county FROM {self.cadres} WHERE cadre_id = $1", cadre_id
        )
        decisions = await self.pool.fetch(
            self._select_decisions + " WHERE d.cadre_id = $1 ORDER BY d.triggered_on, d.rule",
            cadre_id,
        )
        entries = await self.pool.fetch(
            f"SELECT *, {_ENTRY_ID} AS entry_id FROM {self.entries}"
            " WHERE cadre_id = $1 ORDER BY qualified_on, pool, key",
            cadre_id,
        )
        evidence = await self._evidence(_ids(decisions) | _ids(entries))
        return CadreDecisions(
            cadre_id=cadre_id,
            county=county,
            decisions=[_decision(r, evidence) for r in decisions],
            pool_entries=[_entry(r, evidence) for r in entries],
        )

    async def pool_entries(
        self,
        county: str,
        pool: PoolName,
        status: EntryFilter,
        limit: int,
        after: str | None = None,
    ) -> Page[PoolEntry]:
        """A page of the county's pool in ``status``, by entry id, after ``after``."""
        rows = await self.pool.fetch(
            f"""
            SELECT * FROM (
                SELECT *, {_ENTRY_ID} AS entry_id FROM {self.entries}
                WHERE county = $1 AND pool = $2 AND ($3 = 'all' OR status = $3)
            ) AS entries
            WHERE $4::text IS NULL OR entry_id COLLATE "C" > $4
            ORDER BY entry_id COLLATE "C" LIMIT $5
            """,
            county,
            pool,
            status,
            after,
            limit + 1,
        )
        evidence = await self._evidence(_ids(rows))
        return paginate([_entry(r, evidence) for r in rows], lambda e: e.entry_id, after, limit)

    async def _decisions(self, rows: list[asyncpg.Record]) -> list[RecallDecision]:
        evidence = await self._evidence(_ids(rows))
        return [_decision(r, evidence) for r in rows]

    async def _evidence(self, ids: set[str]) -> dict[str, Evidence]:
        """The facts behind ``ids``, one per event (an event gives one fact per cadre, and
        every cadre's fact of it has the same figures)."""
        if not ids:
            return {}
        rows = await self.pool.fetch(
            f"""
            SELECT DISTINCT ON (event_id) * FROM {self.facts}
            WHERE event_id = ANY($1::text[]) ORDER BY event_id
            """,
            sorted(ids),
        )
        return {r["event_id"]: _fact(r) for r in rows}


def _fact(r: asyncpg.Record) -> Evidence:
    kind = r["kind"]
    # The figures of another kind of fact are the table's zeros, not facts: left out.
    closes = kind == "month_close"
    return Evidence(
        event_id=r["event_id"],
        kind=kind,
        period=r["period"],
        on=r["on_day"],
        grade=r["grade"],
        shortfall=r["shortfall"] if closes else None,
        leave_days=r["leave_days"] if closes else None,
        unexcused_absences=r["absences"] if closes else None,
        satisfaction=r["satisfaction"] if kind == "villagers" else None,
    )


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
        entry_id=row["entry_id"],
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


def _in_order(ids: Iterable[str], evidence: dict[str, Evidence]) -> list[Evidence]:
    """The evidence found, in business-date order."""
    return sorted((evidence[i] for i in ids if i in evidence), key=lambda e: (e.on, e.event_id))


def _ids(rows: list[asyncpg.Record]) -> set[str]:
    return {event_id for row in rows for event_id in row["evidence"]}
