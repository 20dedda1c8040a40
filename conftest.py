"""Session fixtures for the real Kafka and PostgreSQL every integration test runs against.

Where each server comes from, in this order:

1. ``ZHUCUN_TEST_KAFKA_BOOTSTRAP`` / ``ZHUCUN_TEST_POSTGRES_DSN`` (an admin DSN): a server
   someone already runs;
2. testcontainers, when a Docker engine answers;
3. local processes (``zhucun.infra``) in a temporary folder on free ports, stopped at the end.

``ZHUCUN_TEST_INFRA=local`` (or ``docker``) skips the Docker probe and forces that choice.
The same tests run in every case; only ``kafka_server`` (broker restarts) needs a local broker.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from running_services import running_system

from zhucun.infra import ExternalPostgres, KafkaServer, PostgresLike, PostgresServer

KAFKA_BOOTSTRAP_ENV = "ZHUCUN_TEST_KAFKA_BOOTSTRAP"
POSTGRES_DSN_ENV = "ZHUCUN_TEST_POSTGRES_DSN"
INFRA_CHOICE_ENV = "ZHUCUN_TEST_INFRA"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:16"


@dataclass(frozen=True)
class KafkaHandle:
    bootstrap_servers: str
    #: The broker process when this session runs it; None for env-var and container brokers.
    local_server: KafkaServer | None
    origin: str


@functools.cache
def docker_engine_answers() -> bool:
    choice = os.environ.get(INFRA_CHOICE_ENV, "").lower()
    if choice in ("local", "docker"):
        return choice == "docker"
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon: all mean "no Docker engine here"
        return False


@pytest.fixture(scope="session")
def local_infra_dir() -> Iterator[Path]:
    """A private folder for locally run servers, removed after the session."""
    path = Path(tempfile.mkdtemp(prefix="zhucun-test-"))
    # mkdtemp makes it 0700; PostgreSQL runs as the unprivileged 'postgres' user when we
    # are root and must be able to traverse into its own subfolder.
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_handle(request: pytest.FixtureRequest) -> Iterator[KafkaHandle]:
    bootstrap = os.environ.get(KAFKA_BOOTSTRAP_ENV)
    if bootstrap:
        yield KafkaHandle(bootstrap, None, KAFKA_BOOTSTRAP_ENV)
        return
    if docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield KafkaHandle(container.get_bootstrap_server(), None, "testcontainers")
        return
    root: Path = request.getfixturevalue("local_infra_dir")
    server = KafkaServer(root / "kafka", heap="512m")
    server.start()
    try:
        yield KafkaHandle(server.bootstrap_servers, server, "local process")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_handle: KafkaHandle) -> str:
    """``host:port`` of a running Kafka broker; topics are not auto-created locally."""
    return kafka_handle.bootstrap_servers


@pytest.fixture
def kafka_server(kafka_handle: KafkaHandle) -> Iterator[KafkaServer]:
    """The session's local broker, for tests that stop or restart it.

    Whatever the test did, the broker runs again afterwards, so no other test depends on
    the order tests run in.
    """
    server = kafka_handle.local_server
    if server is None:
        pytest.skip(
            f"needs a Kafka broker run by this session; this one comes from "
            f"{kafka_handle.origin} and cannot be restarted from here"
        )
    yield server
    if not server.is_running():
        server.start()


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresLike]:
    """A PostgreSQL server: ``.dsn(database)``, ``.create_database(name)`` (idempotent)."""
    admin_dsn = os.environ.get(POSTGRES_DSN_ENV)
    if admin_dsn:
        yield ExternalPostgres(admin_dsn)
        return
    if docker_engine_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield ExternalPostgres(container.get_connection_url())
        return
    root: Path = request.getfixturevalue("local_infra_dir")
    server = PostgresServer(root / "postgres")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_database(postgres_server: PostgresLike) -> Iterator[Callable[[], str]]:
    """Creates new, empty databases on demand (one per service of a multi-service test);
    all are dropped after the test."""
    names: list[str] = []

    def create() -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        postgres_server.create_database(name)
        names.append(name)
        return postgres_server.dsn(name)

    yield create
    for name in names:
        try:
            postgres_server.drop_database(name)
        except Exception as error:  # a leftover test database must not fail the test itself
            warnings.warn(f"could not drop test database {name}: {error}", stacklevel=1)


@pytest.fixture
def fresh_database(make_database: Callable[[], str]) -> str:
    """The DSN of a new, empty database of its own, dropped after the test."""
    return make_database()


@pytest.fixture
async def fresh_pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool to a new, empty database of its own (``fresh_database``)."""
    from zhucun.shared.store import create_pool

    pool = await create_pool(fresh_database)
    try:
        yield pool
    finally:
        await pool.close()


#: The four services as processes, shared by every test directory (``running_services``).
__all__ = ["running_system"]
