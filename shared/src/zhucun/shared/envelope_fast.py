"""A fast decoder of the Kafka wire form, for the exact records ``to_kafka`` writes.

:func:`~zhucun.shared.envelope.from_kafka` validates a record's headers with pydantic, which
is most of the CPU a projection spends per event (a rebuild decodes millions). The records
the relay publishes all have one form: the headers ``to_kafka`` writes, each in its
canonical text (a lower-case hyphenated UUID, ``format_time``'s timestamps, plain decimal
integers). :func:`from_kafka_fast` checks exactly that form and converts the values
directly (UUIDs by asyncpg's C parser, the body by pydantic-core's JSON parser), building the
``RecordedEvent`` without running its validation. Anything else is not its business: it
returns None and :func:`decode_kafka` hands the record to ``from_kafka``, which decides and
explains. So what is accepted, the values produced and every error are ``from_kafka``'s; the
property test (``shared/tests/test_envelope_fast.py``) checks that on generated records.

This module reaches into pydantic's internals (a model's ``__dict__`` and fields-set slots):
that is why it lives apart from the envelope's contract, next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import pydantic_core
from asyncpg.pgproto import pgproto

from zhucun.shared.envelope import CONTENT_TYPE, SPEC_VERSION, RecordedEvent, from_kafka

_SPEC = SPEC_VERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
_EVENT_FIELDS = frozenset(RecordedEvent.model_fields)
_HYPHEN, _T, _DOT, _Z = ord("-"), ord("T"), ord("."), ord("Z")
_new_object = object.__new__
_set = object.__setattr__


def decode_kafka(headers: Sequence[tuple[str, bytes]], value: bytes) -> tuple[RecordedEvent, str]:
    """``from_kafka(headers, value)``: the same event and source, the same errors; faster
    for the records the relay publishes."""
    fast = from_kafka_fast(headers, value)
    return fast if fast is not None else from_kafka(headers, value)


def from_kafka_fast(
    headers: Sequence[tuple[str, bytes]], value: bytes
) -> tuple[RecordedEvent, str] | None:
    """The envelope and source of a record in exactly the form ``to_kafka`` writes, or None
    for anything else (the caller then takes :func:`~zhucun.shared.envelope.from_kafka`,
    which decides and explains); a header that is not UTF-8 raises what ``from_kafka``
    raises.

    Every header is checked and converted to its field's type, accepting only the canonical
    forms (which pydantic accepts too, giving the same values), so the event is the one
    ``from_kafka`` returns without running pydantic's validation of it (equal, field by
    field): UUIDs are asyncpg's C ``UUID`` (a ``uuid.UUID``, equal and hashing alike), as in
    events read from the store, and times are UTC.
    """
    h = dict(headers)
    # from_kafka decodes every header as UTF-8, used or not (and repeated ones too): one
    # check when all are ASCII, which is the rule, else each one as from_kafka does.
    try:
        ascii_only = len(h) == len(headers) and b"".join(h.values()).isascii()
    except TypeError:  # a header without a value
        ascii_only = False
    if not ascii_only:
        for _, raw in headers:
            if raw.__class__ is bytes and not raw.isascii():
                raw.decode()  # raises what from_kafka raises (the caller rejects the record)
    if h.get("ce_specversion") != _SPEC:
        return None
    content_type = h.get("content-type", _CONTENT_TYPE)
    if not isinstance(content_type, bytes) or not content_type.startswith(_CONTENT_TYPE):
        return None
    try:
        causation = h.get("ce_causationid")
        actor = h.get("ce_actor")
        values = {
            "event_id": _uuid(h["ce_id"]),
            "stream_id": h["ce_stream"].decode(),
            "stream_version": _int(h["ce_streamversion"]),
            "global_position": _int(h["ce_position"]),
            "event_type": h["ce_type"].decode(),
            "schema_version": _int(h["ce_schemaversion"]),
            "key": h["ce_partitionkey"].decode(),
            "data": pydantic_core.from_json(value, cache_strings="keys"),
            "occurred_at": _time(h["ce_time"]),
            "recorded_at": _time(h["ce_recordedtime"]),
            "correlation_id": _uuid(h["ce_correlationid"]),
            "causation_id": None if causation is None else _uuid(causation),
            "actor": None if actor is None else actor.decode(),
            "prev_hash": h["ce_prevhash"].decode(),
            "hash": h["ce_hash"].decode(),
        }
        source = h["ce_source"].decode()
    except (KeyError, ValueError, AttributeError, TypeError):
        return None  # UnicodeDecodeError is a ValueError
    if not isinstance(values["data"], dict):
        return None
    return _recorded_event(values), source


def _uuid(raw: bytes) -> UUID:
    """A canonical ``8-4-4-4-12`` UUID, parsed by asyncpg's C implementation (a
    ``uuid.UUID`` subclass, what the event store's reads return too)."""
    if len(raw) != 36 or not (
        raw[8] == raw[13] == raw[18] == raw[23] == _HYPHEN  # the parser skips any hyphens
    ):
        raise ValueError("not a canonical UUID")
    return cast(UUID, pgproto.UUID(raw.decode("ascii")))


def _time(raw: bytes) -> datetime:
    """Exactly the form ``format_time`` writes: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The result
    carries ``datetime.timezone.utc`` (as asyncpg's reads of the store do; pydantic's own
    UTC object in ``from_kafka``'s: equal instants, equal text forms)."""
    if len(raw) != 27 or raw[10] != _T or raw[19] != _DOT or raw[26] != _Z:
        raise ValueError("not a zhucun timestamp")
    return datetime.fromisoformat(raw.decode("ascii"))


def _int(raw: bytes) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError("not a small non-negative integer")
    return int(raw)


def _recorded_event(values: dict[str, Any]) -> RecordedEvent:
    """A ``RecordedEvent`` from values already of its field types: what ``model_construct``
    does (with every field set) without its per-field Python loop."""
    event = _new_object(RecordedEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _EVENT_FIELDS)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
