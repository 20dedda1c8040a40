"""The fast decoder of Kafka records (``envelope_fast``) against ``from_kafka``: on every
generated record, well formed or not, both give the same event and source or fail the same
way, and the fast one never accepts what ``from_kafka`` refuses.

Records are generated as ``to_kafka`` writes them and as the relay publishes them (through
FastStream, which puts ``content-type`` first and adds a ``correlation_id`` header), with
varied ids, times in any offset, unicode text and data, optional fields present or not;
then mutated: headers dropped, repeated, replaced by near-misses of their canonical form or
by arbitrary bytes, bodies replaced by other JSON or by garbage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, cast
from uuid import uuid4

import pytest
from faststream.kafka.testing import build_message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zhucun.shared.envelope import CloudEventError, RecordedEvent, from_kafka, to_kafka
from zhucun.shared.envelope_fast import decode_kafka, from_kafka_fast
from zhucun.shared.events import GENESIS_HASH, DomainEvent, EventRegistry, format_time
from zhucun.shared.pipeline import Delivery, decode_record

pytestmark = pytest.mark.unit

SOURCE = "/zhucun/test"
Headers = list[tuple[str, bytes]]

# --- generated envelopes -------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets
)
# Mostly the small non-negative integers the store writes; sometimes what only pydantic takes.
# Hash-chain links are hex digests; the envelope itself takes any text there.
hashes = st.text("0123456789abcdef", min_size=64, max_size=64) | st.text()
counters = st.integers(min_value=0, max_value=10**18 - 1) | st.integers(
    min_value=-(10**20), max_value=10**20
)


@st.composite
def envelopes(draw: st.DrawFn) -> RecordedEvent:
    return RecordedEvent(
        event_id=draw(st.uuids()),
        stream_id=draw(st.text()),
        stream_version=draw(counters),
        global_position=draw(counters),
        event_type=draw(st.text()),
        schema_version=draw(counters),
        key=draw(st.text()),
        data=draw(st.dictionaries(st.text(), json_values, max_size=5)),
        occurred_at=draw(moments),
        recorded_at=draw(moments),
        correlation_id=draw(st.uuids()),
        causation_id=draw(st.none() | st.uuids()),
        actor=draw(st.none() | st.text()),
        prev_hash=draw(hashes),
        hash=draw(hashes),
    )


def written(event: RecordedEvent, source: str) -> tuple[Headers, bytes]:
    """The record as ``to_kafka`` writes it, headers UTF-8 encoded in its order."""
    record = to_kafka(event, source=source)
    return [(k, v.encode()) for k, v in record.headers.items()], record.value


def relayed(event: RecordedEvent, source: str) -> tuple[Headers, bytes]:
    """The record as the relay publishes it: through FastStream's own message building."""
    record = to_kafka(event, source=source)
    message = asyncio.run(
        build_message(
            record.value,
            "topic",
            key=record.key,
            headers=record.headers,
            correlation_id=str(event.correlation_id),
            serializer=None,
        )
    )
    return list(message.headers), message.value


@st.composite
def records(draw: st.DrawFn) -> tuple[Headers, bytes]:
    event, source = draw(envelopes()), draw(st.text())
    return (relayed if draw(st.booleans()) else written)(event, source)


# --- near misses and garbage ---------------------------------------------------------------

HEADER_NAMES = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "content-type",
    "ce_stream",
    "ce_streamversion",
    "ce_position",
    "ce_schemaversion",
    "ce_partitionkey",
    "ce_recordedtime",
    "ce_correlationid",
    "ce_causationid",
    "ce_actor",
    "ce_prevhash",
    "ce_hash",
]
TIME_HEADERS = ("ce_time", "ce_recordedtime")
UUID_HEADERS = ("ce_id", "ce_correlationid", "ce_causationid")
INT_HEADERS = ("ce_streamversion", "ce_position", "ce_schemaversion")


def near(canonical: st.SearchStrategy[str], alphabet: str) -> st.SearchStrategy[bytes]:
    """Canonical forms with a few characters replaced, inserted or removed."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        text = list(draw(canonical))
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            action = draw(st.sampled_from(["replace", "insert", "delete"]))
            char = draw(st.sampled_from(alphabet))
            if action == "insert" or at == len(text):
                text.insert(at, char)
            elif action == "replace":
                text[at] = char
            else:
                del text[at]
        return "".join(text).encode()

    return mutate()


canonical_times = moments.map(format_time)
canonical_uuids = st.uuids().map(str)
# What parsers of times, UUIDs and integers take beyond the canonical form, or almost take.
TIME_MISSES = [
    b"2025-03-01T08:00:00+08:00",
    b"2025-03-01T08:00:00Z",
    b"2025-03-01T08:00:00.1234567Z",
    b"2025-03-01T08:00:00.123456+00:00",
    b"2025-03-01 08:00:00.123456Z",
    b"2025-03-01t08:00:00.123456z",
    b"20250301T080000.123456Z",
    b"2025-03-01T08:00:00,123456Z",
    b"2025-03-01T24:00:00.000000Z",
    b"2025-02-30T08:00:00.000000Z",
    b"+2025-03-01T08:00:00.00000Z",
    b"2025-03-01T08:00:60.000000Z",
    b"1741000000",
    b"yesterday",
]
UUID_MISSES = [
    b"6F1C2D5E-1234-4ABC-9DEF-0123456789AB",
    b"6f1c2d5e12344abc9def0123456789ab",
    b"{6f1c2d5e-1234-4abc-9def-0123456789ab}",
    b"urn:uuid:6f1c2d5e-1234-4abc-9def-0123456789ab",
    b"6f1c2d5e-1234-4abc-9def-0123456789-b",
    b"6f1c-2d5e1234-4abc-9def-0123456789ab",
    b"6f1c2d5e-1234-4abc-9def-0123456789a\xc3\xa9",
    b"not-a-uuid",
]
INT_MISSES = [b"007", b"-1", b"+1", b" 1", b"1 ", b"1_000", b"1.0", b"", b"\xd9\xa3", b"1" * 19]
SPEC_MISSES = [b"1.0", b"1", b"1.0 ", b"0.3", b"1.00"]
CONTENT_TYPE_MISSES = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/jsonl",
    b"Application/JSON",
    b"text/plain",
    b"",
]
OTHER_MISSES = [b"", b"\xff\xfe", "驻村".encode(), b"\x00", b" "]


def curated(name: str) -> list[bytes]:
    """The hand-picked near misses of header ``name``."""
    if name in TIME_HEADERS:
        return TIME_MISSES
    if name in UUID_HEADERS:
        return UUID_MISSES
    if name in INT_HEADERS:
        return INT_MISSES
    return {"ce_specversion": SPEC_MISSES, "content-type": CONTENT_TYPE_MISSES}.get(
        name, OTHER_MISSES
    )


near_times = near(canonical_times, "0123456789-:T.Z+ tz,_")
near_uuids = near(canonical_uuids, "0123456789abcdefABCDEF-{}x ")
near_ints = near(st.integers(0, 10**19).map(str), "0123456789-+ _.e") | st.integers(
    -(10**25), 10**25
).map(lambda n: str(n).encode())
any_bytes = st.binary(max_size=40) | st.text(max_size=40).map(str.encode)


def near_misses(name: str) -> st.SearchStrategy[bytes]:
    """Values of header ``name`` that its parsers might take, or almost."""
    generated = {
        **dict.fromkeys(TIME_HEADERS, near_times),
        **dict.fromkeys(UUID_HEADERS, near_uuids),
        **dict.fromkeys(INT_HEADERS, near_ints),
    }.get(name, any_bytes)
    return st.sampled_from(curated(name)) | generated | any_bytes


CURATED_BODIES = [
    b"",
    b"{",
    b"[1, 2]",
    b'"text"',
    b"null",
    b'{"a": NaN}',
    b'{"a": Infinity, "b": -Infinity}',
    b'{"a": 1e400}',
    b'{"a": 1, "a": 2}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"a": "\\ud800"}',
    b'{"a": "\\udc00\\ud800"}',
    b'{"\\u00e9": "\\u00e9", "\xc3\xa9": 1}',
    b'\xef\xbb\xbf{"a": 1}',
    '{"a": 1}'.encode("utf-16"),
    b'{"a": 1} trailing',
    b' {"a": [1, {"b": null}]} ',
    b'{"a": -0, "b": -0.0, "c": 1E5, "d": 10000000000000000000000, "e": 1.5e-320}',
    b'{"a": 01}',
    b'{"a": .5}',
    b'{"a": "\t"}',
    b"[" * 300 + b"]" * 300,
    b'{"a":' * 300 + b"1" + b"}" * 300,
]
bodies = st.one_of(
    st.binary(max_size=60),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.sampled_from(CURATED_BODIES),
)


@st.composite
def one_header_off(draw: st.DrawFn) -> tuple[Headers, bytes | None]:
    """A well-formed record with one header's value replaced by a near miss (or added)."""
    headers, value = draw(records())
    name = draw(st.sampled_from(HEADER_NAMES))
    new = draw(near_misses(name))
    if name in {k for k, _ in headers}:
        return [(k, new if k == name else v) for k, v in headers], value
    return [*headers, (name, new)], value


@st.composite
def malformed(draw: st.DrawFn) -> tuple[Headers, bytes | None]:
    """A well-formed record with a few things wrong with it."""
    headers, value = draw(records())
    changed: list[tuple[str, bytes | None]] = list(headers)
    body: bytes | None = value
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(HEADER_NAMES))
        kind = draw(st.sampled_from(["drop", "replace", "repeat", "none", "body", "foreign"]))
        if kind == "drop":
            changed = [(k, v) for k, v in changed if k != name]
        elif kind == "replace":
            new = draw(near_misses(name))
            changed = [(k, new if k == name else v) for k, v in changed]
            if name not in {k for k, _ in changed}:
                changed.append((name, new))
        elif kind == "repeat":
            changed.insert(draw(st.integers(0, len(changed))), (name, draw(near_misses(name))))
        elif kind == "none":
            changed = [(k, None if k == name else v) for k, v in changed]
        elif kind == "body":
            body = draw(st.none() | bodies)
        else:
            changed.append((draw(st.text(max_size=8)), draw(any_bytes)))
    return cast(Headers, changed), body


# --- the properties ------------------------------------------------------------------------


def outcome(decode: Any, headers: Headers, value: bytes) -> tuple[RecordedEvent, str] | Exception:
    try:
        return cast(tuple[RecordedEvent, str], decode(headers, value))
    except Exception as error:
        return error


def attempt(function: Callable[[], object]) -> object:
    """What ``function`` returns, or the error it raises as text: generated envelopes may
    hold what the hash chain or JSON cannot encode (non-ASCII links, integers beyond JSON's
    safe range, lone surrogates), and both decoders must then fail alike."""
    try:
        return function()
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def strictly(value: object) -> object:
    """A JSON value with its types spelled out: ``1``, ``1.0`` and ``True`` differ, keys keep
    their order, and NaN is NaN (which ``==`` would not say)."""
    if isinstance(value, dict):
        return ("object", [(key, strictly(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [strictly(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def assert_same_event(fast: tuple[RecordedEvent, str], slow: tuple[RecordedEvent, str]) -> None:
    (event, source), (expected, expected_source) = fast, slow
    assert source == expected_source
    envelope = {name: value for name, value in event.__dict__.items() if name != "data"}
    assert envelope == {n: v for n, v in expected.__dict__.items() if n != "data"}
    assert strictly(event.data) == strictly(expected.data)
    assert attempt(lambda: strictly(event.model_dump(mode="json"))) == attempt(
        lambda: strictly(expected.model_dump(mode="json"))
    )
    assert attempt(event.model_dump_json) == attempt(expected.model_dump_json)
    assert attempt(event.computed_hash) == attempt(expected.computed_hash)
    for moment, other in [
        (event.occurred_at, expected.occurred_at),
        (event.recorded_at, expected.recorded_at),
    ]:
        assert moment.utcoffset() == other.utcoffset()
        assert format_time(moment) == format_time(other)
    assert hash(event.event_id) == hash(expected.event_id)


def assert_decoded_alike(headers: Headers, value: bytes) -> tuple[RecordedEvent, str] | None:
    """Both decoders agree; returns the fast path's answer (None: it handed over)."""
    slow = outcome(from_kafka, headers, value)
    fast = outcome(from_kafka_fast, headers, value)
    combined = outcome(decode_kafka, headers, value)
    if isinstance(slow, Exception):
        # Never accepted by the fast path, and refused with from_kafka's very error.
        assert fast is None or isinstance(fast, UnicodeDecodeError), fast
        assert isinstance(combined, Exception), combined
        assert type(combined) is type(slow)
        assert str(combined) == str(slow)
        return None
    assert not isinstance(fast, Exception), fast
    assert not isinstance(combined, Exception), combined
    assert_same_event(combined, slow)
    if fast is not None:
        assert_same_event(fast, slow)
    return fast


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=envelopes(), source=st.text(), relay=st.booleans())
def test_every_written_record_decodes_alike_and_takes_the_fast_path(
    event: RecordedEvent, source: str, relay: bool
) -> None:
    headers, value = (relayed if relay else written)(event, source)
    fast = assert_decoded_alike(headers, value)
    decoded, decoded_source = decode_kafka(headers, value)
    assert decoded == event
    assert decoded_source == source
    canonical = all(
        0 <= n < 10**18 for n in (event.stream_version, event.global_position, event.schema_version)
    )
    # The form the relay writes is the fast path's business; anything else is from_kafka's.
    assert (fast is not None) == canonical


def test_every_curated_near_miss_of_every_header_decodes_alike() -> None:
    event = RecordedEvent(
        event_id=uuid4(),
        stream_id="cadre-c1",
        stream_version=3,
        global_position=17,
        event_type="test.Booked",
        schema_version=1,
        key="c1",
        data={"cadre_id": "c1", "名": "驻村"},
        occurred_at=datetime(2025, 3, 1, 8, tzinfo=timezone(timedelta(hours=8))),
        recorded_at=datetime(2025, 3, 1, 0, 0, 1, 5, tzinfo=UTC),
        correlation_id=uuid4(),
        causation_id=uuid4(),
        actor="tester:service",
        prev_hash=GENESIS_HASH,
        hash="f" * 64,
    )
    for headers, value in (written(event, SOURCE), relayed(event, SOURCE)):
        assert assert_decoded_alike(headers, value) is not None
        for name in HEADER_NAMES:
            for miss in curated(name):
                replaced = [(k, miss if k == name else v) for k, v in headers]
                if name not in dict(headers):
                    replaced.append((name, miss))
                assert_decoded_alike(replaced, value)
        for body in CURATED_BODIES:
            assert_decoded_alike(headers, body)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=one_header_off())
def test_near_misses_of_each_header_decode_alike(record: tuple[Headers, bytes | None]) -> None:
    headers, value = record
    assert_decoded_alike(headers, value if value is not None else b"")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=malformed())
@example(record=([("ce_specversion", b"1.0")], b"{}"))
@example(record=([], b""))
def test_malformed_records_are_refused_alike(record: tuple[Headers, bytes | None]) -> None:
    headers, value = record
    # A record without a value (a tombstone) reaches the decoders as an empty body.
    assert_decoded_alike(headers, value if value is not None else b"")


# --- the pipeline's decoding of a record, fast path included ---------------------------------


registry = EventRegistry()


@registry.register
class Booked(DomainEvent):
    event_type: ClassVar[str] = "test.replay.Booked"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    n: int


@dataclass
class FakeRecord:
    headers: list[tuple[str, bytes]]
    value: bytes | None
    topic: str = "t"
    partition: int = 0
    offset: int = 0


def booked(cadre: str, n: int, *, causation: bool = True) -> RecordedEvent:
    now = datetime.now(UTC)
    event = Booked(cadre_id=cadre, n=n)
    return RecordedEvent(
        event_id=uuid4(),
        stream_id=f"cadre-{cadre}",
        stream_version=n,
        global_position=n,
        event_type=event.event_type,
        schema_version=1,
        key=cadre,
        data=event.to_data(),
        occurred_at=now - timedelta(minutes=5),
        recorded_at=now,
        correlation_id=uuid4(),
        causation_id=uuid4() if causation else None,
        actor="tester:service" if causation else None,
        prev_hash=GENESIS_HASH,
        hash="f" * 64,
    )


def fake(event: RecordedEvent, **changes: bytes | None) -> FakeRecord:
    headers = dict(written(event, SOURCE)[0])
    for name, value in changes.items():
        name = name.replace("_", "-") if name == "content_type" else name
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return FakeRecord(list(headers.items()), to_kafka(event, source=SOURCE).value)


def runner_decode(record: FakeRecord) -> Delivery:
    """What the runner did before the fast path: ``from_kafka``, then the registry."""
    event, source = from_kafka(record.headers, record.value or b"")
    return Delivery(
        record.topic, record.partition, record.offset, event, source, event.decode(registry)
    )


def test_fast_decode_equals_the_runners_and_fails_the_same_way() -> None:
    good = [booked("c1", 5), booked("c2", 6, causation=False)]
    # As FastStream publishes them (the relay): content-type first, one header more.
    relayed_record = fake(good[0])
    relayed_record.headers = [
        ("content-type", b"application/json"),
        *reversed(relayed_record.headers),
        ("correlation_id", b"x"),
    ]
    valueless = fake(good[1])
    valueless.headers = [*valueless.headers, ("x-empty", cast(bytes, None))]
    for event, record in [
        (good[0], fake(good[0])),
        (good[1], fake(good[1])),
        (good[0], relayed_record),
        (good[1], valueless),
    ]:
        fast = decode_record(record, registry)
        assert fast == runner_decode(record)
        assert fast.event == event
        assert fast.event.model_dump() == event.model_dump()
        assert fast.source == SOURCE
    bad = [
        fake(good[0], ce_id=b"not-a-uuid"),
        fake(good[0], ce_id=b"{6f1c2d5e-1234-4abc-9def-0123456789ab}"),
        fake(good[0], ce_id=b"6f1c2d5e12344abc9def0123456789ab"),  # pydantic accepts it
        fake(good[0], ce_id=b"6F1C2D5E-1234-4ABC-9DEF-0123456789AB"),
        fake(good[0], ce_specversion=b"0.3"),
        fake(good[0], ce_hash=None),
        fake(good[0], ce_streamversion=b"-1"),
        fake(good[0], ce_streamversion=b"007"),
        fake(good[0], ce_time=b"2025-03-01T08:00:00+08:00"),
        fake(good[0], ce_time=b"yesterday"),
        fake(good[0], ce_stream=b"\xff\xfe"),
        fake(good[0], content_type=b"text/plain"),
        fake(good[0], ce_type=b"test.replay.Unknown"),
        FakeRecord(fake(good[0]).headers, b"[1, 2]"),
        FakeRecord(fake(good[0]).headers, b"{not json"),
        FakeRecord(fake(good[0]).headers, None),
        FakeRecord(fake(good[0]).headers, b'{"cadre_id": "c1"}'),  # fails the contract
        FakeRecord([*fake(good[0]).headers, ("x-other", b"\xff")], fake(good[0]).value),
        FakeRecord([*fake(good[0]).headers, ("ce_id", b"duplicate")], fake(good[0]).value),
    ]
    for record in bad:
        try:
            expected: Delivery | Exception = runner_decode(record)
        except Exception as error:
            expected = error
        try:
            got: Delivery | Exception = decode_record(record, registry)
        except Exception as error:
            got = error
        if isinstance(expected, Exception):
            assert type(got) is type(expected), record
            assert str(got) == str(expected)
        else:
            assert got == expected, record
    with pytest.raises(CloudEventError):
        decode_record(bad[0], registry)
