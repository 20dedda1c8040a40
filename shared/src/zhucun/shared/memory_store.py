"""An event store in process memory, with the contract of the PostgreSQL one.

For fast tests of application handlers and deciders wired to a command path: optimistic
concurrency, idempotency by event id, guards, hash chains and dense global positions behave
as in ``PostgresEventStore`` (``shared/tests/test_store.py`` runs one suite against both).
Never the proof that anything is durable: it forgets everything when the process ends.

Events above ``MAX_EVENT_BYTES`` are refused with ``EventTooLarge`` as in the PostgreSQL
store (the same ``check_event_sizes``), so a handler's 413 is tested here too.

Appends are atomic because nothing in them awaits: on one event loop no other coroutine runs
between the version check and the write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

from zhucun.shared.envelope import NewEvent, RecordedEvent
from zhucun.shared.events import GENESIS_HASH
from zhucun.shared.store import (
    ANY_VERSION,
    NO_STREAM,
    AppendResult,
    StreamWrite,
    VerificationReport,
    WrongExpectedVersion,
    chain_events,
    check_append,
    check_event_sizes,
    replayed,
    verify_chains,
)


class InMemoryEventStore:
    """Every event in a list in global order, and an index per stream and per event id."""

    def __init__(self) -> None:
        self._events: list[RecordedEvent] = []
        self._streams: defaultdict[str, list[RecordedEvent]] = defaultdict(list)
        self._by_id: dict[UUID, RecordedEvent] = {}

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int
    ) -> AppendResult:
        if not events:
            raise ValueError("append needs at least one event")
        return await self.append_streams([StreamWrite(stream_id, events, expected_version)])

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        new_events = check_append(writes)
        payloads = [new.event.to_data() for _, new in new_events]
        check_event_sizes(new_events, payloads)
        if any(new.event_id in self._by_id for _, new in new_events):
            return AppendResult(replayed(new_events, payloads, self._by_id), duplicate=True)
        head: dict[str, tuple[int, str]] = {}
        for write in writes:
            stream = self._streams.get(write.stream_id, [])
            version = stream[-1].stream_version if stream else NO_STREAM
            expected = write.expected_version
            if expected != ANY_VERSION and version != expected:
                raise WrongExpectedVersion(write.stream_id, expected, version)
            head[write.stream_id] = (version, stream[-1].hash if stream else GENESIS_HASH)
        recorded = chain_events(new_events, payloads, head, first_position=len(self._events) + 1)
        for event in recorded:
            self._events.append(event)
            self._streams[event.stream_id].append(event)
            self._by_id[event.event_id] = event
        return AppendResult(recorded, duplicate=False)

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        stream = self._streams.get(stream_id, [])
        last = len(stream) if to_version is None else min(to_version, len(stream))
        return stream[max(from_version, 1) - 1 : max(last, 0)]

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        start = max(after, 0)
        return self._events[start : start + limit]

    async def head_position(self) -> int:
        return len(self._events)

    async def stream_version(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id, [])
        return stream[-1].stream_version if stream else NO_STREAM

    async def verify(self, *, batch_size: int = 2000) -> VerificationReport:
        return await verify_chains(self._scan())

    async def _scan(self) -> AsyncIterator[RecordedEvent]:
        for event in list(self._events):
            yield event


__all__ = ["InMemoryEventStore"]
