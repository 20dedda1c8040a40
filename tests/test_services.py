"""Every service starts from its composition root against the real Kafka and PostgreSQL,
reports ready, and publishes what it stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from importlib import import_module
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.service import ServiceRuntime
from zhucun.shared.settings import KafkaSettings, PostgresSettings, ServiceSettings
from zhucun.shared.store import NO_STREAM

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


def settings_for(name: str, kafka_bootstrap: str, dsn: str) -> ServiceSettings:
    return ServiceSettings(
        service_name=name,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=2),
        postgres=PostgresSettings(dsn=SecretStr(dsn)),
    )


@pytest.mark.parametrize("name", [*WRITERS, "projections"])
def test_service_starts_and_is_ready(name: str, kafka_bootstrap: str, fresh_database: str) -> None:
    module = import_module(f"zhucun.{name}.app")
    app = module.create_app(settings_for(name, kafka_bootstrap, fresh_database))
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
    app = module.create_app(settings_for(name, kafka_bootstrap, fresh_database))
    with TestClient(app) as client:
        runtime: ServiceRuntime = app.state.runtime
        event = NewEvent(
            event=Probe(village_id="v1"), metadata=EventMetadata(occurred_at=datetime.now(UTC))
        )
        append = partial(
            runtime.event_store().append, f"probe-{name}", [event], expected_version=NO_STREAM
        )
        client.portal.call(append)
        assert runtime.relay is not None
        deadline = time.monotonic() + 20
        while client.portal.call(runtime.relay.lag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.portal.call(runtime.relay.lag) == 0
        metrics = client.get("/metrics").text
        assert 'zhucun_relay_published_events_total{relay="relay"} 1.0' in metrics
