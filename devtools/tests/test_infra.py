"""The servers every integration test relies on really work: Kafka, PostgreSQL, a restart."""

from __future__ import annotations

import uuid

import asyncpg
import jwt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from zhucun.cli.main import app
from zhucun.infra import KafkaServer, PostgresLike
from zhucun.shared.settings import AuthSettings


async def _create_topic(bootstrap: str) -> str:
    # Topics are created explicitly: the local broker does not auto-create them.
    topic = f"test.infra.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for index, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(index).encode())
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        while len(received) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            received.extend(
                record.value for records in batches.values() for record in records if record.value
            )
    finally:
        await consumer.stop()
    return received


@pytest.mark.integration
async def test_kafka_round_trip(kafka_bootstrap: str) -> None:
    topic = await _create_topic(kafka_bootstrap)
    values = [b"first", "驻村".encode()]

    await _produce(kafka_bootstrap, topic, values)

    assert await _consume(kafka_bootstrap, topic, len(values)) == values


@pytest.mark.integration
async def test_postgres_answers_on_a_created_database(fresh_database: str) -> None:
    connection = await asyncpg.connect(fresh_database)
    try:
        assert await connection.fetchval("select 1") == 1
        assert (
            await connection.fetchval("select current_database()")
            == (fresh_database.rsplit("/", 1)[1])
        )
    finally:
        await connection.close()


@pytest.mark.integration
async def test_create_database_is_idempotent(postgres_server: PostgresLike) -> None:
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    postgres_server.create_database(name)
    try:
        connection = await asyncpg.connect(postgres_server.dsn(name))
        await connection.close()
    finally:
        postgres_server.drop_database(name)


@pytest.mark.integration
async def test_kafka_restart_keeps_topic_data(kafka_server: KafkaServer) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic = await _create_topic(bootstrap)
    await _produce(bootstrap, topic, [b"before-restart"])
    old_pid = kafka_server.pid

    await kafka_server.arestart()

    assert kafka_server.pid != old_pid
    assert kafka_server.bootstrap_servers == bootstrap
    await _produce(bootstrap, topic, [b"after-restart"])
    assert await _consume(bootstrap, topic, 2) == [b"before-restart", b"after-restart"]


@pytest.mark.unit
def test_token_command_prints_only_a_verifiable_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHUCUN_AUTH__SECRET", "a-test-secret-of-enough-length-for-hs256")
    result = CliRunner().invoke(
        app, ["token", "--role", "township", "--county", "c-1", "--township", "t-1"]
    )

    assert result.exit_code == 0, result.output
    settings = AuthSettings(secret="a-test-secret-of-enough-length-for-hs256")
    claims = jwt.decode(
        result.stdout.strip(),
        settings.secret.get_secret_value(),
        algorithms=["HS256"],
        audience=settings.audience,
        issuer=settings.issuer,
    )
    assert claims["role"] == "township"
    assert (claims["county"], claims["township"]) == ("c-1", "t-1")
    assert claims["sub"] == "dev-township"
