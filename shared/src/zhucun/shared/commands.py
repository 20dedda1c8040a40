"""Command execution against one stream: read, fold, decide, append; retry on a conflict.

The plumbing every decider-based service repeats::

    result = await execute(
        store,
        stream_id=stream_id(county),
        registry=registry,
        initial=CountyDispatch(county),
        evolve=evolve,
        decide=lambda state: decide(command, state, policy),
        metadata=EventMetadata(occurred_at=now, actor="alice:org_admin"),
    )

The append names the version the state was read at. When another writer got there first
(``WrongExpectedVersion``) the stream is read again and ``decide`` runs again on the fresh
state, so a concurrent command that conflicts is refused by the domain rule itself (e.g.
"cadre already assigned"), not by a version number. Domain errors raised by ``decide``
propagate unchanged; after ``attempts`` lost races the last ``WrongExpectedVersion`` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zhucun.shared.envelope import EventMetadata, NewEvent
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


async def execute(
    store: EventStore,
    *,
    stream_id: str,
    registry: EventRegistry,
    initial: S,
    evolve: Callable[[S, DomainEvent], S],
    decide: Callable[[S], Sequence[DomainEvent]],
    metadata: EventMetadata,
    attempts: int = 3,
) -> AppendResult | None:
    """Decide on the current state of ``stream_id`` and append the events at the version
    read. ``None`` when ``decide`` returns no events (nothing to append)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        state, version = await load(
            store, stream_id=stream_id, registry=registry, initial=initial, evolve=evolve
        )
        events = decide(state)
        if not events:
            return None
        try:
            return await store.append(
                stream_id,
                [NewEvent(event=event, metadata=metadata) for event in events],
                expected_version=version,
            )
        except WrongExpectedVersion:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class StreamModel(Generic[S]):
    """One stream a decision reads: its id and how to fold it."""

    stream_id: str
    initial: S
    evolve: Callable[[S, DomainEvent], S]


async def execute_streams(
    store: EventStore,
    *,
    streams: Sequence[StreamModel[Any]],
    registry: EventRegistry,
    decide: Callable[[list[Any]], Mapping[str, Sequence[DomainEvent]]],
    metadata: EventMetadata,
    attempts: int = 3,
    cache: StateCache | None = None,
) -> AppendResult | None:
    """``execute`` for a decision that reads several streams and may write to any of them.

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
