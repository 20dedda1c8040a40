"""Event contracts, the registry, upcasting and the CloudEvents wire form (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from uuid import uuid4

import pytest

from zhucun.shared.envelope import CloudEventError, RecordedEvent, from_kafka, to_kafka
from zhucun.shared.events import (
    GENESIS_HASH,
    DomainEvent,
    EventContractError,
    EventRegistry,
    UnknownEventType,
    canonical_json,
    chain_hash,
    format_time,
)

pytestmark = pytest.mark.unit


class LeaveGranted(DomainEvent):
    """A test event at schema version 3, with upcasters from 1 and 2 (see make_registry)."""

    event_type: ClassVar[str] = "test.LeaveGranted"
    schema_version: ClassVar[int] = 3
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    days: int
    kind: str


def make_registry() -> tuple[EventRegistry, type[LeaveGranted]]:
    registry = EventRegistry()
    registry.register(LeaveGranted)

    @registry.upcaster("test.LeaveGranted", 1)
    def v1_to_v2(data: dict[str, object]) -> dict[str, object]:
        upgraded = dict(data)
        upgraded["days"] = upgraded.pop("length")
        return upgraded

    @registry.upcaster("test.LeaveGranted", 2)
    def v2_to_v3(data: dict[str, object]) -> dict[str, object]:
        return {**data, "kind": "personal"}

    return registry, LeaveGranted


def test_decode_current_version() -> None:
    registry, cls = make_registry()
    event = registry.decode("test.LeaveGranted", 3, {"cadre_id": "c1", "days": 2, "kind": "sick"})
    assert event == cls(cadre_id="c1", days=2, kind="sick")
    assert event.kafka_key() == "c1"


def test_upcasters_chain_from_old_versions() -> None:
    registry, cls = make_registry()
    assert registry.decode("test.LeaveGranted", 1, {"cadre_id": "c1", "length": 4}) == cls(
        cadre_id="c1", days=4, kind="personal"
    )


def test_decode_errors_are_typed() -> None:
    registry, _ = make_registry()
    with pytest.raises(UnknownEventType):
        registry.decode("test.Nope", 1, {})
    with pytest.raises(EventContractError, match="newer"):
        registry.decode("test.LeaveGranted", 4, {})
    with pytest.raises(EventContractError, match="days"):
        registry.decode("test.LeaveGranted", 3, {"cadre_id": "c1", "days": "many", "kind": "x"})


def test_registry_refuses_duplicates_and_bad_keys() -> None:
    registry, _cls = make_registry()
    with pytest.raises(ValueError, match="already registered"):

        @registry.register
        class Other(DomainEvent):
            event_type: ClassVar[str] = "test.LeaveGranted"
            key_field: ClassVar[str] = "cadre_id"
            cadre_id: str

    with pytest.raises(ValueError, match="not a field"):

        @registry.register
        class Keyless(DomainEvent):
            event_type: ClassVar[str] = "test.Keyless"
            key_field: ClassVar[str] = "village_id"
            cadre_id: str


def test_events_are_frozen_and_strict() -> None:
    _, cls = make_registry()
    event = cls(cadre_id="c1", days=1, kind="sick")
    with pytest.raises(ValueError, match="frozen"):
        event.days = 3  # type: ignore[misc]  # mypy refuses it too: this checks the run time
    # A field the class does not declare: passed as untyped data, as a decoder would.
    undeclared: dict[str, Any] = {"cadre_id": "c1", "days": 1, "kind": "sick", "name": "张三"}
    with pytest.raises(ValueError, match="extra"):
        cls(**undeclared)


def test_canonical_json_ignores_key_order_and_keeps_chinese() -> None:
    assert canonical_json({"b": 1, "a": "驻村"}) == canonical_json({"a": "驻村", "b": 1})
    assert canonical_json({"a": "驻村"}) == '{"a":"驻村"}'.encode()


def test_times_have_one_textual_form() -> None:
    beijing = timezone(timedelta(hours=8))
    moment = datetime(2026, 5, 1, 8, 0, 0, 5, tzinfo=beijing)
    assert format_time(moment) == "2026-05-01T00:00:00.000005Z"
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 5, 1))


def recorded(**overrides: object) -> RecordedEvent:
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    fields: dict[str, object] = {
        "event_id": uuid4(),
        "stream_id": "cadre-c1",
        "stream_version": 2,
        "global_position": 17,
        "event_type": "test.LeaveGranted",
        "schema_version": 3,
        "key": "c1",
        "data": {"cadre_id": "c1", "days": 2, "kind": "病假"},
        "occurred_at": now,
        "recorded_at": now + timedelta(seconds=1),
        "correlation_id": uuid4(),
        "causation_id": uuid4(),
        "actor": "u-9:township",
        "prev_hash": GENESIS_HASH,
        "hash": "",
    }
    fields.update(overrides)
    event = RecordedEvent.model_validate(fields)
    return event.model_copy(update={"hash": event.computed_hash()})


def test_the_hash_covers_content_and_the_previous_link() -> None:
    event = recorded()
    assert event.computed_hash() == chain_hash(GENESIS_HASH, event.hashed_fields())
    assert recorded(data={"days": 3}).computed_hash() != recorded(data={"days": 2}).computed_hash()
    tampered = event.model_copy(update={"data": {**event.data, "days": 20}})
    assert tampered.computed_hash() != event.hash
    relinked = event.model_copy(update={"prev_hash": "f" * 64})
    assert relinked.computed_hash() != event.hash


def test_cloudevents_round_trip() -> None:
    event = recorded()
    record = to_kafka(event, source="/zhucun/attendance")
    assert record.key == b"c1"
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["ce_id"] == str(event.event_id)
    assert record.headers["ce_type"] == "test.LeaveGranted"
    assert record.headers["ce_subject"] == "cadre-c1"
    assert record.headers["ce_time"] == "2026-03-01T09:00:00.000000Z"
    assert record.headers["content-type"] == "application/json"
    assert record.headers["ce_causationid"] == str(event.causation_id)
    as_bytes = [(k, v.encode()) for k, v in record.headers.items()]
    back, source = from_kafka(as_bytes, record.value)
    assert back == event
    assert source == "/zhucun/attendance"
    assert back.computed_hash() == back.hash  # a consumer can check the link it received


def test_cloudevents_without_optional_attributes() -> None:
    event = recorded(causation_id=None, actor=None)
    record = to_kafka(event, source="/zhucun/dispatch")
    assert "ce_causationid" not in record.headers
    assert "ce_actor" not in record.headers
    assert from_kafka(record.headers, record.value)[0] == event


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ce_specversion": "0.3"}, "specversion"),
        ({"ce_id": None}, "missing headers: ce_id"),
        ({"content-type": "text/plain"}, "content-type"),
        ({"ce_streamversion": "two"}, "invalid CloudEvent"),
    ],
)
def test_bad_cloudevents_are_rejected_with_a_reason(
    change: dict[str, str | None], message: str
) -> None:
    record = to_kafka(recorded(), source="/zhucun/dispatch")
    headers = {k: v for k, v in {**record.headers, **change}.items() if v is not None}
    with pytest.raises(CloudEventError, match=message):
        from_kafka(headers, record.value)


def test_non_json_body_is_rejected() -> None:
    record = to_kafka(recorded(), source="/zhucun/dispatch")
    with pytest.raises(CloudEventError, match="not JSON"):
        from_kafka(record.headers, b"\xff not json")
    with pytest.raises(CloudEventError, match="not a JSON object"):
        from_kafka(record.headers, b"[1, 2]")
