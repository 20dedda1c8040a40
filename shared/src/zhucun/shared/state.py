"""Helpers for the immutable states deciders fold: read-only mappings and folds.

States are values: ``evolve`` returns a new state and never changes the old one, so a state
cached by the command path (``zhucun.shared.commands.StateCache``) can be shared by requests.
Mappings inside a state are read-only views of a fresh dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")
E = TypeVar("E")


def frozen(entries: Mapping[K, V] | None = None) -> Mapping[K, V]:
    """A read-only copy of ``entries`` (empty when None)."""
    return MappingProxyType(dict(entries or {}))


def with_entry(entries: Mapping[K, V], key: K, value: V) -> Mapping[K, V]:
    """A read-only copy of ``entries`` with ``key`` set to ``value``."""
    return MappingProxyType({**entries, key: value})


def fold(evolve: Callable[[S, E], S], state: S, events: Iterable[E]) -> S:
    """``state`` after each of ``events`` in turn."""
    for event in events:
        state = evolve(state, event)
    return state


__all__ = ["fold", "frozen", "with_entry"]
