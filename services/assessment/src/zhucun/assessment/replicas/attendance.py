"""Assessment's replica of attendance's facts: spot checks and month closes, built from
``attendance.events.v1`` into assessment's own database (annual and term grades are capped
by the year's unexcused spot-check absences).

A month's unexcused absences are the month close's figure once the month is closed (the close
applies leave cancelled after a spot check), and the unexcused spot checks recorded so far
before that. Like every replica it lags a little behind its source.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from zhucun.contracts.attendance import TOPIC as ATTENDANCE_TOPIC
from zhucun.contracts.attendance.events import MonthClosed, SpotCheckRecorded
from zhucun.contracts.attendance.events import registry as attendance_registry
from zhucun.shared.projection import Delivery
from zhucun.shared.replica import Table, latest

#: The replica's projection name, also its Kafka consumer group.
REPLICA_NAME = "assessment-attendance-facts"


class AttendanceFactsReplica:
    """Projection of attendance's topic into ``replica_spot_checks`` and
    ``replica_month_closes`` of ``schema``."""

    topics: Sequence[str] = (ATTENDANCE_TOPIC,)
    registry = attendance_registry

    def __init__(self, schema: str, *, name: str = REPLICA_NAME) -> None:
        self.name = name
        self.schema = schema
        #: Each spot check: its month, and whether the cadre was absent without leave.
        self.spot_checks = Table(
            f'"{schema}".replica_spot_checks',
            {"spot_check_id": "text", "cadre_id": "text", "month": "text", "unexcused": "boolean"},
            key=("cadre_id", "spot_check_id"),
        )
        #: Each closed month's unexcused absences (and shortfall).
        self.closes = Table(
            f'"{schema}".replica_month_closes',
            {
                "cadre_id": "text",
                "month": "text",
                "unexcused_absences": "integer",
                "shortfall": "integer",
            },
            key=("cadre_id", "month"),
        )

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(self.spot_checks.create())
        await conn.execute(self.closes.create())

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        checks = latest(deliveries, SpotCheckRecorded, lambda e: (e.cadre_id, e.spot_check_id))
        await self.spot_checks.insert(
            conn,
            [
                (c.spot_check_id, c.cadre_id, c.day.strftime("%Y-%m"), c.unexcused_absence)
                for c in checks.values()
            ],
        )
        closes = latest(deliveries, MonthClosed, lambda e: (e.cadre_id, e.month))
        await self.closes.insert_fields(conn, closes.values())


class ReplicatedAbsences:
    """The application's read of the replica (``application.ports.Absences``)."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.spot_checks = f'"{schema}".replica_spot_checks'
        self.closes = f'"{schema}".replica_month_closes'

    async def unexcused_absences(self, cadre_id: str, year: int) -> int:
        """Unexcused spot-check absences of the cadre in ``year``: each closed month's
        figure, plus the unexcused spot checks of the months not closed yet."""
        value = await self.pool.fetchval(
            f"""
            SELECT
                coalesce((SELECT sum(unexcused_absences) FROM {self.closes}
                          WHERE cadre_id = $1 AND month LIKE $2), 0)
              + (SELECT count(*) FROM {self.spot_checks} AS s
                 WHERE s.cadre_id = $1 AND s.month LIKE $2 AND s.unexcused
                   AND NOT EXISTS (SELECT 1 FROM {self.closes} AS c
                                   WHERE c.cadre_id = s.cadre_id AND c.month = s.month))
            """,
            cadre_id,
            f"{year}-%",
        )
        return int(value)
