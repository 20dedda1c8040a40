"""The ``decisions`` projection: facts from the four topics in, recall decisions and promotion
pools out, and each new recall decision published on ``decisions.events.v1``.

For every batch it stores the facts it reads (``decision_facts``: only what the rules use,
one row per event and cadre), recomputes the verdict of each cadre whose facts changed with
the pure :func:`~zhucun.projections.domain.rules.evaluate`, and replaces that cadre's rows
of ``recall_decisions`` and ``pool_entries``. Recomputing from all of a cadre's facts makes
the result independent of the order the topics interleave in (a rebuild reads them at
different speeds), and a cadre has at most a few hundred facts.

Publishing happens in the batch's own transaction: a recall decision not yet in the
projections service's event store (schema ``store_schema``) is appended there as
``RecallRecommended`` (and ``RecallExecuted`` once dispatch's recall citing it is seen),
with event ids derived from the decision id; the relay publishes the store. So the read
model, the offsets and the outgoing events commit together: a crash neither loses a
decision nor publishes one twice, and a rebuild finds its decisions already in the store.
A what-if or an as-of build passes ``store_schema=None`` and publishes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import structlog

from zhucun.contracts.assessment import events as assessment
from zhucun.contracts.attendance import events as attendance
from zhucun.contracts.decisions import events as decisions
from zhucun.contracts.dispatch import events as dispatch
from zhucun.projections.domain.policy import DECISION_SECTIONS
from zhucun.projections.domain.rules import (
    Decision,
    Fact,
    Packs,
    Verdict,
    evaluate,
    month_end,
    period_end,
    quarter_end,
)
from zhucun.projections.sources import TOPICS, union_registry
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import EventRegistry
from zhucun.shared.policy import PolicyBook, PolicyPack
from zhucun.shared.projection import Delivery
from zhucun.shared.settings import DEFAULT_POLICIES_DIR
from zhucun.shared.store import ANY_VERSION, PostgresEventStore, StreamWrite

log = structlog.get_logger(__name__)

#: Who appends the decisions the projection derives (``ce_actor``).
ACTOR = "projections:decisions"
_FACT_COLUMNS = (
    "cadre_id",
    "event_id",
    "kind",
    "on_day",
    "period",
    "county",
    "policy_version",
    "grade",
    "shortfall",
    "leave_days",
    "absences",
    "satisfaction",
    "ref",
    "start_day",
    "note",
)


def facts_of(delivery: Delivery) -> list[tuple[Fact, str]]:
    """The facts an event gives (with a free-text note kept beside them: a dismissal's
    reason), per ``docs/decisions.md``; none for the events the rules do not use."""
    e = delivery.payload
    event_id = str(delivery.event.event_id)
    match e:
        case attendance.MonthClosed():
            fact = Fact(
                event_id,
                e.cadre_id,
                "month_close",
                month_end(e.month),
                e.month,
                policy_version=e.policy_version,
                shortfall=e.shortfall,
                leave_days=e.personal_leave_days + e.sick_leave_days,
                absences=e.unexcused_absences,
            )
        case assessment.QuarterlyAssessed():
            fact = Fact(
                event_id,
                e.cadre_id,
                "quarterly",
                quarter_end(e.quarter),
                e.quarter,
                county=e.county,
                policy_version=e.policy_version,
                grade=e.grade.value,
            )
        case assessment.AnnualResultIssued():
            fact = Fact(
                event_id,
                e.cadre_id,
                "annual",
                date(e.year, 12, 31),
                str(e.year),
                county=e.county,
                grade=e.grade.value,
            )
        case assessment.TermAssessed():
            fact = Fact(
                event_id,
                e.cadre_id,
                "term",
                e.term_end,
                e.assignment_id,
                county=e.county,
                policy_version=e.policy_version,
                grade=e.grade.value,
                ref=e.assignment_id,
            )
        case assessment.SanctionRecorded():
            fact = Fact(event_id, e.cadre_id, "sanction", e.decided_on, e.sanction_id, e.county)
        case assessment.VillagerEvaluationRecorded():
            fact = Fact(
                event_id,
                e.cadre_id,
                "villagers",
                period_end(e.period),
                e.period,
                county=e.county,
                satisfaction=e.satisfaction,
            )
        case assessment.RedBlueListsPublished():
            on = quarter_end(e.quarter)
            return [
                (Fact(event_id, entry.cadre_id, "red_list", on, e.quarter, e.county), "")
                for entry in e.red
            ]
        case dispatch.CadreAssigned():
            fact = Fact(
                event_id,
                e.cadre_id,
                "assignment",
                e.term_end,
                e.assignment_id,
                county=e.county,
                ref=e.assignment_id,
                start=e.term_start,
            )
        case dispatch.CadreRecalled():
            fact = Fact(
                event_id,
                e.cadre_id,
                "recall",
                e.recalled_on,
                e.assignment_id,
                ref=e.decision_id,
            )
        case decisions.RecallDismissed():
            fact = Fact(
                event_id,
                e.cadre_id,
                "dismissal",
                e.dismissed_on,
                e.decision_id,
                ref=e.decision_id,
            )
            return [(fact, e.reason)]
        case _:
            return []
    return [(fact, "")]


def _county_of(delivery: Delivery) -> tuple[str, str] | None:
    """A cadre's county, for the per-county queries: where dispatch registered or assigned
    the cadre."""
    e = delivery.payload
    if isinstance(e, dispatch.CadreRegistered | dispatch.CadreAssigned):
        return e.cadre_id, e.county
    return None


@dataclass(frozen=True, slots=True)
class _Dismissal:
    on: date
    event_id: str
    reason: str


def _decision_row(d: Decision, dismissals: dict[str, _Dismissal]) -> tuple[Any, ...]:
    """A row of ``recall_decisions``; an executed or dismissed one says by which event."""
    status_on: date | None = None
    status_event: str | None = None
    note: str | None = None
    if d.executed_by is not None:
        status_on, status_event = d.executed_by.on, d.executed_by.event_id
    elif d.status == "dismissed":
        dismissal = dismissals[d.decision_id]
        status_on, status_event, note = dismissal.on, dismissal.event_id, dismissal.reason
    return (
        d.decision_id,
        d.cadre_id,
        d.rule,
        d.key,
        d.triggered_on,
        list(d.evidence),
        d.policy_version,
        d.status,
        d.reason,
        status_on,
        status_event,
        note,
    )


class DecisionsProjection:
    """Recall decisions and promotion pools of ``schema``; publishes to the event store of
    ``store_schema`` (``None``: publish nothing). ``override``: apply this pack to every rule
    (what-if) instead of the packs the events name."""

    name = "projections-decisions"
    topics: Sequence[str] = TOPICS

    def __init__(
        self,
        schema: str,
        *,
        store_schema: str | None = None,
        policies_dir: Path = DEFAULT_POLICIES_DIR,
        override: PolicyPack | None = None,
    ) -> None:
        self.schema = schema
        self.store_schema = store_schema
        self.registry: EventRegistry = union_registry()
        # Every pack's [decisions] and [attendance] tables validated now: a broken pack stops
        # the service's start (or the replay's), not a batch.
        self.packs = Packs(
            PolicyBook.load(policies_dir, sections=DECISION_SECTIONS), override=override
        )
        self.facts = f'"{schema}".decision_facts'
        self.cadres = f'"{schema}".decision_cadres'
        self.decisions = f'"{schema}".recall_decisions'
        self.entries = f'"{schema}".pool_entries'
        # Appends only ever go through the batch's connection (``conn=``), never a pool.
        self.store = (
            PostgresEventStore(cast(asyncpg.Pool, None), schema=store_schema)
            if store_schema
            else None
        )

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.facts} (
                cadre_id text NOT NULL,
                event_id text NOT NULL,
                kind text NOT NULL,
                on_day date NOT NULL,
                period text NOT NULL,
                county text,
                policy_version text,
                grade text,
                shortfall integer NOT NULL,
                leave_days integer NOT NULL,
                absences integer NOT NULL,
                satisfaction double precision NOT NULL,
                ref text,
                start_day date,
                note text NOT NULL,
                PRIMARY KEY (cadre_id, event_id, kind)
            );
            CREATE TABLE IF NOT EXISTS {self.cadres} (
                cadre_id text PRIMARY KEY,
                county text NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {self.decisions} (
                decision_id text PRIMARY KEY,
                cadre_id text NOT NULL,
                rule integer NOT NULL,
                key text NOT NULL,
                triggered_on date NOT NULL,
                evidence text[] NOT NULL,
                policy_version text NOT NULL,
                status text NOT NULL,
                reason text NOT NULL,
                -- executed: dispatch's recall; dismissed: the dismissal's event and reason.
                status_on date,
                status_event text,
                status_note text
            );
            CREATE INDEX IF NOT EXISTS recall_decisions_cadre
                ON {self.decisions} (cadre_id, triggered_on);
            CREATE TABLE IF NOT EXISTS {self.entries} (
                cadre_id text NOT NULL,
                pool text NOT NULL,
                key text NOT NULL,
                county text NOT NULL,
                qualified_on date NOT NULL,
                evidence text[] NOT NULL,
                policy_version text NOT NULL,
                status text NOT NULL,
                status_on date,
                status_reason text,
                status_evidence text,
                reason text NOT NULL,
                PRIMARY KEY (cadre_id, pool, key)
            );
            CREATE INDEX IF NOT EXISTS pool_entries_county
                ON {self.entries} (county, pool, status, qualified_on)
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        rows: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        counties: dict[str, str] = {}
        causes: dict[str, Delivery] = {}
        for delivery in deliveries:
            for fact, note in facts_of(delivery):
                rows[(fact.cadre_id, fact.event_id, fact.kind)] = (
                    fact.cadre_id,
                    fact.event_id,
                    fact.kind,
                    fact.on,
                    fact.period,
                    fact.county,
                    fact.policy_version,
                    fact.grade,
                    fact.shortfall,
                    fact.leave_days,
                    fact.absences,
                    fact.satisfaction,
                    fact.ref,
                    fact.start,
                    note,
                )
                causes[fact.cadre_id] = delivery
            found = _county_of(delivery)
            if found is not None:
                counties[found[0]] = found[1]
        if counties:
            await conn.execute(
                f"""
                INSERT INTO {self.cadres} (cadre_id, county)
                SELECT * FROM unnest($1::text[], $2::text[])
                ON CONFLICT (cadre_id) DO UPDATE SET county = excluded.county
                """,
                list(counties),
                list(counties.values()),
            )
        if not rows:
            return
        columns = list(zip(*rows.values(), strict=True))
        inserted = await conn.fetch(
            f"""
            INSERT INTO {self.facts} ({", ".join(_FACT_COLUMNS)})
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[],
                                 $6::text[], $7::text[], $8::text[], $9::int[], $10::int[],
                                 $11::int[], $12::float8[], $13::text[], $14::date[], $15::text[])
            ON CONFLICT DO NOTHING
            RETURNING cadre_id
            """,
            *[list(column) for column in columns],
        )
        changed = sorted({row["cadre_id"] for row in inserted})
        if not changed:
            return
        # Two workers can hold facts of one cadre (a red list is keyed by county, the cadre's
        # other events by cadre): each locks the cadres it recomputes, in one order, after
        # inserting its facts, so the second reads the first's committed facts too.
        await conn.execute(
            """
            SELECT pg_advisory_xact_lock(k) FROM (
                SELECT DISTINCT hashtextextended('zhucun-decisions:' || c, 0) AS k
                FROM unnest($1::text[]) AS c ORDER BY 1
            ) AS sorted
            """,
            changed,
        )
        verdicts, dismissals = await self._evaluate(conn, changed)
        await self._write(conn, changed, verdicts, dismissals)
        if self.store is not None:
            await self._publish(conn, verdicts, causes)

    async def _evaluate(
        self, conn: asyncpg.Connection, cadres: list[str]
    ) -> tuple[dict[str, Verdict], dict[str, _Dismissal]]:
        """The cadres' verdicts, and the dismissals among their facts by decision id."""
        records = await conn.fetch(
            f"SELECT * FROM {self.facts} WHERE cadre_id = ANY($1::text[])", cadres
        )
        facts: dict[str, list[Fact]] = {cadre: [] for cadre in cadres}
        dismissals: dict[str, _Dismissal] = {}
        for r in records:
            facts[r["cadre_id"]].append(
                Fact(
                    r["event_id"],
                    r["cadre_id"],
                    r["kind"],
                    r["on_day"],
                    r["period"],
                    r["county"],
                    r["policy_version"],
                    r["grade"],
                    r["shortfall"],
                    r["leave_days"],
                    r["absences"],
                    r["satisfaction"],
                    r["ref"],
                    r["start_day"],
                )
            )
            if r["kind"] == "dismissal":
                dismissals[r["ref"]] = _Dismissal(r["on_day"], r["event_id"], r["note"])
        verdicts = {cadre: evaluate(cadre, facts[cadre], self.packs) for cadre in cadres}
        for cadre, verdict in verdicts.items():
            if verdict.unresolved:
                log.warning(
                    "decisions.no_policy", cadre=cadre, events=list(verdict.unresolved)[:20]
                )
        return verdicts, dismissals

    async def _write(
        self,
        conn: asyncpg.Connection,
        cadres: list[str],
        verdicts: dict[str, Verdict],
        dismissals: dict[str, _Dismissal],
    ) -> None:
        await conn.execute(f"DELETE FROM {self.decisions} WHERE cadre_id = ANY($1::text[])", cadres)
        await conn.execute(f"DELETE FROM {self.entries} WHERE cadre_id = ANY($1::text[])", cadres)
        decided = [d for verdict in verdicts.values() for d in verdict.decisions]
        if decided:
            await conn.executemany(
                f"""
                INSERT INTO {self.decisions} (decision_id, cadre_id, rule, key, triggered_on,
                    evidence, policy_version, status, reason, status_on, status_event,
                    status_note)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """,
                [_decision_row(d, dismissals) for d in decided],
            )
        entries = [e for verdict in verdicts.values() for e in verdict.entries]
        if entries:
            await conn.executemany(
                f"""
                INSERT INTO {self.entries} (cadre_id, pool, key, county, qualified_on, evidence,
                    policy_version, status, status_on, status_reason, status_evidence, reason)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """,
                [
                    (
                        e.cadre_id,
                        e.pool,
                        e.key,
                        e.county,
                        e.qualified_on,
                        list(e.evidence),
                        e.policy_version,
                        e.status,
                        e.status_on,
                        e.status_reason,
                        e.status_evidence,
                        e.reason,
                    )
                    for e in entries
                ],
            )

    async def _publish(
        self, conn: asyncpg.Connection, verdicts: dict[str, Verdict], causes: dict[str, Delivery]
    ) -> None:
        """Append what the store does not hold yet: a new decision's recommendation, a
        recall's execution."""
        assert self.store is not None
        wanted = [d for verdict in verdicts.values() for d in verdict.decisions]
        if not wanted:
            return
        streams = [decisions.decision_stream(d.decision_id) for d in wanted]
        stored = await conn.fetch(
            f"SELECT stream_id, event_type FROM {self.store.table}"
            " WHERE stream_id = ANY($1::text[])",
            streams,
        )
        held = {(r["stream_id"], r["event_type"]) for r in stored}
        now = datetime.now(UTC)
        for decision, stream in zip(wanted, streams, strict=True):
            cause = causes.get(decision.cadre_id)
            meta = EventMetadata(
                occurred_at=now,
                correlation_id=cause.event.correlation_id if cause else uuid.uuid4(),
                causation_id=cause.event.event_id if cause else None,
                actor=ACTOR,
            )
            new: list[NewEvent] = []
            if (stream, decisions.RecallRecommended.event_type) not in held:
                new.append(
                    NewEvent(
                        decisions.RecallRecommended(
                            decision_id=decision.decision_id,
                            cadre_id=decision.cadre_id,
                            rule=decision.rule,
                            rule_name=decisions.RULE_NAMES[decision.rule],
                            key=decision.key,
                            triggered_on=decision.triggered_on,
                            reason=decision.reason,
                            evidence=decision.evidence,
                            policy_version=decision.policy_version,
                        ),
                        meta,
                        uuid.uuid5(uuid.UUID(decision.decision_id), "recommended"),
                    )
                )
            recall = decision.executed_by
            if recall is not None and (stream, decisions.RecallExecuted.event_type) not in held:
                new.append(
                    NewEvent(
                        decisions.RecallExecuted(
                            decision_id=decision.decision_id,
                            cadre_id=decision.cadre_id,
                            assignment_id=recall.period,
                            recalled_on=recall.on,
                            recall_event_id=recall.event_id,
                        ),
                        meta,
                        uuid.uuid5(uuid.UUID(decision.decision_id), "executed"),
                    )
                )
            if new:
                await self.store.append_streams([StreamWrite(stream, new, ANY_VERSION)], conn=conn)
                log.info(
                    "decisions.published",
                    decision=decision.decision_id,
                    cadre=decision.cadre_id,
                    rule=decision.rule,
                    events=[n.event.event_type for n in new],
                )
