"""The reference model of docs/decisions.md: recall decisions and promotion pools computed in
memory from the events of the topics, independently of the ``decisions`` projection, for the
tests to compare the two.

    packs = Packs.load(Path("policies"))                       # or Packs.load(folder, override)
    decisions, pools = reference_model(events, packs)          # normal-form tuples

``events`` are ``PublishedEvent`` (``read_topic``), ``RecordedEvent`` or
``(event id, event type, data)`` records, in any order, duplicates allowed.
"""

from zhucun.reference.model import (
    AmbiguousFacts,
    DecisionRow,
    Fact,
    PoolRow,
    as_fact,
    decision_id,
    reference_decisions,
    reference_model,
    reference_pools,
)
from zhucun.reference.packs import Pack, PackError, Packs, read_pack

__all__ = [
    "AmbiguousFacts",
    "DecisionRow",
    "Fact",
    "Pack",
    "PackError",
    "Packs",
    "PoolRow",
    "as_fact",
    "decision_id",
    "read_pack",
    "reference_decisions",
    "reference_model",
    "reference_pools",
]
