"""Policy packs and the policy book: loading, validation, which pack is in force (no I/O
beyond reading small files)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from zhucun.shared.policy import (
    DuplicatePolicy,
    NoPolicyInForce,
    PolicyBook,
    PolicyFileError,
    PolicyPack,
    PolicySectionMissing,
    jurisdiction_prefix,
    load_pack,
)

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEFAULT = load_pack(POLICIES / "reference-2021.toml")


def pack(version: str, jurisdiction: str, effective_from: date, **dispatch: object) -> PolicyPack:
    rules = DEFAULT.dispatch_rules().model_dump() | dispatch
    return PolicyPack.model_validate(
        {
            "version": version,
            "jurisdiction": jurisdiction,
            "effective_from": effective_from,
            "dispatch": rules,
        }
    )


def test_the_default_pack_holds_the_domain_defaults() -> None:
    assert DEFAULT.version == "reference-2021"
    assert DEFAULT.effective_from == date(2021, 1, 1)
    assert DEFAULT.jurisdiction == "default"
    rules = DEFAULT.dispatch_rules()
    assert (rules.team_size_min, rules.team_size_max) == (3, 5)
    assert rules.team_size_bounds(199) == (3, 5)
    assert rules.team_size_bounds(200) == (5, 5)  # Yunnan: 1 + 4
    assert rules.normal_max_age == 45
    assert rules.min_term_months == 24
    assert (rules.township_leader_min_cadres, rules.township_leader_term_months) == (3, 12)
    assert rules.weak_branch_village_requires_first_secretary is True


def test_the_policies_folder_loads_as_a_book() -> None:
    book = PolicyBook.load(POLICIES)
    assert book.in_force("530102", date(2021, 1, 1)).version == "reference-2021"
    assert book.version("reference-2021") == DEFAULT
    with pytest.raises(NoPolicyInForce):
        book.in_force("530102", date(2020, 12, 31))


def test_the_reference_pack_holds_the_recall_and_pool_rules_of_the_domain() -> None:
    rules = DEFAULT.decision_rules()
    assert rules.recall_shortfall_consecutive_months == 2
    assert DEFAULT.attendance_rules().annual_leave_limit_days == 30
    assert rules.recall_unexcused_absences == 3
    assert rules.recall_annual_grades == ("incompetent",)
    assert rules.recall_quarterly_grades == ("poor",)
    assert rules.recall_average_consecutive_quarters == 2
    assert rules.recall_on_sanction is True
    assert (rules.recall_ban_years, rules.recall_barred_pools) == (3, ("reserve", "promote"))
    assert rules.publicise_red_lists_in_term == 2
    assert rules.publicise_villager_satisfaction_min == 95
    assert rules.annual_below("basically_competent", "competent")
    assert not rules.annual_below("excellent", "competent")


def test_a_second_jurisdiction_differs_from_the_reference_pack() -> None:
    """Liangshan (5134) counts 200 days a year and lets the township approve 5 days."""
    book = PolicyBook.load(POLICIES)
    liangshan = book.in_force("513427", date(2025, 3, 1))
    assert liangshan.version == "liangshan-2025"
    assert (
        liangshan.attendance_rules().minimum_days,
        liangshan.attendance_rules().minimum_period,
    ) == (
        200,
        "year",
    )
    assert liangshan.attendance_rules().township_leave_approval_max_days == 5
    # A January close of a cadre in post all month: ceil(200 x 31 / 365) = 17 days.
    assert (
        liangshan.attendance_rules().required_days(
            31, liangshan.attendance_rules().period_days(2025, 1)
        )
        == 17
    )
    # Before it takes effect, and elsewhere, the reference pack applies.
    assert book.in_force("513427", date(2024, 12, 31)).version == "reference-2021"
    assert book.in_force("530326", date(2025, 3, 1)).version == "reference-2021"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recall_annual_grades": ["terrible"]}, "recall_annual_grades"),
        ({"recall_ban_years": -1}, "recall_ban_years"),
        ({"recall_barred_pool": ["reserve"]}, "recall_barred_pool"),  # misspelt key
        ({"recall_barred_pools": ["fame"]}, "recall_barred_pools"),
    ],
)
def test_a_broken_decisions_section_fails_with_the_file_and_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    text = (POLICIES / "reference-2021.toml").read_text()
    section = DEFAULT.decision_rules().model_dump() | change
    broken = (
        text.split("[decisions]")[0]
        + "[decisions]\n"
        + "\n".join(f"{key} = {json.dumps(value)}" for key, value in section.items())
    )
    path = tmp_path / "broken.toml"
    path.write_text(broken)
    with pytest.raises(PolicyFileError) as raised:
        load_pack(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


BOOK = PolicyBook(
    [
        DEFAULT,
        pack("yn-2023", "530000", date(2023, 5, 1), team_size_max=6),
        pack("yn-2025", "530000", date(2025, 7, 1), team_size_max=7),
        pack("km-2024", "5301", date(2024, 1, 1), normal_max_age=50),
        pack("xs-2026", "530102", date(2026, 1, 1), min_term_months=36),
    ]
)


@pytest.mark.parametrize(
    ("jurisdiction", "on", "expected"),
    [
        ("110101", date(2025, 6, 1), "reference-2021"),  # Beijing: no pack of its own
        ("532301", date(2025, 6, 1), "yn-2023"),  # Yunnan, before yn-2025 takes effect
        ("532301", date(2025, 7, 1), "yn-2025"),  # latest effective date not after the day
        ("530102", date(2025, 12, 31), "km-2024"),  # the city is more specific than Yunnan
        ("530102", date(2026, 1, 1), "xs-2026"),  # the county pack, from its first day
        ("530103", date(2026, 1, 1), "km-2024"),  # a sibling county keeps the city's pack
        ("532301", date(2023, 4, 30), "reference-2021"),  # before Yunnan's first pack
        ("532301", date(2020, 12, 31), None),  # nothing in force yet
    ],
)
def test_most_specific_jurisdiction_then_latest_date(
    jurisdiction: str, on: date, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(NoPolicyInForce):
            BOOK.in_force(jurisdiction, on)
    else:
        assert BOOK.in_force(jurisdiction, on).version == expected


def test_division_codes_in_short_or_six_digit_form() -> None:
    assert jurisdiction_prefix("530000") == "53"
    assert jurisdiction_prefix("530100") == "5301"
    assert jurisdiction_prefix("530102") == "530102"
    assert jurisdiction_prefix("default") == ""
    with pytest.raises(ValueError, match="division code"):
        jurisdiction_prefix("yunnan")


def test_ambiguous_books_are_refused() -> None:
    with pytest.raises(DuplicatePolicy, match="appears twice"):
        PolicyBook([DEFAULT, DEFAULT])
    with pytest.raises(DuplicatePolicy, match="both take effect"):
        PolicyBook([pack("a", "53", date(2025, 1, 1)), pack("b", "530000", date(2025, 1, 1))])


def test_bad_pack_files_name_the_file(tmp_path: Path) -> None:
    text = (POLICIES / "reference-2021.toml").read_text(encoding="utf-8")
    (tmp_path / "typo.toml").write_text(
        text.replace("team_size_max", "team_size_maximum"), encoding="utf-8"
    )
    with pytest.raises(PolicyFileError, match=r"typo\.toml"):
        PolicyBook.load(tmp_path)
    (tmp_path / "typo.toml").write_text(text.replace("= 5\n", "= 2\n", 1), encoding="utf-8")
    with pytest.raises(PolicyFileError, match="team_size_min <= large_village_team_size_min"):
        PolicyBook.load(tmp_path)
    with pytest.raises(PolicyFileError, match="not a folder"):
        PolicyBook.load(tmp_path / "missing")


def test_packs_are_frozen_and_sections_optional() -> None:
    bare = PolicyPack(version="attendance-only", effective_from=date(2025, 1, 1))
    with pytest.raises(PolicySectionMissing):
        bare.dispatch_rules()
    with pytest.raises(ValueError, match="frozen"):
        DEFAULT.version = "other"  # type: ignore[misc]
