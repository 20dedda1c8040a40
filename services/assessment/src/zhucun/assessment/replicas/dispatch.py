"""Assessment's replica of dispatch: the cadres' assignments and the township of each
village, built from ``dispatch.events.v1`` into assessment's own database.

Assessment needs to know, for a cadre (or a work team) and a period, which post the cadre
held: its assignment, team, village, county and township (role and jurisdiction are checked
against them) and its term (the term-end assessment). That is all this replica keeps: no
geofence, no households, nothing of the cadres' profiles.

The shared projection runtime stores the Kafka offsets in the same transaction as these
tables, so the replica is exactly as current as its offsets say and survives restarts. It is
eventually consistent: a cadre assigned a moment ago may not be here yet, and a village's
own event may arrive after its assignments (another partition), so its township is then
unknown; the application answers both with a retryable refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from zhucun.contracts.dispatch import TOPIC as DISPATCH_TOPIC
from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    CadreAssigned,
    VillageRegistered,
    VillageUpdated,
)
from zhucun.contracts.dispatch.events import registry as dispatch_registry
from zhucun.shared.projection import Delivery
from zhucun.shared.replica import Table, latest

#: The replica's projection name, also its Kafka consumer group.
REPLICA_NAME = "assessment-dispatch-replica"

#: Columns of ``replica_villages`` that earlier versions of this replica kept (a copy of
#: attendance's, with the geofence); dropped, so that a database migrated by one of those
#: versions takes the narrower rows (NOT NULL columns would refuse them).
_RETIRED_VILLAGE_COLUMNS = ("county", "latitude", "longitude", "radius_m", "households")


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """An assignment with its village's township, as the replica knows them. ``township``
    is None while the village's own event has not arrived."""

    assignment_id: str
    cadre_id: str
    team_id: str
    village_id: str
    county: str
    term_start: date
    term_end: date
    ended_on: date | None
    township: str | None


class DispatchReplica:
    """The projection (in the sense of ``zhucun.shared.projection``) of dispatch's topic into
    the tables ``replica_villages`` and ``replica_assignments`` of ``schema``."""

    topics: Sequence[str] = (DISPATCH_TOPIC,)
    registry = dispatch_registry

    def __init__(self, schema: str, *, name: str = REPLICA_NAME) -> None:
        self.name = name
        self.schema = schema
        #: The township of each village (jurisdiction is checked against it).
        self.villages = Table(
            f'"{schema}".replica_villages',
            {"village_id": "text", "township": "text"},
            key=("village_id",),
        )
        #: Each assignment as dispatch announced it, and its last day on post once ended.
        self.assignments = Table(
            f'"{schema}".replica_assignments',
            {
                "assignment_id": "text",
                "cadre_id": "text",
                "team_id": "text",
                "village_id": "text",
                "county": "text",
                "term_start": "date",
                "term_end": "date",
                "ended_on": "date",
            },
            key=("assignment_id",),
            nullable=frozenset({"ended_on"}),
        )

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(self.villages.create())
        drops = ", ".join(f"DROP COLUMN IF EXISTS {c}" for c in _RETIRED_VILLAGE_COLUMNS)
        await conn.execute(f"ALTER TABLE {self.villages.name} {drops}")
        # Served the county queries of the earlier copy; assessment asks by cadre and team.
        await conn.execute(f'DROP INDEX IF EXISTS "{self.schema}".replica_assignments_county')
        await conn.execute(self.assignments.create())
        await conn.execute(
            f"""
            CREATE INDEX IF NOT EXISTS replica_assignments_cadre
                ON {self.assignments.name} (cadre_id, term_start);
            CREATE INDEX IF NOT EXISTS replica_assignments_team
                ON {self.assignments.name} (team_id, term_start)
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        """Fold the batch in memory (one key's events arrive in order), then write each
        table once: the villages' townships, the new assignments, the ends."""
        villages = latest(deliveries, (VillageRegistered, VillageUpdated), lambda e: e.village_id)
        await self.villages.insert(
            conn, [(v, e.township) for v, e in villages.items()], on_conflict="update"
        )
        assigned = latest(deliveries, CadreAssigned, lambda e: e.assignment_id)
        await self.assignments.insert_fields(conn, assigned.values(), omit=("ended_on",))
        ended = latest(deliveries, AssignmentEnded, lambda e: e.assignment_id)
        await self.assignments.update(
            conn, [(a, e.ended_on) for a, e in ended.items()], columns=("ended_on",)
        )


class ReplicatedAssignments:
    """The application's reads of the replica (``application.ports.Assignments``), each
    ordered by term start (the latest last)."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.assignments = f'"{schema}".replica_assignments'
        self.villages = f'"{schema}".replica_villages'

    async def _fetch(self, where: str, *arguments: object) -> list[AssignmentRow]:
        rows = await self.pool.fetch(
            f"""
            SELECT a.assignment_id, a.cadre_id, a.team_id, a.village_id, a.county,
                   a.term_start, a.term_end, a.ended_on, v.township
            FROM {self.assignments} AS a
            LEFT JOIN {self.villages} AS v USING (village_id)
            WHERE {where}
            ORDER BY a.term_start, a.assignment_id
            """,
            *arguments,
        )
        return [AssignmentRow(**dict(row)) for row in rows]

    async def assignments_of(self, cadre_id: str) -> list[AssignmentRow]:
        return await self._fetch("a.cadre_id = $1", cadre_id)

    async def assignments_between(
        self, cadre_id: str, first: date, last: date
    ) -> list[AssignmentRow]:
        """The cadre's assignments overlapping ``first..last``."""
        return await self._fetch(
            "a.cadre_id = $1 AND a.term_start <= $3 AND (a.ended_on IS NULL OR $2 <= a.ended_on)",
            cadre_id,
            first,
            last,
        )

    async def team_assignments(self, team_id: str) -> list[AssignmentRow]:
        """Every assignment to the team (its village, county and township with them)."""
        return await self._fetch("a.team_id = $1", team_id)
