"""The read side's use cases: reading and exporting a cadre's file (一人一档), listing and reading
recall decisions and promotion pools, and dismissing a recall decision.

Each use case is one method that owns its rules: who may read what (a principal restricted
to a county reaches that county's cadres only), what a request may ask (a period that ends
before it starts is refused), which stream a dismissal decides on, and the day it is dated.
They read the two read models through the small protocols below (:class:`CadreFiles`,
:class:`DecisionsReadModel`), which the PostgreSQL readers implement and tests fake; the
dismissal writes through the service's ``CommandPath``. Refusals are the read side's
``RuleViolation`` subclasses (``zhucun.projections.domain.errors``); a principal outside the
jurisdiction gets the system-wide ``forbidden-jurisdiction`` of ``Principal.ensure_covers``.

No web framework here: ``http.py`` parses requests, calls one method, returns its answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from zhucun.contracts.decisions.events import decision_stream
from zhucun.projections.audit import FileEntry, FilePage, end_of_day, export_csv, export_json
from zhucun.projections.decisions.queries import (
    CadreDecisions,
    DecisionFilter,
    EntryFilter,
    PoolEntry,
    PoolName,
    RecallDecision,
)
from zhucun.projections.domain.errors import (
    InvalidPeriod,
    UnknownCadre,
    UnknownCadreFile,
    UnknownDecision,
)
from zhucun.projections.domain.lifecycle import (
    DecisionState,
    DismissRecall,
    decide_dismissal,
    evolve,
)
from zhucun.projections.sources import SHANGHAI
from zhucun.shared.auth import Principal, Role, Scope
from zhucun.shared.commands import CommandAccepted, CommandPath, StreamModel
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.pages import Page

ExportFormat = Literal["json", "csv"]

# --- what the use cases read ------------------------------------------------------------------


class CadreFiles(Protocol):
    """The audit trail's queries (``audit.AuditTrailReader``)."""

    async def presence(self, cadre_id: str, county: str | None) -> tuple[bool, bool]:
        """Whether the cadre has a file, and whether one of its events names ``county``."""
        ...

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
        """A page of the file; ``after`` is the previous page's cursor (``InvalidCursor``
        when this service did not issue it)."""
        ...

    def export_rows(self, cadre_id: str, as_of: datetime | None = None) -> AsyncIterator[FileEntry]:
        """Every entry of the file, in file order."""
        ...


class DecisionsReadModel(Protocol):
    """The decisions read model's queries (``decisions.queries.DecisionsReader``)."""

    async def decision(self, decision_id: str) -> RecallDecision | None: ...

    async def county_decisions(
        self, county: str, status: DecisionFilter, limit: int, after: str | None
    ) -> Page[RecallDecision]:
        """A page of the county's decisions, by decision id, after ``after``."""
        ...

    async def cadre(self, cadre_id: str) -> CadreDecisions: ...

    async def pool_entries(
        self, county: str, pool: PoolName, status: EntryFilter, limit: int, after: str | None
    ) -> Page[PoolEntry]:
        """A page of the county's pool, by entry id, after ``after``."""
        ...


# --- the audit trail (一人一档) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileQuery:
    """Which page of a file: a period of business time (calendar days in China, both
    included), event types, ``as_of`` an instant or a day (its end, in China), and the
    previous page's cursor."""

    since: date | None = None
    until: date | None = None
    types: Sequence[str] | None = None
    as_of: datetime | date | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class FileExport:
    """A whole file, as chunks of text in ``format``, to be saved as ``filename``."""

    filename: str
    format: ExportFormat
    chunks: AsyncIterator[str]


def _instant(as_of: datetime | date | None) -> datetime | None:
    """The moment a file is read as of: a day stands for its last instant in China."""
    if isinstance(as_of, datetime) or as_of is None:
        return as_of
    return end_of_day(as_of)


class CadreFileQueries:
    """Reading a cadre's file. Who may: any principal the edge let in (auditors and
    org_admins); one restricted to a county (every org_admin, an auditor whose token names
    one) only a file one of whose events names that county."""

    def __init__(self, files: CadreFiles) -> None:
        self.files = files

    async def read(self, principal: Principal, cadre_id: str, query: FileQuery) -> FilePage:
        """A page of the file, in file order."""
        if query.since is not None and query.until is not None and query.until < query.since:
            raise InvalidPeriod(query.since.isoformat(), query.until.isoformat())
        await self._open(principal, cadre_id)
        return await self.files.cadre_file(
            cadre_id,
            since=query.since,
            until=query.until,
            types=query.types,
            as_of=_instant(query.as_of),
            limit=query.limit,
            after=query.cursor,
        )

    async def export(
        self,
        principal: Principal,
        cadre_id: str,
        output: ExportFormat,
        as_of: datetime | date | None = None,
    ) -> FileExport:
        """The whole file (as of a moment), streamed: refused before the first chunk."""
        await self._open(principal, cadre_id)
        rows = self.files.export_rows(cadre_id, _instant(as_of))
        chunks = export_csv(rows) if output == "csv" else export_json(rows)
        # Only safe characters in a header value, whatever the cadre id holds.
        name = "file-" + re.sub(r"[^A-Za-z0-9._-]", "_", cadre_id)
        return FileExport(filename=f"{name}.{output}", format=output, chunks=chunks)

    async def _open(self, principal: Principal, cadre_id: str) -> None:
        """Refuse a cadre without events, then a file outside the principal's county."""
        county = principal.jurisdiction.county if principal.role is not Role.SERVICE else None
        known, in_county = await self.files.presence(cadre_id, county)
        if not known:
            raise UnknownCadreFile(cadre_id)
        if county is not None and not in_county:
            # No event of the file names the principal's county: the file lies in none the
            # principal covers (``Scope()``), refused as everything out of reach is (403
            # ``forbidden-jurisdiction``). Only the county counts: files are per county.
            principal.ensure_covers(Scope())


# --- recall decisions and promotion pools (用) ------------------------------------------------


def _reach(principal: Principal, county: str | None) -> None:
    """Every read and command is about one county's cadres: a principal restricted to a
    county reaches that county's only (and not a cadre whose county is not known yet)."""
    principal.ensure_covers(Scope(county=county))


class DecisionQueries:
    """Reading recall decisions and pools: auditors and org_admins, each within their
    county when the token names one."""

    def __init__(self, decisions: DecisionsReadModel) -> None:
        self.decisions = decisions

    async def county_decisions(
        self,
        principal: Principal,
        county: str,
        status: DecisionFilter,
        limit: int,
        after: str | None = None,
    ) -> Page[RecallDecision]:
        """A page of the county's decisions (by decision id)."""
        _reach(principal, county)
        return await self.decisions.county_decisions(county, status, limit, after)

    async def cadre(self, principal: Principal, cadre_id: str) -> CadreDecisions:
        """A cadre's decisions and pool entries: 404 when nothing about the cadre has
        reached the read model, else within the principal's county."""
        found = await self.decisions.cadre(cadre_id)
        if found.is_empty():
            raise UnknownCadre(cadre_id)
        _reach(principal, found.county)
        return found

    async def decision(self, principal: Principal, decision_id: str) -> RecallDecision:
        decision = await self.decisions.decision(decision_id)
        if decision is None:
            raise UnknownDecision(decision_id)
        _reach(principal, decision.county)
        return decision

    async def pool(
        self,
        principal: Principal,
        county: str,
        pool: PoolName,
        status: EntryFilter,
        limit: int,
        after: str | None = None,
    ) -> Page[PoolEntry]:
        """A page of the county's pool (by entry id)."""
        _reach(principal, county)
        return await self.decisions.pool_entries(county, pool, status, limit, after)


class DismissalAccepted(CommandAccepted):
    """The dismissal stored (or, ``duplicate``, stored before with the same reason)."""

    decision_id: str
    status: Literal["dismissed"]


def decision_model(decision_id: str) -> StreamModel[DecisionState]:
    """A recall decision's stream: its lifecycle's whole consistency boundary."""
    return StreamModel(decision_stream(decision_id), DecisionState(decision_id), evolve)


class DismissRecallDecision:
    """An org_admin of the cadre's county dismisses an open recall decision after review,
    with a reason. Decided on the decision's own stream (its events say whether it is still
    open); the read model only locates it and its county. Dated the day the request was
    made, in China."""

    def __init__(self, decisions: DecisionsReadModel, commands: CommandPath) -> None:
        self.decisions = decisions
        self.commands = commands

    async def __call__(
        self, principal: Principal, decision_id: str, reason: str, metadata: EventMetadata
    ) -> DismissalAccepted:
        decision = await self.decisions.decision(decision_id)
        if decision is None:
            raise UnknownDecision(decision_id)
        _reach(principal, decision.county)
        command = DismissRecall(
            decision_id, reason, metadata.occurred_at.astimezone(SHANGHAI).date()
        )
        accepted = await self.commands.execute_one(
            decision_model(decision_id),
            lambda state: decide_dismissal(command, state),
            metadata,
        )
        return DismissalAccepted(**dict(accepted), decision_id=decision_id, status="dismissed")


@dataclass(frozen=True, slots=True)
class ReadSide:
    """The use cases, wired to what they read and write (built per request by the
    composition root, from the running service's pool and command path)."""

    files: CadreFileQueries
    decisions: DecisionQueries
    dismiss: DismissRecallDecision

    @classmethod
    def over(
        cls, files: CadreFiles, decisions: DecisionsReadModel, commands: CommandPath
    ) -> ReadSide:
        return cls(
            CadreFileQueries(files),
            DecisionQueries(decisions),
            DismissRecallDecision(decisions, commands),
        )
