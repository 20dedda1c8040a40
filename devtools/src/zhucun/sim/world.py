"""The simulated world: counties, townships, villages, sending units, cadres and teams.

Everything here is drawn from one ``random.Random(seed)``, in a fixed order, so the same
arguments give the same world byte for byte. Ids carry a prefix derived from the seed
(``s7-...``) and county codes are allocated from the seed too, so several seeds can share
one Kafka cluster and one set of databases: the services keep one dispatch stream, one
quarter stream and one annual round *per county*, and two worlds in the same county would
collide there (a second round cannot open while the first is open, a quarter's lists are
published once).

The world respects dispatch's hard rules so its commands are accepted: teams of the pack's
size (one first secretary and at least two members; five in villages with 200 or more people
under monitoring), first secretaries with a year of party standing, a first secretary for every
weak-party-branch village, one assignment per cadre. Soft rules (age, 一老一新, 一深一浅) are
met by most teams and missed by a few, so the warnings show up as they would in a county.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from zhucun.contracts.dispatch.events import Expertise, Role, UnitKind, UnitLevel, VillageCategory
from zhucun.dispatch.domain.policy import DispatchPolicy


class Behaviour(StrEnum):
    """How a simulated cadre behaves over the term; each one is built to trigger (or to stay
    clear of) the rules of ``docs/decisions.md``."""

    #: Compliant every month, grades 好/较好, annual 称职.
    DILIGENT = "diligent"
    #: Short of the required days in runs of consecutive months, unexcused spot-check
    #: absences (some reach 3 in a year), some take more than 30 days of leave in a year.
    ABSENTEE = "absentee"
    #: Quarterly 一般 (some in consecutive quarters, some 差), annual 基本称职 or 不称职.
    MEDIOCRE = "mediocre"
    #: High scores, red lists, villagers' satisfaction of 95 or more, annual 优秀 within the
    #: county's share cap.
    EXCELLENT = "excellent"


#: The default mix of behaviours (shares of the cadres).
DEFAULT_MIX_TEXT = "diligent=0.6,absentee=0.15,mediocre=0.15,excellent=0.1"

#: What each behaviour's cadres do besides the behaviour's common pattern, dealt out in turn
#: (cadre 0 of a behaviour gets the first trait, cadre 1 the second...), so that even a small
#: world has one cadre of each and every rule of the read side gets triggered.
TRAITS: Mapping[Behaviour, tuple[str, ...]] = {
    # three: 3 unexcused absences in one calendar year (recall rule 3, annual 不称职);
    # long_leave: more than the yearly leave limit (rule 2); runs: shortfall runs only.
    Behaviour.ABSENTEE: ("three_absences", "long_leave", "runs"),
    # consecutive: 一般 in two consecutive quarters (rule 5); poor: a quarterly 差 and an
    # annual 不称职 (rule 4); single: one isolated 一般 (双约谈 only).
    Behaviour.MEDIOCRE: ("consecutive_average", "poor", "single_average"),
    # capped: one unexcused absence in a year, so the 优秀 proposed is capped to 称职.
    Behaviour.EXCELLENT: ("plain", "plain", "plain", "plain", "capped"),
    Behaviour.DILIGENT: ("plain",),
}


class MixError(ValueError):
    """A ``--mix`` that cannot be read."""


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of each behaviour, normalised to sum 1."""

    shares: tuple[tuple[Behaviour, float], ...]

    @classmethod
    def parse(cls, text: str) -> Mix:
        """``diligent=0.6,absentee=0.15,...``; missing behaviours get 0, the shares are
        normalised (so ``diligent=3,absentee=1`` is 75 % / 25 %)."""
        values: dict[Behaviour, float] = dict.fromkeys(Behaviour, 0.0)
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, number = part.partition("=")
            if not sep:
                raise MixError(f"{part!r} is not behaviour=share")
            try:
                behaviour = Behaviour(name.strip())
            except ValueError:
                known = ", ".join(b.value for b in Behaviour)
                raise MixError(f"unknown behaviour {name.strip()!r} (known: {known})") from None
            try:
                share = float(number)
            except ValueError:
                raise MixError(f"share {number!r} of {behaviour} is not a number") from None
            if share < 0 or math.isnan(share) or math.isinf(share):
                raise MixError(f"share of {behaviour} must be a finite number >= 0")
            values[behaviour] = share
        total = sum(values.values())
        if total <= 0:
            raise MixError("the mix needs at least one positive share")
        return cls(tuple((b, values[b] / total) for b in Behaviour))

    def counts(self, cadres: int) -> dict[Behaviour, int]:
        """Cadres per behaviour (largest remainder, ties in the order of ``Behaviour``), so the
        counts add up to ``cadres`` exactly."""
        exact = [(b, share * cadres) for b, share in self.shares]
        counts = {b: math.floor(x) for b, x in exact}
        left = cadres - sum(counts.values())
        by_remainder = sorted(
            range(len(exact)), key=lambda i: (-(exact[i][1] - math.floor(exact[i][1])), i)
        )
        for i in by_remainder[:left]:
            counts[exact[i][0]] += 1
        return counts

    def text(self) -> str:
        """The mix as ``--mix`` text; exact (``repr``), so parsing it gives the same counts."""
        return ",".join(f"{b.value}={share!r}" for b, share in self.shares)


@dataclass(frozen=True, slots=True)
class Unit:
    """A sending unit (派出单位): a kind and a level."""

    unit_id: str
    kind: UnitKind
    level: UnitLevel


@dataclass(frozen=True, slots=True)
class Village:
    village_id: str
    county: str
    township: str
    name: str
    categories: tuple[VillageCategory, ...]
    latitude: float
    longitude: float
    radius_m: int
    households: int
    monitored_population: int
    needs: tuple[Expertise, ...]
    #: The team sent to it in the round, None for a village registered without one.
    team_id: str | None


@dataclass(frozen=True, slots=True)
class Cadre:
    cadre_id: str
    county: str
    township: str
    village_id: str
    team_id: str
    assignment_id: str
    role: Role
    sending_unit: str
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: int
    party_member_since: date | None
    rural_experience_years: int
    skills: tuple[Expertise, ...]
    behaviour: Behaviour
    trait: str


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    county: str
    township: str
    village_id: str
    #: The first secretary first, then the members.
    cadre_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class County:
    code: str
    name: str
    round_id: str
    townships: tuple[str, ...]
    villages: tuple[Village, ...]
    teams: tuple[Team, ...]
    cadres: tuple[Cadre, ...]
    #: Township -> (first leader, second leader) cadre ids (乡镇队长, one year each).
    leaders: Mapping[str, tuple[str, str]] = field(default_factory=dict)


# --- county codes -----------------------------------------------------------------------------

#: Counties per seed in the allocation of codes: a world has at most this many counties.
MAX_COUNTIES = 64
_CODES_PER_PROVINCE = 99 * 99


def county_codes(seed: int, counties: int, province: str = "53") -> list[str]:
    """Six-digit county codes for the seed's counties: ``{province}{city}{county}``.

    Consecutive seeds get disjoint codes (seed × 64 + i, within the 9,801 codes of a
    province), so seeds 0..152 never share a county on one system. The reference pack covers
    every code; province 53 (Yunnan, the default) has no pack of its own."""
    if not 1 <= counties <= MAX_COUNTIES:
        raise ValueError(f"a world has 1 to {MAX_COUNTIES} counties, not {counties}")
    if len(province) != 2 or not province.isdigit():
        raise ValueError(f"province {province!r} is not a two-digit division code")
    codes = []
    for index in range(counties):
        n = (seed * MAX_COUNTIES + index) % _CODES_PER_PROVINCE
        codes.append(f"{province}{n // 99 + 1:02d}{n % 99 + 1:02d}")
    return codes


# --- names -------------------------------------------------------------------------------------

_SYLLABLES = tuple("石河青龙凤安平新和兴田山水林花桥岭坪塘沟湾坝寨营甸箐松柏竹梅")


def _place(rng: random.Random, suffix: str) -> str:
    return rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + suffix


# --- generation -------------------------------------------------------------------------------

_CATEGORY_WEIGHTS: tuple[tuple[VillageCategory, float], ...] = (
    (VillageCategory.LIFTED_OUT_OF_POVERTY, 0.45),
    (VillageCategory.KEY_ASSISTANCE, 0.25),
    (VillageCategory.DEMONSTRATION, 0.12),
    (VillageCategory.RELOCATION_SETTLEMENT, 0.08),
    (VillageCategory.WEAK_PARTY_BRANCH, 0.15),
    (VillageCategory.WEAK_COLLECTIVE_ECONOMY, 0.3),
    (VillageCategory.BORDER, 0.05),
)

#: What villages of a category tend to ask for (村"点菜").
_NEEDS_BY_CATEGORY: Mapping[VillageCategory, tuple[Expertise, ...]] = {
    VillageCategory.LIFTED_OUT_OF_POVERTY: (Expertise.INDUSTRY, Expertise.FARMING_TECHNIQUE),
    VillageCategory.KEY_ASSISTANCE: (Expertise.INDUSTRY, Expertise.FINANCE, Expertise.HEALTH),
    VillageCategory.DEMONSTRATION: (Expertise.PLANNING, Expertise.ECOMMERCE),
    VillageCategory.RELOCATION_SETTLEMENT: (Expertise.GOVERNANCE, Expertise.EDUCATION),
    VillageCategory.WEAK_PARTY_BRANCH: (Expertise.PARTY_BUILDING, Expertise.GOVERNANCE),
    VillageCategory.WEAK_COLLECTIVE_ECONOMY: (Expertise.INDUSTRY, Expertise.FINANCE),
    VillageCategory.BORDER: (Expertise.GOVERNANCE, Expertise.LAW),
}

#: 经济部门驻穷村、党群部门驻弱村、业务部门驻产业村 (Sichuan): the unit kind a county prefers
#: for a village of the category.
_PREFERRED_KIND: Mapping[VillageCategory, UnitKind] = {
    VillageCategory.LIFTED_OUT_OF_POVERTY: UnitKind.ECONOMIC_DEPARTMENT,
    VillageCategory.KEY_ASSISTANCE: UnitKind.ECONOMIC_DEPARTMENT,
    VillageCategory.WEAK_PARTY_BRANCH: UnitKind.PARTY_MASS_ORGANISATION,
    VillageCategory.DEMONSTRATION: UnitKind.LINE_DEPARTMENT,
    VillageCategory.WEAK_COLLECTIVE_ECONOMY: UnitKind.LINE_DEPARTMENT,
}

_LEVEL_WEIGHTS = ((UnitLevel.PROVINCE, 0.2), (UnitLevel.CITY, 0.3), (UnitLevel.COUNTY, 0.5))


def _weighted(rng: random.Random, weights: Sequence[tuple[object, float]]) -> object:
    return rng.choices([w[0] for w in weights], weights=[w[1] for w in weights], k=1)[0]


def team_sizes(cadres: int, rules: DispatchPolicy, rng: random.Random) -> list[int]:
    """Team sizes within the pack's bounds adding up to ``cadres`` exactly (mostly 4)."""
    low, high = rules.team_size_min, rules.team_size_max
    if cadres < low:
        raise ValueError(f"a county needs at least {low} cadres for one team, not {cadres}")
    sizes: list[int] = []
    left = cadres
    while left:
        if low <= left <= high and (left == low or rng.random() < 0.5):
            sizes.append(left)
            break
        options = [s for s in range(low, high + 1) if left - s == 0 or left - s >= low]
        weights = [1.0 + (s == (low + high) // 2) * 1.5 for s in options]
        size = rng.choices(options, weights=weights, k=1)[0]
        sizes.append(size)
        left -= size
    return sizes


@dataclass
class _CadreDraft:
    """A cadre before the behaviours are dealt out."""

    role: Role
    unit: Unit
    birth_year: int
    party_member_since: date | None
    rural_experience_years: int
    skills: tuple[Expertise, ...]
    county: str
    township: str
    village_id: str
    team_id: str


def build_world(
    rng: random.Random,
    *,
    prefix: str,
    codes: Sequence[str],
    cadres_per_county: Sequence[int],
    behaviours: Sequence[Behaviour],
    term_start: date,
    rules: Mapping[str, DispatchPolicy],
) -> tuple[County, ...]:
    """The counties of the world. ``behaviours`` has one entry per cadre (already shuffled);
    ``rules`` gives each county's dispatch rules (the pack in force at the term start)."""
    province_units = _units(rng, f"{prefix}-unit-p", UnitLevel.PROVINCE, 24)
    city_units: dict[str, list[Unit]] = {}
    drafts: list[list[_CadreDraft]] = []
    shells = []
    for code, count in zip(codes, cadres_per_county, strict=True):
        city = code[:4]
        if city not in city_units:
            city_units[city] = _units(rng, f"{prefix}-unit-{city}", UnitLevel.CITY, 16)
        county_units = _units(rng, f"{prefix}-unit-{code}", UnitLevel.COUNTY, 24)
        pools = {
            UnitLevel.PROVINCE: province_units,
            UnitLevel.CITY: city_units[city],
            UnitLevel.COUNTY: county_units,
        }
        shell, county_drafts = _county(rng, prefix, code, count, pools, term_start, rules[code])
        shells.append(shell)
        drafts.append(county_drafts)

    # Deal behaviours and traits over every cadre of the world, in id order.
    counties: list[County] = []
    index = 0
    seen: dict[Behaviour, int] = dict.fromkeys(Behaviour, 0)
    for shell, county_drafts in zip(shells, drafts, strict=True):
        cadres: list[Cadre] = []
        for draft in county_drafts:
            behaviour = behaviours[index]
            traits = TRAITS[behaviour]
            trait = traits[seen[behaviour] % len(traits)]
            seen[behaviour] += 1
            index += 1
            cadres.append(
                Cadre(
                    cadre_id=f"{prefix}-c{index:05d}",
                    county=draft.county,
                    township=draft.township,
                    village_id=draft.village_id,
                    team_id=draft.team_id,
                    assignment_id=f"{prefix}-a{index:05d}",
                    role=draft.role,
                    sending_unit=draft.unit.unit_id,
                    unit_kind=draft.unit.kind,
                    unit_level=draft.unit.level,
                    birth_year=draft.birth_year,
                    party_member_since=draft.party_member_since,
                    rural_experience_years=draft.rural_experience_years,
                    skills=draft.skills,
                    behaviour=behaviour,
                    trait=trait,
                )
            )
        teams = tuple(
            Team(
                team_id=team.team_id,
                county=team.county,
                township=team.township,
                village_id=team.village_id,
                cadre_ids=tuple(c.cadre_id for c in cadres if c.team_id == team.team_id),
            )
            for team in shell.teams
        )
        counties.append(
            County(
                code=shell.code,
                name=shell.name,
                round_id=shell.round_id,
                townships=shell.townships,
                villages=shell.villages,
                teams=teams,
                cadres=tuple(cadres),
                leaders=_leaders(rng, shell.townships, teams, cadres),
            )
        )
    return tuple(counties)


def _units(rng: random.Random, stem: str, level: UnitLevel, count: int) -> list[Unit]:
    kinds = list(UnitKind)
    return [
        Unit(
            f"{stem}{n:02d}", kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds), level
        )
        for n in range(count)
    ]


def _county(
    rng: random.Random,
    prefix: str,
    code: str,
    cadres: int,
    pools: Mapping[UnitLevel, list[Unit]],
    term_start: date,
    rules: DispatchPolicy,
) -> tuple[County, list[_CadreDraft]]:
    sizes = team_sizes(cadres, rules, rng)
    spare = max(0, len(sizes) // 10)  # villages registered without a team this round
    village_count = len(sizes) + spare
    per_township = rng.randint(6, 12)
    township_count = max(1, math.ceil(village_count / per_township))
    townships = tuple(f"{prefix}-{code}-t{j:02d}" for j in range(township_count))
    centre = (rng.uniform(22.5, 28.5), rng.uniform(98.5, 105.5))
    villages: list[Village] = []
    teams: list[Team] = []
    drafts: list[_CadreDraft] = []
    order = list(range(village_count))
    rng.shuffle(order)  # which villages get no team: spread over the townships
    teamless = set(order[:spare])
    size_iter = iter(sizes)
    for k in range(village_count):
        township = townships[k * township_count // village_count]
        village_id = f"{prefix}-{code}-v{k:03d}"
        has_team = k not in teamless
        size = next(size_iter) if has_team else 0
        categories = _categories(rng, allow_weak_branch=has_team)
        large = has_team and size >= rules.large_village_team_size_min and rng.random() < 0.5
        monitored = (
            rng.randint(rules.large_village_monitored_population, 400)
            if large
            else rng.randint(0, max(0, rules.large_village_monitored_population - 1))
        )
        needs = _needs(rng, categories)
        team_id = f"{prefix}-{code}-team{k:03d}" if has_team else None
        villages.append(
            Village(
                village_id=village_id,
                county=code,
                township=township,
                name=_place(rng, "村"),
                categories=categories,
                latitude=round(centre[0] + rng.uniform(-0.35, 0.35), 6),
                longitude=round(centre[1] + rng.uniform(-0.35, 0.35), 6),
                radius_m=rng.choice((800, 1000, 1200, 1500, 2000, 2500)),
                households=rng.randint(40, 240),
                monitored_population=monitored,
                needs=needs,
                team_id=team_id,
            )
        )
        if team_id is None:
            continue
        teams.append(Team(team_id, code, township, village_id, ()))
        drafts.extend(
            _team_drafts(
                rng,
                size,
                categories,
                needs,
                pools,
                term_start,
                rules,
                code,
                township,
                village_id,
                team_id,
            )
        )
    shell = County(
        code=code,
        name=_place(rng, "县"),
        round_id=f"{prefix}-{code}-round1",
        townships=townships,
        villages=tuple(villages),
        teams=tuple(teams),
        cadres=(),
    )
    return shell, drafts


def _categories(rng: random.Random, *, allow_weak_branch: bool) -> tuple[VillageCategory, ...]:
    chosen = [
        category
        for category, weight in _CATEGORY_WEIGHTS
        if rng.random() < weight
        and (allow_weak_branch or category is not VillageCategory.WEAK_PARTY_BRANCH)
    ]
    if not chosen:
        chosen = [VillageCategory.LIFTED_OUT_OF_POVERTY]
    return tuple(chosen)


def _needs(rng: random.Random, categories: Sequence[VillageCategory]) -> tuple[Expertise, ...]:
    pool = sorted({need for c in categories for need in _NEEDS_BY_CATEGORY[c]})
    count = rng.randint(1, min(3, len(pool)))
    return tuple(rng.sample(pool, count))


def _team_drafts(
    rng: random.Random,
    size: int,
    categories: Sequence[VillageCategory],
    needs: Sequence[Expertise],
    pools: Mapping[UnitLevel, list[Unit]],
    term_start: date,
    rules: DispatchPolicy,
    county: str,
    township: str,
    village_id: str,
    team_id: str,
) -> list[_CadreDraft]:
    preferred = next((_PREFERRED_KIND[c] for c in categories if c in _PREFERRED_KIND), None)
    # Most teams mix old and young, experienced and new (warnings otherwise).
    mixed = rng.random() < 0.85
    drafts = []
    year = term_start.year
    for position in range(size):
        role = Role.FIRST_SECRETARY if position == 0 else Role.MEMBER
        level = _weighted(rng, _LEVEL_WEIGHTS)
        assert isinstance(level, UnitLevel)
        units = pools[level]
        if preferred is not None and rng.random() < 0.6:
            matching = [u for u in units if u.kind is preferred]
            unit = rng.choice(matching or units)
        else:
            unit = rng.choice(units)
        if role is Role.FIRST_SECRETARY:
            # Normally 45 or under; one in twenty a little older (a warning, not a refusal).
            age = (
                rng.randint(30, rules.normal_max_age)
                if rng.random() < 0.95
                else rng.randint(rules.normal_max_age + 1, rules.normal_max_age + 5)
            )
            standing = rng.randint(rules.first_secretary_min_party_years + 1, max(age - 22, 3))
            member_since: date | None = _day_in_year(rng, year - standing)
        else:
            if mixed and position == 1:
                age = rng.randint(rules.age_mix_threshold, rules.age_mix_threshold + 12)
            elif mixed and position == 2:
                age = rng.randint(24, rules.age_mix_threshold - 1)
            else:
                age = rng.randint(24, 55)
            if rng.random() < 0.75:
                member_since = _day_in_year(rng, year - rng.randint(1, max(1, age - 20)))
            else:
                member_since = None
        if mixed and position == 1:
            experience = rng.randint(rules.experienced_rural_years, 15)
        elif mixed and position == 2:
            experience = rng.randint(0, rules.experienced_rural_years - 1)
        else:
            experience = rng.randint(0, 12)
        skill_pool = list(Expertise)
        skills = {rng.choice(list(needs))} if rng.random() < 0.7 else set()
        skills.update(rng.sample(skill_pool, rng.randint(1, 2)))
        drafts.append(
            _CadreDraft(
                role=role,
                unit=unit,
                birth_year=year - age,
                party_member_since=member_since,
                rural_experience_years=experience,
                skills=tuple(sorted(skills)),
                county=county,
                township=township,
                village_id=village_id,
                team_id=team_id,
            )
        )
    return drafts


def _day_in_year(rng: random.Random, year: int) -> date:
    return date(year, 1, 1) + timedelta(days=rng.randint(0, 364))


def _leaders(
    rng: random.Random, townships: Sequence[str], teams: Sequence[Team], cadres: Sequence[Cadre]
) -> dict[str, tuple[str, str]]:
    """Two one-year township leaders (乡镇队长) per township, chosen among its first
    secretaries, the well-behaved first."""
    by_id = {c.cadre_id: c for c in cadres}
    leaders: dict[str, tuple[str, str]] = {}
    for township in townships:
        secretaries = [by_id[t.cadre_ids[0]] for t in teams if t.township == township]
        if not secretaries:
            continue
        good = [c for c in secretaries if c.behaviour in (Behaviour.DILIGENT, Behaviour.EXCELLENT)]
        pool = good or secretaries
        first = rng.choice(pool)
        second = rng.choice([c for c in pool if c is not first] or pool)
        leaders[township] = (first.cadre_id, second.cadre_id)
    return leaders
