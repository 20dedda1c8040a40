"""The ``[assessment]`` section of a policy pack (``zhucun.assessment.domain.policy``): its
numbers in the shipped packs, its consistency rules, and the service refusing to start on a
pack whose ``[assessment]`` table is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhucun.assessment.app import AssessmentSettings, create_app
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.shared.policy import PolicyBook, PolicyFileError, PolicySectionError, load_pack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
REFERENCE = POLICIES / "reference-2021.toml"


def test_the_reference_pack_holds_the_assessment_rules_of_the_domain() -> None:
    rules = load_pack(REFERENCE, [AssessmentPolicy]).rules(AssessmentPolicy)
    assert (rules.township_weight, rules.villager_weight, rules.county_panel_weight) == (70, 20, 10)
    assert (
        rules.quarterly_good_min,
        rules.quarterly_fairly_good_min,
        rules.quarterly_average_min,
    ) == (90, 80, 60)
    assert rules.excellent_share_cap == 0.2
    assert (
        rules.absences_bar_excellent,
        rules.absences_cap_basic,
        rules.absences_incompetent,
    ) == (1, 2, 3)
    assert (rules.red_list_size, rules.blue_list_size) == (10, 5)


def test_liangshan_allows_more_excellent_grades() -> None:
    book = PolicyBook.load(POLICIES, sections=[AssessmentPolicy])
    assert book.version("liangshan-2025").rules(AssessmentPolicy).excellent_share_cap == 0.3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"township_weight": 60}, "weights must sum to 100"),
        ({"quarterly_fairly_good_min": 95}, "good >= fairly good >= average"),
        ({"absences_cap_basic": 5}, "bar_excellent <= cap_basic <= incompetent"),
        ({"excellent_share_cap": 1.5}, "excellent_share_cap"),
        ({"red_list": 10}, "red_list"),  # an unknown key
    ],
)
def test_an_inconsistent_assessment_section_is_refused(
    change: dict[str, object], message: str
) -> None:
    pack = load_pack(REFERENCE)
    table = (pack.assessment or {}) | change
    broken = pack.model_copy(update={"version": "broken", "assessment": table})
    with pytest.raises(PolicySectionError, match=message):
        broken.rules(AssessmentPolicy)


def test_the_service_refuses_to_start_on_a_broken_assessment_section(tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(text.replace("red_list_size = 10", "red_list_size = -1"), encoding="utf-8")
    with pytest.raises(PolicyFileError) as refused:
        create_app(AssessmentSettings(policies_dir=tmp_path))
    assert str(path) in str(refused.value)
    assert "[assessment]" in str(refused.value)
    assert "red_list_size" in str(refused.value)
