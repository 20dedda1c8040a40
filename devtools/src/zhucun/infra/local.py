"""The demo's local infrastructure: one Kafka broker and one PostgreSQL cluster per checkout.

``zhucun infra up`` starts them detached and records them in small JSON state files under
``.cache/infra/``, so ``zhucun infra status`` and ``zhucun infra down`` in another process
find them again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from zhucun.infra._common import InfraError, cache_dir, progress
from zhucun.infra.kafka import KafkaServer
from zhucun.infra.postgres import PostgresServer

#: One database per service: a service never writes another service's database.
SERVICE_DATABASES = ("dispatch", "attendance", "assessment", "projections")
DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_POSTGRES_PORT = 15432
DEFAULT_KAFKA_HEAP = "1g"


@dataclass(frozen=True)
class ServerStatus:
    name: str
    pid: int | None
    address: str | None
    up: bool
    detail: str


def infra_dir() -> Path:
    return cache_dir() / "infra"


def kafka_state_file() -> Path:
    return infra_dir() / "kafka.json"


def postgres_state_file() -> Path:
    return infra_dir() / "postgres.json"


def up(
    *,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    kafka_controller_port: int = DEFAULT_KAFKA_CONTROLLER_PORT,
    postgres_port: int = DEFAULT_POSTGRES_PORT,
    kafka_heap: str = DEFAULT_KAFKA_HEAP,
    data_dir: Path | None = None,
) -> tuple[KafkaServer, PostgresServer]:
    """Start what is not running yet; leave running servers alone (idempotent)."""
    root = data_dir or infra_dir()

    postgres = PostgresServer.from_state(postgres_state_file())
    if postgres is not None and postgres.is_running():
        progress(f"PostgreSQL already running at {postgres.address} (pid {postgres.pid})")
        _warn_if_moved("PostgreSQL", postgres.port, postgres_port)
    else:
        postgres = PostgresServer(
            root / "postgres", port=postgres_port, state_file=postgres_state_file(), detach=True
        )
        postgres.start()
    for database in SERVICE_DATABASES:
        postgres.create_database(database)

    kafka = KafkaServer.from_state(kafka_state_file())
    if kafka is not None and kafka.is_running():
        progress(f"Kafka already running at {kafka.bootstrap_servers} (pid {kafka.pid})")
        _warn_if_moved("Kafka", kafka.port, kafka_port)
    else:
        kafka = KafkaServer(
            root / "kafka",
            port=kafka_port,
            controller_port=kafka_controller_port,
            heap=kafka_heap,
            state_file=kafka_state_file(),
            detach=True,
        )
        kafka.start()
    return kafka, postgres


def down(*, purge: bool = False) -> list[str]:
    """Stop both servers (their data stays unless ``purge``); returns what was stopped."""
    stopped: list[str] = []
    kafka = KafkaServer.from_state(kafka_state_file())
    if kafka is not None:
        if kafka.is_running():
            kafka.stop()
            stopped.append("kafka")
        kafka_state_file().unlink(missing_ok=True)
    postgres = PostgresServer.from_state(postgres_state_file())
    if postgres is None:
        # No state file (deleted by hand?): a cluster in the default place may still run.
        postgres = PostgresServer(infra_dir() / "postgres")
    if postgres.is_running():
        postgres.stop()
        stopped.append("postgres")
    postgres_state_file().unlink(missing_ok=True)
    if purge:
        for folder in (infra_dir() / "kafka", infra_dir() / "postgres"):
            shutil.rmtree(folder, ignore_errors=True)
    return stopped


def status() -> list[ServerStatus]:
    """Each server as it really is: process alive *and* answering its own protocol."""
    result: list[ServerStatus] = []
    kafka = KafkaServer.from_state(kafka_state_file())
    if kafka is None:
        result.append(ServerStatus("kafka", None, None, False, "not started (no state file)"))
    elif not kafka.is_running():
        result.append(
            ServerStatus("kafka", kafka.pid, kafka.bootstrap_servers, False, "process not running")
        )
    else:
        answers = kafka.ping()
        detail = "answers DescribeCluster" if answers else "process runs but does not answer"
        result.append(ServerStatus("kafka", kafka.pid, kafka.bootstrap_servers, answers, detail))

    postgres = PostgresServer.from_state(postgres_state_file())
    if postgres is None:
        result.append(ServerStatus("postgres", None, None, False, "not started (no state file)"))
    elif not postgres.is_running():
        result.append(ServerStatus("postgres", None, postgres.address, False, "not running"))
    else:
        answers = postgres.ping()
        detail = "answers select 1" if answers else "process runs but does not answer"
        result.append(ServerStatus("postgres", postgres.pid, postgres.address, answers, detail))
    return result


def _warn_if_moved(what: str, running_port: int | None, wanted_port: int) -> None:
    if running_port != wanted_port:
        progress(
            f"{what} keeps running on port {running_port}, not {wanted_port}: "
            "run `zhucun infra down` first to move it"
        )


__all__ = [
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_HEAP",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_POSTGRES_PORT",
    "SERVICE_DATABASES",
    "InfraError",
    "ServerStatus",
    "down",
    "status",
    "up",
]
