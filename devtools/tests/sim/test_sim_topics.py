"""The topics writer against a real broker: every record is a valid CloudEvent as the relays
publish them, each stream's hash chain holds, a key stays on one partition, the counts are
the report's, and the same seed writes the same event ids again."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import TYPE_CHECKING

import pytest

from zhucun.shared.events import GENESIS_HASH
from zhucun.sim import Scenario, generate, write_topics
from zhucun.sim.topics import TOPICS

if TYPE_CHECKING:
    from sim_system import KeyReader

    from zhucun.shared.testing import PublishedEvent

pytestmark = pytest.mark.integration

TODAY = date(2025, 11, 23)


async def records_of(
    read_keys: KeyReader, bootstrap: str, scenario: Scenario
) -> dict[str, list[PublishedEvent]]:
    """The scenario's records (ids carry its prefix; county-keyed events its counties), each
    event once: a broker kept between sessions may hold an earlier run of the same seed,
    which wrote the same event ids (consumers drop the repeats the same way)."""
    out: dict[str, list[PublishedEvent]] = {}
    for topic, _ in TOPICS.values():
        seen: set[object] = set()
        out[topic] = []
        for p in await read_keys(
            bootstrap, topic, prefix=f"{scenario.prefix}-", keys=frozenset(scenario.county_codes)
        ):
            if p.event.event_id not in seen:
                seen.add(p.event.event_id)
                out[topic].append(p)
    return out


async def test_a_county_onto_the_topics(kafka_bootstrap: str, key_reader: KeyReader) -> None:
    scenario = generate(61, 12, today=TODAY)
    report = await write_topics(scenario, kafka_bootstrap, check_ins=True)
    published = await records_of(key_reader, kafka_bootstrap, scenario)

    counted = Counter(p.event.event_type for records in published.values() for p in records)
    assert counted == report.events
    assert counted["attendance.CheckInRecorded"] > 0
    assert counted["attendance.MonthClosed"] == 12 * len(scenario.calendar.months)
    assert counted["assessment.TermAssessed"] == 12

    partition_of: dict[bytes | None, set[int]] = defaultdict(set)
    streams: dict[str, list[PublishedEvent]] = defaultdict(list)
    for records in published.values():
        for p in records:
            assert p.key == p.event.key.encode()
            partition_of[p.key].add(p.partition)
            streams[p.event.stream_id].append(p)
    assert all(len(partitions) == 1 for partitions in partition_of.values())
    for stream, records in streams.items():
        records.sort(key=lambda p: p.event.stream_version)
        assert [p.event.stream_version for p in records] == list(range(1, len(records) + 1))
        previous = GENESIS_HASH
        for p in records:
            assert p.event.prev_hash == previous, stream
            assert p.event.computed_hash() == p.event.hash, stream
            previous = p.event.hash


async def test_workers_split_the_counties_and_rerun_is_idempotent(
    kafka_bootstrap: str, key_reader: KeyReader
) -> None:
    scenario = generate(62, 24, counties=2, today=TODAY)
    report = await write_topics(scenario, kafka_bootstrap, workers=2)
    assert report.extra["workers"] == 2
    again = await write_topics(scenario, kafka_bootstrap)
    assert again.events == report.events

    prefix, counties = f"{scenario.prefix}-", frozenset(scenario.county_codes)
    copies: Counter[object] = Counter()
    for topic, _ in TOPICS.values():
        for p in await key_reader(kafka_bootstrap, topic, prefix=prefix, keys=counties):
            copies[p.event.event_id] += 1
    # Two processes wrote the two counties; the second run wrote the very same event ids.
    assert len(copies) == sum(report.events.values())
    assert min(copies.values()) >= 2
