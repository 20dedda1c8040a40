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
        self.spot_checks = f'"{schema}".replica_spot_checks'
        self.closes = f'"{schema}".replica_month_closes'

    async def migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.spot_checks} (
                spot_check_id text NOT NULL,
                cadre_id text NOT NULL,
                month text NOT NULL,
                unexcused boolean NOT NULL,
                PRIMARY KEY (cadre_id, spot_check_id)
            );
            CREATE TABLE IF NOT EXISTS {self.closes} (
                cadre_id text NOT NULL,
                month text NOT NULL,
                unexcused_absences integer NOT NULL,
                shortfall integer NOT NULL,
                PRIMARY KEY (cadre_id, month)
            )
            """
        )

    async def apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        checks: dict[tuple[str, str], SpotCheckRecorded] = {}
        closes: dict[tuple[str, str], MonthClosed] = {}
        for delivery in deliveries:
            event = delivery.payload
            if isinstance(event, SpotCheckRecorded):
                checks[(event.cadre_id, event.spot_check_id)] = event
            elif isinstance(event, MonthClosed):
                closes[(event.cadre_id, event.month)] = event
        if checks:
            rows = list(checks.values())
            await conn.execute(
                f"""
                INSERT INTO {self.spot_checks} (spot_check_id, cadre_id, month, unexcused)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
                ON CONFLICT (cadre_id, spot_check_id) DO NOTHING
                """,
                [c.spot_check_id for c in rows],
                [c.cadre_id for c in rows],
                [c.day.strftime("%Y-%m") for c in rows],
                [c.unexcused_absence for c in rows],
            )
        if closes:
            done = list(closes.values())
            await conn.execute(
                f"""
                INSERT INTO {self.closes} (cadre_id, month, unexcused_absences, shortfall)
                SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[])
                ON CONFLICT (cadre_id, month) DO NOTHING
                """,
                [c.cadre_id for c in done],
                [c.month for c in done],
                [c.unexcused_absences for c in done],
                [c.shortfall for c in done],
            )


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
