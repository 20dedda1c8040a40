"""Attendance's view of its replica of dispatch (``replicas.dispatch``): the cadres' posts as
the ``Post`` values the decider needs (village, township, county, geofence, households), and
the cadres on post in a county. ``PostDirectory`` is the application's ``Posts``."""

from __future__ import annotations

from datetime import date

import asyncpg

from zhucun.attendance.domain.commands import Geofence, Post
from zhucun.attendance.replicas.dispatch import DispatchReplica

#: The replica's projection name, also its Kafka consumer group.
REPLICA_NAME = "attendance-dispatch-replica"


def dispatch_replica(schema: str) -> DispatchReplica:
    """The replica projection of the service's ``schema`` (a module function, not a lambda:
    a rebuild with ``--workers`` pickles it)."""
    return DispatchReplica(schema, name=REPLICA_NAME)


def _post(row: asyncpg.Record) -> Post:
    fence = None
    latitude, longitude, radius_m = row["latitude"], row["longitude"], row["radius_m"]
    if latitude is not None and longitude is not None and radius_m is not None:
        fence = Geofence(latitude=latitude, longitude=longitude, radius_m=radius_m)
    return Post(
        assignment_id=row["assignment_id"],
        cadre_id=row["cadre_id"],
        village_id=row["village_id"],
        # Empty while the village's own event has not reached the replica (it travels on
        # another partition): the application treats that as "not yet known" (retryable).
        township=row["township"] or "",
        county=row["county"],
        term_start=row["term_start"],
        ended_on=row["ended_on"],
        geofence=fence,
        households=row["households"] or 0,
    )


class PostDirectory:
    """The cadres' posts, from the replica's tables in ``schema``."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.assignments = f'"{schema}".replica_assignments'
        self.villages = f'"{schema}".replica_villages'

    async def posts_of(self, cadre_id: str) -> list[Post]:
        """Every post of the cadre, by term start (then assignment id)."""
        rows = await self.pool.fetch(
            f"""
            SELECT a.assignment_id, a.cadre_id, a.village_id, a.county, a.term_start,
                   a.ended_on, v.township, v.latitude, v.longitude, v.radius_m, v.households
            FROM {self.assignments} AS a
            LEFT JOIN {self.villages} AS v USING (village_id)
            WHERE a.cadre_id = $1
            ORDER BY a.term_start, a.assignment_id
            """,
            cadre_id,
        )
        return [_post(row) for row in rows]

    async def county_posts(self, county: str, township: str | None = None) -> list[Post]:
        """Every post, past or running, in the villages of the county (or of one of its
        townships), by cadre, then term start (then assignment id)."""
        rows = await self.pool.fetch(
            f"""
            SELECT a.assignment_id, a.cadre_id, a.village_id, a.county, a.term_start,
                   a.ended_on, v.township, v.latitude, v.longitude, v.radius_m, v.households
            FROM {self.assignments} AS a
            LEFT JOIN {self.villages} AS v USING (village_id)
            WHERE a.county = $1 AND ($2::text IS NULL OR v.township = $2)
            ORDER BY a.cadre_id, a.term_start, a.assignment_id
            """,
            county,
            township,
        )
        return [_post(row) for row in rows]

    async def cadres_between(
        self, county: str, first: date, last: date, township: str | None = None
    ) -> list[str]:
        """Cadres of the county (or one of its townships) on post on some day of
        ``first..last``, sorted."""
        rows = await self.pool.fetch(
            f"""
            SELECT DISTINCT a.cadre_id FROM {self.assignments} AS a
            LEFT JOIN {self.villages} AS v USING (village_id)
            WHERE a.county = $1 AND a.term_start <= $3
              AND (a.ended_on IS NULL OR $2 <= a.ended_on)
              AND ($4::text IS NULL OR v.township = $4)
            ORDER BY a.cadre_id
            """,
            county,
            first,
            last,
            township,
        )
        return [row["cadre_id"] for row in rows]
