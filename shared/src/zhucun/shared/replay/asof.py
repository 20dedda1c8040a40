"""Rebuild as of a point in the history: a projection built into a scratch schema from the
records up to a time or to explicit offsets, left there for auditors to query."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

import asyncpg
import structlog

from zhucun.shared.pipeline import Projection
from zhucun.shared.replay.digest import digest_of
from zhucun.shared.replay.engine import DEFAULT_TUNING, Replay, Tuning
from zhucun.shared.replay.report import Progress, RebuildReport, ReplayError, TopicPartitionKey
from zhucun.shared.replay.schemas import check_schema, schema_exists
from zhucun.shared.replay.workers import build, factory
from zhucun.shared.settings import KafkaSettings

log = structlog.get_logger("zhucun.shared.replay")


async def rebuild_as_of(
    pool: asyncpg.Pool,
    make_projection: Callable[[str], Projection],
    kafka: KafkaSettings,
    *,
    scratch_schema: str,
    until: datetime | Mapping[TopicPartitionKey, int],
    progress: Progress | None = None,
    tuning: Tuning = DEFAULT_TUNING,
    workers: int = 1,
    dsn: str | None = None,
    ignore_columns: Mapping[str, Collection[str]] | None = None,
) -> RebuildReport:
    """Build the projection into ``scratch_schema`` (which must not exist) from the records up
    to ``until`` only, and leave it there for auditors to query. Nothing is switched.

    ``until`` is either

    * a ``datetime`` (with a time zone): every record whose **Kafka record timestamp** is at
      or before it (millisecond precision). Per partition, the stop offset is the one
      ``offsets_for_times`` gives for the next millisecond (the first record after
      ``until``), or the end offset when there is none. The record timestamp is the relay's
      publish time (``CreateTime``): when the event became visible to consumers, so this is
      the history the read model could have seen by then, a prefix of each partition found
      by the broker's time index without reading the log. The event's recorded time
      (``ce_recordedtime``) is at most a relay lag earlier: an event recorded just before
      ``until`` but published after it is not included. The relay publishes in store order
      from one leader, so timestamps do not decrease within a partition;
    * or explicit stop offsets ``{(topic, partition): offset}`` (exclusive, like a stored
      ``next_offset``) for every partition of the projection's topics, such as a runner's
      ``stored_offsets()`` or an earlier report's ``stop_offsets``.

    The other arguments are :func:`~zhucun.shared.replay.rebuild`'s. Build another point
    after ``drop_schema(pool, scratch_schema)``, or into another scratch schema.
    """
    if isinstance(until, datetime) and until.tzinfo is None:
        raise ValueError("until: a naive datetime; give it a time zone")
    check_schema(scratch_schema, 0)
    if await schema_exists(pool, scratch_schema):
        raise ReplayError(f"schema {scratch_schema!r} exists; drop it or choose another")
    workers_factory = factory(make_projection, workers, dsn)
    projection = make_projection(scratch_schema)
    async with Replay(pool, projection, kafka, schema=scratch_schema, tuning=tuning) as replay:
        await replay.prepare(until=until)
        built = await build(replay, progress, workers=workers, dsn=dsn, factory=workers_factory)
    tables, value, digest_seconds = await digest_of(pool, scratch_schema, ignore_columns)
    report = built.report(
        schema=scratch_schema,
        previous=None,
        digest=value,
        digest_seconds=digest_seconds,
        tables=tables,
    )
    log.info(
        "replay.built_as_of",
        projection=report.projection,
        schema=scratch_schema,
        until=until.isoformat() if isinstance(until, datetime) else "offsets",
        events=report.events,
        seconds=round(report.seconds, 3),
        digest=report.digest,
    )
    return report
