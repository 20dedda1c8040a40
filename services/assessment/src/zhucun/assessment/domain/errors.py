"""Typed refusals of the assessment decider.

Every refusal is a :class:`~zhucun.shared.rules.RuleViolation` (its ``code``, its ``kind`` and
how each kind is answered are defined there, once), through ``AssessmentRuleViolation``, the
base of this service's refusals. Refusals never decide anything: a refused command leaves
every stream as it was. A ``ValueError`` (not one of these) is the caller's mistake: the
application read the wrong stream or passed another cadre's facts.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from zhucun.contracts.assessment.events import TalkBy
from zhucun.shared import rules
from zhucun.shared.rules import RuleViolation


class AssessmentRuleViolation(RuleViolation):
    """A command breaks an assessment rule; nothing was decided."""


class DuplicateId(rules.DuplicateId, AssessmentRuleViolation):
    """The id of the command's new thing is taken by something with other content (a repeat
    with the same content is a no-op, not an error)."""

    qualifier = "with other content"


class FutureDate(AssessmentRuleViolation):
    """Something said to have happened on a day that has not come yet."""

    code = "future_date"
    kind = "invalid"

    def __init__(self, what: str, day: date, today: date) -> None:
        super().__init__(f"{what} on {day}, which is after today ({today})")
        self.what = what
        self.day = day
        self.today = today


class NotOnPost(AssessmentRuleViolation):
    """The cadre's post (as the replica of dispatch knows it) does not cover the day or
    period. The replica may lag behind dispatch, so the command may succeed later."""

    code = "not_on_post"
    kind = "retryable"

    def __init__(
        self,
        message: str,
        *,
        cadre_id: str,
        assignment_id: str,
        first_day: date,
        last_day: date,
    ) -> None:
        super().__init__(message)
        self.cadre_id = cadre_id
        self.assignment_id = assignment_id
        #: The day or period the post had to cover.
        self.first_day = first_day
        self.last_day = last_day


class QuarterNotOver(AssessmentRuleViolation):
    code = "quarter_not_over"
    kind = "conflict"

    def __init__(self, quarter: str, last_day: date) -> None:
        super().__init__(f"{quarter} can be assessed from its last day ({last_day})")
        self.quarter = quarter
        self.last_day = last_day


class YearNotOver(AssessmentRuleViolation):
    """The annual round of a year not far enough along: it opens from the year's last month
    (1 December), and its grades are proposed and finalised from the year's last day (31
    December), as a quarter is assessed from its last day. ``action``: ``open``,
    ``propose`` or ``finalise``; ``from_day``: the first day it is allowed (ISO dates, so the
    problem document carries them)."""

    code = "year_not_over"
    kind = "conflict"

    def __init__(
        self, year: int, action: Literal["open", "propose", "finalise"], from_day: date, today: date
    ) -> None:
        what = (
            f"the annual round of {year} can be opened from {from_day} (the year's last month)"
            if action == "open"
            else f"the grades of {year} can be {action}d from the year's last day ({from_day})"
        )
        super().__init__(f"{what}, not on {today}")
        self.year = year
        self.action = action
        self.from_day = from_day.isoformat()
        self.today = today.isoformat()


class AlreadyAssessed(AssessmentRuleViolation):
    """The cadre already has an assessment for the period (a quarter, or an assignment's
    term) with other content; a repeat of the same assessment is a no-op."""

    code = "already_assessed"
    kind = "conflict"

    def __init__(self, cadre_id: str, period: str) -> None:
        super().__init__(f"cadre {cadre_id!r} is already assessed for {period}")
        self.cadre_id = cadre_id
        self.period = period


class ListsAlreadyPublished(AssessmentRuleViolation):
    """The quarter's red and blue lists are out: the quarter takes no new assessment and no
    other lists."""

    code = "lists_already_published"
    kind = "conflict"

    def __init__(self, quarter: str, list_id: str, detail: str = "") -> None:
        super().__init__(
            f"the red and blue lists of {quarter} were published as {list_id!r}"
            f"{': ' + detail if detail else ''}"
        )
        self.quarter = quarter
        self.list_id = list_id


class NothingToRank(AssessmentRuleViolation):
    code = "nothing_to_rank"
    kind = "conflict"

    def __init__(self, county: str, quarter: str) -> None:
        super().__init__(f"no cadre of county {county} is assessed for {quarter} yet")
        self.county = county
        self.quarter = quarter


class UnknownObligation(AssessmentRuleViolation):
    code = "unknown_obligation"
    kind = "not_found"

    def __init__(self, obligation_id: str, cadre_id: str) -> None:
        super().__init__(
            f"no admonition-talk obligation {obligation_id!r} of cadre {cadre_id!r} in this quarter"
        )
        self.obligation_id = obligation_id
        self.cadre_id = cadre_id


class DuplicateTalk(AssessmentRuleViolation):
    """The party already held its talk of the obligation, on another day."""

    code = "duplicate_talk"
    kind = "conflict"

    def __init__(self, obligation_id: str, by: TalkBy, held_on: date) -> None:
        super().__init__(
            f"the {by.value} talk of obligation {obligation_id!r} was already held on {held_on}"
        )
        self.obligation_id = obligation_id
        self.by = by
        self.held_on = held_on


class RoundNotOpen(AssessmentRuleViolation):
    code = "round_not_open"
    kind = "conflict"

    def __init__(self, county: str, year: int) -> None:
        super().__init__(f"no annual round of county {county} for {year} is open")
        self.county = county
        self.year = year


class RoundAlreadyOpen(AssessmentRuleViolation):
    code = "round_already_open"
    kind = "conflict"

    def __init__(self, county: str, year: int, round_id: str) -> None:
        super().__init__(f"the annual round of county {county} for {year} is {round_id!r}")
        self.county = county
        self.year = year
        self.round_id = round_id


class WrongRound(AssessmentRuleViolation):
    """The command names a round other than the one of the county and year (``actual``,
    None when the state given is of another county or year)."""

    code = "wrong_round"
    kind = "not_found"

    def __init__(self, round_id: str, county: str, year: int, actual: str | None) -> None:
        known = f" (its round is {actual!r})" if actual is not None else ""
        super().__init__(f"there is no round {round_id!r} of county {county} for {year}{known}")
        self.round_id = round_id
        self.county = county
        self.year = year
        self.actual = actual


class RoundAlreadyFinalised(AssessmentRuleViolation):
    code = "round_already_finalised"
    kind = "conflict"

    def __init__(self, round_id: str) -> None:
        super().__init__(f"the annual round {round_id!r} is final: no more proposals")
        self.round_id = round_id


class NothingToFinalise(AssessmentRuleViolation):
    code = "nothing_to_finalise"
    kind = "conflict"

    def __init__(self, round_id: str) -> None:
        super().__init__(f"the annual round {round_id!r} has no proposal yet")
        self.round_id = round_id


class ExcellentShareExceeded(AssessmentRuleViolation):
    """More 优秀 than the share cap allows among the cadres of the round."""

    code = "excellent_share_exceeded"
    kind = "conflict"

    def __init__(self, excellent: int, cadres_assessed: int, cap: int, share: float) -> None:
        percent = (Decimal(repr(share)) * 100).normalize()
        super().__init__(
            f"{excellent} {'cadre' if excellent == 1 else 'cadres'} graded excellent (优秀)"
            f" among {cadres_assessed} assessed;"
            f" at most {cap} are allowed ({percent:f}% of {cadres_assessed}, rounded down)"
        )
        self.excellent = excellent
        self.cadres_assessed = cadres_assessed
        self.cap = cap
        self.share = share


class TermNotOver(AssessmentRuleViolation):
    code = "term_not_over"
    kind = "conflict"

    def __init__(self, assignment_id: str, term_end: date) -> None:
        super().__init__(
            f"assignment {assignment_id!r} has not ended: its term runs until {term_end}"
        )
        self.assignment_id = assignment_id
        self.term_end = term_end
