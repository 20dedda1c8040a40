"""Kafka plumbing around FastStream: the broker factory, topics, dead letters, log context.

Every process builds its broker with ``make_broker(settings)``: PLAINTEXT for development,
SSL (mutual TLS) or SASL_SSL with SCRAM in production, from the same settings object.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import BaseMiddleware, StreamMessage
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from zhucun.shared.settings import KafkaSettings

#: Kafka's error code for "topic already exists" (CreateTopics response).
_TOPIC_ALREADY_EXISTS = 36

DLQ_SUFFIX = ".dlq"


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL: the brokers' CA, and a client certificate for mTLS."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile:
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    return context


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    context = ssl_context(settings)
    if not settings.security_protocol.startswith("SASL_"):
        return BaseSecurity(ssl_context=context) if context else None
    assert settings.sasl_username
    assert settings.sasl_password
    user, password = settings.sasl_username, settings.sasl_password.get_secret_value()
    use_ssl = settings.security_protocol == "SASL_SSL"
    sasl = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512, "PLAIN": SASLPlaintext}
    return sasl[settings.sasl_mechanism or "PLAIN"](
        user, password, ssl_context=context, use_ssl=use_ssl
    )


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for plain aiokafka clients (admin, raw consumers) from settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
        "client_id": settings.client_id,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def make_broker(
    settings: KafkaSettings,
    *,
    client_id: str | None = None,
    middlewares: Sequence[Any] = (),
    **options: Any,
) -> KafkaBroker:
    """A FastStream broker whose producer is idempotent (``acks=all``, no reordering or
    duplicates from its own retries). Nothing connects until the broker is started."""
    return KafkaBroker(
        settings.bootstrap_servers,
        security=broker_security(settings),
        client_id=client_id or settings.client_id,
        enable_idempotence=True,
        middlewares=(CorrelationLogContext, *middlewares),
        logger=structlog.get_logger("faststream"),
        **options,
    )


# --- topics --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def event_topic(name: str, settings: KafkaSettings) -> TopicSpec:
    """An event topic keeps everything: auditors and new projections replay from offset 0."""
    return TopicSpec(
        name,
        settings.topic_partitions,
        settings.topic_replication_factor,
        {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    )


def dlq_topic(source: str, settings: KafkaSettings) -> TopicSpec:
    """Dead letters are kept too: each one is evidence that something needs a person."""
    return TopicSpec(
        source + DLQ_SUFFIX,
        1,
        settings.topic_replication_factor,
        {"retention.ms": "-1", "retention.bytes": "-1"},
    )


class TopicSetupError(Exception):
    pass


async def ensure_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, leader_wait_seconds: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Existing topics are
    left as they are (partitions are never shrunk, configs never silently rewritten)."""
    wanted = list(specs)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config))
                for s in missing
            ]
        )
        failures = [
            f"{topic}: {message or code}"
            for topic, code, message in _topic_errors(response)
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise TopicSetupError("could not create topics: " + "; ".join(failures))
        created = [s.name for s in missing]
        await _await_leaders(admin, created, leader_wait_seconds)
        return created
    finally:
        await admin.close()


async def _await_leaders(admin: AIOKafkaAdminClient, topics: list[str], seconds: float) -> None:
    """A topic is usable once every partition has a leader; until then producers get
    NotLeaderForPartition and retry, which is noise at best."""
    async with asyncio.timeout(seconds):
        while True:
            described = await admin.describe_topics(topics)
            ready = all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
            if ready:
                return
            await asyncio.sleep(0.1)


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    # CreateTopicsResponse v0 has (topic, code); later versions add the message.
    return [(e[0], e[1], e[2] if len(e) > 2 else None) for e in response.topic_errors]


# --- dead letters --------------------------------------------------------------------------


class DeadLetterPublisher:
    """Parks a record that cannot be processed on ``<topic>.dlq`` with the reason in headers.

    The original key, value and headers are kept byte for byte, so the record can be
    re-published once the cause is fixed.
    """

    def __init__(self, publish: Callable[..., Awaitable[Any]]) -> None:
        #: ``broker.publish``; injected so a test can observe it.
        self._publish = publish

    async def send(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]],
        reason: str,
        error: BaseException | None = None,
    ) -> None:
        dlq_headers = {name: raw.decode(errors="replace") for name, raw in headers}
        dlq_headers.update(
            {
                "x-dlq-reason": reason,
                "x-dlq-error": repr(error) if error else "",
                "x-dlq-source-topic": topic,
                "x-dlq-source-partition": str(partition),
                "x-dlq-source-offset": str(offset),
                "x-dlq-failed-at": datetime.now(UTC).isoformat(),
            }
        )
        await self._publish(value or b"", topic + DLQ_SUFFIX, key=key, headers=dlq_headers)


# --- log context ---------------------------------------------------------------------------


class CorrelationLogContext(BaseMiddleware):
    """Binds the message's correlation id (and CloudEvent id) to log lines while it is handled.

    Bound per message and reset afterwards: a subscriber handles messages one after another in
    one task, so a plain ``bind_contextvars`` would leak into the next message.
    """

    async def consume_scope(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        headers = msg.headers or {}
        with structlog.contextvars.bound_contextvars(
            correlation_id=headers.get("ce_correlationid") or msg.correlation_id,
            event_id=headers.get("ce_id"),
        ):
            return await call_next(msg)
