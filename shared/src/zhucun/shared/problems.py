"""RFC 9457 problem details for every Zhucun HTTP API.

Every error a service returns is ``application/problem+json`` with a stable ``type`` URI
(``https://zhucun.dev/problems/<slug>``) that clients may switch on. Use cases raise a
:class:`~zhucun.shared.rules.RuleViolation` (its ``kind`` maps to a status here, once), edges
may raise :class:`ProblemError`, and :func:`install_problem_handlers` turns both, FastAPI's
validation errors, Starlette's HTTP exceptions and anything unexpected into that shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhucun.shared.rules import STATUS_OF_KIND, RuleKind, RuleViolation

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://zhucun.dev/problems/"
#: What a client waits before retrying a ``retryable`` refusal (a replica catching up).
RETRY_AFTER_SECONDS = 5

_logger = structlog.get_logger(__name__)


def problem_type(slug: str) -> str:
    """The stable ``type`` URI of a problem slug such as ``version-conflict``."""
    return PROBLEM_TYPE_BASE + slug


class FieldError(BaseModel):
    """One invalid input field: where it is, what is wrong, and a machine-readable kind."""

    model_config = ConfigDict(frozen=True)

    location: list[str | int]
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document; unknown members are kept as extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    correlation_id: str | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class ProblemError(Exception):
    """An error that maps onto one problem document; raise it (or subclass it) from services.

    ``extensions`` become extra members of the document, e.g.
    ``ProblemError(409, "version-conflict", "Version conflict", expected=3, actual=4)``.
    """

    def __init__(
        self,
        status: int,
        type_suffix: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type = problem_type(type_suffix)
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def to_problem(self, *, instance: str | None = None) -> Problem:
        return Problem(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            correlation_id=correlation_id.get(),
            **self.extensions,
        )


def rule_problem(error: RuleViolation, *, service: str) -> ProblemError:
    """The problem document of a refused command: ``type`` ``<namespace>/<code>`` (the
    namespace is ``service`` unless the refusal declares its own, ``None``: no prefix), the
    status of its kind, its message, its figures, ``code`` and ``retryable``."""
    kind = error.kind
    namespace = error.problem_namespace(service)
    slug = error.code.replace("_", "-")
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.retryable else None
    problem = ProblemError(
        STATUS_OF_KIND.get(kind, 409),
        f"{namespace}/{slug}" if namespace else slug,
        _rule_title(kind, namespace or service),
        error.message,
        headers=headers,
    )
    # Set, not passed as keywords: a figure's name can never collide with the constructor's.
    problem.extensions = {**error.details(), "code": error.code, "retryable": error.retryable}
    return problem


def _rule_title(kind: RuleKind, service: str) -> str:
    titles: dict[RuleKind, str] = {
        "invalid": f"Invalid {service} input",
        "not_found": "Not found",
        "conflict": f"{service.capitalize()} rule violated",
        "forbidden": "Not allowed",
        "retryable": "Not yet known; retry",
    }
    return titles[kind]


def problem_document(error: ProblemError) -> dict[str, Any]:
    """A problem as JSON-ready data, for answers that carry one per item (a batch)."""
    return error.to_problem().model_dump(mode="json", exclude_none=True)


def problem_response(
    problem: Problem, *, headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    return ProblemResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        headers=headers,
    )


async def _problem_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.to_problem(instance=request.url.path), headers=exc.headers)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """pydantic's validation ``errors`` as they are answered: where, what, which kind.

    Only location, message and kind go back: pydantic's ``input`` echoes the submitted
    value, which may be a person's name or coordinates.
    """
    return [
        FieldError(
            location=list(error.get("loc", ())),
            message=_validation_message(error),
            type=str(error.get("type", "invalid")),
        )
        for error in errors
    ]


def validation_problem(
    fields: Sequence[FieldError], *, title: str = "Invalid request"
) -> ProblemError:
    """The 422 ``validation-error`` problem of invalid input (a request's, or one item's of
    a batch answered item by item)."""
    return ProblemError(
        422,
        "validation-error",
        title,
        f"{len(fields)} input error(s); see 'errors'",
        errors=fields,
    )


async def _validation_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    problem = validation_problem(field_errors(exc.errors())).to_problem(instance=request.url.path)
    return problem_response(problem)


def _validation_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "json_invalid":
        # "JSON decode error" alone does not say what is wrong with the body.
        reason = (error.get("ctx") or {}).get("error")
        if reason:
            message = f"{message}: {reason}"
    return message


async def _http_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = _status_phrase(exc.status_code)
    slug = phrase.lower().replace(" ", "-").replace("'", "")
    extensions: dict[str, Any] = {}
    detail: str | None
    if isinstance(exc.detail, str):
        # Starlette's default detail repeats the title; say nothing rather than say it twice.
        detail = None if exc.detail == phrase else exc.detail
    else:
        detail = None
        extensions["details"] = json.loads(json.dumps(exc.detail, default=str))
    problem = ProblemError(exc.status_code, slug, phrase, detail, **extensions).to_problem(
        instance=request.url.path
    )
    return problem_response(problem, headers=exc.headers)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def internal_error_problem(instance: str | None) -> Problem:
    """The 500 document: deliberately generic, the correlation id links it to the log line."""
    return ProblemError(
        500,
        "internal-error",
        "Internal server error",
        "The server failed to handle the request; quote the correlation id when reporting it.",
    ).to_problem(instance=instance)


class UnhandledErrorMiddleware:
    """Turns any exception that escapes the handlers into a 500 problem, logged once.

    It sits inside the correlation-id middleware (unlike Starlette's ServerErrorMiddleware,
    the outermost layer), so the 500 carries the ``X-Correlation-ID`` header and is counted
    by the metrics middleware like any other response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception:
            _logger.exception(
                "http.unhandled_exception", method=scope.get("method"), path=scope.get("path")
            )
            if response_started:
                # Half a response is already on the wire; all we can do is let the server
                # abort the connection.
                raise
            response = problem_response(internal_error_problem(scope.get("path")))
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI, *, service: str = "zhucun") -> None:
    """Make every error of ``app`` an ``application/problem+json`` response; a refusal's
    ``type`` is prefixed with ``service`` (or with the namespace the refusal declares)."""

    async def rule_violation_handler(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, RuleViolation)
        error = rule_problem(exc, service=service)
        return problem_response(error.to_problem(instance=request.url.path), headers=error.headers)

    app.add_exception_handler(RuleViolation, rule_violation_handler)
    app.add_exception_handler(ProblemError, _problem_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_middleware(UnhandledErrorMiddleware)


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "RETRY_AFTER_SECONDS",
    "FieldError",
    "Problem",
    "ProblemError",
    "ProblemResponse",
    "UnhandledErrorMiddleware",
    "field_errors",
    "install_problem_handlers",
    "internal_error_problem",
    "problem_document",
    "problem_response",
    "problem_type",
    "rule_problem",
    "validation_problem",
]
