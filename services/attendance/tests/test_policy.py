"""The ``[attendance]`` section of a policy pack (``zhucun.attendance.domain.policy``): its
numbers in the shipped packs, the arithmetic of the required days, and the service refusing
to start on a pack whose ``[attendance]`` table is broken."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhucun.attendance.app import AttendanceSettings, create_app
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.shared.policy import PolicyBook, PolicyFileError, load_pack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
REFERENCE = POLICIES / "reference-2021.toml"


def test_a_second_jurisdiction_differs_from_the_reference_pack() -> None:
    """Liangshan (5134) counts 200 days a year and lets the township approve 5 days."""
    book = PolicyBook.load(POLICIES, sections=[AttendancePolicy])
    liangshan = book.in_force("513427", date(2025, 3, 1))
    assert liangshan.version == "liangshan-2025"
    assert (
        liangshan.rules(AttendancePolicy).minimum_days,
        liangshan.rules(AttendancePolicy).minimum_period,
    ) == (
        200,
        "year",
    )
    assert liangshan.rules(AttendancePolicy).township_leave_approval_max_days == 5
    # A January close of a cadre in post all month: ceil(200 x 31 / 365) = 17 days.
    assert (
        liangshan.rules(AttendancePolicy).required_days(
            31, liangshan.rules(AttendancePolicy).period_days(2025, 1)
        )
        == 17
    )
    # Before it takes effect, and elsewhere, the reference pack applies.
    assert book.in_force("513427", date(2024, 12, 31)).version == "reference-2021"
    assert book.in_force("530326", date(2025, 3, 1)).version == "reference-2021"


def test_the_reference_pack_requires_20_days_a_month_prorated() -> None:
    rules = load_pack(REFERENCE, [AttendancePolicy]).rules(AttendancePolicy)
    assert (rules.minimum_days, rules.minimum_period) == (20, "month")
    assert rules.annual_leave_limit_days == 30
    assert rules.period_days(2025, 4) == 30
    assert rules.required_days(30, 30) == 20
    assert rules.required_days(15, 30) == 10
    assert rules.required_days(1, 30) == 1  # rounded up
    assert rules.required_days(0, 30) == 0  # no eligible day, nothing required


@pytest.mark.parametrize(
    ("period", "month", "days"),
    [("month", 2, 28), ("quarter", 2, 90), ("quarter", 5, 91), ("year", 7, 365)],
)
def test_the_period_of_the_rule_contains_the_month(period: str, month: int, days: int) -> None:
    table = load_pack(REFERENCE).attendance or {}
    rules = AttendancePolicy.model_validate(table | {"minimum_period": period})
    assert rules.period_days(2025, month) == days


def test_the_service_refuses_to_start_on_a_broken_attendance_section(tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(
        text.replace('minimum_period = "month"', 'minimum_period = "fortnight"'), encoding="utf-8"
    )
    with pytest.raises(PolicyFileError) as refused:
        create_app(AttendanceSettings(policies_dir=tmp_path))
    assert str(path) in str(refused.value)
    assert "[attendance]" in str(refused.value)
    assert "minimum_period" in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        # With minimum_period = "month": February has 28 days (the section's own check).
        ("minimum_days", 29, ((), "value_error")),
        ("max_travel_speed_kmh", 1_001.0, (("max_travel_speed_kmh",), "less_than_equal")),
        ("household_visit_days", 367, (("household_visit_days",), "less_than_equal")),
        (
            "township_leave_approval_max_days",
            367,
            (("township_leave_approval_max_days",), "less_than_equal"),
        ),
        ("annual_leave_limit_days", 367, (("annual_leave_limit_days",), "less_than_equal")),
    ],
)
def test_a_rule_beyond_its_domain_bound_is_refused(
    field: str, value: object, error: tuple[tuple[str, ...], str]
) -> None:
    table = load_pack(REFERENCE).attendance or {}
    with pytest.raises(ValidationError) as refused:
        AttendancePolicy.model_validate(table | {field: value})
    [found] = refused.value.errors()
    assert (found["loc"], found["type"]) == error


@pytest.mark.parametrize(("period", "shortest"), [("month", 28), ("quarter", 90), ("year", 365)])
def test_a_month_never_requires_more_days_than_it_has(period: str, shortest: int) -> None:
    """The most a pack may require (the shortest period's days) is at most the eligible days
    of any month, so a month close always fits its event's bounds (at most 31)."""
    table = load_pack(REFERENCE).attendance or {}
    rules = AttendancePolicy.model_validate(
        table | {"minimum_period": period, "minimum_days": shortest}
    )
    with pytest.raises(ValidationError):
        AttendancePolicy.model_validate(
            table | {"minimum_period": period, "minimum_days": shortest + 1}
        )
    for year in (2024, 2025, 2099):
        for month in range(1, 13):
            period_days = rules.period_days(year, month)
            for eligible in range(32):
                assert rules.required_days(eligible, period_days) <= eligible
