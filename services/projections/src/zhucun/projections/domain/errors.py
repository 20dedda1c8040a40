"""The read side's refusals: each a :class:`~zhucun.shared.rules.RuleViolation` with a kind.

Each read model answers its refusals under its own problem namespace, the one its clients
already switch on: ``https://zhucun.dev/problems/audit/<code>`` for the audit trail (一人一档)
and ``.../decisions/<code>`` for recall decisions and pools. Each read model's base says which
(``RuleViolation.namespace``), and the service's shared problem handler answers with it.

Pure: no I/O, no web framework (the decider in ``decisions/lifecycle.py`` raises these too).
"""

from __future__ import annotations

from zhucun.shared.rules import RuleViolation


class ProjectionsRuleViolation(RuleViolation):
    """A refusal of the read side; each read model's base names its problem namespace."""


# --- the audit trail -------------------------------------------------------------------------


class AuditRuleViolation(ProjectionsRuleViolation):
    namespace = "audit"


class UnknownCadreFile(AuditRuleViolation):
    """No event about the cadre has reached the audit trail: there is no file to read."""

    code = "unknown_cadre"
    kind = "not_found"

    def __init__(self, cadre_id: str) -> None:
        super().__init__(f"no event about cadre {cadre_id!r} has reached the audit trail")
        self.cadre_id = cadre_id


class InvalidPeriod(AuditRuleViolation):
    """A period of business time that ends before it starts."""

    code = "invalid_period"
    kind = "invalid"

    def __init__(self, since: str, until: str) -> None:
        super().__init__("'until' is before 'since'")
        self.since = since
        self.until = until


class InvalidCursor(AuditRuleViolation):
    """A cursor this service did not issue (the reader decodes cursors)."""

    code = "invalid_cursor"
    kind = "invalid"

    def __init__(self) -> None:
        super().__init__("the cursor is not one this service issued")


# --- recall decisions and pools --------------------------------------------------------------


class DecisionsRuleViolation(ProjectionsRuleViolation):
    namespace = "decisions"


class UnknownDecision(DecisionsRuleViolation):
    """No such recall decision: neither in the read model nor in the decisions' store."""

    code = "unknown_decision"
    kind = "not_found"

    def __init__(self, decision_id: str) -> None:
        super().__init__(f"no recall decision {decision_id!r}")
        self.decision_id = decision_id


class AlreadyExecuted(DecisionsRuleViolation):
    code = "already_executed"
    kind = "conflict"

    def __init__(self, decision_id: str) -> None:
        super().__init__(f"recall decision {decision_id} was executed: the cadre has been recalled")
        self.decision_id = decision_id


class AlreadyDismissed(DecisionsRuleViolation):
    """Dismissed before with another reason: the first review stands."""

    code = "already_dismissed"
    kind = "conflict"

    def __init__(self, decision_id: str) -> None:
        super().__init__(f"recall decision {decision_id} is already dismissed")
        self.decision_id = decision_id


class UnknownCadre(DecisionsRuleViolation):
    """No event about the cadre has reached the decisions read model."""

    code = "unknown_cadre"
    kind = "not_found"

    def __init__(self, cadre_id: str) -> None:
        super().__init__(f"no event about cadre {cadre_id!r} has reached the decisions read model")
        self.cadre_id = cadre_id
