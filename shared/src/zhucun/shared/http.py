"""The FastAPI app every service starts from: health, metrics, problems, correlation ids, auth.

``create_http_app`` only builds objects; nothing connects until the lifespan runs. Readiness
checks for resources the lifespan creates (a pool) may be added there::

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncpg.create_pool(...) as pool:
            app.state.readiness_checks["postgres"] = postgres_ready(pool)
            yield

Two kinds of entries make up ``/health/ready``: *checks* decide it (a failing check answers
503 and takes the pod out of rotation: only what the service cannot take requests without,
its database); *reports* describe the rest (Kafka, the relay, projections) in the body,
with a ``state`` each, and never fail it. Components whose state is ``stalled`` or
``unreachable`` are listed under ``attention``.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import structlog
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi import Path as InPath
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from zhucun.shared.auth import Principal, TokenVerifier
from zhucun.shared.bounds import ID_MAX_LENGTH, ID_PATTERN
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.errors import describe_error
from zhucun.shared.openapi import install_openapi
from zhucun.shared.pages import MAX_PAGE_SIZE
from zhucun.shared.problems import ProblemError, install_problem_handlers, problem_response
from zhucun.shared.settings import ServiceSettings

#: Raises (anything) when the dependency it checks is not usable.
ReadinessCheck = Callable[[], Awaitable[None]]
#: Describes a component that does not decide readiness (a JSON object with a ``state``,
#: or a mapping of such objects by name).
HealthReport = Callable[[], Awaitable[Mapping[str, Any]]]
#: States of a reported component that need a person.
ATTENTION_STATES = frozenset({"stalled", "unreachable", "stopped", "failing"})

CORRELATION_ID_HEADER = "X-Correlation-ID"
#: The largest request body a service reads: far above any command's (a batch of 500
#: offline check-ins is about 150 KiB), far below what would tie up a worker. Above it: 413.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DEFAULT_READINESS_TIMEOUT_SECONDS = 3.0

#: Paths polled by Kubernetes and Prometheus; their request lines are logged at debug only.
_OPERATIONAL_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_logger = structlog.get_logger(__name__)

T = TypeVar("T")

#: A GB/T 2260 division code in a route's path: a province's, a prefecture's or a county's
#: (2, 4 or 6 digits), the codes the policy book understands.
CountyCode = Annotated[
    str, InPath(pattern=r"^\d{2}(\d{2}){0,2}$", description="county division code, e.g. 530102")
]
#: ``?limit=``: items per page.
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (at most {MAX_PAGE_SIZE})")
]
#: ``?after=``: the ``next`` cursor of the previous page.
After = Annotated[
    str | None,
    Query(
        pattern=ID_PATTERN,
        max_length=ID_MAX_LENGTH,
        description="the `next` of the previous page; omitted for the first page",
    ),
]


#: A cadre's id in a route's path.
CadreId = Annotated[
    str, InPath(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="a cadre's id")
]


def create_http_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str = "0.1.0",
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
    registry: CollectorRegistry | None = None,
    readiness_timeout_seconds: float = DEFAULT_READINESS_TIMEOUT_SECONDS,
    problems: str = "zhucun",
) -> FastAPI:
    """A FastAPI app with ``/health/live``, ``/health/ready``, ``/metrics`` and the plumbing.

    ``registry`` defaults to a fresh one per app (with process metrics), so two apps in
    one process, as in tests, never register the same metric twice.
    """
    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings.auth)
    app.state.readiness_checks = dict(readiness_checks or {})
    app.state.health_reports = {}
    app.state.readiness_timeout_seconds = readiness_timeout_seconds
    app.state.metrics_registry = registry if registry is not None else _fresh_registry()

    # add_middleware wraps what is already there: the last one added runs first. The order
    # on the way in is: correlation id -> log context + metrics -> 500 problems -> handlers.
    install_problem_handlers(app, service=problems)
    app.add_middleware(BodyLimitMiddleware, limit=MAX_REQUEST_BODY_BYTES)
    app.add_middleware(
        RequestObservationMiddleware, metrics=HttpMetrics(app.state.metrics_registry)
    )
    app.add_middleware(CorrelationIdMiddleware, header_name=CORRELATION_ID_HEADER)

    app.include_router(_operational_router())
    install_openapi(app)
    return app


def _fresh_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _operational_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/health/ready")
    async def ready(request: Request) -> Response:
        checks: Mapping[str, ReadinessCheck] = request.app.state.readiness_checks
        reports: Mapping[str, HealthReport] = request.app.state.health_reports
        timeout: float = request.app.state.readiness_timeout_seconds
        errors, described = await asyncio.gather(
            asyncio.gather(*(_run_check(check, timeout) for check in checks.values())),
            asyncio.gather(*(_run_report(report, timeout) for report in reports.values())),
        )
        outcome = {name: error or "ok" for name, error in zip(checks, errors, strict=True)}
        failing = sorted(name for name, error in zip(checks, errors, strict=True) if error)
        components = dict(zip(reports, described, strict=True))
        attention = _needing_attention(components)
        if not failing:
            return JSONResponse(
                {
                    "status": "ready",
                    "checks": outcome,
                    "components": components,
                    "attention": attention,
                }
            )
        _logger.warning("http.not_ready", failing=failing)
        problem = ProblemError(
            503,
            "not-ready",
            "Service not ready",
            f"Failing readiness checks: {', '.join(failing)}.",
            checks=outcome,
            components=components,
            attention=attention,
        ).to_problem(instance=request.url.path)
        return problem_response(problem)

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        registry: CollectorRegistry = request.app.state.metrics_registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _run_check(check: ReadinessCheck, limit_seconds: float) -> str | None:
    """``None`` when the check passed, else why it failed."""
    deadline = asyncio.timeout(limit_seconds)
    try:
        async with deadline:
            await check()
    except Exception as error:
        if isinstance(error, TimeoutError) and deadline.expired():
            return f"timed out after {limit_seconds:g}s"
        return describe_error(error)
    return None


async def _run_report(report: HealthReport, limit_seconds: float) -> Mapping[str, Any]:
    """The report, or a ``failing`` state saying why it could not be made."""
    try:
        async with asyncio.timeout(limit_seconds):
            return await report()
    except Exception as error:
        reason = f"timed out after {limit_seconds:g}s" if isinstance(error, TimeoutError) else ""
        return {"state": "failing", "error": reason or describe_error(error)}


def _needing_attention(components: Mapping[str, Any]) -> list[str]:
    """``relay``, ``projections.dispatch-replica``...: components in an attention state."""
    found: list[str] = []
    for name, report in components.items():
        if not isinstance(report, Mapping):
            continue
        if "state" in report:
            if report["state"] in ATTENTION_STATES:
                found.append(name)
        else:
            found.extend(f"{name}.{inner}" for inner in _needing_attention(report))
    return found


def postgres_ready(pool: "asyncpg.Pool[asyncpg.Record]") -> ReadinessCheck:
    """Ready when the pool can run ``SELECT 1``."""

    async def check() -> None:
        await pool.fetchval("SELECT 1")

    return check


class HttpMetrics:
    """Request count and latency by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter("http_requests", "HTTP requests handled", labels, registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to finishing its response",
            labels,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


class RequestObservationMiddleware:
    """Binds the correlation id into the log context, records metrics, logs one line.

    The log context is restored afterwards so nothing bound during a request (the actor,
    say) leaks into the next one when requests share a task, as they do in tests.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        saved_context = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id.get())
        status = 500  # if the app raises before starting a response, the server sends a 500
        started = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            # The template, not the path: ids in paths would make a series per resource.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(method, route, status, elapsed)
            log = _logger.debug if scope["path"] in _OPERATIONAL_PATHS else _logger.info
            log(
                "http.request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**saved_context)


def request_correlation_id() -> UUID:
    """The correlation id of the request being handled (a new one when the header was not a
    UUID, so every stored event has one)."""
    value = correlation_id.get()
    try:
        return UUID(value) if value else uuid4()
    except ValueError:
        return uuid4()


def command_metadata(principal: Principal) -> EventMetadata:
    """The metadata of the events a request's command appends: now, the request's
    correlation id, and the actor as ``subject:role`` (never a name)."""
    return EventMetadata(
        occurred_at=datetime.now(UTC),
        correlation_id=request_correlation_id(),
        actor=f"{principal.subject}:{principal.role.value}",
    )


class BodyLimitMiddleware:
    """Answers 413 (a problem document) to a request whose body is above ``limit`` bytes,
    before any handler reads it: by its ``Content-Length``, or, for a chunked body, as soon
    as the bytes received pass the limit (the body is buffered up to the limit, then handed
    to the app as it came)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send, declared)
            return
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.limit:
                await self._refuse(scope, receive, send, None)
                return
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> Message:
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int | None) -> None:
        detail = (
            f"the request body has {size} bytes" if size is not None else "the request body"
        ) + f"; at most {self.limit} bytes are accepted"
        problem = ProblemError(
            413, "body-too-large", "Request body too large", detail, limit_bytes=self.limit
        ).to_problem(instance=scope.get("path"))
        await problem_response(problem)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def provide_use_cases(app: FastAPI, build: Callable[[], object]) -> None:
    """Hand ``app``'s routes their use cases (the composition root's wiring): ``build()``
    runs per request, since what they work with (a pool, the store) exists only once the
    lifespan has connected it, and is new after a restart of it."""
    app.state.use_cases = build


def use_cases(kind: type[T]) -> Callable[[Request], T]:
    """FastAPI dependency: the use cases the composition root provided
    (:func:`provide_use_cases`), which must be a ``kind``."""

    def provided(request: Request) -> T:
        build: Callable[[], object] | None = getattr(request.app.state, "use_cases", None)
        if build is None:
            raise RuntimeError("no use cases: the composition root calls provide_use_cases")
        built = build()
        if not isinstance(built, kind):
            raise TypeError(f"the use cases are a {type(built).__name__}, not a {kind.__name__}")
        return built

    return provided


def render_openapi(app: FastAPI) -> str:
    """An app's OpenAPI document as committed (``services/<name>/openapi.json``)."""
    document: str = json.dumps(app.openapi(), indent=2, ensure_ascii=False)
    return document + "\n"


def openapi_path(composition_root: str) -> Path:
    """Where the service whose composition root is the module file ``composition_root``
    (``services/<name>/src/zhucun/<name>/app.py``) commits its OpenAPI document:
    ``services/<name>/openapi.json``. Regenerate it with ``uv run zhucun contracts write``
    after changing a route."""
    return Path(composition_root).resolve().parents[3] / "openapi.json"
