"""The count of a cadre's month (吃住在村): the same arithmetic for the close of a month and
for the preview of an open one.

* days in post: days of the month covered by any of the cadre's posts;
* personal / sick leave days: days in post on approved personal / sick leave (a day once);
* business days: days in post on approved village business (公出), not on personal or sick
  leave;
* presence days: days in post with presence evidence (a check-in that counts, or a township
  confirmation), not on personal or sick leave;
* in-village days: presence days and business days, each day once;
* eligible days: days in post not on personal or sick leave;
* required days: ceil(minimum x eligible / days in the rule's period) (``AttendancePolicy``);
* shortfall: required days not reached, never negative;
* unexcused absences: absences found by spot checks that no approved leave excuses. The
  excuse is the one recorded with the spot check, and it holds only while that leave stays
  approved: leave cancelled afterwards no longer excuses, and leave approved after the spot
  check never excuses it retroactively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from zhucun.attendance.domain.commands import Post
from zhucun.attendance.domain.days import each_day, month_bounds, parse_month
from zhucun.attendance.domain.errors import NotOnPost
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.attendance.domain.state import LeaveState, MonthState
from zhucun.contracts.attendance.events import LeaveKind, MonthClosed
from zhucun.shared.policy import PolicyPack


@dataclass(frozen=True, slots=True)
class MonthTally:
    """The fields of ``MonthClosed`` (see there), and the days behind the counts."""

    cadre_id: str
    month: str
    assignment_ids: tuple[str, ...]
    village_id: str
    days_in_month: int
    days_in_post: int
    presence_days: int
    business_days: int
    in_village_days: int
    personal_leave_days: int
    sick_leave_days: int
    eligible_days: int
    required_days: int
    shortfall: int
    spot_checks: int
    unexcused_absences: int
    policy_version: str
    #: The days counted in the village, sorted.
    in_village_dates: tuple[date, ...] = ()
    #: The days on personal or sick leave in post, sorted.
    excused_dates: tuple[date, ...] = ()

    @property
    def compliant(self) -> bool:
        return self.shortfall == 0

    def closed_event(self) -> MonthClosed:
        return MonthClosed(
            cadre_id=self.cadre_id,
            month=self.month,
            assignment_ids=self.assignment_ids,
            village_id=self.village_id,
            days_in_month=self.days_in_month,
            days_in_post=self.days_in_post,
            presence_days=self.presence_days,
            business_days=self.business_days,
            in_village_days=self.in_village_days,
            personal_leave_days=self.personal_leave_days,
            sick_leave_days=self.sick_leave_days,
            eligible_days=self.eligible_days,
            required_days=self.required_days,
            shortfall=self.shortfall,
            spot_checks=self.spot_checks,
            unexcused_absences=self.unexcused_absences,
            policy_version=self.policy_version,
        )


def month_tally(
    month: MonthState, leave: LeaveState, posts: Sequence[Post], pack: PolicyPack
) -> MonthTally:
    """Count ``month`` with the cadre's ``posts`` overlapping it and their leave, under the
    rules of ``pack``. Raises ``NotOnPost`` when no post covers a day of the month.

    For a closed month this counts the streams as they are now; ``month.closed`` holds what
    was decided at the close."""
    rules = pack.rules(AttendancePolicy)
    if leave.cadre_id != month.cadre_id:
        raise ValueError(f"the leave of {leave.cadre_id!r} is not that of {month.cadre_id!r}")
    for post in posts:
        if post.cadre_id != month.cadre_id:
            raise ValueError(
                f"assignment {post.assignment_id!r} is of cadre {post.cadre_id!r},"
                f" not {month.cadre_id!r}"
            )
    first, last = month_bounds(month.month)
    days = list(each_day(first, last))
    covering = {day: [p for p in posts if p.covers(day)] for day in days}
    in_post = frozenset(day for day, found in covering.items() if found)
    if not in_post:
        raise NotOnPost(f"cadre {month.cadre_id!r} has no post in {month.month}")
    month_posts = {p.assignment_id: p for found in covering.values() for p in found}
    ordered = sorted(month_posts.values(), key=lambda p: (p.term_start, p.assignment_id))
    latest_post = max(covering[max(in_post)], key=lambda p: (p.term_start, p.assignment_id))

    personal = leave.approved_days(LeaveKind.PERSONAL, first, last) & in_post
    sick = (leave.approved_days(LeaveKind.SICK, first, last) & in_post) - personal
    excused = personal | sick
    business = (leave.approved_days(LeaveKind.VILLAGE_BUSINESS, first, last) & in_post) - excused
    presence = (month.presence_days() & in_post) - excused
    in_village = presence | business
    eligible = len(in_post) - len(excused)
    year, number = parse_month(month.month)
    required = rules.required_days(eligible, rules.period_days(year, number))
    unexcused = sum(
        1
        for check in month.spot_checks.values()
        if check.absent
        and (
            check.excused_by_leave_id is None
            or check.excused_by_leave_id not in leave.leaves
            or not leave.leaves[check.excused_by_leave_id].is_approved
        )
    )
    return MonthTally(
        cadre_id=month.cadre_id,
        month=month.month,
        assignment_ids=tuple(p.assignment_id for p in ordered),
        village_id=latest_post.village_id,
        days_in_month=len(days),
        days_in_post=len(in_post),
        presence_days=len(presence),
        business_days=len(business),
        in_village_days=len(in_village),
        personal_leave_days=len(personal),
        sick_leave_days=len(sick),
        eligible_days=eligible,
        required_days=required,
        shortfall=max(0, required - len(in_village)),
        spot_checks=len(month.spot_checks),
        unexcused_absences=unexcused,
        policy_version=pack.version,
        in_village_dates=tuple(sorted(in_village)),
        excused_dates=tuple(sorted(excused)),
    )
