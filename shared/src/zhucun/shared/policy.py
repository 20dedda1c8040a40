"""Versioned policy packs: the format of a pack file, and the book that says which is in force.

A *pack* is one TOML file in ``policies/``: a version string (what events record), the date
it takes effect, the jurisdiction it governs and one table per section (``[dispatch]``,
``[attendance]``, ``[assessment]``, ``[decisions]``). Numbers are never constants in code, and
a section's fields have no defaults, so each pack states every rule it applies and an auditor
reading an event's ``policy_version`` can read exactly which numbers were used.

This module holds the format only: the pack's header, the names of its sections (listed here,
so a misspelt ``[attendence]`` fails when the file is read) and the book. What a section's
table holds, and its arithmetic, live with the service that applies it, as a
:class:`PolicySection` subclass naming its table:

* ``[dispatch]``: ``zhucun.dispatch.domain.policy.DispatchPolicy``;
* ``[attendance]``: ``zhucun.attendance.domain.policy.AttendancePolicy``;
* ``[assessment]``: ``zhucun.assessment.domain.policy.AssessmentPolicy``;
* ``[decisions]``: ``zhucun.projections.domain.policy.DecisionPolicy`` (the read side,
  which also reads ``[attendance].annual_leave_limit_days`` through a view of its own).

``pack.rules(DispatchPolicy)`` validates the pack's table with that class (once per pack).
Each service loads the book with its own section classes,
``PolicyBook.load(folder, sections=(DispatchPolicy,))``, which validates them for every pack
when the service starts: a broken pack stops the start, naming its file and field, never a
call. ``PolicyBook.pack_in_force(county, on, DispatchPolicy)`` is what a command asks for: no
pack in force, or one without the section, is the one refusal :class:`NoPolicyInForce` (422,
``<service>/no-policy-in-force``).

Jurisdictions are ``"default"`` or an administrative division code (GB/T 2260), written
either short (``"53"`` Yunnan, ``"5301"`` Kunming, ``"530102"`` a county) or as the usual six
digits with trailing zeros (``"530000"``, ``"530100"``). A pack covers a county when its code
is a prefix of the county's code; ``"default"`` covers everything.

``PolicyBook.in_force(county, on)`` picks, among the packs covering the county with an
effective date not after ``on``, the most specific jurisdiction and then the latest date.
Packs are complete, not layered: a county pack replaces the province's pack as a whole, so
one version string is enough to say which rules applied.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Final, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator

from zhucun.shared.bounds import PolicyVersion
from zhucun.shared.rules import RuleKind, RuleViolation

DEFAULT_JURISDICTION = "default"
_DIVISION_CODE = re.compile(r"^\d{2}(\d{2}){0,2}$")

#: The tables a pack may have, one per section (each one a field of :class:`PolicyPack`).
SECTION_NAMES: Final = ("dispatch", "attendance", "assessment", "decisions")


class PolicyError(Exception):
    """Base of the policy module's errors."""


class PolicyFileError(PolicyError):
    """A pack file cannot be read or does not match the pack schema."""


class PolicySectionError(PolicyFileError):
    """A pack's section table does not match the section's model (the message names the
    pack's version, the section and the field; and the file, when read from one)."""


class DuplicatePolicy(PolicyError):
    """Two packs share a version, or a jurisdiction and effective date (ambiguous)."""


class PolicySectionMissing(PolicyError):
    """The pack has no table for the section asked for."""


class NoPolicyInForce(PolicyError, RuleViolation):
    """No pack covers the jurisdiction on the date asked (or the one that does lacks the
    section a command needs), or no pack has the version asked for.

    A refusal (422) wherever a command meets it: every service answers it as
    ``<service>/no-policy-in-force``."""

    code: ClassVar[str] = "no_policy_in_force"
    kind: ClassVar[RuleKind] = "invalid"

    def __init__(self, message: str, *, county: str | None = None, on: date | None = None) -> None:
        super().__init__(message)
        #: The jurisdiction asked for (a county, for every command) and the day.
        self.county = county
        self.on = on


class PolicySection(BaseModel):
    """Base of a section's model: frozen, and strict so that a misspelt key fails loudly.

    A subclass names its table in ``section`` (one of :data:`SECTION_NAMES`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The pack's table this section reads.
    section: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = getattr(cls, "section", None)
        if name not in SECTION_NAMES:
            raise TypeError(
                f"{cls.__name__}.section must name a pack table ({', '.join(SECTION_NAMES)}),"
                f" not {name!r}"
            )


S = TypeVar("S", bound=PolicySection)

#: A section's table as the file has it; its section class validates it.
Table = dict[str, object]


class PolicyPack(BaseModel):
    """One versioned, dated set of rules for one jurisdiction: the header, and each section's
    table as written (``rules(SectionClass)`` gives it validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Stable id recorded by every event that applied one of the pack's rules.
    #: Recorded in events (``policy_version``) and shown to people: a name's bounds.
    version: PolicyVersion
    effective_from: date
    jurisdiction: str = DEFAULT_JURISDICTION
    description: str = ""
    dispatch: Table | None = None
    attendance: Table | None = None
    assessment: Table | None = None
    decisions: Table | None = None

    #: Sections validated so far, each with the table it was validated from (a copy made by
    #: ``model_copy(update=...)`` shares this dict but has tables of its own).
    _sections: dict[type[PolicySection], tuple[Table, PolicySection]] = PrivateAttr(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _jurisdiction_is_known(self) -> Self:
        jurisdiction_prefix(self.jurisdiction)  # raises ValueError when malformed
        return self

    def rules(self, section: type[S]) -> S:
        """The pack's ``[section.section]`` table, validated by ``section``;
        ``PolicySectionMissing`` when the pack has none, ``PolicySectionError`` (naming the
        version, the section and the field) when it does not validate."""
        table = cast(Table | None, getattr(self, section.section))
        if table is None:
            raise PolicySectionMissing(f"policy {self.version} has no [{section.section}] section")
        cached = self._sections.get(section)
        if cached is not None and cached[0] is table:
            return cast(S, cached[1])
        try:
            rules = section.model_validate(table)
        except ValidationError as error:
            raise PolicySectionError(
                f"policy {self.version}, section [{section.section}]: {error}"
            ) from error
        self._sections[section] = (table, rules)
        return rules

    def check(self, sections: Iterable[type[PolicySection]]) -> None:
        """Validate the pack's tables for ``sections`` (a missing one is not an error here: a
        command that needs it is refused as ``NoPolicyInForce``)."""
        for section in sections:
            if getattr(self, section.section) is not None:
                self.rules(section)

    def covers(self, jurisdiction: str) -> bool:
        return jurisdiction_prefix(jurisdiction).startswith(jurisdiction_prefix(self.jurisdiction))

    @property
    def specificity(self) -> int:
        """0 for the default pack, then 2 (province), 4 (city), 6 (county)."""
        return len(jurisdiction_prefix(self.jurisdiction))

    # Equal by content: the cache of validated sections is not part of it.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyPack):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((self.version, self.effective_from, self.jurisdiction))


def jurisdiction_prefix(jurisdiction: str) -> str:
    """The significant digits of a division code (``"530100"`` -> ``"5301"``); ``""`` for
    the default jurisdiction."""
    if jurisdiction == DEFAULT_JURISDICTION:
        return ""
    code = jurisdiction
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    if not _DIVISION_CODE.match(code):
        raise ValueError(f"jurisdiction {jurisdiction!r} is neither 'default' nor a division code")
    return code


def load_pack(path: Path, sections: Iterable[type[PolicySection]] = ()) -> PolicyPack:
    """Read and validate one pack file, and its tables for ``sections``; errors name the
    file."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
        pack = PolicyPack.model_validate(raw)
        pack.check(sections)
    except PolicySectionError as exc:
        raise PolicySectionError(f"{path}: {exc}") from exc
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise PolicyFileError(f"{path}: {exc}") from exc
    return pack


class PolicyBook:
    """All known packs; answers which one is in force where and when."""

    def __init__(self, packs: Iterable[PolicyPack]) -> None:
        self._by_version: dict[str, PolicyPack] = {}
        slots: dict[tuple[str, date], str] = {}
        for pack in packs:
            if pack.version in self._by_version:
                raise DuplicatePolicy(f"policy version {pack.version!r} appears twice")
            slot = (jurisdiction_prefix(pack.jurisdiction), pack.effective_from)
            if slot in slots:
                raise DuplicatePolicy(
                    f"policies {slots[slot]!r} and {pack.version!r} both take effect for"
                    f" {pack.jurisdiction} on {pack.effective_from}"
                )
            slots[slot] = pack.version
            self._by_version[pack.version] = pack

    @classmethod
    def load(cls, folder: Path, *, sections: Iterable[type[PolicySection]] = ()) -> PolicyBook:
        """Every ``*.toml`` file of ``folder``, with its tables for ``sections`` validated now
        (a service passes its own section classes, so a broken pack stops its start)."""
        if not folder.is_dir():
            raise PolicyFileError(f"{folder} is not a folder")
        checked = tuple(sections)
        return cls(load_pack(path, checked) for path in sorted(folder.glob("*.toml")))

    def __len__(self) -> int:
        return len(self._by_version)

    def version(self, version: str) -> PolicyPack:
        """The pack an event names (replays and audits apply the same rules again)."""
        try:
            return self._by_version[version]
        except KeyError:
            raise NoPolicyInForce(f"unknown policy version {version!r}") from None

    def in_force(self, jurisdiction: str, on: date) -> PolicyPack:
        """The most specific pack covering ``jurisdiction`` whose effective date is the latest
        one not after ``on``."""
        candidates = [
            pack
            for pack in self._by_version.values()
            if pack.effective_from <= on and pack.covers(jurisdiction)
        ]
        if not candidates:
            raise NoPolicyInForce(
                f"no policy covers {jurisdiction} on {on}", county=jurisdiction, on=on
            )
        return max(candidates, key=lambda pack: (pack.specificity, pack.effective_from))

    def pack_in_force(
        self, jurisdiction: str, on: date, section: type[PolicySection]
    ) -> PolicyPack:
        """The pack in force (:meth:`in_force`) for a command that applies ``section``: no
        pack in force, or one without the section, refuses the command (``NoPolicyInForce``,
        422) whatever its rules."""
        pack = self.in_force(jurisdiction, on)
        try:
            pack.rules(section)
        except PolicySectionMissing as error:
            raise NoPolicyInForce(
                f"{error} (the pack in force for {jurisdiction} on {on})",
                county=jurisdiction,
                on=on,
            ) from error
        return pack


__all__ = [
    "DEFAULT_JURISDICTION",
    "SECTION_NAMES",
    "DuplicatePolicy",
    "NoPolicyInForce",
    "PolicyBook",
    "PolicyError",
    "PolicyFileError",
    "PolicyPack",
    "PolicySection",
    "PolicySectionError",
    "PolicySectionMissing",
    "jurisdiction_prefix",
    "load_pack",
]
