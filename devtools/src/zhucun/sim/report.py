"""What a simulation run did: cadres by behaviour, commands and events by kind, time, rate."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    mode: str
    seed: int
    cadres: int
    counties: tuple[str, ...]
    behaviours: dict[str, int]
    term_start: str
    term_end: str
    today: str
    #: Commands sent (HTTP) or actions turned into events (topics), by kind.
    commands: Counter[str] = field(default_factory=Counter)
    #: Events stored (HTTP: as the services answered) or written (topics), by type.
    events: Counter[str] = field(default_factory=Counter)
    #: Requests answered "already done" (a re-run, or a retry that had succeeded).
    duplicates: int = 0
    #: Requests sent again (retryable refusals, version conflicts, transient errors).
    retries: int = 0
    #: Seconds spent waiting for the services' replicas at the barriers.
    waited_seconds: float = 0.0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def command_rate(self) -> float:
        return sum(self.commands.values()) / self.seconds if self.seconds else 0.0

    @property
    def event_rate(self) -> float:
        return sum(self.events.values()) / self.seconds if self.seconds else 0.0

    def merge(self, other: Report) -> None:
        """Add another worker's counts (same scenario, other counties)."""
        self.commands.update(other.commands)
        self.events.update(other.events)
        self.duplicates += other.duplicates
        self.retries += other.retries
        self.waited_seconds = max(self.waited_seconds, other.waited_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "cadres": self.cadres,
            "counties": list(self.counties),
            "behaviours": self.behaviours,
            "term_start": self.term_start,
            "term_end": self.term_end,
            "today": self.today,
            "commands": dict(sorted(self.commands.items())),
            "commands_total": sum(self.commands.values()),
            "events": dict(sorted(self.events.items())),
            "events_total": sum(self.events.values()),
            "duplicates": self.duplicates,
            "retries": self.retries,
            "waited_seconds": round(self.waited_seconds, 3),
            "seconds": round(self.seconds, 3),
            "commands_per_second": round(self.command_rate, 1),
            "events_per_second": round(self.event_rate, 1),
            **self.extra,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n")

    def lines(self) -> list[str]:
        """A human summary."""
        out = [
            f"mode {self.mode}, seed {self.seed}: {self.cadres} cadres in "
            f"{len(self.counties)} count{'y' if len(self.counties) == 1 else 'ies'} "
            f"({', '.join(self.counties[:6])}{', ...' if len(self.counties) > 6 else ''})",
            f"term {self.term_start} .. {self.term_end}, as of {self.today}",
            "behaviours: " + ", ".join(f"{k} {v}" for k, v in self.behaviours.items()),
            f"commands: {sum(self.commands.values()):,}",
        ]
        out += [f"  {kind:<28} {n:>10,}" for kind, n in sorted(self.commands.items())]
        out.append(f"events: {sum(self.events.values()):,}")
        out += [f"  {kind:<40} {n:>10,}" for kind, n in sorted(self.events.items())]
        out.append(
            f"{self.seconds:.1f} s: {self.command_rate:,.0f} commands/s, "
            f"{self.event_rate:,.0f} events/s"
            + (
                f"; {self.retries:,} retries, {self.duplicates:,} duplicates, "
                f"{self.waited_seconds:.1f} s waiting for replicas"
                if self.mode == "http"
                else ""
            )
        )
        return out
