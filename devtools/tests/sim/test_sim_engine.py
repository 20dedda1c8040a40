"""The events the topics writer publishes are the services' own: the fast attendance path
equals attendance's deciders event for event, dispatch and assessment run their deciders
(which accept every generated command), and the records equal what the relay builds."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import pytest
import rfc8785

from zhucun.shared.envelope import from_kafka, to_kafka
from zhucun.sim import generate
from zhucun.sim.engine import Engine, run
from zhucun.sim.topics import TOPICS, Envelopes, canonical, jsonb_order

pytestmark = pytest.mark.unit

TODAY = date(2025, 11, 23)


@pytest.mark.parametrize(
    ("seed", "cadres", "kwargs"),
    [
        (3, 20, {}),
        (8, 18, {"start": date(2022, 2, 1)}),  # a term that ended long ago
        (9, 16, {"start": date(2024, 10, 1)}),  # a term still running
        (11, 15, {"codes": ["513427"], "today": date(2026, 3, 3)}),  # Liangshan's pack
    ],
)
def test_the_fast_path_is_attendances_deciders(seed: int, cadres: int, kwargs: Any) -> None:
    kwargs.setdefault("today", TODAY)
    scenario = generate(seed, cadres, **kwargs)
    strict = [(e.stream_id, e.event.to_data(), e.at, e.actor) for e in run(scenario, strict=True)]
    fast = [(e.stream_id, e.event.to_data(), e.at, e.actor) for e in run(scenario, strict=False)]
    assert len(strict) == len(fast)
    for one, other in zip(strict, fast, strict=True):
        assert one == other


def test_the_month_closes_are_the_plans() -> None:
    scenario = generate(5, 20, today=TODAY)
    seen = 0
    for emitted in run(scenario, check_ins=False):
        if emitted.event.event_type == "attendance.MonthClosed":
            data = emitted.event.to_data()
            figures = scenario.month_plan(data["cadre_id"], data["month"]).figures
            assert figures is not None
            expected = dataclasses.asdict(figures)
            assert {name: data[name] for name in expected} == expected
            seen += 1
    assert seen == 20 * len(scenario.calendar.months)


def test_records_are_the_relays() -> None:
    scenario = generate(4, 16, today=TODAY)
    engine = Engine(scenario, check_ins=True)
    envelopes = Envelopes(scenario.prefix, keep=True)
    types = set()
    heads: dict[str, str] = {}
    for phase in scenario.phases():
        for action in phase.actions:
            for record in envelopes.records(engine.apply(action)):
                recorded = record.recorded
                assert recorded is not None
                kafka = to_kafka(recorded, source=TOPICS[record.service][1])
                assert kafka.key == record.key
                assert kafka.value == record.value
                assert kafka.headers == {k: v.decode() for k, v in record.headers}
                assert recorded.computed_hash() == recorded.hash
                assert recorded.prev_hash == heads.get(recorded.stream_id, "0" * 64)
                heads[recorded.stream_id] = recorded.hash
                parsed, source = from_kafka(record.headers, record.value)
                assert parsed == recorded
                assert source == TOPICS[record.service][1]
                types.add(record.event_type)
    assert len(types) >= 30


def test_same_seed_same_event_ids() -> None:
    def ids() -> list[str]:
        scenario = generate(6, 12, today=TODAY)
        engine, envelopes = Engine(scenario, check_ins=False), Envelopes(scenario.prefix)
        return [
            dict(r.headers)["ce_id"].decode()
            for phase in scenario.phases()
            for action in phase.actions
            for r in envelopes.records(engine.apply(action))
        ]

    first = ids()
    assert first == ids()
    assert len(set(first)) == len(first)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1, 2, {"z": None, "y": True}], "c": '驻村 \u0001\n"\\ ok'},
        {"score": 100.0, "parts": [87.5, 0.1, 1e21, -0.0], "n": 3},
        {"x": "\u2028\u2029 \x7f"},
    ],
)
def test_canonical_is_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_jsonb_order() -> None:
    data = {"month": 1, "cadre_id": "c", "village_id": "v", "day": {"bb": 1, "a": 2, "ab": 3}}
    assert json.dumps(jsonb_order(data)) == (
        '{"day": {"a": 2, "ab": 3, "bb": 1}, "month": 1, "cadre_id": "c", "village_id": "v"}'
    )
