"""Attendance's replica of dispatch: villages (geofence, township, households) and
assignments, built from ``dispatch.events.v1`` into the tables ``replica_villages`` and
``replica_assignments`` of the service's schema (queried by ``replicas.posts``).

Attendance never reads dispatch's database. It keeps this replica in its own database,
consumed through the shared projection runtime, which stores the Kafka offsets in the same
transaction as these tables: the replica is exactly as current as its offsets say and
survives restarts.

The replica is eventually consistent: a cadre assigned a moment ago may not be here yet, so
the application answers "no assignment" with a retryable refusal, not a final one.
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


@dataclass(frozen=True, slots=True)
class _Village:
    village_id: str
    county: str | None
    township: str
    latitude: float
    longitude: float
    radius_m: int
    households: int


class DispatchReplica:
    """The projection (in the sense of ``zhucun.shared.projection``) of dispatch's topic into
    the tables ``replica_villages`` and ``replica_assignments`` of ``schema``. ``name`` is the
    consuming service's own (it is also the Kafka consumer group)."""

    topics: Sequence[str] = (DISPATCH_TOPIC,)
    registry = dispatch_registry

    def __init__(self, schema: str, *, name: str) -> None:
        self.name = name
        self.schema = schema
        self.villages = f'"{schema}".replica_villages'
        self.assignments = f'"{schema}".replica_assignments'

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.villages} (
                village_id text PRIMARY KEY,
                county text NOT NULL,
                township text NOT NULL,
                latitude double precision NOT NULL,
                longitude double precision NOT NULL,
                radius_m integer NOT NULL,
                households integer NOT NULL
            )
            """
        )
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.assignments} (
                assignment_id text PRIMARY KEY,
                cadre_id text NOT NULL,
                team_id text NOT NULL,
                village_id text NOT NULL,
                county text NOT NULL,
                term_start date NOT NULL,
                term_end date NOT NULL,
                ended_on date
            );
            CREATE INDEX IF NOT EXISTS replica_assignments_cadre
                ON {self.assignments} (cadre_id, term_start);
            CREATE INDEX IF NOT EXISTS replica_assignments_county
                ON {self.assignments} (county, term_start)
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        """Fold the batch in memory (one key's events arrive in order), then write each
        table once."""
        villages: dict[str, _Village] = {}
        assigned: dict[str, CadreAssigned] = {}
        ended: dict[str, date] = {}
        for delivery in deliveries:
            event = delivery.payload
            if isinstance(event, VillageRegistered | VillageUpdated):
                fence = event.geofence
                villages[event.village_id] = _Village(
                    village_id=event.village_id,
                    county=event.county if isinstance(event, VillageRegistered) else None,
                    township=event.township,
                    latitude=fence.latitude,
                    longitude=fence.longitude,
                    radius_m=fence.radius_m,
                    households=event.households,
                )
            elif isinstance(event, CadreAssigned):
                assigned[event.assignment_id] = event
            elif isinstance(event, AssignmentEnded):
                ended[event.assignment_id] = event.ended_on
        if villages:
            await self._upsert_villages(conn, list(villages.values()))
        if assigned:
            rows = list(assigned.values())
            await conn.execute(
                f"""
                INSERT INTO {self.assignments}
                    (assignment_id, cadre_id, team_id, village_id, county, term_start, term_end)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::text[], $6::date[], $7::date[])
                ON CONFLICT (assignment_id) DO NOTHING
                """,
                [a.assignment_id for a in rows],
                [a.cadre_id for a in rows],
                [a.team_id for a in rows],
                [a.village_id for a in rows],
                [a.county for a in rows],
                [a.term_start for a in rows],
                [a.term_end for a in rows],
            )
        if ended:
            await conn.execute(
                f"""
                UPDATE {self.assignments} AS a SET ended_on = e.ended_on
                FROM unnest($1::text[], $2::date[]) AS e(assignment_id, ended_on)
                WHERE a.assignment_id = e.assignment_id
                """,
                list(ended),
                list(ended.values()),
            )

    async def _upsert_villages(self, conn: asyncpg.Connection, rows: list[_Village]) -> None:
        # An update carries no county (it never changes): keep the stored one.
        await conn.execute(
            f"""
            INSERT INTO {self.villages} AS v
                (village_id, county, township, latitude, longitude, radius_m, households)
            SELECT village_id, coalesce(county, ''), township, latitude, longitude, radius_m,
                   households
            FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],
                        $6::int[], $7::int[])
                AS r(village_id, county, township, latitude, longitude, radius_m, households)
            ON CONFLICT (village_id) DO UPDATE SET
                county = CASE WHEN EXCLUDED.county = '' THEN v.county ELSE EXCLUDED.county END,
                township = EXCLUDED.township,
                latitude = EXCLUDED.latitude,
                longitude = EXCLUDED.longitude,
                radius_m = EXCLUDED.radius_m,
                households = EXCLUDED.households
            """,
            [v.village_id for v in rows],
            [v.county for v in rows],
            [v.township for v in rows],
            [v.latitude for v in rows],
            [v.longitude for v in rows],
            [v.radius_m for v in rows],
            [v.households for v in rows],
        )
