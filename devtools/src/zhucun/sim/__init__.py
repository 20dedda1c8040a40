"""The province simulator: a seeded, reproducible county or province and its two-year term,
driven through the services' HTTP APIs or written straight onto the Kafka topics.

* ``generate(seed, cadres, counties, mix, start) -> Scenario`` is pure: the same arguments
  give the same commands and ids (``zhucun.sim.scenario``);
* ``await run_http(scenario, urls)`` sends it to the running services (``zhucun.sim.http``);
* ``await write_topics(scenario, bootstrap)`` writes the events the services would publish
  (``zhucun.sim.topics``);
* ``zhucun simulate`` is the command (``zhucun.devtools.simulate``).

The drivers are imported on first use: the HTTP one needs ``aiohttp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zhucun.sim.report import Report
from zhucun.sim.scenario import Scenario, ScenarioArgs, default_start, generate
from zhucun.sim.world import Behaviour, Mix, MixError

if TYPE_CHECKING:
    from zhucun.sim.http import SimulationRefused, Urls, run_http
    from zhucun.sim.topics import write_topics

_LAZY = {
    "run_http": "zhucun.sim.http",
    "Urls": "zhucun.sim.http",
    "SimulationRefused": "zhucun.sim.http",
    "write_topics": "zhucun.sim.topics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zhucun.sim' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Behaviour",
    "Mix",
    "MixError",
    "Report",
    "Scenario",
    "ScenarioArgs",
    "SimulationRefused",
    "Urls",
    "default_start",
    "generate",
    "run_http",
    "write_topics",
]
