"""What a rebuild tells its caller: its report, the records it skipped, its errors, and how
far it is while it runs (:class:`Progress`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TopicPartitionKey = tuple[str, int]

#: The most rejected records listed in a report (all are counted and logged).
MAX_LISTED_REJECTS = 100


class ReplayError(Exception):
    """A rebuild cannot proceed: a bad schema, an offset gap, a switch that cannot be made.
    The live model is untouched; a fresh or scratch schema is left for inspection."""


class Progress(Protocol):
    """Told how far a build is: ``done`` of the ``total`` records it reads. Called with
    ``done == 0`` when the build starts, then after each committed batch, ``done == total``
    last; from the event loop, so it must not block (a progress bar, a log line)."""

    def __call__(self, done: int, total: int) -> None: ...


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record the rebuild skipped, as the live runner dead-lettered it."""

    topic: str
    partition: int
    offset: int
    kind: str


@dataclass(frozen=True, slots=True)
class RebuildReport:
    projection: str
    #: Where the built model is now: the live schema after a switch, else the scratch schema.
    schema: str
    #: The previous live model, kept for inspection (None when there was none, or as-of).
    previous_schema: str | None
    #: Records consumed up to ``stop_offsets``: ``applied + duplicates + rejected``.
    events: int
    applied: int
    duplicates: int
    rejected: int
    #: From the start of consuming to ``stop_offsets`` committed, with the dedupe table's
    #: key built (what ``events_per_second`` divides by).
    seconds: float
    #: :func:`~zhucun.shared.replay.digest` of the built model at ``stop_offsets``.
    digest: str
    digest_seconds: float
    tables: tuple[str, ...]
    #: The first offset read and the offset the model (and ``digest``) stops at, per topic
    #: and partition: for :func:`~zhucun.shared.replay.rebuild`, the end offsets taken at
    #: its start.
    start_offsets: Mapping[TopicPartitionKey, int]
    stop_offsets: Mapping[TopicPartitionKey, int]
    rejects: tuple[RejectedRecord, ...] = field(default=())
    #: Records applied after ``stop_offsets`` to catch up with the live model before the
    #: switch (the last of them inside the switch transaction), and the offsets both models
    #: stood at when they were switched (None without a switch or without a live model).
    caught_up_events: int = 0
    switched_at: Mapping[TopicPartitionKey, int] | None = None
    #: From the end of the build to the switch committed (catch-up included).
    switch_seconds: float = 0.0
    #: With ``workers > 1``: the largest peak resident memory of a worker process (MiB).
    worker_peak_rss_mib: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class Built:
    """Totals of a build (or of one worker's share, or of a catch-up)."""

    projection: str
    events: int
    applied: int
    duplicates: int
    rejected: int
    seconds: float
    start: dict[TopicPartitionKey, int]
    stop: dict[TopicPartitionKey, int]
    rejects: list[RejectedRecord]
    #: The largest peak resident memory of the worker processes (KiB), if any.
    worker_peak_rss_kib: int | None = None

    def add(
        self,
        *,
        events: int,
        applied: int,
        duplicates: int,
        rejected: int,
        rejects: Sequence[RejectedRecord],
    ) -> None:
        """Counts a committed batch (or a worker's share): every reject, the first
        :data:`MAX_LISTED_REJECTS` of them listed."""
        self.events += events
        self.applied += applied
        self.duplicates += duplicates
        self.rejected += rejected
        room = MAX_LISTED_REJECTS - len(self.rejects)
        if room > 0:
            self.rejects.extend(rejects[:room])

    def report(
        self,
        *,
        schema: str,
        previous: str | None,
        digest: str,
        digest_seconds: float,
        tables: tuple[str, ...],
        caught_up: int = 0,
        switched_at: Mapping[TopicPartitionKey, int] | None = None,
        switch_seconds: float = 0.0,
    ) -> RebuildReport:
        return RebuildReport(
            projection=self.projection,
            schema=schema,
            previous_schema=previous,
            events=self.events,
            applied=self.applied,
            duplicates=self.duplicates,
            rejected=self.rejected,
            seconds=self.seconds,
            digest=digest,
            digest_seconds=digest_seconds,
            tables=tables,
            start_offsets=dict(self.start),
            stop_offsets=dict(self.stop),
            rejects=tuple(self.rejects),
            caught_up_events=caught_up,
            switched_at=switched_at,
            switch_seconds=switch_seconds,
            worker_peak_rss_mib=(
                None
                if self.worker_peak_rss_kib is None
                else round(self.worker_peak_rss_kib / 1024, 1)
            ),
        )
