"""What the read side reads: the four topics both read models consume (dispatch, attendance,
assessment, and the decisions the read side publishes itself), the registry that decodes
every contract on them, and the calendar their days are counted in."""

from __future__ import annotations

from typing import Any

from zhucun.contracts.assessment import TOPIC as ASSESSMENT_TOPIC
from zhucun.contracts.assessment import events as assessment
from zhucun.contracts.attendance import TOPIC as ATTENDANCE_TOPIC
from zhucun.contracts.attendance import events as attendance
from zhucun.contracts.decisions import TOPIC as DECISIONS_TOPIC
from zhucun.contracts.decisions import events as decisions
from zhucun.contracts.dispatch import TOPIC as DISPATCH_TOPIC
from zhucun.contracts.dispatch import events as dispatch
from zhucun.shared.china import SHANGHAI as SHANGHAI
from zhucun.shared.events import DomainEvent, EventRegistry, UnknownEventType

TOPICS = (DISPATCH_TOPIC, ATTENDANCE_TOPIC, ASSESSMENT_TOPIC, DECISIONS_TOPIC)
#: Calendar days (periods of a file, the day of a dismissal) are China's (``SHANGHAI``).


class UnionRegistry(EventRegistry):
    """Decodes the event types of several services' registries, each with its own upcasters
    (registering the classes alone would lose them)."""

    def __init__(self, *registries: EventRegistry) -> None:
        super().__init__()
        self._owners: dict[str, EventRegistry] = {}
        for registry in registries:
            for cls in registry.classes():
                self.register(cls)  # refuses a type name two services both claim
                self._owners[cls.event_type] = registry

    def decode(self, event_type: str, schema_version: int, data: Any) -> DomainEvent:
        owner = self._owners.get(event_type)
        if owner is None:
            raise UnknownEventType(event_type)
        return owner.decode(event_type, schema_version, data)


def union_registry() -> UnionRegistry:
    """Every event type on :data:`TOPICS`."""
    return UnionRegistry(
        dispatch.registry, attendance.registry, assessment.registry, decisions.registry
    )
