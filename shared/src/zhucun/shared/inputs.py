"""The one base of what clients send: request bodies at the HTTP edges and the commands to
the deciders.

An :class:`Input` is immutable, refuses members it does not name (a misspelt field is a 422,
not silently dropped) and strips white space around strings (a name typed with a trailing
space is the same name). Pure: deciders import it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Input(BaseModel):
    """A request body or a command: frozen, no unknown members, strings stripped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


__all__ = ["Input"]
