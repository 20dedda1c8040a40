"""``write_topics``: the scenario's events straight onto the Kafka topics, for benchmarks.

The records are what the services' relays publish (``zhucun.shared.relay``): CloudEvents
1.0 in binary mode built by ``zhucun.shared.envelope.to_kafka`` from a ``RecordedEvent``,
keyed by the event class's ``key_field``, on the partition the relay's producer would pick
(aiokafka's default partitioner: murmur2 of the key). The events come from the in-memory
engine (``zhucun.sim.engine``: the services' own deciders, or attendance's arithmetic), with

* per-stream versions and the SHA-256 hash chain over the canonical encoding, as the store
  computes them;
* event ids ``uuid5(namespace of the seed, "stream:version")``: the same seed writes the same
  ids, so a re-run only duplicates records that consumers drop by id;
* business time: ``ce_time`` and ``ce_recordedtime`` are the simulated moment, as if the
  system had been running during the term;
* global positions counted per service by this writer (they stand for the stores'
  positions; runs of several seeds on one topic each count their own).

Daily check-ins are the bulk of a real province (10^7 a year); they are written only with
``check_ins=True``, and the month closes carry the figures either way.

Records go out through aiokafka's batch API: one ``BatchBuilder`` per partition, sent when
full, with many batches in flight; ``workers`` > 1 splits the counties over processes (each
county's streams are its own), each regenerating the same scenario from its arguments.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import rfc8785
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

import zhucun.contracts.assessment
import zhucun.contracts.attendance
import zhucun.contracts.dispatch
from zhucun.shared.envelope import RecordedEvent
from zhucun.shared.events import GENESIS_HASH, DomainEvent, format_time
from zhucun.shared.kafka import client_options, ensure_topics, event_topic
from zhucun.shared.settings import KafkaSettings
from zhucun.sim.engine import Emitted, Engine
from zhucun.sim.report import Report
from zhucun.sim.scenario import Scenario, ScenarioArgs

TOPICS = {
    "dispatch": (zhucun.contracts.dispatch.TOPIC, zhucun.contracts.dispatch.SOURCE),
    "attendance": (zhucun.contracts.attendance.TOPIC, zhucun.contracts.attendance.SOURCE),
    "assessment": (zhucun.contracts.assessment.TOPIC, zhucun.contracts.assessment.SOURCE),
}

_SOURCES = {service: source.encode() for service, (_, source) in TOPICS.items()}

Progress = Callable[[str], None]


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON, fast: without floats it is exactly ``json.dumps`` with sorted
    keys, no spaces and no ASCII escaping (keys are ASCII, so code point order is UTF-16
    order); values with floats go through ``rfc8785`` (an integral float is written ``100``
    there, ``100.0`` by ``json``)."""
    if _has_float(value):
        return rfc8785.dumps(value)
    return _dumps_sorted(value)


def _dumps_sorted(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(v) for v in value)
    return False


def jsonb_order(value: Any) -> Any:
    """``value`` with its objects' keys in PostgreSQL ``jsonb`` order (shorter keys first,
    then bytewise): the relay publishes data read back from a ``jsonb`` column, so this is
    the byte order of its records' bodies."""
    if isinstance(value, dict):
        order = _JSONB_ORDER.get(tuple(value))
        if order is None:
            order = _JSONB_ORDER[tuple(value)] = tuple(
                sorted(value, key=lambda k: (len(k.encode()), k.encode()))
            )
        return {k: jsonb_order(v) if isinstance(v := value[k], dict | list) else v for k in order}
    if isinstance(value, list):
        return [jsonb_order(v) for v in value]
    return value


#: Key sets seen -> their jsonb order (every event of a type has the same keys).
_JSONB_ORDER: dict[tuple[str, ...], tuple[str, ...]] = {}


def uuid5(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))``, without the objects (it runs twice
    per event)."""
    raw = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Event types whose data may hold a float (hashed with ``rfc8785``), by type name.
_FLOATY: dict[str, bool] = {}


def _floaty(event: DomainEvent) -> bool:
    found = _FLOATY.get(event.event_type)
    if found is None:
        found = _FLOATY[event.event_type] = '"number"' in json.dumps(
            type(event).model_json_schema()
        )
    return found


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, as the relay would publish it."""

    service: str
    event_type: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    #: The stored form (kept only when asked for, by the tests).
    recorded: RecordedEvent | None = None


class Envelopes:
    """Turns emitted events into the records the relay would publish for the stored events:
    versions and hash chain per stream as the event store computes them, ids from the seed,
    positions per service. The record is built as ``zhucun.shared.envelope.to_kafka`` builds
    it (the tests hold the two to the same bytes), without the model round trip."""

    def __init__(
        self, scenario_prefix: str, *, worker: int = 0, workers: int = 1, keep: bool = False
    ) -> None:
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"https://zhucun.dev/sim/{scenario_prefix}")
        self._ns = self.namespace.bytes
        self._heads: dict[str, tuple[int, str]] = {}
        self._positions: Counter[str] = Counter()
        self._worker = worker
        self._workers = workers
        self._keep = keep

    def records(self, emitted: Sequence[Emitted]) -> list[Record]:
        """The records of one action's events (they share a correlation id)."""
        out: list[Record] = []
        if not emitted:
            return out
        moment = format_time(emitted[0].at)
        correlation: str | None = None
        for item in emitted:
            version, prev = self._heads.get(item.stream_id, (0, GENESIS_HASH))
            version += 1
            event_id = uuid5(self._ns, f"{item.stream_id}:{version}")
            if correlation is None:
                correlation = uuid5(self._ns, f"correlation:{event_id}")
            self._positions[item.service] += 1
            position = (self._positions[item.service] - 1) * self._workers + self._worker + 1
            event = item.event
            data = event.to_data()
            key = event.kafka_key()
            at = format_time(item.at) if item.at is not emitted[0].at else moment
            if _floaty(event):
                body = rfc8785.dumps(
                    {
                        "event_id": event_id,
                        "stream_id": item.stream_id,
                        "stream_version": version,
                        "event_type": event.event_type,
                        "schema_version": event.schema_version,
                        "key": key,
                        "data": data,
                        "occurred_at": at,
                        "recorded_at": at,
                        "correlation_id": correlation,
                        "causation_id": None,
                        "actor": item.actor,
                    }
                )
            else:
                # The canonical form of ``RecordedEvent.hashed_fields()`` (keys sorted), put
                # together around the data's own canonical form: the one big value is encoded
                # once.
                body = (
                    (
                        f'{{"actor":{_string(item.actor)},"causation_id":null,'
                        f'"correlation_id":"{correlation}","data":'
                    ).encode()
                    + _dumps_sorted(data)
                    + (
                        f',"event_id":"{event_id}","event_type":{_string(event.event_type)},'
                        f'"key":{_string(key)},"occurred_at":"{at}","recorded_at":"{at}",'
                        f'"schema_version":{event.schema_version},'
                        f'"stream_id":{_string(item.stream_id)},"stream_version":{version}}}'
                    ).encode()
                )
            digest = hashlib.sha256(prev.encode("ascii") + body).hexdigest()
            if event.event_type == "attendance.MonthClosed":
                self._heads.pop(item.stream_id, None)  # the month takes nothing more
            else:
                self._heads[item.stream_id] = (version, digest)
            stream = item.stream_id.encode()
            at_bytes = at.encode()
            headers = [
                ("ce_specversion", b"1.0"),
                ("ce_id", event_id.encode()),
                ("ce_source", _SOURCES[item.service]),
                ("ce_type", event.event_type.encode()),
                ("ce_subject", stream),
                ("ce_time", at_bytes),
                ("content-type", b"application/json"),
                ("ce_stream", stream),
                ("ce_streamversion", str(version).encode()),
                ("ce_position", str(position).encode()),
                ("ce_schemaversion", str(event.schema_version).encode()),
                ("ce_partitionkey", key.encode()),
                ("ce_recordedtime", at_bytes),
                ("ce_correlationid", correlation.encode()),
                ("ce_prevhash", prev.encode()),
                ("ce_hash", digest.encode()),
                ("ce_actor", item.actor.encode()),
            ]
            value = json.dumps(
                jsonb_order(data), ensure_ascii=False, separators=(",", ":")
            ).encode()
            recorded = None
            if self._keep:
                recorded = RecordedEvent(
                    event_id=uuid.UUID(event_id),
                    stream_id=item.stream_id,
                    stream_version=version,
                    global_position=position,
                    event_type=event.event_type,
                    schema_version=event.schema_version,
                    key=key,
                    data=jsonb_order(data),
                    occurred_at=item.at,
                    recorded_at=item.at,
                    correlation_id=uuid.UUID(correlation),
                    causation_id=None,
                    actor=item.actor,
                    prev_hash=prev,
                    hash=digest,
                )
            out.append(
                Record(item.service, event.event_type, key.encode(), value, headers, recorded)
            )
        return out


@dataclass
class _Partitioned:
    """A producer writing through one open batch per partition."""

    producer: AIOKafkaProducer
    partitions: dict[str, list[int]]
    in_flight: int = 64

    def __post_init__(self) -> None:
        self._partitioner = DefaultPartitioner()
        self._batches: dict[tuple[str, int], Any] = {}
        self._pending: list[asyncio.Future[Any]] = []
        #: (topic, key) -> partition: keys repeat (a cadre's every event), murmur2 is Python.
        self._slots: dict[tuple[str, bytes], tuple[str, int]] = {}

    async def send(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        slot = self._slots.get((topic, key))
        if slot is None:
            partitions = self.partitions[topic]
            slot = (topic, self._partitioner(key, partitions, partitions))
            if len(self._slots) > 200_000:
                self._slots.clear()
            self._slots[(topic, key)] = slot
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self._ship(slot)
            batch = self._batches[slot] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")

    async def _ship(self, slot: tuple[str, int]) -> None:
        batch = self._batches.pop(slot)
        batch.close()
        self._pending.append(await self.producer.send_batch(batch, slot[0], partition=slot[1]))
        if len(self._pending) >= self.in_flight:
            done, self._pending = (
                self._pending[: self.in_flight // 2],
                self._pending[self.in_flight // 2 :],
            )
            await asyncio.gather(*done)

    async def flush(self) -> None:
        for slot in list(self._batches):
            if self._batches[slot].record_count():
                await self._ship(slot)
            else:
                self._batches.pop(slot)
        await asyncio.gather(*self._pending)
        self._pending = []


async def write_topics(
    scenario: Scenario,
    bootstrap: str | None = None,
    *,
    check_ins: bool = False,
    settings: KafkaSettings | None = None,
    compression: str | None = None,
    linger_ms: int = 50,
    batch_bytes: int = 1 << 20,
    workers: int = 1,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Write the scenario's events to the three topics (created when missing, with the
    settings' partitions); returns the counts. ``workers`` > 1 runs the counties in that many
    processes."""
    settings = settings or KafkaSettings()
    if bootstrap:
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
    report = _report(scenario)
    started = time.perf_counter()
    await ensure_topics(settings, [event_topic(t, settings) for t, _ in TOPICS.values()])
    codes = [c for c in scenario.county_codes if only is None or c in only]
    workers = max(1, min(workers, len(codes)))
    if workers == 1:
        await _write(
            scenario,
            settings,
            codes,
            check_ins,
            compression,
            linger_ms,
            batch_bytes,
            0,
            1,
            report,
            progress,
        )
    else:
        shares = [codes[w::workers] for w in range(workers)]
        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                loop.run_in_executor(
                    pool,
                    _worker,
                    scenario.args,
                    settings.model_dump(mode="json"),
                    share,
                    check_ins,
                    compression,
                    linger_ms,
                    batch_bytes,
                    w,
                    workers,
                )
                for w, share in enumerate(shares)
            ]
            for result in await asyncio.gather(*futures):
                part = Report(**result)
                report.merge(part)
    report.seconds = time.perf_counter() - started
    report.extra["check_ins_written"] = check_ins
    report.extra["workers"] = workers
    report.extra["compression"] = compression
    return report


def _report(scenario: Scenario) -> Report:
    return Report(
        mode="topics",
        seed=scenario.seed,
        cadres=len(scenario.plans),
        counties=scenario.county_codes,
        behaviours=scenario.behaviour_counts(),
        term_start=scenario.calendar.term_start.isoformat(),
        term_end=scenario.calendar.term_end.isoformat(),
        today=scenario.calendar.today.isoformat(),
    )


def _worker(
    args: ScenarioArgs,
    settings: dict[str, Any],
    codes: list[str],
    check_ins: bool,
    compression: str | None,
    linger_ms: int,
    batch_bytes: int,
    worker: int,
    workers: int,
) -> dict[str, Any]:
    """One worker process: regenerate the scenario, write its counties; the counts back."""
    scenario = args.generate()
    report = _report(scenario)
    asyncio.run(
        _write(
            scenario,
            KafkaSettings.model_validate(settings),
            codes,
            check_ins,
            compression,
            linger_ms,
            batch_bytes,
            worker,
            workers,
            report,
            None,
        )
    )
    return {
        "mode": report.mode,
        "seed": report.seed,
        "cadres": report.cadres,
        "counties": report.counties,
        "behaviours": report.behaviours,
        "term_start": report.term_start,
        "term_end": report.term_end,
        "today": report.today,
        "commands": report.commands,
        "events": report.events,
    }


async def _write(
    scenario: Scenario,
    settings: KafkaSettings,
    codes: Sequence[str],
    check_ins: bool,
    compression: str | None,
    linger_ms: int,
    batch_bytes: int,
    worker: int,
    workers: int,
    report: Report,
    progress: Progress | None,
) -> None:
    engine = Engine(scenario, check_ins=check_ins)
    envelopes = Envelopes(scenario.prefix, worker=worker, workers=workers)
    producer = AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=batch_bytes,
        max_request_size=max(batch_bytes * 2, 1 << 20),
        compression_type=compression,
    )
    await producer.start()
    try:
        partitions = {
            topic: sorted(await producer.partitions_for(topic)) for topic, _ in TOPICS.values()
        }
        out = _Partitioned(producer, partitions)
        for phase in scenario.phases(only=codes):
            began = time.perf_counter()
            written = 0
            for action in phase.actions:
                report.commands[action.kind] += 1
                for record in envelopes.records(engine.apply(action)):
                    await out.send(
                        TOPICS[record.service][0], record.key, record.value, record.headers
                    )
                    report.events[record.event_type] += 1
                    written += 1
            if progress is not None and written:
                progress(f"{phase.name}: {written:,} events in {time.perf_counter() - began:.1f} s")
        await out.flush()
    finally:
        await producer.stop()


__all__ = ["Envelopes", "Record", "canonical", "jsonb_order", "write_topics"]
