"""Policy packs as the reference model reads them: straight from the TOML files.

Deliberately not ``zhucun.shared.policy``: the reference model reads the files itself and
implements "the pack in force" itself, so that a mistake there shows up as a difference
between the two implementations instead of being shared by both.

Only what docs/decisions.md uses is kept: the ``[decisions]`` section and
``[attendance].annual_leave_limit_days`` (rule 2).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT = "default"


class PackError(Exception):
    """A pack is missing, unknown, duplicated or malformed."""


@dataclass(frozen=True)
class Pack:
    """The numbers of one pack that the decision rules read (field names as in the TOML)."""

    version: str
    effective_from: date
    jurisdiction: str
    # [attendance]
    annual_leave_limit_days: int
    # [decisions]: recall rules 1-6
    recall_shortfall_consecutive_months: int
    recall_unexcused_absences: int
    recall_annual_grades: tuple[str, ...]
    recall_quarterly_grades: tuple[str, ...]
    recall_average_consecutive_quarters: int
    recall_on_sanction: bool
    # [decisions]: what a recall by dispatch bars
    recall_ban_years: int
    recall_barred_pools: tuple[str, ...]
    # [decisions]: the four pools
    reserve_annual_grade: str
    promote_term_grade: str
    promote_lowest_annual_grade: str
    publicise_red_lists_in_term: int
    publicise_villager_satisfaction_min: float
    commend_annual_grade: str
    disqualifying_annual_grades: tuple[str, ...]
    disqualifying_quarterly_grades: tuple[str, ...]


def read_pack(path: Path) -> Pack:
    """One pack file."""
    with path.open("rb") as file:
        raw = tomllib.load(file)
    try:
        decisions: dict[str, Any] = dict(raw["decisions"])
        fields: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in decisions.items()
        }
        return Pack(
            version=raw["version"],
            effective_from=raw["effective_from"],
            jurisdiction=raw.get("jurisdiction", DEFAULT),
            annual_leave_limit_days=raw["attendance"]["annual_leave_limit_days"],
            **fields,
        )
    except (KeyError, TypeError) as exc:
        raise PackError(f"{path}: not a pack the reference model can read ({exc!r})") from exc


def significant_digits(jurisdiction: str) -> str:
    """``"530100"`` -> ``"5301"``: trailing ``"00"`` pairs stripped (down to two digits);
    ``""`` for the default jurisdiction, which covers every county."""
    if jurisdiction == DEFAULT:
        return ""
    code = jurisdiction
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def covers(jurisdiction: str, county: str) -> bool:
    """Whether a pack of ``jurisdiction`` covers ``county`` (its significant digits are a
    prefix of the county's code)."""
    return county.startswith(significant_digits(jurisdiction))


class Packs:
    """The packs of a folder, and optionally an *override*: the what-if pack that replaces
    every pack (every rule then uses it, whatever an event recorded)."""

    def __init__(self, packs: Iterable[Pack], override: Pack | None = None) -> None:
        self.packs: list[Pack] = list(packs)
        self.override = override
        versions = [pack.version for pack in self.packs]
        for version in versions:
            if versions.count(version) > 1:
                raise PackError(f"pack version {version!r} appears twice")
        slots = [(significant_digits(p.jurisdiction), p.effective_from) for p in self.packs]
        for slot in slots:
            if slots.count(slot) > 1:
                raise PackError(f"two packs take effect for {slot[0] or DEFAULT} on {slot[1]}")

    @classmethod
    def load(cls, folder: Path, override: Path | Pack | None = None) -> Packs:
        """Every ``*.toml`` file of ``folder``; ``override`` a pack or a pack file."""
        packs = [read_pack(path) for path in sorted(folder.glob("*.toml"))]
        if isinstance(override, Path):
            override = read_pack(override)
        return cls(packs, override)

    def by_version(self, version: str) -> Pack:
        """The pack an event recorded (``policy_version``)."""
        if self.override is not None:
            return self.override
        for pack in self.packs:
            if pack.version == version:
                return pack
        raise PackError(f"unknown pack version {version!r}")

    def in_force(self, county: str, on: date) -> Pack:
        """Among the packs covering ``county`` that took effect on or before ``on``: the most
        specific jurisdiction (longest significant prefix), then the latest date."""
        if self.override is not None:
            return self.override
        candidates = [
            pack
            for pack in self.packs
            if pack.effective_from <= on and covers(pack.jurisdiction, county)
        ]
        if not candidates:
            raise PackError(f"no pack covers county {county} on {on}")
        return max(
            candidates,
            key=lambda p: (len(significant_digits(p.jurisdiction)), p.effective_from),
        )
