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
from zhucun.shared.replica import Table, latest, unnest


class DispatchReplica:
    """The projection (in the sense of ``zhucun.shared.projection``) of dispatch's topic into
    the tables ``replica_villages`` and ``replica_assignments`` of ``schema``. ``name`` is the
    consuming service's own (it is also the Kafka consumer group)."""

    topics: Sequence[str] = (DISPATCH_TOPIC,)
    registry = dispatch_registry

    def __init__(self, schema: str, *, name: str) -> None:
        self.name = name
        self.schema = schema
        #: A village's township, county, geofence and households (the check-ins' evidence).
        self.villages = Table(
            f'"{schema}".replica_villages',
            {
                "village_id": "text",
                "county": "text",
                "township": "text",
                "latitude": "double precision",
                "longitude": "double precision",
                "radius_m": "integer",
                "households": "integer",
            },
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
        await conn.execute(self.assignments.create())
        await conn.execute(
            f"""
            CREATE INDEX IF NOT EXISTS replica_assignments_cadre
                ON {self.assignments.name} (cadre_id, term_start);
            CREATE INDEX IF NOT EXISTS replica_assignments_county
                ON {self.assignments.name} (county, term_start)
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        """Fold the batch in memory (one key's events arrive in order), then write each
        table once."""
        villages: dict[str, tuple[object, ...]] = {}
        for delivery in deliveries:
            event = delivery.payload
            if isinstance(event, VillageRegistered | VillageUpdated):
                # An update carries no county (it never changes): the registration's, when
                # it is in this batch too, else the stored one (``_upsert_villages``).
                earlier = villages.get(event.village_id)
                county = event.county if isinstance(event, VillageRegistered) else None
                fence = event.geofence
                villages[event.village_id] = (
                    event.village_id,
                    county if county is not None or earlier is None else earlier[1],
                    event.township,
                    fence.latitude,
                    fence.longitude,
                    fence.radius_m,
                    event.households,
                )
        assigned = latest(deliveries, CadreAssigned, lambda e: e.assignment_id)
        ended = latest(deliveries, AssignmentEnded, lambda e: e.assignment_id)
        if villages:
            await self._upsert_villages(conn, list(villages.values()))
        # A new assignment's columns are fields of its ``CadreAssigned``; an end sets one.
        await self.assignments.insert_fields(conn, assigned.values(), omit=("ended_on",))
        await self.assignments.update(
            conn, [(a, e.ended_on) for a, e in ended.items()], columns=("ended_on",)
        )

    async def _upsert_villages(
        self, conn: asyncpg.Connection, rows: list[tuple[object, ...]]
    ) -> None:
        # An update whose village is not stored yet inserts an empty county, which the
        # registration then replaces; otherwise the stored county stays.
        columns = list(self.villages.columns)
        await conn.execute(
            f"""
            INSERT INTO {self.villages.name} AS v ({", ".join(columns)})
            SELECT village_id, coalesce(county, ''), township, latitude, longitude, radius_m,
                   households
            FROM {unnest(list(self.villages.columns.values()))} AS r({", ".join(columns)})
            ON CONFLICT (village_id) DO UPDATE SET
                county = CASE WHEN EXCLUDED.county = '' THEN v.county ELSE EXCLUDED.county END,
                township = EXCLUDED.township,
                latitude = EXCLUDED.latitude,
                longitude = EXCLUDED.longitude,
                radius_m = EXCLUDED.radius_m,
                households = EXCLUDED.households
            """,
            *[[row[n] for row in rows] for n in range(len(columns))],
        )
