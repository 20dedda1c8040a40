"""Broker factory and per-message log context, without a broker (FastStream's in-memory
test broker is enough for handler-level behaviour; delivery is proven in test_kafka.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import structlog
from faststream.kafka import TestKafkaBroker
from faststream.security import BaseSecurity, SASLScram512

from zhucun.shared.kafka import broker_security, client_options, make_broker
from zhucun.shared.settings import KafkaSettings

pytestmark = pytest.mark.unit


def test_plaintext_has_no_security() -> None:
    assert broker_security(KafkaSettings()) is None
    assert client_options(KafkaSettings())["security_protocol"] == "PLAINTEXT"


def test_sasl_ssl_with_scram() -> None:
    settings = KafkaSettings(
        bootstrap_servers="zhucun-kafka-bootstrap:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="dispatch",
        sasl_password="s3cret",
    )
    security = broker_security(settings)
    assert isinstance(security, SASLScram512)
    assert security.use_ssl
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_ssl_with_a_ca_file(tmp_path: Path) -> None:
    # Any PEM CA bundle will do for building the context; the system's is at hand.
    cafile = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    settings = KafkaSettings(security_protocol="SSL", ssl_cafile=cafile)
    security = broker_security(settings)
    assert isinstance(security, BaseSecurity)
    assert security.use_ssl
    assert isinstance(security.ssl_context, ssl.SSLContext)


async def test_each_message_is_handled_with_its_correlation_id_bound() -> None:
    broker = make_broker(KafkaSettings())
    seen: list[dict[str, object]] = []

    @broker.subscriber("unit.topic")
    async def handle(body: dict[str, object]) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            {"n": 1}, "unit.topic", headers={"ce_correlationid": "corr-1", "ce_id": "e-1"}
        )
        await test_broker.publish({"n": 2}, "unit.topic", correlation_id="corr-2")

    assert seen[0]["correlation_id"] == "corr-1"
    assert seen[0]["event_id"] == "e-1"
    assert seen[1]["correlation_id"] == "corr-2"  # falls back to FastStream's own id
    assert "event_id" not in seen[1] or seen[1]["event_id"] is None
    assert "correlation_id" not in structlog.contextvars.get_contextvars()  # nothing leaks
