"""A projection runner as its own OS process, for the crash tests (``kill -9`` needs a real
process). It runs the test projection ``Tally`` of ``test_projection.py``.

Environment: PROJ_DSN, PROJ_BOOTSTRAP, PROJ_TOPIC, PROJ_GROUP, PROJ_WORKER, PROJ_BATCH_SIZE
and PROJ_DELAY (seconds ``apply`` sleeps per batch, so a kill lands mid-batch). Prints
"projection ready" once its SIGTERM handler is installed; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_projection import SCHEMA, Tally

from zhucun.shared.projection import ProjectionRunner
from zhucun.shared.settings import KafkaSettings
from zhucun.shared.store import create_pool


async def main() -> None:
    pool = await create_pool(os.environ["PROJ_DSN"], max_size=3)
    projection = Tally(
        os.environ["PROJ_TOPIC"],
        worker=os.environ.get("PROJ_WORKER", "p"),
        delay=float(os.environ.get("PROJ_DELAY", "0")),
    )
    runner = ProjectionRunner(
        pool,
        projection,
        KafkaSettings(bootstrap_servers=os.environ["PROJ_BOOTSTRAP"]),
        schema=SCHEMA,
        group_id=os.environ["PROJ_GROUP"],
        batch_size=int(os.environ.get("PROJ_BATCH_SIZE", "20")),
    )
    await runner.migrate()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("projection ready", flush=True)
    await runner.run(stop)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
