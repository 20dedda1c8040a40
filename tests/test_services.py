"""Every service starts from its composition root against the real Kafka and PostgreSQL,
reports ready, and publishes what it stores."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from importlib import import_module
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from served import VILLAGE

from zhucun.infra import KafkaServer
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.service import ServiceRuntime
from zhucun.shared.settings import (
    HealthSettings,
)
from zhucun.shared.store import MAX_EVENT_BYTES, NO_STREAM, EventTooLarge
from zhucun.shared.testing import portal, service_settings, wait_until_published

pytestmark = pytest.mark.integration

WRITERS = ["dispatch", "attendance", "assessment"]
#: Services with an event store and a relay (the projections publish recall decisions).
PUBLISHERS = [*WRITERS, "projections"]


class Probe(DomainEvent):
    event_type: ClassVar[str] = "test.Probe"
    key_field: ClassVar[str] = "village_id"
    village_id: str


#: The read models a service keeps from other topics, as its readiness body reports them.
PROJECTIONS = {
    "attendance": {"attendance-dispatch-replica"},
    "assessment": {"assessment-dispatch-replica", "assessment-attendance-facts"},
    "projections": {"projections-audit-trail", "projections-decisions"},
}


@pytest.mark.parametrize("name", [*WRITERS, "projections"])
def test_service_starts_and_is_ready(name: str, kafka_bootstrap: str, fresh_database: str) -> None:
    module = import_module(f"zhucun.{name}.app")
    app = module.create_app(service_settings(name, kafka_bootstrap, fresh_database))
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        body = wait_for_kafka(client)
        # Only the database decides readiness; the rest is reported beside it.
        assert body["status"] == "ready"
        assert body["checks"] == {"postgres": "ok"}
        components = body["components"]
        expected = {"kafka"} | ({"relay"} if name in PUBLISHERS else set())
        expected |= {"projections"} if name in PROJECTIONS else set()
        assert set(components) == expected
        assert components["kafka"]["state"] == "connected"
        if name in PUBLISHERS:
            assert components["relay"]["state"] == "ok"
            assert components["relay"]["lag"] == 0
        if name in PROJECTIONS:
            assert set(components["projections"]) == PROJECTIONS[name]
            assert {r["state"] for r in components["projections"].values()} <= {"ok", "behind"}
        assert body["attention"] == []
        assert client.get("/metrics").status_code == 200


def wait_for_kafka(client: TestClient, seconds: float = 30) -> dict[str, Any]:
    """The readiness body once the service reports Kafka connected (it starts without)."""
    deadline = time.monotonic() + seconds
    while True:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body: dict[str, Any] = ready.json()
        if body["components"]["kafka"]["state"] == "connected" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


@pytest.mark.parametrize("name", WRITERS)
def test_service_publishes_what_it_stores(
    name: str, kafka_bootstrap: str, fresh_database: str
) -> None:
    module = import_module(f"zhucun.{name}.app")
    app = module.create_app(service_settings(name, kafka_bootstrap, fresh_database))
    with TestClient(app) as client:
        runtime: ServiceRuntime = app.state.runtime
        event = NewEvent(
            event=Probe(village_id="v1"), metadata=EventMetadata(occurred_at=datetime.now(UTC))
        )
        append = partial(
            runtime.event_store().append, f"probe-{name}", [event], expected_version=NO_STREAM
        )
        portal(client).call(append)
        wait_until_published(client)
        metrics = client.get("/metrics").text
        assert 'zhucun_relay_published_events_total{relay="relay"} 1.0' in metrics


class Oversized(DomainEvent):
    """An event larger than the broker accepts (a record over 1 MiB)."""

    event_type: ClassVar[str] = "test.Oversized"
    key_field: ClassVar[str] = "village_id"
    village_id: str
    padding: str


def test_the_store_refuses_an_event_the_broker_would_refuse_and_the_relay_stays_ok(
    kafka_bootstrap: str, fresh_database: str
) -> None:
    """An event above ``MAX_EVENT_BYTES`` never enters the outbox, so it can never stall the
    relay for every county (the relay's own stall report, for a topic that refuses less than
    that, is ``shared/tests/test_relay.py``'s)."""
    settings = service_settings("dispatch", kafka_bootstrap, fresh_database).model_copy(
        update={"health": HealthSettings(stall_seconds=2, refresh_seconds=0.2)}
    )
    app = import_module("zhucun.dispatch.app").create_app(settings)
    with TestClient(app) as client:
        wait_for_kafka(client)
        runtime: ServiceRuntime = app.state.runtime
        event = NewEvent(
            event=Oversized(village_id="v-big", padding="x" * 2_000_000),
            metadata=EventMetadata(occurred_at=datetime.now(UTC)),
        )
        append = partial(runtime.event_store().append, "big-1", [event], expected_version=NO_STREAM)
        with pytest.raises(EventTooLarge) as refused:
            portal(client).call(append)
        assert refused.value.limit == MAX_EVENT_BYTES
        assert refused.value.size > 2_000_000
        stored = portal(client).call(runtime.event_store().read_stream, "big-1")
        assert list(stored) == []
        time.sleep(0.5)  # a few relay rounds
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["components"]["relay"]["state"] == "ok"
        assert ready.json()["attention"] == []


def test_a_service_starts_without_kafka_takes_commands_and_publishes_when_it_comes(
    kafka_server: KafkaServer, fresh_database: str
) -> None:
    from zhucun.shared.auth import mint_token
    from zhucun.shared.testing import read_topic

    bootstrap = kafka_server.bootstrap_servers
    settings = service_settings("dispatch", bootstrap, fresh_database)
    county = f"53{uuid.uuid4().int % 10_000:04d}"
    village_id = f"v-{uuid.uuid4().hex[:8]}"
    headers = {
        "Authorization": "Bearer "
        + mint_token(settings.auth, subject="org_admin-1", role="org_admin", county=county)
    }
    kafka_server.stop()
    app = import_module("zhucun.dispatch.app").create_app(settings)
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["components"]["kafka"]["state"] == "connecting"
        created = client.post(
            f"/counties/{county}/villages",
            json=VILLAGE | {"village_id": village_id},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        relay = client.get("/health/ready").json()["components"]["relay"]
        assert (relay["state"], relay["lag"]) == ("behind", 1)

        kafka_server.start()
        body = wait_for_kafka(client, seconds=60)
        assert body["components"]["kafka"]["state"] == "connected"
        wait_until_published(client, seconds=30)
    published = asyncio.run(read_topic(bootstrap, "dispatch.events.v1"))
    mine = [p.event for p in published if p.event.data.get("village_id") == village_id]
    assert [e.event_type for e in mine] == ["dispatch.VillageRegistered"]
