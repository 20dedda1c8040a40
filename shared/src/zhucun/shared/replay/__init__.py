"""Replay: rebuild a projection's read model from offset zero and switch it in atomically,
build it *as of* a point in the history for an auditor, and compare read models by digest.

* :func:`rebuild` builds the projection into a fresh schema (``<live>__rebuild_<id>``) while
  the live model keeps serving, up to the end offsets taken when it starts, catches up with
  the live model, and swaps the two schemas in one transaction. The previous model stays as
  ``<live>__old_<time>`` (``switch.py``).
* :func:`rebuild_as_of` builds into a scratch schema only the records up to a Kafka record
  timestamp or explicit offsets, and leaves it there for queries (``asof.py``).
* :func:`digest` is an order-independent hash of a read model's rows: two rebuilds, or a
  rebuild and the live model, are equal when their digests are (``digest.py``).

**What is applied** is exactly what :class:`~zhucun.shared.projection.ProjectionRunner`
applies: both go through the one exactly-once batch pipeline,
:class:`~zhucun.shared.pipeline.BatchPipeline` (the same envelope, the same payload through
the projection's registry, the same event-id dedupe, the same poison isolation, offsets and
counts in the read model's transaction). A rebuild and the live model built by the runner
therefore have equal digests (the tests check it). How the rebuild reads fast is
``engine.py``'s business; how it spreads over processes, ``workers.py``'s.

**Poison records** (not a Zhucun CloudEvent, an unknown type, a contract violation, an
``apply`` that raises for that one event) are skipped as the runner skips them after
dead-lettering; the rebuild does not dead-letter them again (they were when first
consumed), but logs each one (``replay.rejected``: topic, partition, offset, kind) and counts
them in the report and in ``projection_counts.dead_lettered``. ``Tuning(strict=True)`` stops
the rebuild at the first one instead (:class:`~zhucun.shared.projection.PoisonRecord`), as a
runner without a dead-letter publisher stops.

**Gaps.** Offsets are expected to be dense, as for the runner: a partition whose next record
lies beyond the expected offset stops the rebuild with :class:`ReplayError` rather than
silently build a model without the missing records.

**Progress** is told to a plain callback (:class:`Progress`: records done of the total); the
``zhucun`` command draws it as a bar (``zhucun.cli.progress``).

A failed rebuild never touches the live model; it leaves its fresh or scratch schema for
inspection (drop it with :func:`drop_schema`).
"""

from zhucun.shared.replay.asof import rebuild_as_of
from zhucun.shared.replay.digest import digest, model_tables
from zhucun.shared.replay.engine import DEFAULT_BATCH_SIZE, Tuning
from zhucun.shared.replay.report import (
    Progress,
    RebuildReport,
    RejectedRecord,
    ReplayError,
    TopicPartitionKey,
)
from zhucun.shared.replay.schemas import RUNTIME_TABLES, drop_schema
from zhucun.shared.replay.switch import rebuild

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "RUNTIME_TABLES",
    "Progress",
    "RebuildReport",
    "RejectedRecord",
    "ReplayError",
    "TopicPartitionKey",
    "Tuning",
    "digest",
    "drop_schema",
    "model_tables",
    "rebuild",
    "rebuild_as_of",
]
