"""Event contracts: the base class, the registry, upcasting and the canonical encoding.

A domain event is a frozen pydantic model with a stable ``event_type`` name and a
``schema_version``. Events are stored and published as JSON; the registry turns a stored
``(event_type, schema_version, data)`` back into the current class, running upcasters for
data written by older versions of the code.

The *canonical encoding* (RFC 8785, JSON Canonicalization Scheme) is what the hash chain is
computed over: the same logical content always gives the same bytes, whatever the key order
or number formatting of the JSON it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import rfc8785
from pydantic import BaseModel, ConfigDict, ValidationError

JsonObject = dict[str, Any]
Upcaster = Callable[[JsonObject], JsonObject]

#: The ``prev_hash`` of the first event of every stream.
GENESIS_HASH = "0" * 64


class EventContractError(Exception):
    """Stored or received event data does not match any known contract."""


class UnknownEventType(EventContractError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class DomainEvent(BaseModel):
    """Base class of every event payload.

    Subclasses set ``event_type`` (stable, never renamed: downstream systems subscribe to it)
    and ``key_field``, the field that keys the Kafka record: the cadre id where the event
    concerns a cadre (so one cadre's events stay in order), else the village id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    key_field: ClassVar[str]

    def kafka_key(self) -> str:
        return str(getattr(self, self.key_field))

    def to_data(self) -> JsonObject:
        """The JSON body: what is stored, hashed and published."""
        return self.model_dump(mode="json")


E = TypeVar("E", bound=type[DomainEvent])


class EventRegistry:
    """Maps event type names to classes and runs upcasters for old schema versions.

    Each service keeps one registry of the events it writes; consumers build one of the
    events they read. An upcaster turns the data of version ``n`` into version ``n + 1``.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: E) -> E:
        """Class decorator: make ``cls`` decodable by its ``event_type``."""
        name = cls.event_type
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"event type {name!r} is already registered")
        if cls.key_field not in cls.__pydantic_fields__:
            raise ValueError(f"{cls.__name__}.key_field {cls.key_field!r} is not a field")
        self._classes[name] = cls
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register the function that upgrades ``from_version`` data by one."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._classes

    def classes(self) -> list[type[DomainEvent]]:
        return list(self._classes.values())

    def decode(self, event_type: str, schema_version: int, data: Mapping[str, Any]) -> DomainEvent:
        """Validate stored data into the current event class, upcasting first if needed."""
        cls = self._classes.get(event_type)
        if cls is None:
            raise UnknownEventType(event_type)
        if schema_version > cls.schema_version:
            raise EventContractError(
                f"{event_type} v{schema_version} is newer than this code (v{cls.schema_version})"
            )
        upgraded = dict(data)
        for version in range(schema_version, cls.schema_version):
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise EventContractError(f"no upcaster for {event_type} v{version}")
            upgraded = step(upgraded)
        try:
            return cls.model_validate(upgraded)
        except ValidationError as exc:
            raise EventContractError(f"{event_type} v{schema_version}: {exc}") from exc


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of a JSON-compatible value."""
    return rfc8785.dumps(value)


def format_time(moment: datetime) -> str:
    """The one textual form of an instant: UTC, microseconds, ``Z``.

    PostgreSQL keeps microseconds, so a timestamp read back hashes like the one written.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every instant in Zhucun carries a time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 over the previous link and the canonical encoding of one stored event."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(dict(fields)))
    return digest.hexdigest()
