"""The one command path of every service: read the streams a decision needs, fold them,
decide, append at the versions read; retry on a conflict.

An application handler names the streams it reads (``StreamModel``: id, initial state,
``evolve``) and a pure ``decide`` over their states, and runs them through its service's
``CommandPath``::

    accepted = await commands.execute(
        [county_model(county)],
        lambda states: {county_model(county).stream_id: decide(command, states[0], pack)},
        metadata,
    )

Every stream read is part of the append, those without new events as guards: when another
writer got there first (``WrongExpectedVersion``) the streams are read again and ``decide``
runs again on the fresh states, so a concurrent command that conflicts is refused by the
domain rule itself (e.g. "cadre already assigned"), not by a version number. Refusals
(``RuleViolation``) raised by ``decide`` propagate unchanged; after ``attempts`` lost races
the last ``WrongExpectedVersion`` does.

Folded states are kept in a ``StateCache`` (the store stays the truth: a cached state is a
state *at a version*, and every load reads the events after it), so a command or a read on
a long stream (a county's dispatch history) reads only what it does not know yet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from zhucun.shared.bounds import Code, Note
from zhucun.shared.envelope import EventMetadata, NewEvent, RecordedEvent
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.store import (
    NO_STREAM,
    AppendResult,
    EventStore,
    StreamWrite,
    WrongExpectedVersion,
)

S = TypeVar("S")


class StateCache:
    """Folded states of recently used streams, so the next command on a stream reads only the
    events appended since (one cheap query) instead of the whole stream.

    Safe because the store stays the truth: a cached entry is a state *at a version*, and
    ``load`` always reads the events after that version before deciding; states are
    immutable values, so sharing them between requests cannot corrupt them. Entries are keyed
    by stream and by the ``evolve`` function that folded them; the least recently used go
    first beyond ``max_entries``.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, object], tuple[Any, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, stream_id: str, evolve: object) -> tuple[Any, int] | None:
        entry = self._entries.get((stream_id, evolve))
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end((stream_id, evolve))
        return entry

    def put(self, stream_id: str, evolve: object, state: Any, version: int) -> None:
        key = (stream_id, evolve)
        known = self._entries.get(key)
        if known is not None and known[1] > version:
            return  # a concurrent request already cached a later version
        self._entries[key] = (state, version)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


async def load(
    store: EventStore,
    *,
    stream_id: str,
    registry: EventRegistry,
    initial: S,
    evolve: Callable[[S, DomainEvent], S],
    cache: StateCache | None = None,
) -> tuple[S, int]:
    """The state of ``stream_id`` (``initial`` folded with its decoded events) and the stream
    version it reflects (``NO_STREAM`` when the stream has no events). With a ``cache``, the
    fold starts from the cached state and reads only the events after its version."""
    state = initial
    version = NO_STREAM
    cached = cache.get(stream_id, evolve) if cache is not None else None
    if cached is not None:
        state, version = cached
    for recorded in await store.read_stream(stream_id, from_version=version + 1):
        state = evolve(state, recorded.decode(registry))
        version = recorded.stream_version
    if cache is not None and (cached is None or cached[1] != version):
        cache.put(stream_id, evolve, state, version)
    return state, version


@dataclass(frozen=True, slots=True)
class StreamModel(Generic[S]):
    """One stream a decision reads: its id and how to fold it."""

    stream_id: str
    initial: S
    evolve: Callable[[S, DomainEvent], S]


async def execute(
    store: EventStore,
    *,
    streams: Sequence[StreamModel[Any]],
    registry: EventRegistry,
    decide: Callable[[list[Any]], Mapping[str, Sequence[DomainEvent]]],
    metadata: EventMetadata,
    attempts: int = 3,
    cache: StateCache | None = None,
) -> AppendResult | None:
    """Decide on the current states of ``streams`` and append what ``decide`` returns, at
    the versions read.

    ``decide`` gets the folded states in the order of ``streams`` and returns the events per
    stream id. Every stream read is part of the append, those without events as guards, so
    the decision holds against all it read: a concurrent change to any of them re-runs
    ``decide`` on fresh states. ``None`` when ``decide`` returns no events.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    known = {model.stream_id for model in streams}
    for attempt in range(1, attempts + 1):
        loaded = [
            await load(
                store,
                stream_id=model.stream_id,
                registry=registry,
                initial=model.initial,
                evolve=model.evolve,
                cache=cache,
            )
            for model in streams
        ]
        decided = decide([state for state, _ in loaded])
        unknown = set(decided) - known
        if unknown:
            raise ValueError(f"decide wrote to streams it did not read: {sorted(unknown)}")
        if not any(decided.values()):
            return None
        writes = [
            StreamWrite(
                model.stream_id,
                [NewEvent(event=e, metadata=metadata) for e in decided.get(model.stream_id, ())],
                version,
            )
            for model, (_, version) in zip(streams, loaded, strict=True)
        ]
        try:
            result = await store.append_streams(writes)
        except WrongExpectedVersion:
            if attempt == attempts:
                raise
            continue
        if cache is not None and not result.duplicate:
            # The states after this append, so the next command reads nothing it knows.
            for model, (state, version), write in zip(streams, loaded, writes, strict=True):
                for event in decided.get(model.stream_id, ()):
                    state = model.evolve(state, event)
                cache.put(model.stream_id, model.evolve, state, version + len(write.events))
        return result
    raise AssertionError("unreachable")  # pragma: no cover


class RuleWarning(BaseModel):
    """A soft rule that was not met: the decision stands, the warning is on record (in the
    event's ``warnings``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    message: Note


class CommandAccepted(BaseModel):
    """What a command stored, the one answer of every service's commands.

    ``duplicate``: the command repeated one already stored (or decided nothing new), so
    nothing was written and ``event_ids`` are those stored before (or empty). ``stream_id``
    and ``stream_version``: the command's own stream (the first it wrote) and its version
    after the append. ``events``: the events' data, so a capped grade or an opened obligation
    is visible at once; ``warnings``: the soft rules the decision did not meet.
    """

    model_config = ConfigDict(frozen=True)

    duplicate: bool
    stream_id: str | None
    stream_version: int | None
    event_ids: list[UUID]
    event_types: list[str]
    events: list[dict[str, Any]]
    warnings: list[RuleWarning]

    @classmethod
    def of(cls, result: AppendResult | None, *, stream_id: str | None = None) -> CommandAccepted:
        """The answer for an append (``None``: the decision had nothing to append)."""
        if result is None or not result.events:
            return cls(
                duplicate=True,
                stream_id=stream_id,
                stream_version=None,
                event_ids=[],
                event_types=[],
                events=[],
                warnings=[],
            )
        own = stream_id or result.events[0].stream_id
        versions = [e.stream_version for e in result.events if e.stream_id == own]
        return cls(
            duplicate=result.duplicate,
            stream_id=own,
            stream_version=versions[-1] if versions else None,
            event_ids=[e.event_id for e in result.events],
            event_types=[e.event_type for e in result.events],
            events=[dict(e.data) for e in result.events],
            warnings=[w for e in result.events for w in _warnings(e)],
        )


def _warnings(event: RecordedEvent) -> list[RuleWarning]:
    raw = event.data.get("warnings")
    if not isinstance(raw, list):
        return []
    return [RuleWarning.model_validate(item) for item in raw]


@dataclass(frozen=True, slots=True)
class CommandPath:
    """A service's command path: its store, the registry its events decode with, and the
    cache of folded states shared by every request of the process."""

    store: EventStore
    registry: EventRegistry
    cache: StateCache

    async def load(self, model: StreamModel[S]) -> tuple[S, int]:
        """The state of one stream and the version it reflects."""
        return await load(
            self.store,
            stream_id=model.stream_id,
            registry=self.registry,
            initial=model.initial,
            evolve=model.evolve,
            cache=self.cache,
        )

    async def state(self, model: StreamModel[S]) -> S:
        """The state of one stream (a read)."""
        state, _ = await self.load(model)
        return state

    async def execute(
        self,
        streams: Sequence[StreamModel[Any]],
        decide: Callable[[list[Any]], Mapping[str, Sequence[DomainEvent]]],
        metadata: EventMetadata,
        *,
        attempts: int = 3,
    ) -> CommandAccepted:
        """Run one decision (see ``execute``) and answer what it stored. The command's own
        stream is the first of ``streams``."""
        result = await execute(
            self.store,
            streams=streams,
            registry=self.registry,
            decide=decide,
            metadata=metadata,
            attempts=attempts,
            cache=self.cache,
        )
        return CommandAccepted.of(result, stream_id=streams[0].stream_id if streams else None)

    async def execute_one(
        self,
        model: StreamModel[S],
        decide: Callable[[S], Sequence[DomainEvent]],
        metadata: EventMetadata,
    ) -> CommandAccepted:
        """A decision on one stream."""
        return await self.execute(
            [model], lambda states: {model.stream_id: decide(states[0])}, metadata
        )
