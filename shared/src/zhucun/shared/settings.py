"""Typed settings for every Zhucun process (12-factor: environment variables).

Each service builds one ``ServiceSettings`` (or a subclass) and hands it to its
composition root ``create_app(settings)``. Nothing reads the environment anywhere else.

Environment variables use the ``ZHUCUN_`` prefix and ``__`` for nesting, e.g.
``ZHUCUN_KAFKA__BOOTSTRAP_SERVERS=kafka:9092`` or ``ZHUCUN_POSTGRES__DSN=postgresql://...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The HS256 secret used when none is configured. Refused in production.
DEVELOPMENT_JWT_SECRET = "zhucun-development-secret-do-not-use-in-production"


class KafkaSettings(BaseModel):
    """How to reach Kafka. PLAINTEXT is for development; production uses SASL_SSL or SSL."""

    #: Defaults everywhere point at the local servers of `zhucun infra up`.
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: CA bundle that signed the brokers' certificates (Strimzi: ``<cluster>-cluster-ca-cert``).
    ssl_cafile: Path | None = None
    #: Client certificate and key for mutual TLS (Strimzi TLS users: ``user.crt``/``user.key``).
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    client_id: str = "zhucun"
    #: Partitions and replication for topics this process creates (it never shrinks them).
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        complete = self.sasl_mechanism and self.sasl_username and self.sasl_password
        if self.security_protocol.startswith("SASL_") and not complete:
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        return self


#: The server of ``zhucun infra up``, where each service has a database of its own name.
LOCAL_POSTGRES = "postgresql://zhucun:zhucun@127.0.0.1:15432/"


class PostgresSettings(BaseModel):
    """The service's own database. ``schema_name`` lets tests isolate themselves."""

    dsn: SecretStr = SecretStr(LOCAL_POSTGRES + "zhucun")
    schema_name: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)


def local_database(name: str) -> PostgresSettings:
    """The database ``name`` on the local server (``zhucun infra up``): a service's default."""
    return PostgresSettings(dsn=SecretStr(LOCAL_POSTGRES + name))


class AuthSettings(BaseModel):
    """Bearer-token verification: HS256 (shared secret) in development, RS256 in production."""

    algorithm: Literal["HS256", "RS256"] = "HS256"
    secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    #: PEM public key for RS256; or a JWKS file (keys chosen by ``kid``).
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str = "zhucun"
    audience: str = "zhucun"
    leeway_seconds: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _key_material(self) -> Self:
        if self.algorithm == "RS256" and not (self.public_key_file or self.jwks_file):
            raise ValueError("RS256 needs public_key_file or jwks_file")
        return self


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``auto``: console when stderr is a terminal, JSON otherwise.
    format: Literal["auto", "json", "console"] = "auto"


class HealthSettings(BaseModel):
    """What ``/health/ready`` and the health gauges call stalled."""

    #: A relay or projection runner with events waiting and no progress for this long is
    #: ``stalled`` (``zhucun_relay_stalled``, ``zhucun_projection_stalled``).
    stall_seconds: float = Field(default=120.0, gt=0)
    #: How often the monitor refreshes those gauges.
    refresh_seconds: float = Field(default=5.0, gt=0)


#: The repository's policy packs (``shared/src/zhucun/shared/settings.py`` -> repo root).
DEFAULT_POLICIES_DIR = Path(__file__).resolve().parents[4] / "policies"


class ServiceSettings(BaseSettings):
    """Settings shared by every service; services subclass it for their own fields."""

    model_config = SettingsConfigDict(
        env_prefix="ZHUCUN_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    service_name: str = "zhucun"
    environment: Literal["development", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    auth: AuthSettings = AuthSettings()
    log: LogSettings = LogSettings()
    health: HealthSettings = HealthSettings()
    #: Folder of the policy packs (``*.toml``) the service applies; a deployment mounts its
    #: own and sets ``ZHUCUN_POLICIES_DIR``. The default is the repository's ``policies/``.
    policies_dir: Path = DEFAULT_POLICIES_DIR

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> Self:
        if self.environment != "production":
            return self
        problems = []
        if self.kafka.security_protocol == "PLAINTEXT":
            problems.append("kafka.security_protocol must not be PLAINTEXT in production")
        if (
            self.auth.algorithm == "HS256"
            and self.auth.secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
        ):
            problems.append("auth.secret is the development secret; use RS256 or a real secret")
        if problems:
            raise ValueError("; ".join(problems))
        return self
