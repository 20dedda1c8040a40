"""The envelope of a stored event and its Kafka wire form (CloudEvents 1.0, binary mode).

A ``RecordedEvent`` is what the event store returns and the relay publishes: the event's
JSON data plus everything an auditor needs to place it (stream, version, global position,
business and recorded time, actor, correlation and causation ids) and its hash-chain link.

On Kafka the body is the event data (JSON) and the envelope travels in ``ce_*`` headers
(CloudEvents Kafka protocol binding, binary content mode). Extension attribute names are
lower-case alphanumerics, as the CloudEvents spec requires.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zhucun.shared.events import (
    DomainEvent,
    EventContractError,
    EventRegistry,
    JsonObject,
    chain_hash,
    format_time,
)

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EventMetadata(BaseModel):
    """Who did it, when, and why (which request or event caused it)."""

    model_config = ConfigDict(frozen=True)

    occurred_at: datetime
    correlation_id: UUID = Field(default_factory=uuid4)
    causation_id: UUID | None = None
    #: ``subject:role`` of the authenticated caller; never a person's name.
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended. ``event_id`` makes appends idempotent."""

    event: DomainEvent
    metadata: EventMetadata
    event_id: UUID = field(default_factory=uuid4)


class RecordedEvent(BaseModel):
    """One stored event, with its position in its stream and in the whole store."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    stream_id: str
    stream_version: int
    global_position: int
    event_type: str
    schema_version: int
    key: str
    data: JsonObject
    occurred_at: datetime
    recorded_at: datetime
    correlation_id: UUID
    causation_id: UUID | None
    actor: str | None
    prev_hash: str
    hash: str

    def hashed_fields(self) -> JsonObject:
        """Everything the hash chain covers. The global position is left out on purpose: it
        is checked separately (no gaps), and leaving it out keeps a stream's chain
        independent of how other streams interleave with it."""
        return {
            "event_id": str(self.event_id),
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "key": self.key,
            "data": self.data,
            "occurred_at": format_time(self.occurred_at),
            "recorded_at": format_time(self.recorded_at),
            "correlation_id": str(self.correlation_id),
            "causation_id": None if self.causation_id is None else str(self.causation_id),
            "actor": self.actor,
        }

    def computed_hash(self) -> str:
        return chain_hash(self.prev_hash, self.hashed_fields())

    def decode(self, registry: EventRegistry) -> DomainEvent:
        return registry.decode(self.event_type, self.schema_version, self.data)


# --- Kafka wire form: CloudEvents 1.0 binary mode ------------------------------------------


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: dict[str, str]


def to_kafka(event: RecordedEvent, *, source: str) -> KafkaRecord:
    """The Kafka record of a stored event; ``source`` names the producing service."""
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_source": source,
        "ce_type": event.event_type,
        "ce_subject": event.stream_id,
        "ce_time": format_time(event.occurred_at),
        "content-type": CONTENT_TYPE,
        "ce_stream": event.stream_id,
        "ce_streamversion": str(event.stream_version),
        "ce_position": str(event.global_position),
        "ce_schemaversion": str(event.schema_version),
        "ce_partitionkey": event.key,
        "ce_recordedtime": format_time(event.recorded_at),
        "ce_correlationid": str(event.correlation_id),
        "ce_prevhash": event.prev_hash,
        "ce_hash": event.hash,
    }
    if event.causation_id is not None:
        headers["ce_causationid"] = str(event.causation_id)
    if event.actor is not None:
        headers["ce_actor"] = event.actor
    return KafkaRecord(
        key=event.key.encode(),
        value=json.dumps(event.data, ensure_ascii=False, separators=(",", ":")).encode(),
        headers=headers,
    )


class CloudEventError(EventContractError):
    """A Kafka record that is not a valid Zhucun CloudEvent (it belongs in the DLQ)."""


def from_kafka(
    headers: Mapping[str, bytes | str] | Iterable[tuple[str, bytes]], value: bytes
) -> tuple[RecordedEvent, str]:
    """Parse a Kafka record back into the stored event and its CloudEvents ``source``.

    Raises ``CloudEventError`` naming what is wrong, so a consumer can dead-letter it.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    h = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in pairs}
    if h.get("ce_specversion") != SPEC_VERSION:
        raise CloudEventError(f"ce_specversion is {h.get('ce_specversion')!r}, expected '1.0'")
    missing = [
        name
        for name in (
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_stream",
            "ce_streamversion",
            "ce_position",
            "ce_schemaversion",
            "ce_partitionkey",
            "ce_recordedtime",
            "ce_correlationid",
            "ce_prevhash",
            "ce_hash",
        )
        if name not in h
    ]
    if missing:
        raise CloudEventError(f"missing headers: {', '.join(missing)}")
    content_type = h.get("content-type", CONTENT_TYPE)
    if not content_type.startswith(CONTENT_TYPE):
        raise CloudEventError(f"content-type {content_type!r} is not {CONTENT_TYPE}")
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CloudEventError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CloudEventError("body is not a JSON object")
    try:
        event = RecordedEvent(
            event_id=h["ce_id"],
            stream_id=h["ce_stream"],
            stream_version=h["ce_streamversion"],
            global_position=h["ce_position"],
            event_type=h["ce_type"],
            schema_version=h["ce_schemaversion"],
            key=h["ce_partitionkey"],
            data=data,
            occurred_at=h["ce_time"],
            recorded_at=h["ce_recordedtime"],
            correlation_id=h["ce_correlationid"],
            causation_id=h.get("ce_causationid"),
            actor=h.get("ce_actor"),
            prev_hash=h["ce_prevhash"],
            hash=h["ce_hash"],
        )
    except ValidationError as exc:
        raise CloudEventError(f"invalid CloudEvent attributes: {exc}") from exc
    return event, h["ce_source"]
