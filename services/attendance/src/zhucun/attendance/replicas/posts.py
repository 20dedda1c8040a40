"""Attendance's view of its replica of dispatch (``replicas.dispatch``): the ``Post`` values
the decider needs, with the village's geofence and household count."""

from __future__ import annotations

from datetime import date

import asyncpg

from zhucun.attendance.domain.commands import Geofence, Post
from zhucun.attendance.replicas.dispatch import AssignmentRow, DispatchFacts, DispatchReplica

#: The replica's projection name, also its Kafka consumer group.
REPLICA_NAME = "attendance-dispatch-replica"


def dispatch_replica(schema: str) -> DispatchReplica:
    return DispatchReplica(schema, name=REPLICA_NAME)


def post_of(row: AssignmentRow) -> Post:
    fence = None
    if row.latitude is not None and row.longitude is not None and row.radius_m is not None:
        fence = Geofence(latitude=row.latitude, longitude=row.longitude, radius_m=row.radius_m)
    return Post(
        assignment_id=row.assignment_id,
        cadre_id=row.cadre_id,
        village_id=row.village_id,
        # Empty while the village's own event has not reached the replica: the edge treats
        # that as "not yet known" (retryable).
        township=row.township or "",
        county=row.county,
        term_start=row.term_start,
        ended_on=row.ended_on,
        geofence=fence,
        households=row.households or 0,
    )


class PostDirectory:
    """The cadre's posts, from the replica."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.facts = DispatchFacts(pool, schema)

    async def post_on(self, cadre_id: str, day: date) -> Post | None:
        row = await self.facts.assignment_on(cadre_id, day)
        return post_of(row) if row else None

    async def posts_of(self, cadre_id: str) -> list[Post]:
        return [post_of(row) for row in await self.facts.assignments_of(cadre_id)]

    async def posts_between(self, cadre_id: str, first: date, last: date) -> list[Post]:
        return [post_of(row) for row in await self.facts.assignments_between(cadre_id, first, last)]

    async def cadres_between(
        self, county: str, first: date, last: date, township: str | None = None
    ) -> list[str]:
        return await self.facts.cadres_between(county, first, last, township)
