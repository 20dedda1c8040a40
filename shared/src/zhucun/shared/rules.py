"""Refusals of a decider: the one base every service's rule errors derive from.

A decider refuses a command by raising a :class:`RuleViolation`; a refused command leaves
every stream as it was. Each refusal has

* a stable ``code`` slug (``month_already_closed``) that clients and use cases may switch on;
  the HTTP edge turns it into the problem ``type`` ``<service>/<code-with-dashes>``;
* a ``kind`` that says how the edge answers, mapped to a status once, here:

  - ``invalid`` -> 422: the command can never succeed as it is;
  - ``not_found`` -> 404: it names something that does not exist;
  - ``conflict`` -> 409: the state of the streams (or the calendar) forbids it now;
  - ``forbidden`` -> 403: the caller may not do this;
  - ``retryable`` -> 409 with ``Retry-After``: the facts the decider was given may be stale
    (a replica lags behind its source), so the same command may succeed shortly;

* a ``message`` for people, and the rule's own figures (``details``) as scalar attributes;
* a problem ``namespace``, when it is not the answering service's: a read model answers
  under its own (``audit/unknown-cadre``), and a refusal every service answers alike is
  unprefixed (:class:`OutsideJurisdiction`: ``forbidden-jurisdiction``).

The refusals that are the same in every service live here once: :class:`DuplicateId`,
:class:`DatesOutOfOrder`, :class:`OutsideJurisdiction` (raised by
``Principal.ensure_covers``). A service that switches on its own base class
(``except AttendanceRuleViolation``) subclasses them with that base.

This module has no I/O and no web framework: deciders import it.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Final, Literal

RuleKind = Literal["invalid", "not_found", "conflict", "forbidden", "retryable"]

#: The HTTP status of each kind of refusal.
STATUS_OF_KIND: Final[dict[RuleKind, int]] = {
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "retryable": 409,
}


#: Members a problem document defines itself (RFC 9457's and Zhucun's own): a refusal's
#: figure of such a name is left out of its details rather than overwrite one of them.
PROBLEM_MEMBERS: Final = frozenset(
    {"type", "title", "status", "detail", "instance", "errors", "correlation_id"}
    | {"code", "retryable"}
)


class RuleViolation(Exception):
    """A command breaks a rule; nothing was decided."""

    code: ClassVar[str] = "rule_violation"
    kind: ClassVar[RuleKind] = "conflict"
    #: The prefix of the problem ``type`` (``<namespace>/<code-with-dashes>``) when it is not
    #: the answering service's name: a read model's own (``"audit"``), or ``None`` for a
    #: refusal every service answers alike, with no prefix. Left undeclared (the default),
    #: the refusal is answered under the name of the service that raised it.
    namespace: ClassVar[str | None]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, str | int | float | bool]:
        """The rule's figures (the attributes a subclass set: ids, limits, days; a date or a
        time as its ISO 8601 text), for the problem document; ``None`` values, anything not
        a plain scalar and names the document defines itself (:data:`PROBLEM_MEMBERS`:
        ``status``, ``type``...) are left out."""
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in vars(self).items()
            if name != "message"
            and not name.startswith("_")
            and name not in PROBLEM_MEMBERS
            and isinstance(value, str | int | float | bool | date)
        }

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"

    @classmethod
    def problem_namespace(cls, service: str) -> str | None:
        """The namespace this refusal is answered under by ``service``: the class's own
        when it declares one (``None``: unprefixed), else the service's name."""
        namespace: str | None = getattr(cls, "namespace", service)
        return namespace


class DuplicateId(RuleViolation):
    """The id a command gives its new thing is taken. (Where a repeat of the same command is
    a no-op, only other content under the id is refused: ``qualifier`` says so.)"""

    code: ClassVar[str] = "duplicate_id"
    kind: ClassVar[RuleKind] = "conflict"
    #: Said after "already exists" (e.g. "with other content").
    qualifier: ClassVar[str] = ""

    def __init__(self, what: str, identifier: str) -> None:
        qualifier = f" {self.qualifier}" if self.qualifier else ""
        super().__init__(f"{what} {identifier!r} already exists{qualifier}")
        self.what = what
        self.identifier = identifier


class DatesOutOfOrder(RuleViolation):
    """The command contradicts itself or the calendar (a period that ends before it starts):
    sent again as it is, it always fails."""

    code: ClassVar[str] = "dates_out_of_order"
    kind: ClassVar[RuleKind] = "invalid"


class OutsideJurisdiction(RuleViolation):
    """The resource lies outside the jurisdiction of the caller's token (its county,
    township or cadre). Every service answers it alike, under the unprefixed problem type
    ``forbidden-jurisdiction``."""

    code: ClassVar[str] = "forbidden_jurisdiction"
    kind: ClassVar[RuleKind] = "forbidden"
    namespace: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__("The resource lies outside the jurisdiction of the token's principal.")


__all__ = [
    "PROBLEM_MEMBERS",
    "STATUS_OF_KIND",
    "DatesOutOfOrder",
    "DuplicateId",
    "OutsideJurisdiction",
    "RuleKind",
    "RuleViolation",
]
