"""What the simulator's integration tests share: the running system of a session and the
type of the key reader (fixtures of ``conftest.py``); importable by name (pytest's
``pythonpath``), so test modules and mypy see one definition."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zhucun.shared.testing import PublishedEvent


@dataclass
class RunningSystem:
    """The services of one session: where they answer, and what they run on."""

    kafka_bootstrap: str
    #: Service name -> base URL (``http://127.0.0.1:<port>``).
    urls: dict[str, str]
    #: Service name -> its database's DSN.
    dsns: dict[str, str]
    #: Services that did not start (with the tail of their log).
    missing: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def require(self, name: str) -> str:
        """The URL of ``name``, or skip the test when that service is not running."""
        if name not in self.urls:
            pytest.skip(f"the {name} service is not running: {self.missing.get(name, '')[-500:]}")
        return self.urls[name]


KeyReader = Callable[..., Awaitable[list[PublishedEvent]]]
