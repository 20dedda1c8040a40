"""A Kafka broker of their own for the production-install and image tests, where the session
runs its broker as a local process.

The projections service they start reads every topic from the beginning, and by the time
these tests run the session's topics hold the events of every earlier test (the simulator's
tens of thousands among them): its audit trail would take minutes to catch up before
``zhucun verify`` can find it complete. On an empty broker it starts caught up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zhucun.infra import KafkaServer


@pytest.fixture(scope="package")
def kafka_bootstrap(request: pytest.FixtureRequest, local_infra_dir: Path) -> Iterator[str]:
    handle = request.getfixturevalue("kafka_handle")
    if handle.local_server is None:
        # A broker someone else runs (env var, testcontainers): share it.
        yield handle.bootstrap_servers
        return
    server = KafkaServer(local_infra_dir / "kafka-production", heap="512m")
    server.start()
    try:
        yield server.bootstrap_servers
    finally:
        server.stop()
