"""A relay as its own OS process, for the crash tests (``kill -9`` needs a real process).

Environment: RELAY_DSN, RELAY_SCHEMA, RELAY_BOOTSTRAP, RELAY_TOPIC, RELAY_BATCH_SIZE and,
optionally, RELAY_DIE_BEFORE_CHECKPOINT=1, which makes the process SIGKILL itself after Kafka
acknowledged a batch and before the checkpoint is written: the worst moment to crash.
"""

from __future__ import annotations

import asyncio
import os
import signal

from zhucun.shared.kafka import make_broker
from zhucun.shared.relay import Relay
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import PostgresEventStore, create_pool


class DyingRelay(Relay):
    async def _save_checkpoint(self, position: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    pool = await create_pool(os.environ["RELAY_DSN"], max_size=3)
    store = PostgresEventStore(pool, schema=os.environ["RELAY_SCHEMA"])
    broker = make_broker(KafkaSettings(bootstrap_servers=os.environ["RELAY_BOOTSTRAP"]))
    await broker.connect()
    relay_class = DyingRelay if os.environ.get("RELAY_DIE_BEFORE_CHECKPOINT") else Relay
    relay = relay_class(
        store,
        broker,
        topic=os.environ["RELAY_TOPIC"],
        source="/zhucun/test",
        batch_size=int(os.environ.get("RELAY_BATCH_SIZE", "50")),
        poll_interval=0.2,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("relay ready", flush=True)
    await relay.run(stop)
    await broker.stop()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
