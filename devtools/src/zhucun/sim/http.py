"""``run_http``: the scenario through the services' public HTTP APIs, as the county, the
townships and the cadres would send it.

* **Auth**: bearer JWTs minted with ``zhucun.shared.auth.mint_token`` (the development HS256
  secret by default) for the principal of each action (``zhucun.sim.principals``).
* **Concurrency**: phases run in order; within a phase, actions of one lane run in order and
  lanes run concurrently, with at most ``concurrency`` requests in flight. Check-ins go up in
  batches (one month's offline queue per request, at most 500).
* **Retries**: a retryable 409 (the replicas follow Kafka and lag a little: ``retryable``
  in the problem, ``Retry-After``), a version conflict (concurrent writers of one stream),
  503s and connection errors are retried with backoff, never waiting longer than
  ``Retry-After`` asks.
* **Re-runs**: an idempotent repeat is a success (the services answer ``duplicate``, or a
  refusal that says the thing exists: a duplicate id, a closed round, an ended assignment, a
  closed month), and a county whose round is closed skips its dispatch phase; so running the
  same seed again is safe and stores nothing new.
* **Refusals**: anything else is the simulator's bug: ``SimulationRefused`` with the action
  and the problem document.
* **Barriers**: before some phases the driver waits until the services' replicas know what
  the phase relies on (assignments, an assignment's end, a year's absences), so that what a
  service decides is what the scenario planned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from zhucun.shared.auth import mint_token
from zhucun.shared.settings import AuthSettings
from zhucun.sim import actions as a
from zhucun.sim.principals import Principal, auditor, org_admin, principal_for
from zhucun.sim.report import Report
from zhucun.sim.scenario import Scenario

Progress = Callable[[str], None]

#: Refusal codes that mean "this was done already" for the command that got them.
_ALREADY = {
    a.RegisterVillage: {"duplicate_id"},
    a.RegisterCadre: {"duplicate_id"},
    a.OpenRound: {"duplicate_id"},
    a.FormTeam: {"duplicate_id"},
    a.AssignCadre: {"duplicate_id"},
    a.AppointLeader: {"duplicate_id"},
    a.CloseRound: {"round_closed"},
    a.EndAssignment: {"assignment_not_active"},
}


class SimulationRefused(Exception):
    """A service refused a command the simulator generated: a bug in the generator."""

    def __init__(self, action: a.Action | None, method: str, url: str, status: int, body: Any):
        self.action = action
        self.status = status
        self.problem = body
        what = f"{action.kind} " if action is not None else ""
        super().__init__(
            f"{what}{method} {url} -> {status}\n"
            f"{json.dumps(body, ensure_ascii=False, indent=2, default=str)}\n"
            f"action: {action!r}"
        )


@dataclass(frozen=True, slots=True)
class Urls:
    dispatch: str
    attendance: str
    assessment: str

    @classmethod
    def of(cls, urls: Urls | Mapping[str, str]) -> Urls:
        if isinstance(urls, Urls):
            return urls
        return cls(urls["dispatch"], urls["attendance"], urls["assessment"])

    def base(self, service: str) -> str:
        return str(getattr(self, service)).rstrip("/")


class _Driver:
    def __init__(
        self,
        scenario: Scenario,
        session: aiohttp.ClientSession,
        urls: Urls,
        *,
        concurrency: int,
        auth: AuthSettings,
        report: Report,
        progress: Progress | None,
        barrier_timeout: float,
        max_wait: float,
    ) -> None:
        self.scenario = scenario
        self.session = session
        self.urls = urls
        self.auth = auth
        self.report = report
        self.progress = progress
        self.barrier_timeout = barrier_timeout
        self.max_wait = max_wait
        self.slots = asyncio.Semaphore(concurrency)
        self._tokens: dict[Principal, tuple[str, float]] = {}
        self._rng = random.Random(scenario.seed)

    # --- plumbing ---------------------------------------------------------------------------

    def token(self, principal: Principal) -> str:
        found = self._tokens.get(principal)
        now = time.time()
        if found is not None and found[1] > now + 600:
            return found[0]
        ttl = 12 * 3600
        minted = mint_token(
            self.auth,
            subject=principal.subject,
            role=principal.role.value,
            county=principal.county,
            township=principal.township,
            cadre=principal.cadre,
            ttl_seconds=ttl,
        )
        self._tokens[principal] = (minted, now + ttl)
        return minted

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        principal: Principal,
        body: Any = None,
        *,
        action: a.Action | None = None,
        already: set[str] | frozenset[str] = frozenset(),
        accept: Callable[[int, Any], bool] | None = None,
    ) -> tuple[int, Any]:
        """Send one request until it is answered for good: (status, JSON body). Retries what
        can be retried; a refusal in ``already`` returns (409, problem) as done; ``accept``
        may take other answers (barrier reads); anything else raises ``SimulationRefused``."""
        url = self.urls.base(service) + path
        delay = 0.2
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self.token(principal)}"}
            try:
                async with (
                    self.slots,
                    self.session.request(method, url, json=body, headers=headers) as response,
                ):
                    status = response.status
                    text = await response.text()
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as error:
                status, text, retry_after = 0, json.dumps({"error": repr(error)}), None
            try:
                payload = json.loads(text) if text else None
            except json.JSONDecodeError:
                payload = {"body": text[:2000]}
            if 200 <= status < 300:
                return status, payload
            if accept is not None and accept(status, payload):
                return status, payload
            code = payload.get("code") if isinstance(payload, dict) else None
            if status == 409 and code in already:
                return status, payload
            retryable = status in (0, 429, 502, 503, 504) or (
                status == 409
                and isinstance(payload, dict)
                and (
                    payload.get("retryable") is True
                    or str(payload.get("type", "")).endswith("/version-conflict")
                )
            )
            if status == 500 and attempt <= 3:
                retryable = True  # one hiccup of a database or broker; not three
            if not retryable or waited >= self.max_wait:
                raise SimulationRefused(action, method, url, status, payload)
            pause = delay * (0.5 + self._rng.random())
            if retry_after is not None:
                with contextlib.suppress(ValueError):
                    pause = min(pause, float(retry_after))
            self.report.retries += 1
            await asyncio.sleep(pause)
            waited += pause
            delay = min(delay * 2, 5.0)

    # --- phases -----------------------------------------------------------------------------

    async def run_phase(self, phase: a.Phase) -> None:
        began = time.perf_counter()
        for barrier in phase.barriers:
            await self.barrier(barrier)
        lanes: dict[str, list[a.Action]] = defaultdict(list)
        for action in phase.actions:
            lanes[action.lane].append(action)
        if phase.actions and isinstance(phase.actions[0], a.DispatchAction):
            lanes = await self._skip_dispatched(lanes)

        async def run_lane(actions: list[a.Action]) -> None:
            for action in actions:
                await self.send(action)

        async with asyncio.TaskGroup() as group:
            for actions in lanes.values():
                group.create_task(run_lane(actions))
        if self.progress is not None and (phase.actions or phase.barriers):
            self.progress(
                f"{phase.name}: {len(phase.actions):,} commands in "
                f"{time.perf_counter() - began:.1f} s"
            )

    async def _skip_dispatched(self, lanes: dict[str, list[a.Action]]) -> dict[str, list[a.Action]]:
        """Counties whose round is closed were dispatched by an earlier run: skip them."""
        kept = {}
        for lane, actions in lanes.items():
            close = next((x for x in actions if isinstance(x, a.CloseRound)), None)
            if close is not None:
                status, _ = await self.call(
                    "GET",
                    "dispatch",
                    f"/counties/{close.county}/rounds/{close.round_id}/report",
                    org_admin(self.scenario.prefix, close.county),
                    accept=lambda status, _body: status in (404, 409),
                )
                if status == 200:
                    self.report.duplicates += len(actions)
                    for action in actions:
                        self.report.commands[action.kind] += 1
                    continue
            kept[lane] = actions
        return kept

    # --- barriers ---------------------------------------------------------------------------

    async def barrier(self, barrier: a.Barrier) -> None:
        began = time.perf_counter()
        reader = auditor(self.scenario.prefix)
        pending = dict(barrier.expectations)

        async def satisfied(cadre_id: str, expected: str) -> bool:
            if barrier.kind == "assigned":
                for service, path in (
                    ("attendance", f"/cadres/{cadre_id}/leave"),
                    ("assessment", f"/cadres/{cadre_id}/record"),
                ):
                    status, _ = await self.call("GET", service, path, reader, accept=_not_yet_known)
                    if status != 200:
                        return False
                return True
            if barrier.kind == "ended":
                month, days = expected.split(":")
                status, body = await self.call(
                    "GET",
                    "attendance",
                    f"/cadres/{cadre_id}/months/{month}",
                    reader,
                    accept=_not_yet_known,
                )
                return status == 200 and (
                    body.get("status") == "closed" or body.get("days_in_post") == int(days)
                )
            status, body = await self.call(
                "GET",
                "assessment",
                f"/cadres/{cadre_id}/attendance/{barrier.year}",
                reader,
                accept=_not_yet_known,
            )
            return status == 200 and body.get("unexcused_absences") == int(expected)

        deadline = time.monotonic() + self.barrier_timeout
        while pending:
            checks = await asyncio.gather(*(satisfied(c, e) for c, e in pending.items()))
            for (cadre_id, _), done in zip(list(pending.items()), checks, strict=True):
                if done:
                    pending.pop(cadre_id)
            if not pending:
                break
            if time.monotonic() > deadline:
                sample = dict(list(pending.items())[:5])
                raise TimeoutError(
                    f"the services' replicas did not catch up within {self.barrier_timeout:.0f} s"
                    f" ({barrier.kind}): {len(pending)} cadres pending, e.g. {sample}"
                )
            await asyncio.sleep(0.3)
        self.report.waited_seconds += time.perf_counter() - began

    # --- actions ----------------------------------------------------------------------------

    async def send(self, action: a.Action) -> None:
        self.report.commands[action.kind] += 1
        principal = principal_for(action, self.scenario.prefix)
        sender = getattr(self, f"_{action.kind}")
        await sender(action, principal)

    def _count(self, payload: Any, status: int) -> None:
        if status == 409:
            self.report.duplicates += 1
            return
        if isinstance(payload, dict):
            if payload.get("duplicate"):
                self.report.duplicates += 1
            for event_type in payload.get("event_types", ()):
                self.report.events[event_type] += 1

    async def _simple(
        self, action: a.Action, principal: Principal, method: str, path: str, body: Any
    ) -> None:
        status, payload = await self.call(
            method,
            action.service,
            path,
            principal,
            body,
            action=action,
            already=_ALREADY.get(type(action), set()),
        )
        self._count(payload, status)

    # dispatch

    async def _register_village(self, x: a.RegisterVillage, p: Principal) -> None:
        body = {
            "village_id": x.village_id,
            "name": x.name,
            "township": x.township,
            "categories": list(x.categories),
            "geofence": {"latitude": x.latitude, "longitude": x.longitude, "radius_m": x.radius_m},
            "households": x.households,
            "monitored_population": x.monitored_population,
        }
        await self._simple(x, p, "POST", f"/counties/{x.county}/villages", body)

    async def _declare_needs(self, x: a.DeclareNeeds, p: Principal) -> None:
        body = {
            "village_id": x.village_id,
            "needs": list(x.needs),
            "declared_on": str(x.declared_on),
        }
        await self._simple(x, p, "PUT", f"/counties/{x.county}/villages/{x.village_id}/needs", body)

    async def _register_cadre(self, x: a.RegisterCadre, p: Principal) -> None:
        body = {
            "cadre_id": x.cadre_id,
            "sending_unit": x.sending_unit,
            "unit_kind": x.unit_kind.value,
            "unit_level": x.unit_level.value,
            "birth_year": x.birth_year,
            "party_member_since": str(x.party_member_since) if x.party_member_since else None,
            "rural_experience_years": x.rural_experience_years,
            "skills": list(x.skills),
        }
        await self._simple(x, p, "POST", f"/counties/{x.county}/cadres", body)

    async def _open_round(self, x: a.OpenRound, p: Principal) -> None:
        body = {"round_id": x.round_id, "name": x.name, "opened_on": str(x.opened_on)}
        await self._simple(x, p, "POST", f"/counties/{x.county}/rounds", body)

    async def _form_team(self, x: a.FormTeam, p: Principal) -> None:
        body = {
            "team_id": x.team_id,
            "round_id": x.round_id,
            "village_id": x.village_id,
            "formed_on": str(x.formed_on),
        }
        await self._simple(x, p, "POST", f"/counties/{x.county}/teams", body)

    async def _assign_cadre(self, x: a.AssignCadre, p: Principal) -> None:
        body = {
            "assignment_id": x.assignment_id,
            "team_id": x.team_id,
            "cadre_id": x.cadre_id,
            "role": x.role.value,
            "term_start": str(x.term_start),
        }
        await self._simple(x, p, "POST", f"/counties/{x.county}/assignments", body)

    async def _close_round(self, x: a.CloseRound, p: Principal) -> None:
        body = {"round_id": x.round_id, "closed_on": str(x.closed_on)}
        await self._simple(x, p, "POST", f"/counties/{x.county}/rounds/{x.round_id}/close", body)

    async def _appoint_township_leader(self, x: a.AppointLeader, p: Principal) -> None:
        body = {
            "appointment_id": x.appointment_id,
            "township": x.township,
            "cadre_id": x.cadre_id,
            "term_start": str(x.term_start),
        }
        await self._simple(x, p, "POST", f"/counties/{x.county}/township-leaders", body)

    async def _end_assignment(self, x: a.EndAssignment, p: Principal) -> None:
        body = {"assignment_id": x.assignment_id, "ended_on": str(x.ended_on)}
        path = f"/counties/{x.county}/assignments/{x.assignment_id}/end"
        await self._simple(x, p, "POST", path, body)

    # attendance

    async def _check_in_batch(self, x: a.CheckInBatch, p: Principal) -> None:
        items = x.items()
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            todo = {item.check_in_id: item for item in chunk}
            delay = 0.2
            waited = 0.0
            while todo:
                body = {
                    "items": [
                        {
                            "check_in_id": item.check_in_id,
                            "occurred_at": item.occurred_at.isoformat(),
                            **(
                                {
                                    "location": {
                                        "latitude": item.location[0],
                                        "longitude": item.location[1],
                                    }
                                }
                                if item.location is not None
                                else {}
                            ),
                        }
                        for item in todo.values()
                    ]
                }
                _, result = await self.call(
                    "POST", "attendance", f"/cadres/{x.cadre_id}/check-ins/batch", p, body, action=x
                )
                again = {}
                for outcome in result["items"]:
                    item_id = outcome["check_in_id"]
                    if outcome["status"] == "recorded":
                        self.report.events["attendance.CheckInRecorded"] += 1
                    elif outcome["status"] == "duplicate":
                        self.report.duplicates += 1
                    elif (outcome.get("problem") or {}).get("retryable"):
                        again[item_id] = todo[item_id]
                    else:
                        raise SimulationRefused(
                            x, "POST", f"/cadres/{x.cadre_id}/check-ins/batch", 200, outcome
                        )
                todo = again
                if todo:
                    if waited >= self.max_wait:
                        raise SimulationRefused(x, "POST", "check-ins/batch", 409, result)
                    self.report.retries += 1
                    await asyncio.sleep(delay)
                    waited += delay
                    delay = min(delay * 2, 5.0)

    async def _confirm_presence(self, x: a.ConfirmPresence, p: Principal) -> None:
        body = {
            "confirmation_id": x.confirmation_id,
            "days": [str(d) for d in x.days],
            "note": x.note,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/presence-confirmations", body)

    async def _request_leave(self, x: a.RequestLeave, p: Principal) -> None:
        body = {
            "leave_id": x.leave_id,
            "kind": x.leave_kind.value,
            "first_day": str(x.first_day),
            "last_day": str(x.last_day),
            "purpose": x.purpose,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/leave", body)

    async def _decide_leave(self, x: a.DecideLeave, p: Principal) -> None:
        path = f"/cadres/{x.cadre_id}/leave/{x.leave_id}/{x.decision}"
        body = None if x.decision == "approve" else {"reason": x.reason}
        await self._simple(x, p, "POST", path, body)

    async def _spot_check(self, x: a.SpotCheck, p: Principal) -> None:
        body = {
            "spot_check_id": x.spot_check_id,
            "day": str(x.day),
            "result": x.result.value,
            "findings": x.findings,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/spot-checks", body)

    async def _write_diary(self, x: a.WriteDiary, p: Principal) -> None:
        body = {"entry_id": x.entry_id, "day": str(x.day), "text": x.text}
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/diary", body)

    async def _visit_household(self, x: a.VisitHousehold, p: Principal) -> None:
        body = {
            "visit_id": x.visit_id,
            "household_id": x.household_id,
            "visited_on": str(x.visited_on),
            "note": x.note,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/visits", body)

    async def _close_month(self, x: a.CloseCountyMonth, p: Principal) -> None:
        """The county-wide close, then each cadre it did not close (the replica did not know
        them yet, or a retryable refusal) one by one, until every expected cadre is closed."""
        _, result = await self.call(
            "POST", "attendance", f"/counties/{x.county}/months/{x.month}/close", p, action=x
        )
        done: set[str] = set()
        for outcome in result["cadres"]:
            if outcome["status"] == "closed":
                self.report.events["attendance.MonthClosed"] += 1
                done.add(outcome["cadre_id"])
            elif outcome["status"] == "already_closed":
                self.report.duplicates += 1
                done.add(outcome["cadre_id"])
            elif not (outcome.get("problem") or {}).get("retryable"):
                raise SimulationRefused(
                    x, "POST", f"/counties/{x.county}/months/{x.month}/close", 200, outcome
                )
        missing = sorted(set(x.expected) - done)

        async def close_one(cadre_id: str) -> None:
            status, payload = await self.call(
                "POST",
                "attendance",
                f"/cadres/{cadre_id}/months/{x.month}/close",
                p,
                action=x,
                already={"month_already_closed"},
            )
            self._count(payload, status)

        await asyncio.gather(*(close_one(c) for c in missing))

    # assessment

    async def _inspect_cadre(self, x: a.InspectCadre, p: Principal) -> None:
        body = {
            "inspection_id": x.inspection_id,
            "kind": x.inspection_kind.value,
            "held_on": str(x.held_on),
            "findings": x.findings,
            "problems_found": x.problems_found,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/inspections", body)

    async def _inspect_team(self, x: a.InspectTeam, p: Principal) -> None:
        body = {
            "inspection_id": x.inspection_id,
            "kind": x.inspection_kind.value,
            "held_on": str(x.held_on),
            "findings": x.findings,
            "problems_found": x.problems_found,
        }
        await self._simple(x, p, "POST", f"/teams/{x.team_id}/inspections", body)

    async def _villager_evaluation(self, x: a.EvaluateByVillagers, p: Principal) -> None:
        body = {
            "evaluation_id": x.evaluation_id,
            "period": x.period,
            "satisfaction": x.satisfaction,
            "respondents": x.respondents,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/villager-evaluations", body)

    async def _assess_quarter(self, x: a.AssessQuarter, p: Principal) -> None:
        body = {
            "township_score": x.township_score,
            "villager_score": x.villager_score,
            "county_panel_score": x.county_panel_score,
        }
        await self._simple(x, p, "PUT", f"/cadres/{x.cadre_id}/quarters/{x.quarter}", body)

    async def _admonition_talk(self, x: a.HoldTalk, p: Principal) -> None:
        body = {"cadre_id": x.cadre_id, "by": x.by.value, "held_on": str(x.held_on), "note": x.note}
        path = f"/counties/{x.county}/quarters/{x.quarter}/obligations/{x.obligation_id}/talks"
        await self._simple(x, p, "POST", path, body)

    async def _publish_lists(self, x: a.PublishLists, p: Principal) -> None:
        path = f"/counties/{x.county}/quarters/{x.quarter}/lists"
        await self._simple(x, p, "POST", path, {"list_id": x.list_id})

    async def _open_annual_round(self, x: a.OpenAnnualRound, p: Principal) -> None:
        path = f"/counties/{x.county}/annual/{x.year}"
        await self._simple(x, p, "POST", path, {"round_id": x.round_id})

    async def _propose_annual_grade(self, x: a.ProposeAnnualGrade, p: Principal) -> None:
        path = f"/counties/{x.county}/annual/{x.year}/proposals/{x.cadre_id}"
        await self._simple(x, p, "PUT", path, {"grade": x.grade.value})

    async def _finalise_annual_round(self, x: a.FinaliseAnnualRound, p: Principal) -> None:
        await self._simple(x, p, "POST", f"/counties/{x.county}/annual/{x.year}/finalise", None)

    async def _assess_term(self, x: a.AssessTerm, p: Principal) -> None:
        path = f"/cadres/{x.cadre_id}/term-assessments/{x.assignment_id}"
        await self._simple(x, p, "POST", path, {"grade": x.grade.value})

    async def _record_sanction(self, x: a.RecordSanction, p: Principal) -> None:
        body = {
            "sanction_id": x.sanction_id,
            "kind": x.sanction_kind,
            "decided_on": str(x.decided_on),
            "authority": x.authority,
            "reason": x.reason,
        }
        await self._simple(x, p, "POST", f"/cadres/{x.cadre_id}/sanctions", body)


def _not_yet_known(status: int, body: Any) -> bool:
    """A barrier read answered "not in the replica yet" (a retryable 409)."""
    return status == 409 and isinstance(body, dict) and body.get("retryable") is True


async def run_http(
    scenario: Scenario,
    urls: Urls | Mapping[str, str],
    *,
    concurrency: int = 32,
    auth: AuthSettings | None = None,
    progress: Progress | None = None,
    barrier_timeout: float = 300.0,
    max_wait: float = 120.0,
    only: Sequence[str] | None = None,
    phases: Iterable[a.Phase] | None = None,
    phase_hook: Callable[[a.Phase], Awaitable[None]] | None = None,
) -> Report:
    """Send the whole scenario to the services at ``urls`` (``dispatch``, ``attendance``,
    ``assessment``); returns what was sent and stored. Raises ``SimulationRefused`` on a
    refusal the simulator did not expect, ``TimeoutError`` when a replica never catches up.

    ``only``: these counties; ``phases``: these phases of the scenario instead of all (a
    test re-sending a few); ``phase_hook`` is awaited before each phase."""
    report = Report(
        mode="http",
        seed=scenario.seed,
        cadres=len(scenario.plans),
        counties=scenario.county_codes,
        behaviours=scenario.behaviour_counts(),
        term_start=scenario.calendar.term_start.isoformat(),
        term_end=scenario.calendar.term_end.isoformat(),
        today=scenario.calendar.today.isoformat(),
    )
    began = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120, connect=10)
    connector = aiohttp.TCPConnector(limit=concurrency * 2, limit_per_host=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        driver = _Driver(
            scenario,
            session,
            Urls.of(urls),
            concurrency=concurrency,
            auth=auth or AuthSettings(),
            report=report,
            progress=progress,
            barrier_timeout=barrier_timeout,
            max_wait=max_wait,
        )
        for phase in phases if phases is not None else scenario.phases(only=only):
            if phase_hook is not None:
                await phase_hook(phase)
            await driver.run_phase(phase)
    report.seconds = time.perf_counter() - began
    report.extra["concurrency"] = concurrency
    return report


__all__ = ["SimulationRefused", "Urls", "run_http"]
