"""How errors of infrastructure are described to operators (health reports, dead letters)."""

from __future__ import annotations

#: The longest error text a health report carries.
MAX_ERROR_TEXT = 300


def describe_error(error: BaseException) -> str:
    """An error's class and text, shortened: it names the failing component (a broker's
    refusal, a lost connection); callers never put event data in exceptions."""
    text = f"{type(error).__name__}: {error}".removesuffix(": ")
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"
