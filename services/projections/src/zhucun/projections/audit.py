"""The audit trail (一人一档): every event about a cadre, from every service, in one file.

:class:`AuditTrail` is a projection (``zhucun.shared.projection``) of ``dispatch.events.v1``,
``attendance.events.v1``, ``assessment.events.v1`` and ``decisions.events.v1`` (the recall
decisions the read side derived about the cadre) into the table ``audit_trail``: one row
per event *and* cadre it concerns, with the event's full envelope (where it was published,
its stream and positions, business and recorded time, actor, correlation and causation ids,
its hash-chain link), a short readable ``summary`` and the event's data as published.

Which events concern a cadre:

* every event whose payload has a ``cadre_id``;
* a handover (dispatch ``HandoverOpened``) concerns both the predecessor and the successor,
  and so do its later ``HandoverItemCompleted`` and ``HandoverCompleted`` (they name only the
  handover; the projection remembers each handover's two cadres in ``audit_trail_handovers``.
  They share the village's key, so the opening always arrives first.)

County-wide events (rounds, annual rounds, the red and blue lists) and team inspections are
not in any one cadre's file.

A cadre's file is ordered by recorded time, then source service, then global position (the
store's order within one service). :class:`AuditTrailReader` answers the queries: a page of
the file (filtered by period of business time, by event type, and *as of* an instant: only
what had been recorded by then, i.e. what the file said at that moment), and every row for
an export.

The summaries (:func:`summarize`) are built from structured fields only, never from free
text (findings, notes, reasons, diary text), so they carry no names; and events carry no
coordinates at all.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict

from zhucun.contracts.assessment import events as assessment
from zhucun.contracts.attendance import events as attendance
from zhucun.contracts.decisions import events as decisions
from zhucun.contracts.dispatch import events as dispatch
from zhucun.projections.domain.errors import InvalidCursor
from zhucun.projections.sources import SHANGHAI, TOPICS, union_registry
from zhucun.shared.events import DomainEvent, EventRegistry, JsonObject
from zhucun.shared.projection import Delivery

#: The columns of a file entry, in export order.
COLUMNS = (
    "cadre_id",
    "source",
    "topic",
    "partition",
    "offset",
    "event_id",
    "event_type",
    "schema_version",
    "stream_id",
    "stream_version",
    "global_position",
    "occurred_at",
    "recorded_at",
    "actor",
    "correlation_id",
    "causation_id",
    "summary",
    "hash",
    "data",
)
_SELECT = ", ".join(f'"{c}"' for c in COLUMNS)


# --- summaries ------------------------------------------------------------------------------

E = TypeVar("E", bound=DomainEvent)
_SUMMARIES: dict[str, Callable[[Any], str]] = {}


def _says(cls: type[E]) -> Callable[[Callable[[E], str]], Callable[[E], str]]:
    def register(fn: Callable[[E], str]) -> Callable[[E], str]:
        _SUMMARIES[cls.event_type] = fn
        return fn

    return register


def summarize(event: DomainEvent) -> str:
    """One short readable sentence about the event; its type name when no sentence is
    written for it (a type newer than this code)."""
    fn = _SUMMARIES.get(event.event_type)
    return fn(event) if fn is not None else event.event_type


def has_summary(event_type: str) -> bool:
    """Whether :func:`summarize` writes a sentence for the type (else it falls back)."""
    return event_type in _SUMMARIES


def _words(slug: str) -> str:
    return slug.replace("_", " ")


def _num(value: float) -> str:
    return f"{value:g}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _cap(cap: assessment.GradeCap | None) -> str:
    if cap is None:
        return ""
    return f" (capped: {_plural(cap.unexcused_absences, 'unexcused absence')})"


# dispatch


@_says(dispatch.VillageRegistered)
def _(e: dispatch.VillageRegistered) -> str:
    return f"Village {e.village_id} registered in county {e.county}, township {e.township}"


@_says(dispatch.VillageUpdated)
def _(e: dispatch.VillageUpdated) -> str:
    return f"Profile of village {e.village_id} updated"


@_says(dispatch.VillageNeedsDeclared)
def _(e: dispatch.VillageNeedsDeclared) -> str:
    needs = ", ".join(_words(n) for n in e.needs) or "none"
    return f"Village {e.village_id} declared its needs on {e.declared_on}: {needs}"


@_says(dispatch.CadreRegistered)
def _(e: dispatch.CadreRegistered) -> str:
    return (
        f"Registered for dispatch in county {e.county}, "
        f"sent by a {e.unit_level} {_words(e.unit_kind)}"
    )


@_says(dispatch.CadreUpdated)
def _(e: dispatch.CadreUpdated) -> str:
    return f"Dispatch profile updated (a {e.unit_level} {_words(e.unit_kind)})"


@_says(dispatch.RoundOpened)
def _(e: dispatch.RoundOpened) -> str:
    return f"Round {e.round_id} opened in county {e.county} on {e.opened_on}"


@_says(dispatch.TeamFormed)
def _(e: dispatch.TeamFormed) -> str:
    return f"Team {e.team_id} formed for village {e.village_id} on {e.formed_on}"


@_says(dispatch.CadreAssigned)
def _(e: dispatch.CadreAssigned) -> str:
    text = f"Assigned to village {e.village_id} as {e.role} from {e.term_start}"
    if e.kind is dispatch.AssignmentKind.REPLACEMENT:
        text += f" (replacement for {e.replaces})" if e.replaces else " (replacement)"
    elif e.kind is dispatch.AssignmentKind.REINFORCEMENT:
        text += " (reinforcement)"
    if e.warnings:
        text += f"; {_plural(len(e.warnings), 'rule warning')}"
    return text


@_says(dispatch.AssignmentEnded)
def _(e: dispatch.AssignmentEnded) -> str:
    return f"Assignment in village {e.village_id} ended on {e.ended_on}: {_words(e.reason)}"


@_says(dispatch.CadreRecalled)
def _(e: dispatch.CadreRecalled) -> str:
    text = f"Recalled from village {e.village_id} on {e.recalled_on}"
    return text + (f" (decision {e.decision_id})" if e.decision_id else "")


@_says(dispatch.ReplacementObligationOpened)
def _(e: dispatch.ReplacementObligationOpened) -> str:
    return f"Vacancy of a {_words(e.role)} in team {e.team_id} to be filled (since {e.opened_on})"


@_says(dispatch.ReplacementObligationClosed)
def _(e: dispatch.ReplacementObligationClosed) -> str:
    return f"Vacancy in team {e.team_id} filled on {e.closed_on}"


@_says(dispatch.TownshipLeaderAppointed)
def _(e: dispatch.TownshipLeaderAppointed) -> str:
    return f"Appointed township team leader of {e.township} from {e.term_start} to {e.term_end}"


@_says(dispatch.HandoverOpened)
def _(e: dispatch.HandoverOpened) -> str:
    return (
        f"Handover in village {e.village_id} opened on {e.opened_on}: "
        f"{e.predecessor_cadre_id} to {e.successor_cadre_id}, "
        f"{_plural(len(e.items), 'item')} due"
    )


@_says(dispatch.HandoverItemCompleted)
def _(e: dispatch.HandoverItemCompleted) -> str:
    return f"Handover item done in village {e.village_id} on {e.completed_on}: {_words(e.item)}"


@_says(dispatch.HandoverCompleted)
def _(e: dispatch.HandoverCompleted) -> str:
    return f"Handover in village {e.village_id} completed on {e.completed_on}"


@_says(dispatch.RoundClosed)
def _(e: dispatch.RoundClosed) -> str:
    breaches = len(e.report.violations)
    return (
        f"Round {e.round_id} closed on {e.closed_on}: {_plural(e.report.teams, 'team')}, "
        f"{_plural(breaches, 'level breach', 'level breaches')}"
    )


# attendance


@_says(attendance.CheckInRecorded)
def _(e: attendance.CheckInRecorded) -> str:
    if e.location is None:
        text = f"Checked in on {e.day} without a location (own statement)"
    else:
        where = "inside" if e.location.inside_geofence else "outside"
        text = f"Checked in on {e.day} {where} the geofence ({e.location.distance_m} m)"
    if e.travel_flag is not None:
        text += "; flagged for impossible travel"
    return text


@_says(attendance.PresenceConfirmed)
def _(e: attendance.PresenceConfirmed) -> str:
    first, last = min(e.days), max(e.days)
    span = f"on {first}" if first == last else f"from {first} to {last}"
    return f"Presence confirmed by the township on {_plural(len(e.days), 'day')} ({span})"


@_says(attendance.SpotCheckRecorded)
def _(e: attendance.SpotCheckRecorded) -> str:
    if e.result is attendance.SpotCheckResult.PRESENT:
        return f"Spot check on {e.day}: present"
    if e.excused_by_leave_id is not None:
        return f"Spot check on {e.day}: absent, excused by leave {e.excused_by_leave_id}"
    return f"Spot check on {e.day}: absent, unexcused"


@_says(attendance.MonthClosed)
def _(e: attendance.MonthClosed) -> str:
    outcome = "no shortfall" if e.shortfall == 0 else f"shortfall {e.shortfall}"
    return (
        f"Month {e.month} closed: {e.in_village_days} of {e.required_days} required days "
        f"in the village ({outcome}), "
        f"{_plural(e.unexcused_absences, 'unexcused absence')}"
    )


@_says(attendance.LeaveRequested)
def _(e: attendance.LeaveRequested) -> str:
    return (
        f"Requested {_words(e.kind)} leave {e.leave_id} from {e.first_day} to {e.last_day} "
        f"({_plural(e.days, 'day')}), to be approved by the {e.approval_level}"
    )


@_says(attendance.LeaveApproved)
def _(e: attendance.LeaveApproved) -> str:
    return f"Leave {e.leave_id} approved by the {e.approved_at_level}"


@_says(attendance.LeaveRejected)
def _(e: attendance.LeaveRejected) -> str:
    return f"Leave {e.leave_id} rejected"


@_says(attendance.LeaveCancelled)
def _(e: attendance.LeaveCancelled) -> str:
    return f"Leave {e.leave_id} cancelled"


@_says(attendance.DiaryEntryWritten)
def _(e: attendance.DiaryEntryWritten) -> str:
    return f"Work diary entry for {e.day}"


@_says(attendance.HouseholdVisited)
def _(e: attendance.HouseholdVisited) -> str:
    return f"Visited household {e.household_id} of village {e.village_id} on {e.visited_on}"


# assessment

_INSPECTIONS = {
    assessment.InspectionKind.WEEKLY_INSPECTION: "Weekly inspection",
    assessment.InspectionKind.MONTHLY_REVIEW: "Monthly review",
}


@_says(assessment.CadreInspected)
def _(e: assessment.CadreInspected) -> str:
    return f"{_INSPECTIONS[e.kind]} on {e.held_on}: {_plural(e.problems_found, 'problem')} found"


@_says(assessment.VillagerEvaluationRecorded)
def _(e: assessment.VillagerEvaluationRecorded) -> str:
    return (
        f"Villager evaluation for {e.period}: {_num(e.satisfaction)}% satisfied "
        f"({_plural(e.respondents, 'respondent')})"
    )


@_says(assessment.TermAssessed)
def _(e: assessment.TermAssessed) -> str:
    return f"Term-end grade (term ending {e.term_end}): {_words(e.grade)}{_cap(e.cap)}"


@_says(assessment.SanctionRecorded)
def _(e: assessment.SanctionRecorded) -> str:
    return f"Sanction {e.sanction_id} recorded, decided on {e.decided_on}"


@_says(assessment.TeamInspected)
def _(e: assessment.TeamInspected) -> str:
    return (
        f"{_INSPECTIONS[e.kind]} of team {e.team_id} on {e.held_on}: "
        f"{_plural(e.problems_found, 'problem')} found"
    )


@_says(assessment.QuarterlyAssessed)
def _(e: assessment.QuarterlyAssessed) -> str:
    return f"Quarterly grade for {e.quarter}: {_words(e.grade)} (score {_num(e.score)})"


@_says(assessment.AdmonitionTalksRequired)
def _(e: assessment.AdmonitionTalksRequired) -> str:
    return f"Admonition talks required after {e.quarter}, due by {e.due_on}"


@_says(assessment.AdmonitionTalkHeld)
def _(e: assessment.AdmonitionTalkHeld) -> str:
    return f"Admonition talk held by the {_words(e.by)} on {e.held_on}"


@_says(assessment.AdmonitionTalksCompleted)
def _(e: assessment.AdmonitionTalksCompleted) -> str:
    return f"Admonition talks completed on {e.completed_on}" + (" (overdue)" if e.overdue else "")


@_says(assessment.RedBlueListsPublished)
def _(e: assessment.RedBlueListsPublished) -> str:
    return (
        f"Red and blue lists for {e.quarter} published in county {e.county} "
        f"({_plural(e.cadres_ranked, 'cadre')} ranked)"
    )


@_says(assessment.AnnualRoundOpened)
def _(e: assessment.AnnualRoundOpened) -> str:
    return f"Annual assessment {e.year} opened in county {e.county} on {e.opened_on}"


@_says(assessment.AnnualGradeProposed)
def _(e: assessment.AnnualGradeProposed) -> str:
    text = f"Annual grade for {e.year} proposed: {_words(e.grade)}"
    if e.cap is not None:
        text += (
            f" (proposed {_words(e.proposed_grade)}, capped: "
            f"{_plural(e.cap.unexcused_absences, 'unexcused absence')})"
        )
    return text


@_says(assessment.AnnualRoundFinalised)
def _(e: assessment.AnnualRoundFinalised) -> str:
    return (
        f"Annual assessment {e.year} finalised on {e.finalised_on}: {e.excellent} excellent "
        f"of {e.cadres_assessed} assessed (at most {e.excellent_cap})"
    )


@_says(assessment.AnnualResultIssued)
def _(e: assessment.AnnualResultIssued) -> str:
    return f"Annual grade for {e.year}: {_words(e.grade)}{_cap(e.cap)}"


@_says(decisions.RecallRecommended)
def _(e: decisions.RecallRecommended) -> str:
    return (
        f"Recall recommended by rule {e.rule} ({e.key}, {e.triggered_on}) under {e.policy_version},"
        f" on {len(e.evidence)} evidence events"
    )


@_says(decisions.RecallExecuted)
def _(e: decisions.RecallExecuted) -> str:
    return f"Recall decision {e.decision_id} executed: recalled on {e.recalled_on}"


@_says(decisions.RecallDismissed)
def _(e: decisions.RecallDismissed) -> str:
    return f"Recall decision {e.decision_id} dismissed on {e.dismissed_on} after review"


# --- the projection -------------------------------------------------------------------------

_CADRE_FIELDS = ("cadre_id", "predecessor_cadre_id", "successor_cadre_id")


def cadres_of(event: DomainEvent) -> list[str]:
    """The cadres an event names in its payload (a handover's opening names two)."""
    found: list[str] = []
    for name in _CADRE_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


def service_of(source: str) -> str:
    """``/zhucun/attendance`` -> ``attendance`` (the CloudEvents source's last segment)."""
    return source.rstrip("/").rsplit("/", 1)[-1] or source


class AuditTrail:
    """The projection of the four topics into ``audit_trail`` of ``schema``."""

    name = "projections-audit-trail"
    topics: Sequence[str] = TOPICS

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.registry: EventRegistry = union_registry()
        self.table = f'"{schema}".audit_trail'
        self.handovers = f'"{schema}".audit_trail_handovers'

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                cadre_id text NOT NULL,
                source text NOT NULL,
                topic text NOT NULL,
                "partition" integer NOT NULL,
                "offset" bigint NOT NULL,
                event_id uuid NOT NULL,
                event_type text NOT NULL,
                schema_version integer NOT NULL,
                stream_id text NOT NULL,
                stream_version bigint NOT NULL,
                global_position bigint NOT NULL,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL,
                actor text,
                correlation_id uuid NOT NULL,
                causation_id uuid,
                summary text NOT NULL,
                hash text NOT NULL,
                data jsonb NOT NULL,
                PRIMARY KEY (cadre_id, event_id)
            );
            -- A cadre's file in order; as_of and the cursor are ranges of it.
            CREATE INDEX IF NOT EXISTS audit_trail_file
                ON {self.table} (cadre_id, recorded_at, source, global_position);
            -- The file filtered by event types.
            CREATE INDEX IF NOT EXISTS audit_trail_file_by_type
                ON {self.table} (cadre_id, event_type, recorded_at, source, global_position);
            -- The file filtered by a period of business time.
            CREATE INDEX IF NOT EXISTS audit_trail_file_by_time
                ON {self.table} (cadre_id, occurred_at);
            -- The counties a cadre's events name (jurisdiction of an org_admin).
            CREATE INDEX IF NOT EXISTS audit_trail_county
                ON {self.table} (cadre_id, (data ->> 'county')) WHERE data ? 'county';
            CREATE TABLE IF NOT EXISTS {self.handovers} (
                handover_id text PRIMARY KEY,
                predecessor_cadre_id text NOT NULL,
                successor_cadre_id text NOT NULL
            )
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        """One row per event and cadre, written with one insert for the whole batch."""
        opened: dict[str, tuple[str, str]] = {}
        for delivery in deliveries:
            event = delivery.payload
            if isinstance(event, dispatch.HandoverOpened):
                opened[event.handover_id] = (event.predecessor_cadre_id, event.successor_cadre_id)
        later = {
            d.payload.handover_id
            for d in deliveries
            if isinstance(d.payload, dispatch.HandoverItemCompleted | dispatch.HandoverCompleted)
        } - set(opened)
        known = dict(opened)
        if later:
            rows = await conn.fetch(
                f"""
                SELECT handover_id, predecessor_cadre_id, successor_cadre_id
                FROM {self.handovers} WHERE handover_id = ANY($1::text[])
                """,
                sorted(later),
            )
            known |= {
                r["handover_id"]: (r["predecessor_cadre_id"], r["successor_cadre_id"]) for r in rows
            }

        entries: dict[tuple[str, UUID], tuple[str, Delivery, str]] = {}
        for delivery in deliveries:
            event = delivery.payload
            cadres = cadres_of(event)
            if isinstance(event, dispatch.HandoverItemCompleted | dispatch.HandoverCompleted):
                # A handover whose opening was dead-lettered stays out of the files.
                cadres = list(dict.fromkeys(known.get(event.handover_id, ())))
            if not cadres:
                continue
            summary = summarize(event)
            for cadre_id in cadres:
                entries.setdefault(
                    (cadre_id, delivery.event.event_id), (cadre_id, delivery, summary)
                )

        if opened:
            await conn.execute(
                f"""
                INSERT INTO {self.handovers}
                    (handover_id, predecessor_cadre_id, successor_cadre_id)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                ON CONFLICT (handover_id) DO NOTHING
                """,
                list(opened),
                [p for p, _ in opened.values()],
                [s for _, s in opened.values()],
            )
        if entries:
            await self._insert(conn, list(entries.values()))

    async def _insert(
        self, conn: asyncpg.Connection, entries: list[tuple[str, Delivery, str]]
    ) -> None:
        envelopes = [d.event for _, d, _ in entries]
        await conn.execute(
            f"""
            INSERT INTO {self.table} ({_SELECT})
            SELECT * FROM unnest(
                $1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::uuid[],
                $7::text[], $8::int[], $9::text[], $10::bigint[], $11::bigint[],
                $12::timestamptz[], $13::timestamptz[], $14::text[], $15::uuid[], $16::uuid[],
                $17::text[], $18::text[], $19::jsonb[]
            )
            ON CONFLICT (cadre_id, event_id) DO NOTHING
            """,
            [cadre_id for cadre_id, _, _ in entries],
            [service_of(d.source) for _, d, _ in entries],
            [d.topic for _, d, _ in entries],
            [d.partition for _, d, _ in entries],
            [d.offset for _, d, _ in entries],
            [e.event_id for e in envelopes],
            [e.event_type for e in envelopes],
            [e.schema_version for e in envelopes],
            [e.stream_id for e in envelopes],
            [e.stream_version for e in envelopes],
            [e.global_position for e in envelopes],
            [e.occurred_at for e in envelopes],
            [e.recorded_at for e in envelopes],
            [e.actor for e in envelopes],
            [e.correlation_id for e in envelopes],
            [e.causation_id for e in envelopes],
            [summary for _, _, summary in entries],
            [e.hash for e in envelopes],
            [e.data for e in envelopes],
        )


# --- queries --------------------------------------------------------------------------------


class FileEntry(BaseModel):
    """One event of a cadre's file: where it was published, its envelope, a summary, and
    the event's data exactly as published (``schema_version`` says which contract)."""

    model_config = ConfigDict(frozen=True)

    cadre_id: str
    #: The producing service: dispatch, attendance or assessment.
    source: str
    topic: str
    partition: int
    offset: int
    event_id: UUID
    event_type: str
    schema_version: int
    stream_id: str
    stream_version: int
    global_position: int
    #: Business time (the envelope's ``occurred_at``).
    occurred_at: datetime
    recorded_at: datetime
    #: ``subject:role`` of whoever caused it.
    actor: str | None
    correlation_id: UUID
    causation_id: UUID | None
    summary: str
    #: The event's link in its stream's hash chain (verifiable against the store).
    hash: str
    data: JsonObject


class FilePage(BaseModel):
    """A page of a cadre's file, in file order."""

    model_config = ConfigDict(frozen=True)

    items: list[FileEntry]
    #: Pass it back as ``cursor`` (the reader's ``after``) for the next page; null on the
    #: last page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class _Position:
    recorded_at: datetime
    source: str
    global_position: int


def _encode_cursor(entry: FileEntry) -> str:
    raw = json.dumps(
        [entry.recorded_at.isoformat(), entry.source, entry.global_position],
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> _Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        recorded_at, source, position = json.loads(raw)
        moment = datetime.fromisoformat(recorded_at)
        if moment.tzinfo is None or not isinstance(source, str) or type(position) is not int:
            raise ValueError("malformed")
        return _Position(moment, source, position)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise InvalidCursor() from error


def day_start(day: date) -> datetime:
    """The first instant of a calendar day in China."""
    return datetime.combine(day, time(), SHANGHAI)


def end_of_day(day: date) -> datetime:
    """The last instant (to the microsecond PostgreSQL keeps) of a calendar day in China."""
    return day_start(day + timedelta(days=1)) - timedelta(microseconds=1)


class AuditTrailReader:
    """Queries of the audit trail."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.table = f'"{schema}".audit_trail'

    async def presence(self, cadre_id: str, county: str | None) -> tuple[bool, bool]:
        """Whether the cadre has a file at all, and whether one of its events names
        ``county`` (always False without one)."""
        row = await self.pool.fetchrow(
            f"""
            SELECT EXISTS (SELECT 1 FROM {self.table} WHERE cadre_id = $1) AS known,
                   EXISTS (SELECT 1 FROM {self.table}
                           WHERE cadre_id = $1 AND data ? 'county'
                             AND data ->> 'county' = $2) AS in_county
            """,
            cadre_id,
            county,
        )
        assert row is not None
        return bool(row["known"]), bool(row["in_county"])

    async def cadre_file(
        self,
        cadre_id: str,
        *,
        since: date | None = None,
        until: date | None = None,
        types: Sequence[str] | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> FilePage:
        """A page of the cadre's file, in file order.

        ``since``/``until``: calendar days (China) of business time, both included;
        ``types``: only these event types; ``as_of``: only what had been recorded by then
        (the file as it stood at that instant); ``after``: the previous page's cursor.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where, args = self._filters(cadre_id, as_of)
        if since is not None:
            args.append(day_start(since))
            where.append(f"occurred_at >= ${len(args)}")
        if until is not None:
            args.append(day_start(until + timedelta(days=1)))
            where.append(f"occurred_at < ${len(args)}")
        if types:
            args.append(list(types))
            where.append(f"event_type = ANY(${len(args)}::text[])")
        if after is not None:
            position = _decode_cursor(after)
            args += [position.recorded_at, position.source, position.global_position]
            n = len(args)
            where.append(f"(recorded_at, source, global_position) > (${n - 2}, ${n - 1}, ${n})")
        args.append(limit + 1)
        rows = await self.pool.fetch(
            f"""
            SELECT {_SELECT} FROM {self.table}
            WHERE {" AND ".join(where)}
            ORDER BY recorded_at, source, global_position
            LIMIT ${len(args)}
            """,
            *args,
        )
        items = [FileEntry(**dict(row)) for row in rows[:limit]]
        more = len(rows) > limit
        return FilePage(items=items, next_cursor=_encode_cursor(items[-1]) if more else None)

    async def export_rows(
        self, cadre_id: str, as_of: datetime | None = None, *, prefetch: int = 500
    ) -> AsyncIterator[FileEntry]:
        """Every entry of the cadre's file in file order (as of ``as_of``), streamed from
        one consistent snapshot."""
        where, args = self._filters(cadre_id, as_of)
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = conn.cursor(
                f"""
                SELECT {_SELECT} FROM {self.table}
                WHERE {" AND ".join(where)}
                ORDER BY recorded_at, source, global_position
                """,
                *args,
                prefetch=prefetch,
            )
            async for row in cursor:
                yield FileEntry(**dict(row))

    @staticmethod
    def _filters(cadre_id: str, as_of: datetime | None) -> tuple[list[str], list[Any]]:
        where: list[str] = ["cadre_id = $1"]
        args: list[Any] = [cadre_id]
        if as_of is not None:
            if as_of.tzinfo is None:
                raise ValueError("as_of must carry a time zone")
            args.append(as_of)
            where.append(f"recorded_at <= ${len(args)}")
        return where, args


# --- export ------------------------------------------------------------------------------

#: Rows per chunk written to the response.
_CHUNK = 200


async def export_json(rows: AsyncIterator[FileEntry]) -> AsyncIterator[str]:
    """A cadre's file as a JSON array, in chunks (for a streamed response or a file)."""
    yield "["
    first = True
    chunk: list[str] = []
    async for entry in rows:
        chunk.append(("\n" if first else ",\n") + entry.model_dump_json())
        first = False
        if len(chunk) >= _CHUNK:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk) + "\n]\n"


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"): an id, a
#: summary or a note starting with one of these would run when an auditor opens the export.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string starting with a formula
    character gets a leading ``'`` (OWASP's rule); numbers and other strings are unchanged.
    Only the CSV export does this: the JSON export stays exact."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


async def export_csv(rows: AsyncIterator[FileEntry]) -> AsyncIterator[str]:
    """A cadre's file as CSV with a header row (``data`` as a JSON string), in chunks; every
    cell is ``spreadsheet_safe``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    async for entry in rows:
        values = entry.model_dump(mode="json")
        values["data"] = json.dumps(entry.data, ensure_ascii=False, separators=(",", ":"))
        writer.writerow(["" if values[c] is None else spreadsheet_safe(values[c]) for c in COLUMNS])
        count += 1
        if count % _CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
