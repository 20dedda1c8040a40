"""Use cases of the work record: a diary entry (驻村日记) and a household visit (入户走访),
by the cadre for themselves.

Consistency boundary: the cadre's work stream alone. The record of work is not presence
evidence, so it reads no month (a closed month does not stop a diary written up late); like
evidence, it is for a day that has come (``EvidenceFromTheFuture``).
"""

from __future__ import annotations

from datetime import date

from zhucun.attendance.application.context import Actor, Context, ensure_self, work_model
from zhucun.attendance.domain import (
    RecordHouseholdVisit,
    WriteDiaryEntry,
    record_household_visit,
    write_diary_entry,
)
from zhucun.shared.commands import CommandAccepted


async def write_cadre_diary_entry(
    ctx: Context, actor: Actor, cadre_id: str, *, entry_id: str, day: date, text: str
) -> CommandAccepted:
    ensure_self(actor.principal, cadre_id)
    ctx.ensure_has_come(day, "a diary entry")
    post = await ctx.post_on(actor.principal, cadre_id, day)
    command = WriteDiaryEntry(
        entry_id=entry_id, cadre_id=cadre_id, day=day, text=text, post=post, today=ctx.today()
    )
    return await ctx.commands.execute_one(
        work_model(cadre_id), lambda work: write_diary_entry(command, work), actor.metadata
    )


async def record_cadre_visit(
    ctx: Context,
    actor: Actor,
    cadre_id: str,
    *,
    visit_id: str,
    household_id: str,
    visited_on: date,
    note: str,
) -> CommandAccepted:
    ensure_self(actor.principal, cadre_id)
    ctx.ensure_has_come(visited_on, "a household visit")
    post = await ctx.post_on(actor.principal, cadre_id, visited_on)
    command = RecordHouseholdVisit(
        visit_id=visit_id,
        cadre_id=cadre_id,
        household_id=household_id,
        visited_on=visited_on,
        note=note,
        post=post,
        today=ctx.today(),
    )
    return await ctx.commands.execute_one(
        work_model(cadre_id), lambda work: record_household_visit(command, work), actor.metadata
    )
