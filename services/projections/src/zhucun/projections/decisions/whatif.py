"""What-if: the decisions the history would have produced under another policy pack.

:func:`what_if` rebuilds the ``decisions`` projection from offset zero into a scratch schema
with one pack applied to every rule (``DecisionsProjection(override=...)``, publishing
nothing), then compares its recall decisions and pool entries with the live read model's:
who would have been recalled or pooled, or not, and why. The scratch schema is dropped
afterwards unless asked to keep it (auditors may query it).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from zhucun.projections.decisions.projection import DecisionsProjection
from zhucun.projections.domain.policy import DecisionPolicy, LeaveLimit
from zhucun.shared.policy import PolicyPack
from zhucun.shared.replay import Progress, drop_schema, rebuild_as_of
from zhucun.shared.settings import DEFAULT_POLICIES_DIR, KafkaSettings


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """One recall decision present on one side only, or with another status or evidence."""

    change: str  # "added" (only under the pack), "removed" (only live), "changed"
    decision_id: str
    cadre_id: str
    rule: int
    key: str
    triggered_on: date
    live: str | None  # status live, None when absent
    what_if: str | None
    reason: str
    policy_version: str


@dataclass(frozen=True, slots=True)
class EntryChange:
    change: str
    cadre_id: str
    pool: str
    key: str
    county: str
    qualified_on: date
    live: str | None
    what_if: str | None
    reason: str
    policy_version: str


@dataclass
class WhatIfReport:
    pack: str
    scratch_schema: str
    kept: bool
    events: int
    seconds: float
    live_decisions: int = 0
    what_if_decisions: int = 0
    live_entries: int = 0
    what_if_entries: int = 0
    decisions: list[DecisionChange] = field(default_factory=list)
    entries: list[EntryChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _rows(pool: asyncpg.Pool, schema: str, table: str) -> list[asyncpg.Record]:
    exists = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema}".{table}')
    return await pool.fetch(f'SELECT * FROM "{schema}".{table}') if exists else []


def _compare_decisions(
    live: list[asyncpg.Record], scratch: list[asyncpg.Record]
) -> list[DecisionChange]:
    before = {r["decision_id"]: r for r in live}
    after = {r["decision_id"]: r for r in scratch}
    changes = []
    for identifier in sorted(before.keys() | after.keys()):
        old, new = before.get(identifier), after.get(identifier)
        if old is not None and new is not None:
            if (old["status"], list(old["evidence"])) == (new["status"], list(new["evidence"])):
                continue
            kind = "changed"
        else:
            kind = "added" if old is None else "removed"
        row = new if new is not None else old
        assert row is not None
        changes.append(
            DecisionChange(
                kind,
                identifier,
                row["cadre_id"],
                row["rule"],
                row["key"],
                row["triggered_on"],
                old["status"] if old is not None else None,
                new["status"] if new is not None else None,
                row["reason"],
                row["policy_version"],
            )
        )
    return sorted(changes, key=lambda c: (c.cadre_id, c.triggered_on, c.rule))


def _compare_entries(
    live: list[asyncpg.Record], scratch: list[asyncpg.Record]
) -> list[EntryChange]:
    def key(r: asyncpg.Record) -> tuple[str, str, str]:
        return (r["cadre_id"], r["pool"], r["key"])

    before = {key(r): r for r in live}
    after = {key(r): r for r in scratch}
    changes = []
    for identity in sorted(before.keys() | after.keys()):
        old, new = before.get(identity), after.get(identity)
        if old is not None and new is not None:
            if (old["status"], old["status_reason"]) == (new["status"], new["status_reason"]):
                continue
            kind = "changed"
        else:
            kind = "added" if old is None else "removed"
        row = new if new is not None else old
        assert row is not None
        describe = row["reason"]
        if new is not None and new["status"] != "active":
            describe += f"; {new['status']} ({new['status_reason']}, {new['status_on']})"
        changes.append(
            EntryChange(
                kind,
                row["cadre_id"],
                row["pool"],
                row["key"],
                row["county"],
                row["qualified_on"],
                old["status"] if old is not None else None,
                new["status"] if new is not None else None,
                describe,
                row["policy_version"],
            )
        )
    return changes


async def what_if(
    pool: asyncpg.Pool,
    kafka: KafkaSettings,
    pack: PolicyPack,
    *,
    live_schema: str = "decisions",
    policies_dir: Path = DEFAULT_POLICIES_DIR,
    keep: bool = False,
    progress: Progress | None = None,
) -> WhatIfReport:
    """Replay every decision-relevant topic under ``pack`` into a scratch schema and compare
    it with ``live_schema``."""
    # A pack without the rules (or with broken ones) cannot answer: fail before any work.
    pack.rules(DecisionPolicy)
    pack.rules(LeaveLimit)
    scratch = f"{live_schema}__what_if_{secrets.token_hex(4)}"
    make = partial(DecisionsProjection, policies_dir=policies_dir, override=pack)
    built = await rebuild_as_of(
        pool, make, kafka, scratch_schema=scratch, until=datetime.now(UTC), progress=progress
    )
    try:
        report = WhatIfReport(
            pack=pack.version,
            scratch_schema=scratch,
            kept=keep,
            events=built.events,
            seconds=built.seconds,
        )
        live_decisions = await _rows(pool, live_schema, "recall_decisions")
        new_decisions = await _rows(pool, scratch, "recall_decisions")
        live_entries = await _rows(pool, live_schema, "pool_entries")
        new_entries = await _rows(pool, scratch, "pool_entries")
        report.live_decisions, report.what_if_decisions = len(live_decisions), len(new_decisions)
        report.live_entries, report.what_if_entries = len(live_entries), len(new_entries)
        report.decisions = _compare_decisions(live_decisions, new_decisions)
        report.entries = _compare_entries(live_entries, new_entries)
        return report
    finally:
        if not keep:
            await drop_schema(pool, scratch)
