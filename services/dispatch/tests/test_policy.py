"""The ``[dispatch]`` section of a policy pack (``zhucun.dispatch.domain.policy``): its
numbers in the shipped packs, its consistency rules, and the service refusing to start on a
pack whose ``[dispatch]`` table is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhucun.dispatch.app import DispatchSettings, create_app
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.shared.policy import PolicyBook, PolicyFileError, load_pack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
REFERENCE = POLICIES / "reference-2021.toml"
DEFAULT = load_pack(REFERENCE, [DispatchPolicy])


def test_the_default_pack_holds_the_domain_defaults() -> None:
    assert DEFAULT.version == "reference-2021"
    rules = DEFAULT.rules(DispatchPolicy)
    assert (rules.team_size_min, rules.team_size_max) == (3, 5)
    assert rules.team_size_bounds(199) == (3, 5)
    assert rules.team_size_bounds(200) == (5, 5)  # Yunnan: 1 + 4
    assert rules.normal_max_age == 45
    assert rules.min_term_months == 24
    assert (rules.township_leader_min_cadres, rules.township_leader_term_months) == (3, 12)
    assert rules.weak_branch_village_requires_first_secretary is True


def test_bad_pack_files_name_the_file(tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    (tmp_path / "typo.toml").write_text(
        text.replace("team_size_max", "team_size_maximum"), encoding="utf-8"
    )
    with pytest.raises(PolicyFileError, match=r"typo\.toml"):
        PolicyBook.load(tmp_path, sections=[DispatchPolicy])
    (tmp_path / "typo.toml").write_text(text.replace("= 5\n", "= 2\n", 1), encoding="utf-8")
    with pytest.raises(PolicyFileError, match="team_size_min <= large_village_team_size_min"):
        PolicyBook.load(tmp_path, sections=[DispatchPolicy])


def test_the_service_refuses_to_start_on_a_broken_dispatch_section(tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(text.replace("normal_max_age = 45", "normal_max_age = 12"), encoding="utf-8")
    with pytest.raises(PolicyFileError) as refused:
        create_app(DispatchSettings(policies_dir=tmp_path))
    assert str(path) in str(refused.value)
    assert "[dispatch]" in str(refused.value)
    assert "normal_max_age" in str(refused.value)


def test_the_service_validates_its_own_section_only(tmp_path: Path) -> None:
    """Another service's broken table is that service's to refuse, when it starts."""
    text = REFERENCE.read_text(encoding="utf-8")
    (tmp_path / "pack.toml").write_text(
        text.replace("red_list_size = 10", "red_list_size = -1"), encoding="utf-8"
    )
    create_app(DispatchSettings(policies_dir=tmp_path))
