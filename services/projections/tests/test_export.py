"""The CSV export of a cadre's file neutralises spreadsheet formulas (OWASP, "CSV
Injection"); the JSON export keeps every value exactly."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from zhucun.projections.audit import COLUMNS, FileEntry, export_csv, export_json

pytestmark = pytest.mark.unit

HOSTILE = [
    '=HYPERLINK("http://example.invalid","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "\rCR",
]


def entry(cadre_id: str, summary: str) -> FileEntry:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return FileEntry(
        cadre_id=cadre_id,
        source="attendance",
        topic="attendance.events.v1",
        partition=0,
        offset=7,
        event_id=uuid.uuid4(),
        event_type="attendance.DiaryEntryWritten",
        schema_version=1,
        stream_id=f"work-{cadre_id}",
        stream_version=1,
        global_position=1,
        occurred_at=now,
        recorded_at=now,
        actor="c1:cadre",
        correlation_id=uuid.uuid4(),
        causation_id=None,
        summary=summary,
        hash="f" * 64,
        data={"text": summary},
    )


async def rows(entries: list[FileEntry]) -> AsyncIterator[FileEntry]:
    for item in entries:
        yield item


async def collect(chunks: AsyncIterator[str]) -> str:
    return "".join([chunk async for chunk in chunks])


async def test_csv_cells_that_start_like_a_formula_are_quoted_and_json_stays_exact() -> None:
    entries = [entry(text, text) for text in HOSTILE] + [entry("c-1", "在村 3 天")]
    table = list(csv.DictReader(io.StringIO(await collect(export_csv(rows(entries))))))
    assert list(table[0]) == list(COLUMNS)
    assert [r["cadre_id"] for r in table] == [*("'" + t for t in HOSTILE), "c-1"]
    assert [r["summary"] for r in table] == [*("'" + t for t in HOSTILE), "在村 3 天"]
    # The data column is a JSON object (it starts with "{"): unchanged, and still exact.
    assert [json.loads(r["data"])["text"] for r in table] == [*HOSTILE, "在村 3 天"]
    assert {r["offset"] for r in table} == {"7"}
    exported = json.loads(await collect(export_json(rows(entries))))
    assert [e["cadre_id"] for e in exported] == [*HOSTILE, "c-1"]
    assert [e["summary"] for e in exported] == [*HOSTILE, "在村 3 天"]
