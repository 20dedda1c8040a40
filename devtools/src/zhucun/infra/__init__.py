"""Real Kafka and PostgreSQL servers as local processes: for tests, the demo and the CLI.

Nothing here needs Docker. ``KafkaServer`` runs Apache Kafka (KRaft, one node) from Maven
Central jars; ``PostgresServer`` runs a private ``initdb`` cluster from Debian's packages.
"""

from zhucun.infra._common import InfraError, PortInUseError, free_port, repo_root
from zhucun.infra.kafka import KafkaServer, ensure_kafka_jars
from zhucun.infra.postgres import (
    ExternalPostgres,
    PostgresLike,
    PostgresServer,
    ensure_postgres_installed,
)

__all__ = [
    "ExternalPostgres",
    "InfraError",
    "KafkaServer",
    "PortInUseError",
    "PostgresLike",
    "PostgresServer",
    "ensure_kafka_jars",
    "ensure_postgres_installed",
    "free_port",
    "repo_root",
]
