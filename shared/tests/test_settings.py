"""Settings come from ZHUCUN_* environment variables and refuse unsafe production setups."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zhucun.shared.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.unit


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUCUN_SERVICE_NAME", "attendance")
    monkeypatch.setenv("ZHUCUN_KAFKA__BOOTSTRAP_SERVERS", "kafka-bootstrap:9093")
    monkeypatch.setenv("ZHUCUN_POSTGRES__DSN", "postgresql://app:pw@db-rw:5432/attendance")
    settings = ServiceSettings()
    assert settings.service_name == "attendance"
    assert settings.kafka.bootstrap_servers == "kafka-bootstrap:9093"
    assert settings.postgres.dsn.get_secret_value().endswith("/attendance")
    assert "pw" not in repr(settings)  # secrets never print


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL")
    ok = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="dispatch",
        sasl_password="secret",
    )
    assert ok.sasl_mechanism == "SCRAM-SHA-512"


def test_production_refuses_plaintext_and_the_development_secret() -> None:
    with pytest.raises(ValidationError) as err:
        ServiceSettings(environment="production")
    message = str(err.value)
    assert "PLAINTEXT" in message
    assert "development secret" in message


def test_schema_names_are_checked() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(postgres={"schema_name": "x; DROP TABLE events"})
