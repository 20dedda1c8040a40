"""The published contract of dispatch (派): what its consumers depend on.

The events (``events``), the topic they are published on, the CloudEvents ``source`` of
their records and the AsyncAPI document (``asyncapi``). A consumer depends on this package,
never on the publishing service's code.
"""

from __future__ import annotations

from typing import Final

#: The Kafka topic every event of the publisher's store is published on.
TOPIC: Final = "dispatch.events.v1"
#: The CloudEvents ``source`` of the topic's records.
SOURCE: Final = "/zhucun/dispatch"
#: The contract's version, in the AsyncAPI document; bump it when an event changes.
CONTRACT_VERSION: Final = "1.1.0"

__all__ = ["CONTRACT_VERSION", "SOURCE", "TOPIC"]
