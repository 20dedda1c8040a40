"""The sections the read side reads from a policy pack (``zhucun.projections.decisions.
policy``): ``[decisions]``, and its own view of ``[attendance]`` (the leave limit of rule 2);
their numbers in the shipped packs, and the service refusing to start on a pack whose
``[decisions]`` table, or the leave limit of its ``[attendance]`` table, is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhucun.projections.app import ProjectionsSettings, create_app
from zhucun.projections.domain.policy import DECISION_SECTIONS, DecisionPolicy, LeaveLimit
from zhucun.shared.policy import PolicyFileError, PolicySectionError, load_pack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
REFERENCE = POLICIES / "reference-2021.toml"
DEFAULT = load_pack(REFERENCE, DECISION_SECTIONS)


def test_the_reference_pack_holds_the_recall_and_pool_rules_of_the_domain() -> None:
    rules = DEFAULT.rules(DecisionPolicy)
    assert rules.recall_shortfall_consecutive_months == 2
    assert DEFAULT.rules(LeaveLimit).annual_leave_limit_days == 30
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
    text = REFERENCE.read_text()
    section = DEFAULT.rules(DecisionPolicy).model_dump() | change
    broken = (
        text.split("[decisions]")[0]
        + "[decisions]\n"
        + "\n".join(f"{key} = {json.dumps(value)}" for key, value in section.items())
    )
    path = tmp_path / "broken.toml"
    path.write_text(broken)
    with pytest.raises(PolicyFileError) as raised:
        load_pack(path, DECISION_SECTIONS)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_the_leave_limit_is_a_view_of_the_attendance_table() -> None:
    """Only the field rule 2 reads: attendance's other fields are attendance's to check."""
    table = (DEFAULT.attendance or {}) | {"minimum_period": "fortnight", "new_rule": 1}
    pack = DEFAULT.model_copy(update={"attendance": table})
    assert pack.rules(LeaveLimit).annual_leave_limit_days == 30
    negative = DEFAULT.model_copy(update={"attendance": table | {"annual_leave_limit_days": -1}})
    with pytest.raises(PolicySectionError, match="annual_leave_limit_days"):
        negative.rules(LeaveLimit)


@pytest.mark.parametrize(
    ("line", "broken", "section"),
    [
        ("recall_ban_years = 3", "recall_ban_years = -3", "[decisions]"),
        ("annual_leave_limit_days = 30", "annual_leave_limit_days = -30", "[attendance]"),
    ],
)
def test_the_service_refuses_to_start_on_a_broken_section_it_reads(
    tmp_path: Path, line: str, broken: str, section: str
) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(line, broken), encoding="utf-8")
    with pytest.raises(PolicyFileError) as refused:
        create_app(ProjectionsSettings(policies_dir=tmp_path))
    assert str(path) in str(refused.value)
    assert section in str(refused.value)
    assert line.split()[0] in str(refused.value)
