"""Lookups that refuse with a typed error, and date arithmetic, shared by the handlers."""

from __future__ import annotations

import calendar
from datetime import date

from zhucun.dispatch.domain.errors import (
    AssignmentNotActive,
    BeyondCalendar,
    DatesOutOfOrder,
    DuplicateId,
    UnknownAssignment,
    UnknownCadre,
    UnknownRound,
    UnknownTeam,
    UnknownVillage,
    WrongCounty,
)
from zhucun.dispatch.domain.state import (
    Assignment,
    Cadre,
    CountyDispatch,
    Round,
    Team,
    Village,
)
from zhucun.shared.bounds import DATE_MAX

# --- lookups --------------------------------------------------------------------------------


def require_same_county(state: CountyDispatch, county: str) -> None:
    if county != state.county:
        raise WrongCounty(f"county {county!r} does not belong in the stream of {state.county!r}")


def require_village(state: CountyDispatch, village_id: str) -> Village:
    try:
        return state.villages[village_id]
    except KeyError:
        raise UnknownVillage(village_id) from None


def require_cadre(state: CountyDispatch, cadre_id: str) -> Cadre:
    try:
        return state.cadres[cadre_id]
    except KeyError:
        raise UnknownCadre(cadre_id) from None


def require_round(state: CountyDispatch, round_id: str) -> Round:
    try:
        return state.rounds[round_id]
    except KeyError:
        raise UnknownRound(round_id) from None


def require_team(state: CountyDispatch, team_id: str) -> Team:
    try:
        return state.teams[team_id]
    except KeyError:
        raise UnknownTeam(team_id) from None


def require_active_assignment(state: CountyDispatch, assignment_id: str) -> Assignment:
    assignment = state.assignments.get(assignment_id)
    if assignment is None:
        raise UnknownAssignment(assignment_id)
    if not assignment.is_active:
        raise AssignmentNotActive(f"assignment {assignment_id!r} ended on {assignment.ended_on}")
    return assignment


def require_new_assignment_id(state: CountyDispatch, assignment_id: str) -> None:
    if assignment_id in state.assignments:
        raise DuplicateId("assignment", assignment_id)


# --- dates ----------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def full_years(since: date, on: date) -> int:
    return on.year - since.year - ((on.month, on.day) < (since.month, since.day))


def not_before(later: date, earlier: date, what: str) -> None:
    if later < earlier:
        raise DatesOutOfOrder(f"{what}: {later} is before {earlier}")


def within_calendar(day: date, what: str) -> date:
    """``day``, a date a rule derived, if it is a business date of the calendar."""
    if day > DATE_MAX:
        raise BeyondCalendar(f"{what} would be {day}, after {DATE_MAX}, the calendar's last day")
    return day
