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

* a ``message`` for people, and the rule's own figures (``details``) as scalar attributes.

This module has no I/O and no web framework: deciders import it.
"""

from __future__ import annotations

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


class RuleViolation(Exception):
    """A command breaks a rule; nothing was decided."""

    code: ClassVar[str] = "rule_violation"
    kind: ClassVar[RuleKind] = "conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, str | int | float | bool]:
        """The rule's figures (the attributes a subclass set: ids, limits, days), for the
        problem document; ``None`` values and anything not a plain scalar are left out."""
        return {
            name: value
            for name, value in vars(self).items()
            if name != "message"
            and not name.startswith("_")
            and isinstance(value, str | int | float | bool)
        }

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"


__all__ = ["STATUS_OF_KIND", "RuleKind", "RuleViolation"]
