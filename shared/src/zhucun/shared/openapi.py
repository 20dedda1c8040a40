"""The OpenAPI document of a service as it behaves, not as FastAPI guesses it.

FastAPI documents the success response and a 422 ``HTTPValidationError`` as
``application/json``. Every error a Zhucun service answers is an RFC 9457 problem document
(``application/problem+json``, ``zhucun.shared.problems``), so :func:`service_openapi`
rewrites each operation's responses from what the route is:

- any route: ``422`` (a path, query or body value out of its bounds; the document's
  ``errors`` name each field) when it takes input, ``400`` (a body that cannot be read)
  when it takes a body, and ``500`` (the generic internal-error
  document, to quote its correlation id);
- a route behind a token: ``401`` (none, expired or bad) and ``403`` (a role it is not open
  to, or a county, township or cadre outside the token's jurisdiction); its description
  gets a line naming the roles (read off its :class:`~zhucun.shared.auth.RoleRequirement`);
- a route that names a thing in its path or body: ``404`` (unknown, or a replica that has
  caught up with its source and does not know it either);
- a command (not ``GET``): ``409`` (a broken rule; a *retryable* one carries
  ``Retry-After``: a replica is still catching up) and, with a body, ``413`` (a body above
  :data:`~zhucun.shared.http.MAX_REQUEST_BODY_BYTES`, or an event above the store's limit).

A ``GET`` that may answer a retryable refusal says so with ``openapi_extra={"x-conflicts":
True}`` on its route.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from zhucun.shared.auth import RoleRequirement, authenticated
from zhucun.shared.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_SECONDS, FieldError, Problem

#: Route flag: a read that may answer 409 (a retryable refusal).
CONFLICTS_FLAG: Final = "x-conflicts"

_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_VALIDATION_REF: Final = {"$ref": "#/components/schemas/ValidationProblem"}

_DESCRIPTIONS: Final[dict[str, str]] = {
    "400": "The request body could not be read (not the media type the operation takes).",
    "401": "No bearer token, or one that is expired, not yet valid or wrongly signed.",
    "403": (
        "The token's role may not call this operation, or what it names lies outside the"
        " token's county, township or cadre."
    ),
    "404": (
        "Something the request names is unknown to this service (for a replica of another"
        " service: once the replica has caught up with that service's topic)."
    ),
    "409": (
        "A rule refused the command (`code` names it), or a concurrent change came first. A"
        " retryable refusal (`retryable: true`) carries `Retry-After`: a replica of another"
        " service has not caught up yet, and the same command may succeed after it."
    ),
    "413": "The request body, or the event it would record, is above the size limit.",
    "422": "A value is malformed or out of its bounds; `errors` names each one.",
    "500": "The service failed; quote the `correlation_id` when reporting it.",
}


def service_openapi(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document with its real error responses (cached like FastAPI's)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_problem_schemas())
    for route in _documented_routes(app):
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format].get(method.lower())
            if operation is not None:
                _document_operation(operation, route, method)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (``/openapi.json``, ``/docs``, the committed documents) answer
    :func:`service_openapi`."""

    def openapi() -> dict[str, Any]:
        return service_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _documented_routes(app: FastAPI) -> Iterator[Any]:
    """The app's documented API routes, with their full paths (FastAPI keeps an included
    router's routes behind a context that adds its prefix: ``iter_route_contexts``)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context


def _problem_schemas() -> dict[str, Any]:
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem.pop("$defs", None)
    problem["properties"].pop("errors", None)
    problem["description"] = (
        "An RFC 9457 problem document; a refused rule adds `code` and `retryable` and the"
        " rule's figures as extension members."
    )
    validation = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    validation.pop("$defs", None)
    validation["title"] = "ValidationProblem"
    validation["properties"]["errors"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/FieldError"},
    }
    validation["description"] = (
        "The problem of invalid input: `errors` names each field (a refused rule of kind"
        " `invalid`, such as a date in the future, has a `code` instead)."
    )
    return {
        "Problem": problem,
        "ValidationProblem": validation,
        "FieldError": FieldError.model_json_schema(),
    }


def _document_operation(operation: dict[str, Any], route: Any, method: str) -> None:
    roles = _roles(route.dependant)
    authenticated_route = roles is not None
    takes_input = bool(route.dependant.path_params or route.dependant.query_params) or bool(
        route.body_field
    )
    names_things = bool(route.dependant.path_params) or bool(route.body_field)
    command = method != "GET"
    conflicts = command or bool((route.openapi_extra or {}).get(CONFLICTS_FLAG))
    statuses = [
        *(("400",) if route.body_field else ()),
        *(("401", "403") if authenticated_route else ()),
        *(("404",) if names_things else ()),
        *(("409",) if conflicts else ()),
        *(("413",) if command and route.body_field else ()),
        *(("422",) if takes_input else ()),
        "500",
    ]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    for status in statuses:
        responses[status] = _error_response(status)
    operation.pop(CONFLICTS_FLAG, None)
    if roles is not None:
        operation["description"] = _with_roles(operation.get("description", ""), roles)


def _error_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {
            PROBLEM_MEDIA_TYPE: {"schema": _VALIDATION_REF if status == "422" else _PROBLEM_REF}
        },
    }
    if status == "409":
        response["headers"] = {
            "Retry-After": {
                "description": (
                    f"Seconds to wait before retrying ({RETRY_AFTER_SECONDS}); only on a"
                    " retryable refusal."
                ),
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _roles(dependant: Dependant) -> tuple[str, ...] | None:
    """The roles a route is open to: ``()`` for any authenticated principal, ``None`` for a
    route without a token."""
    found: list[str] = []
    authenticated_at_all = False
    for call in _calls(dependant):
        if isinstance(call, RoleRequirement):
            found.extend(role.value for role in call.roles)
            authenticated_at_all = True
        elif call is authenticated:
            authenticated_at_all = True
    if not authenticated_at_all:
        return None
    return tuple(sorted(set(found)))


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _with_roles(description: str, roles: tuple[str, ...]) -> str:
    who = ", ".join(f"`{role}`" for role in roles) if roles else "any authenticated principal"
    line = f"**Roles:** {who} (a token scoped to the county, township or cadre it names)."
    return f"{description.strip()}\n\n{line}" if description.strip() else line


def operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(method, path, operation)`` of every operation of an OpenAPI ``document``."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch"}:
                yield method, path, operation


__all__ = ["CONFLICTS_FLAG", "install_openapi", "operations", "service_openapi"]
