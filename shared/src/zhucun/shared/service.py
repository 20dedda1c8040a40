"""The runtime every event-sourced service shares: its database pool, its event store, its
Kafka broker and the relay that publishes the store to the service's topic.

A service's composition root is then a few lines::

    def create_app(settings: DispatchSettings) -> FastAPI:
        app = create_service_app(settings, title="Zhucun dispatch", topic=TOPIC, source=SOURCE)
        app.include_router(commands_router)
        return app

Nothing connects when the app is built. The lifespan connects to the database and migrates
the store: without its database a service cannot start. Kafka is not needed to start or to
take commands (the events table is the outbox): a background task connects to it, retrying
until it answers, then creates the topics and starts the relay and the projection runners
under supervisors. Shutdown undoes all of it.

Health: ``/health/ready`` passes when the database answers, so a pod keeps taking commands
while Kafka is away; its body reports Kafka, the relay and every projection separately
(``ok``, ``behind``, ``stalled`` with what it is stuck on), and a monitor keeps their gauges
(``zhucun_relay_stalled``, ``zhucun_projection_stalled``...) current for alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import asyncpg
import structlog
from fastapi import FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.errors import describe_error
from zhucun.shared.events import EventRegistry
from zhucun.shared.http import create_http_app, postgres_ready
from zhucun.shared.kafka import (
    DeadLetterPublisher,
    dlq_topic,
    ensure_topics,
    event_topic,
    make_broker,
)
from zhucun.shared.logging import configure_logging
from zhucun.shared.problems import (
    PROBLEM_TYPE_BASE,
    ProblemError,
    problem_response,
    rule_problem,
)
from zhucun.shared.projection import Projection, ProjectionRunner
from zhucun.shared.relay import Relay
from zhucun.shared.rules import RuleViolation
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.store import (
    EventIdConflict,
    EventTooLarge,
    PostgresEventStore,
    WrongExpectedVersion,
    create_pool,
)

log = structlog.get_logger(__name__)

#: Back-off between restarts of the relay or a projection runner after a failure (Kafka or
#: the database unreachable).
RESTART_SECONDS = 2.0
#: Back-off between attempts to reach Kafka at start-up: doubles up to the second value.
KAFKA_RETRY_SECONDS = (1.0, 15.0)


@dataclass
class KafkaConnection:
    """Where the service's connection to Kafka stands (for health reports)."""

    state: Literal["connecting", "connected"] = "connecting"
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 0
    error: str | None = None


@dataclass
class CatchUp:
    """The replicas' lag as last asked (``replicas_behind``)."""

    behind: int | None = None
    asked_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class ServiceRuntime:
    """What the lifespan connected; handlers reach it as ``request.app.state.runtime``."""

    settings: ServiceSettings
    pool: asyncpg.Pool | None = None
    broker: KafkaBroker | None = None
    #: The relay's own producer: after the broker refuses a record the relay renews it
    #: (see ``relay``), which must not interrupt the dead letters sent through ``broker``.
    relay_broker: KafkaBroker | None = None
    store: PostgresEventStore | None = None
    relay: Relay | None = None
    relay_task: asyncio.Task[None] | None = None
    projections: dict[str, ProjectionRunner] = field(default_factory=dict)
    kafka: KafkaConnection = field(default_factory=KafkaConnection)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Folded stream states of recent commands (see ``StateCache``): a command on a stream
    #: this process touched lately reads only what was appended since.
    states: StateCache = field(default_factory=StateCache)
    catch_up: CatchUp = field(default_factory=CatchUp)

    #: How the events of the service's own store decode (None for a service without one).
    events: EventRegistry | None = None

    def brokers(self) -> list[KafkaBroker]:
        """The Kafka clients the lifespan made (the shared one, the relay's)."""
        return [b for b in (self.broker, self.relay_broker) if b is not None]

    def database(self) -> asyncpg.Pool:
        """The pool of the service's database, once the lifespan has connected it."""
        if self.pool is None:
            raise RuntimeError("the service is not started (no database pool yet)")
        return self.pool

    def event_store(self) -> PostgresEventStore:
        if self.store is None:
            raise RuntimeError("the service is not started (no event store yet)")
        return self.store

    def commands(self) -> CommandPath:
        """The service's command path: its store, its events, the shared state cache."""
        if self.events is None:
            raise RuntimeError("the service keeps no event store")
        return CommandPath(self.event_store(), self.events, self.states)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    topic: str | None,
    source: str,
    version: str = "0.1.0",
    projections: Sequence[Projection] = (),
    store_schema: str | None = None,
    events: EventRegistry | None = None,
    problems: str = "zhucun",
) -> FastAPI:
    """An HTTP app with the service runtime in its lifespan.

    ``topic`` is the service's event topic (its store is published there); ``None`` for a
    service that only reads (the projections). ``projections`` are read models the service
    keeps from other topics (e.g. attendance's replica of dispatch), each consumed by a
    supervised ``ProjectionRunner`` into the service's database; a projection with a
    ``schema`` attribute keeps its runtime tables (offsets, counts) there, beside its read
    model, so it can be rebuilt and switched alone. ``store_schema``: the schema of the
    event store (default: the settings' schema). ``events``: the registry the store's events
    decode with (the command path's). ``problems``: the prefix of the service's problem types
    (``dispatch`` -> ``https://zhucun.dev/problems/dispatch/<code>``).
    """
    runtime = ServiceRuntime(settings, events=events)
    registry = CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log, service_name=settings.service_name)
        runtime.stop.clear()
        runtime.kafka = KafkaConnection()
        pg = settings.postgres
        runtime.pool = await create_pool(
            pg.dsn.get_secret_value(), min_size=pg.pool_min_size, max_size=pg.pool_max_size
        )
        # Built, not connected: connecting is the Kafka task's job.
        runtime.broker = make_broker(settings.kafka, client_id=settings.service_name)
        app.state.readiness_checks["postgres"] = postgres_ready(runtime.pool)
        reports = app.state.health_reports
        reports["kafka"] = partial(_kafka_report, runtime)
        if topic is not None:
            runtime.store = PostgresEventStore(runtime.pool, schema=store_schema or pg.schema_name)
            await runtime.store.migrate()
            runtime.relay_broker = make_broker(
                settings.kafka, client_id=f"{settings.service_name}-relay"
            )
            runtime.relay = Relay(
                runtime.store, runtime.relay_broker, topic=topic, source=source, registry=registry
            )
            reports["relay"] = partial(_relay_report, runtime)
        dead_letters = DeadLetterPublisher(runtime.broker.publish)
        for projection in projections:
            runner = ProjectionRunner(
                runtime.pool,
                projection,
                settings.kafka,
                schema=getattr(projection, "schema", pg.schema_name),
                dead_letters=dead_letters,
                metrics=registry,
            )
            await runner.migrate()
            runtime.projections[projection.name] = runner
        if runtime.projections:
            reports["projections"] = partial(_projections_report, runtime)
        # Its own topic, and those its projections read with their dead-letter topics: a
        # read model may start before the service it follows has published anything.
        own = {topic} if topic is not None else set()
        topics = sorted(own | {name for p in projections for name in p.topics})
        kafka_side = asyncio.create_task(_run_kafka_side(runtime, topics))
        runtime.tasks.extend((kafka_side, asyncio.create_task(_monitor(runtime))))
        _tune_garbage_collector()
        log.info("service.started", service=settings.service_name, topic=topic)
        try:
            yield
        finally:
            runtime.stop.set()
            if runtime.kafka.state == "connecting":
                kafka_side.cancel()  # an attempt to connect may hang for its whole timeout
            for task in runtime.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if runtime.relay_task is not None:
                await runtime.relay_task
            runtime.tasks.clear()
            runtime.relay_task = None
            for broker in runtime.brokers():
                await broker.stop()
            await runtime.pool.close()
            log.info("service.stopped", service=settings.service_name)

    app = create_http_app(
        settings,
        title=title,
        version=version,
        lifespan=lifespan,
        registry=registry,
        problems=problems,
    )
    app.state.runtime = runtime
    _install_refusals(app, runtime, problems)
    return app


def _install_refusals(app: FastAPI, runtime: ServiceRuntime, service: str) -> None:
    """The answers to refused commands that need the runtime (replicas, the store)."""
    app.add_exception_handler(RuleViolation, partial(_rule_refused, runtime, service))
    app.add_exception_handler(WrongExpectedVersion, _store_conflict)
    app.add_exception_handler(EventIdConflict, _store_conflict)
    app.add_exception_handler(EventTooLarge, _event_too_large)


async def _event_too_large(request: Request, exc: Exception) -> Response:
    """An event the broker might refuse is never stored (``MAX_EVENT_BYTES``): 413."""
    assert isinstance(exc, EventTooLarge)
    problem = ProblemError(
        413,
        "event-too-large",
        "Event too large",
        f"the {exc.event_type} this request would record is {exc.size} bytes as a Kafka"
        f" record, above the limit of {exc.limit} bytes; nothing was stored",
        event_type=exc.event_type,
        size_bytes=exc.size,
        limit_bytes=exc.limit,
    )
    return problem_response(problem.to_problem(instance=request.url.path))


def service_runtime(app: object) -> ServiceRuntime:
    """The runtime of an app ``create_service_app`` made (a composition root wiring its use
    cases, a test reaching the store of a running app)."""
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if not isinstance(runtime, ServiceRuntime):
        raise TypeError("not an app of create_service_app: it has no service runtime")
    return runtime


def _tune_garbage_collector() -> None:
    """Keep the long-lived objects of start-up out of the collector's scans.

    The libraries a service imports leave ~100,000 long-lived objects; every full (generation
    2) collection scans them all and frees nothing, pausing the event loop for tens of
    milliseconds (measured with the attendance benchmark). ``gc.freeze`` moves the objects
    alive once the service has started into a permanent generation the collector skips.
    """
    gc.collect()
    gc.freeze()


async def _rule_refused(
    runtime: ServiceRuntime, service: str, request: Request, exc: Exception
) -> Response:
    assert isinstance(exc, RuleViolation)
    problem = await refusal_problem(runtime, exc, service=service)
    return problem_response(problem.to_problem(instance=request.url.path), headers=problem.headers)


async def refusal_problem(
    runtime: ServiceRuntime, error: RuleViolation, *, service: str, behind: int | None = None
) -> ProblemError:
    """A refused command as its problem (``rule_problem``), where a *retryable* refusal (the
    service's replica of another service does not know what the command names) stays
    retryable only while a replica is behind its source: once every replica has caught up,
    the thing is unknown, and the answer is a final 404 (a client honouring ``Retry-After``
    would otherwise retry a typo for ever). ``behind``: the replicas' lag, when the caller
    has asked already (an answer of many items asks once)."""
    problem = rule_problem(error, service=service)
    if not error.retryable:
        return problem
    if behind is None:
        behind = await replicas_behind(runtime)
    if behind == 0:
        return _final_not_found(problem, runtime)
    if behind is not None:
        problem.detail = f"{problem.detail} (the replica is {behind} record(s) behind)"
    return problem


#: How long a refusal waits for the replicas' end offsets before it stays retryable.
CATCH_UP_CHECK_SECONDS = 2.0
#: How long the replicas' lag, once asked, answers refusals.
CATCH_UP_CACHE_SECONDS = 1.0


async def replicas_behind(runtime: ServiceRuntime) -> int | None:
    """Records the service's replicas have not applied yet (end offsets minus stored offsets,
    summed over every partition of every replica); ``None`` when it cannot tell (no replica,
    a topic without partitions yet, Kafka not answering).

    Asking Kafka for the end offsets takes a round trip (about half a second measured here),
    so the answer is kept for ``CATCH_UP_CACHE_SECONDS`` and one question is in flight at a
    time: a burst of refusals (a client retrying a typo) costs one question a second, not one
    per request."""
    if not runtime.projections:
        return None
    cache = runtime.catch_up
    async with cache.lock:
        if time.monotonic() - cache.asked_at < CATCH_UP_CACHE_SECONDS:
            return cache.behind
        cache.behind = await _ask_replicas_behind(runtime)
        cache.asked_at = time.monotonic()
        return cache.behind


async def _ask_replicas_behind(runtime: ServiceRuntime) -> int | None:
    try:
        async with asyncio.timeout(CATCH_UP_CHECK_SECONDS):
            lags = [await runner.lag() for runner in runtime.projections.values()]
    except Exception as error:
        log.info("service.catch_up_unknown", error=describe_error(error))
        return None
    if any(not lag for lag in lags):
        return None
    return sum(sum(lag.values()) for lag in lags)


def _final_not_found(problem: ProblemError, runtime: ServiceRuntime) -> ProblemError:
    topics = sorted({topic for r in runtime.projections.values() for topic in r.projection.topics})
    final = ProblemError(
        404,
        problem.type.removeprefix(PROBLEM_TYPE_BASE),
        "Not found",
        f"{problem.detail}. The replica has caught up with {', '.join(topics)} (its stored"
        " offsets equal the end offsets), so it is unknown there; a change accepted there in"
        " the last few seconds may still be on its way to the topic.",
    )
    final.extensions = {**problem.extensions, "retryable": False, "replica_caught_up": True}
    return final


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


async def _supervise(
    name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Keep a background loop (the relay, a projection runner) running: a failure (broker or
    database away) is logged and retried; checkpoints make a restart safe."""
    while not stop.is_set():
        try:
            await run(stop)
        except Exception:
            log.exception("background.failed", task=name, retry_in=RESTART_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_SECONDS)


async def _run_kafka_side(runtime: ServiceRuntime, topics: Sequence[str]) -> None:
    """Connect to Kafka (retrying for as long as it takes), create the topics, then run the
    relay and the projection runners under supervisors until the service stops."""
    settings = runtime.settings
    delay = KAFKA_RETRY_SECONDS[0]
    while not runtime.stop.is_set():
        runtime.kafka.attempts += 1
        try:
            for client in runtime.brokers():
                await client.connect()
            # (With operator-managed topics, e.g. Strimzi's KafkaTopic, they exist already and
            # this only needs DESCRIBE.)
            await ensure_topics(
                settings.kafka,
                [
                    spec
                    for name in topics
                    for spec in (event_topic(name, settings.kafka), dlq_topic(name, settings.kafka))
                ],
            )
            break
        except Exception as error:
            runtime.kafka.error = describe_error(error)
            log.warning(
                "kafka.unreachable",
                error=runtime.kafka.error,
                attempt=runtime.kafka.attempts,
                retry_in=delay,
            )
            for client in runtime.brokers():
                with contextlib.suppress(Exception):
                    await client.stop()  # drop a half-started producer before the next attempt
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stop.wait(), delay)
            delay = min(delay * 2, KAFKA_RETRY_SECONDS[1])
    if runtime.stop.is_set():
        return
    runtime.kafka = KafkaConnection(state="connected", attempts=runtime.kafka.attempts)
    log.info("kafka.connected", attempts=runtime.kafka.attempts)
    loops: list[Awaitable[None]] = []
    if runtime.relay is not None:
        runtime.relay_task = asyncio.create_task(
            _supervise(f"relay {runtime.relay.topic}", runtime.relay.run, runtime.stop)
        )
    for name, runner in runtime.projections.items():
        loops.append(_supervise(name, runner.run, runtime.stop))
    await asyncio.gather(*loops)


async def _monitor(runtime: ServiceRuntime) -> None:
    """Keep the health gauges current (Prometheus scrapes ``/metrics``, not readiness)."""
    health = runtime.settings.health
    while not runtime.stop.is_set():
        with contextlib.suppress(Exception):  # the database away: readiness says so
            if runtime.relay is not None:
                await runtime.relay.health(health.stall_seconds)
            for runner in runtime.projections.values():
                runner.health(health.stall_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stop.wait(), health.refresh_seconds)


async def _kafka_report(runtime: ServiceRuntime) -> dict[str, Any]:
    connection = runtime.kafka
    report: dict[str, Any] = {"state": connection.state, "since": connection.since.isoformat()}
    if connection.state == "connecting":
        report.update(attempts=connection.attempts, error=connection.error)
    elif runtime.broker is not None and not await runtime.broker.ping(timeout=1.0):
        report["state"] = "unreachable"
    return report


async def _relay_report(runtime: ServiceRuntime) -> dict[str, Any]:
    assert runtime.relay is not None
    health = await runtime.relay.health(runtime.settings.health.stall_seconds)
    report = health.to_json()
    task = runtime.relay_task
    report["running"] = task is not None and not task.done()
    return report


async def _projections_report(runtime: ServiceRuntime) -> dict[str, Any]:
    stall = runtime.settings.health.stall_seconds
    return {name: r.health(stall).to_json() for name, r in runtime.projections.items()}
