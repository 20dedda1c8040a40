"""Policy packs and the policy book: the pack format, sections validated by their classes,
which pack is in force (no I/O beyond reading small files).

The sections' own fields and arithmetic are tested with their services
(``services/*/tests/test_policy.py``); here a test-only section stands in for them."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Self

import pytest
from pydantic import Field, model_validator

from zhucun.shared.policy import (
    SECTION_NAMES,
    DuplicatePolicy,
    NoPolicyInForce,
    PolicyBook,
    PolicyError,
    PolicyFileError,
    PolicyPack,
    PolicySection,
    PolicySectionError,
    PolicySectionMissing,
    jurisdiction_prefix,
    load_pack,
)
from zhucun.shared.problems import rule_problem
from zhucun.shared.rules import RuleViolation

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEFAULT = load_pack(POLICIES / "reference-2021.toml")


class Teams(PolicySection):
    """A test-only section of the ``[dispatch]`` table: two fields and a consistency rule."""

    section = "dispatch"

    smallest: int = Field(ge=1)
    largest: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.smallest > self.largest:
            raise ValueError("smallest must not exceed largest")
        return self


TEAMS = {"smallest": 3, "largest": 5}


def pack(version: str, jurisdiction: str, effective_from: date, **dispatch: object) -> PolicyPack:
    return PolicyPack.model_validate(
        {
            "version": version,
            "jurisdiction": jurisdiction,
            "effective_from": effective_from,
            "dispatch": TEAMS | dispatch,
        }
    )


def write_pack(folder: Path, name: str, body: str, *, year: int = 2025) -> Path:
    """A pack file for Yunnan (``53``) from 1 January ``year``, version ``test-<year>``."""
    path = folder / name
    path.write_text(
        f'version = "test-{year}"\neffective_from = {year}-01-01\njurisdiction = "53"\n' + body,
        encoding="utf-8",
    )
    return path


# --- the format -----------------------------------------------------------------------------


def test_the_reference_pack_header() -> None:
    assert DEFAULT.version == "reference-2021"
    assert DEFAULT.effective_from == date(2021, 1, 1)
    assert DEFAULT.jurisdiction == "default"
    assert all(getattr(DEFAULT, name) for name in SECTION_NAMES)  # every table, as written


def test_the_known_section_names_are_the_packs_tables() -> None:
    tables = set(PolicyPack.model_fields) - {"version", "effective_from", "jurisdiction"}
    assert tables - {"description"} == set(SECTION_NAMES)


def test_an_unknown_table_fails_when_the_pack_loads(tmp_path: Path) -> None:
    text = (POLICIES / "reference-2021.toml").read_text(encoding="utf-8")
    path = tmp_path / "typo.toml"
    path.write_text(text.replace("[attendance]", "[attendence]"), encoding="utf-8")
    with pytest.raises(PolicyFileError) as raised:
        load_pack(path)
    assert str(path) in str(raised.value)
    assert "attendence" in str(raised.value)
    with pytest.raises(PolicyFileError, match=r"typo\.toml"):
        PolicyBook.load(tmp_path)


def test_a_section_class_must_name_a_known_table() -> None:
    with pytest.raises(TypeError, match="attendence"):

        class Misspelt(PolicySection):
            section = "attendence"

    with pytest.raises(TypeError, match="must name a pack table"):

        class Unnamed(PolicySection):
            value: int


def test_a_section_is_validated_by_its_class_once() -> None:
    teams = pack("p", "default", date(2025, 1, 1))
    rules = teams.rules(Teams)
    assert (rules.smallest, rules.largest) == (3, 5)
    assert teams.rules(Teams) is rules  # cached
    # A copy with another table is validated afresh; the original keeps its own.
    copied = teams.model_copy(update={"dispatch": {"smallest": 2, "largest": 2}})
    assert copied.rules(Teams).smallest == 2
    assert teams.rules(Teams).smallest == 3
    # The cache is not part of a pack's content.
    assert teams == pack("p", "default", date(2025, 1, 1))
    assert hash(teams) == hash(pack("p", "default", date(2025, 1, 1)))


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"smallest": 3}, "largest"),  # a field missing: sections have no defaults
        ({"smallest": 3, "largest": 5, "biggest": 6}, "biggest"),  # an unknown key
        ({"smallest": 0, "largest": 5}, "smallest"),
        ({"smallest": 6, "largest": 5}, "smallest must not exceed largest"),
    ],
)
def test_an_invalid_section_names_the_pack_the_section_and_the_field(
    table: dict[str, object], field: str
) -> None:
    broken = PolicyPack(version="broken-1", effective_from=date(2025, 1, 1), dispatch=table)
    with pytest.raises(PolicySectionError) as raised:
        broken.rules(Teams)
    message = str(raised.value)
    assert "broken-1" in message
    assert "[dispatch]" in message
    assert field in message
    assert isinstance(raised.value, PolicyFileError)


def test_packs_are_frozen_and_sections_optional() -> None:
    bare = PolicyPack(version="attendance-only", effective_from=date(2025, 1, 1))
    with pytest.raises(PolicySectionMissing, match=r"attendance-only has no \[dispatch\]"):
        bare.rules(Teams)
    bare.check([Teams])  # a missing section is not an error when the pack loads
    with pytest.raises(ValueError, match="frozen"):
        DEFAULT.version = "other"  # type: ignore[misc]


# --- the book -------------------------------------------------------------------------------


def test_the_policies_folder_loads_as_a_book() -> None:
    book = PolicyBook.load(POLICIES)
    assert len(book) == 2
    assert book.in_force("530102", date(2021, 1, 1)).version == "reference-2021"
    assert book.version("reference-2021") == DEFAULT
    assert book.in_force("513427", date(2025, 3, 1)).version == "liangshan-2025"
    assert book.in_force("513427", date(2024, 12, 31)).version == "reference-2021"
    with pytest.raises(NoPolicyInForce):
        book.in_force("530102", date(2020, 12, 31))
    with pytest.raises(NoPolicyInForce, match="unknown policy version"):
        book.version("nope")


def test_the_book_validates_the_sections_it_is_given_when_it_loads(tmp_path: Path) -> None:
    write_pack(tmp_path, "good.toml", "[dispatch]\nsmallest = 3\nlargest = 5\n")
    assert len(PolicyBook.load(tmp_path, sections=[Teams])) == 1
    bad = write_pack(tmp_path, "bad.toml", "[dispatch]\nsmallest = 3\nlargst = 5\n", year=2026)
    # Without the section class the table is only a table...
    assert len(PolicyBook.load(tmp_path)) == 2
    # ...with it, the book refuses to load, naming the file, the section and the field.
    with pytest.raises(PolicySectionError) as raised:
        PolicyBook.load(tmp_path, sections=[Teams])
    message = str(raised.value)
    assert str(bad) in message
    assert "[dispatch]" in message
    assert "largst" in message


BOOK = PolicyBook(
    [
        DEFAULT,
        pack("yn-2023", "530000", date(2023, 5, 1), largest=6),
        pack("yn-2025", "530000", date(2025, 7, 1), largest=7),
        pack("km-2024", "5301", date(2024, 1, 1), smallest=4),
        pack("xs-2026", "530102", date(2026, 1, 1), largest=8),
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


def test_no_pack_in_force_is_one_refusal_of_every_service() -> None:
    bare_pack = PolicyPack(version="bare", effective_from=date(2024, 1, 1), jurisdiction="5301")
    book = PolicyBook([pack("yn-2023", "530000", date(2023, 5, 1)), bare_pack])
    assert book.pack_in_force("532301", date(2023, 5, 1), Teams).version == "yn-2023"
    # No pack covers the day.
    with pytest.raises(NoPolicyInForce) as before:
        book.pack_in_force("532301", date(2023, 4, 30), Teams)
    # The pack in force has no table for the section.
    with pytest.raises(NoPolicyInForce) as bare:
        book.pack_in_force("530102", date(2024, 6, 1), Teams)
    assert "bare has no [dispatch] section" in bare.value.message
    for refusal in (before.value, bare.value):
        assert isinstance(refusal, RuleViolation)
        assert isinstance(refusal, PolicyError)
        assert (refusal.kind, refusal.code) == ("invalid", "no_policy_in_force")
        problem = rule_problem(refusal, service="attendance")
        assert problem.status == 422
        assert problem.type.endswith("/attendance/no-policy-in-force")
        assert problem.extensions["code"] == "no_policy_in_force"
    assert (before.value.county, before.value.on) == ("532301", date(2023, 4, 30))
    assert (bare.value.county, bare.value.on) == ("530102", date(2024, 6, 1))


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
    path = write_pack(tmp_path, "typo.toml", "versoin = 2\n")
    with pytest.raises(PolicyFileError, match=r"typo\.toml") as raised:
        PolicyBook.load(tmp_path)
    assert "versoin" in str(raised.value)
    path.write_text('version = "x"\neffective_from = 2025-01-01\njurisdiction = "yunnan"\n')
    with pytest.raises(PolicyFileError, match="division code"):
        PolicyBook.load(tmp_path)
    path.write_text("version = \n")
    with pytest.raises(PolicyFileError, match=r"typo\.toml"):
        PolicyBook.load(tmp_path)
    with pytest.raises(PolicyFileError, match="not a folder"):
        PolicyBook.load(tmp_path / "missing")
