"""The runtime every event-sourced service shares: its database pool, its event store, its
Kafka broker and the relay that publishes the store to the service's topic.

A service's composition root is then a few lines::

    def create_app(settings: DispatchSettings) -> FastAPI:
        app = create_service_app(settings, title="Zhucun dispatch", topic=TOPIC, source=SOURCE)
        app.include_router(commands_router)
        return app

Nothing connects when the app is built; the lifespan connects, migrates the store, creates
the topics, starts the relay under a supervisor, and undoes all of it on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import asyncpg
import structlog
from fastapi import FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from zhucun.shared.http import create_http_app, kafka_ready, postgres_ready
from zhucun.shared.kafka import dlq_topic, ensure_topics, event_topic, make_broker
from zhucun.shared.logging import configure_logging
from zhucun.shared.problems import ProblemError, problem_response
from zhucun.shared.relay import Relay
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.store import EventIdConflict, EventStore, WrongExpectedVersion, create_pool

log = structlog.get_logger(__name__)

#: Back-off between relay restarts after a failure (Kafka or the database unreachable).
RELAY_RESTART_SECONDS = 2.0


@dataclass
class ServiceRuntime:
    """What the lifespan connected; handlers reach it as ``request.app.state.runtime``."""

    settings: ServiceSettings
    pool: asyncpg.Pool | None = None
    broker: KafkaBroker | None = None
    store: EventStore | None = None
    relay: Relay | None = None
    relay_task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def event_store(self) -> EventStore:
        if self.store is None:
            raise RuntimeError("the service is not started (no event store yet)")
        return self.store


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    topic: str | None,
    source: str,
    version: str = "0.1.0",
) -> FastAPI:
    """An HTTP app with the service runtime in its lifespan.

    ``topic`` is the service's event topic (its store is published there); ``None`` for a
    service that only reads (the projections).
    """
    runtime = ServiceRuntime(settings)
    registry = CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log, service_name=settings.service_name)
        runtime.stop.clear()
        pg = settings.postgres
        runtime.pool = await create_pool(
            pg.dsn.get_secret_value(), min_size=pg.pool_min_size, max_size=pg.pool_max_size
        )
        runtime.broker = make_broker(settings.kafka, client_id=settings.service_name)
        await runtime.broker.connect()
        checks = app.state.readiness_checks
        checks["postgres"] = postgres_ready(runtime.pool)
        checks["kafka"] = kafka_ready(partial(runtime.broker.ping, timeout=2.0))
        if topic is not None:
            await ensure_topics(
                settings.kafka,
                [event_topic(topic, settings.kafka), dlq_topic(topic, settings.kafka)],
            )
            runtime.store = EventStore(runtime.pool, schema=pg.schema_name)
            await runtime.store.migrate()
            runtime.relay = Relay(
                runtime.store, runtime.broker, topic=topic, source=source, registry=registry
            )
            runtime.relay_task = asyncio.create_task(_supervise(runtime.relay, runtime.stop))
            checks["relay"] = partial(_relay_alive, runtime)
        log.info("service.started", service=settings.service_name, topic=topic)
        try:
            yield
        finally:
            runtime.stop.set()
            if runtime.relay_task is not None:
                await runtime.relay_task
            await runtime.broker.stop()
            await runtime.pool.close()
            log.info("service.stopped", service=settings.service_name)

    app = create_http_app(
        settings, title=title, version=version, lifespan=lifespan, registry=registry
    )
    app.state.runtime = runtime
    app.add_exception_handler(WrongExpectedVersion, _store_conflict)
    app.add_exception_handler(EventIdConflict, _store_conflict)
    return app


async def _store_conflict(request: Request, exc: Exception) -> Response:
    """Concurrent writers and re-used event ids are the client's to resolve: 409."""
    if isinstance(exc, WrongExpectedVersion):
        problem = ProblemError(
            409,
            "version-conflict",
            "Someone else changed this first",
            f"{exc}; read it again and retry",
            stream_id=exc.stream_id,
            expected_version=exc.expected,
            actual_version=exc.actual,
        )
    else:
        problem = ProblemError(409, "event-id-conflict", "Event id already used", str(exc))
    return problem_response(problem.to_problem(instance=request.url.path))


async def _supervise(relay: Relay, stop: asyncio.Event) -> None:
    """Keep the relay running: a failure (broker or database away) is logged and retried;
    the checkpoint makes a restart safe."""
    while not stop.is_set():
        try:
            await relay.run(stop)
        except Exception:
            log.exception("relay.failed", relay=relay.name, retry_in=RELAY_RESTART_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RELAY_RESTART_SECONDS)


async def _relay_alive(runtime: ServiceRuntime) -> None:
    task = runtime.relay_task
    if task is None or task.done():
        raise RuntimeError("the relay is not running")
