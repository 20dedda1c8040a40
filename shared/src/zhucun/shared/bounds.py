"""The bounds of every value Zhucun accepts and publishes: one place, used by the request
bodies, the commands and the event contracts, so a bound shows in the OpenAPI and AsyncAPI
schemas exactly as it is enforced.

Why each bound (the reference is ``docs/domain.md``, "Bounds of the contracts"):

- **Ids** (:data:`Id`) are chosen by callers and travel everywhere: Kafka keys, database keys,
  paths, the first cell of every row of a CSV export. One pattern: ASCII letters and digits,
  then letters, digits and ``. _ : -``, at most 128 characters. It excludes control, format
  and bidirectional characters, NUL, white space, and a leading ``= + - @`` (a spreadsheet
  formula).
- **Names** (:data:`Name`) are short texts people type (a village, a round, a sending unit):
  1 to 200 characters, none of Unicode's control (Cc), format (Cf: zero-width characters and
  bidirectional overrides), surrogate (Cs) or line and paragraph separator (Zl, Zp)
  characters. **Texts** (:data:`Text`, :data:`Note`) are free text (a diary, findings, a
  reason): the same, except that tab, line feed and carriage return are allowed.
- **Dates** are business dates of the system's calendar, :data:`DATE_MIN` to :data:`DATE_MAX`
  (2000 to 2099: every term Zhucun holds falls inside); a past date of a person's life (joining
  the Party) may go back to :data:`HISTORIC_DATE_MIN`. Months, quarters and years are the
  periods of that window. Timestamps must carry their offset and fall inside it too.
- **Numbers** are strict (``true`` is not ``1``, ``"3"`` is not ``3``) and within the domain's
  ranges; an integer never exceeds 2^53, so every JSON reader, and the canonical JSON of the
  hash chains, reads it exactly.

Pure: deciders and contracts import it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, Field, Strict, StringConstraints

#: The id pattern (see the module's docstring).
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ID_MAX_LENGTH: Final = 128
DIVISION_PATTERN: Final = r"^\d{2}(\d{2}){0,2}$"
CODE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
NAME_MAX_LENGTH: Final = 200
#: A reason, a note, a comment.
NOTE_MAX_LENGTH: Final = 5_000
#: A diary entry, an inspection's findings.
TEXT_MAX_LENGTH: Final = 10_000

DATE_MIN: Final = date(2000, 1, 1)
DATE_MAX: Final = date(2099, 12, 31)
#: The founding of the Communist Party of China: no one joined it earlier.
HISTORIC_DATE_MIN: Final = date(1921, 7, 1)
TIMESTAMP_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX: Final = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
YEAR_MIN: Final = DATE_MIN.year
YEAR_MAX: Final = DATE_MAX.year
MONTH_PATTERN: Final = r"^20\d{2}-(0[1-9]|1[0-2])$"
QUARTER_PATTERN: Final = r"^20\d{2}-Q[1-4]$"
#: Counts of people, households, items: far above any village's or county's, far below 2^53.
COUNT_MAX: Final = 10_000_000
#: A village's presence circle: at most 50 km across a mountain village's scattered hamlets.
RADIUS_MAX_M: Final = 50_000


# --- characters ---------------------------------------------------------------------------

#: Categories no name holds: control, format (zero-width, bidi), surrogate, line/paragraph
#: separator. Private-use and unassigned characters are allowed (rare names need them).
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: The controls free text may hold.
_TEXT_CONTROLS: Final = frozenset("\t\n\r")


def _refused(character: str, allowed: frozenset[str]) -> bool:
    return character not in allowed and unicodedata.category(character) in _REFUSED_CATEGORIES


def _first_refused(value: str, allowed: frozenset[str]) -> str | None:
    return next((c for c in value if _refused(c, allowed)), None)


def _describe(character: str) -> str:
    name = unicodedata.name(character, "")
    return f"U+{ord(character):04X}" + (f" ({name})" if name else "")


def _plain_name(value: str) -> str:
    character = _first_refused(value, frozenset())
    if character is not None:
        raise ValueError(f"must not contain the character {_describe(character)}")
    return value


def _plain_text(value: str) -> str:
    character = _first_refused(value, _TEXT_CONTROLS)
    if character is not None:
        raise ValueError(f"must not contain the character {_describe(character)}")
    return value


def _ranges(codepoints: Iterable[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for point in sorted(codepoints):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return ranges


def _refused_class(allowed: frozenset[str]) -> str:
    """A JSON Schema pattern refusing the basic plane's refused characters but surrogates
    (the validator refuses those, and the few of the other planes, too), in ``\\uXXXX``
    escapes that ECMA-262 and Python read alike."""
    # Surrogates stay out of the pattern: Rust's regex engines (pydantic's, schemathesis's
    # jsonschema-rs) cannot compile a class over them. The validator refuses them.
    points = (p for p in range(0x10000) if not 0xD800 <= p <= 0xDFFF and _refused(chr(p), allowed))
    parts = (
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}"
        for low, high in _ranges(points)
    )
    return "^[^" + "".join(parts) + "]*$"


_NAME_CHARACTERS: Final = _refused_class(frozenset())
_TEXT_CHARACTERS: Final = _refused_class(_TEXT_CONTROLS)


def _characters(pattern: str, rule: str) -> dict[str, str]:
    return {"pattern": pattern, "x-characters": rule}


_NAME_RULE: Final = "no control, format, bidirectional, surrogate or separator characters"
_TEXT_RULE: Final = "as a name, except that tab, line feed and carriage return are allowed"

# --- the types ----------------------------------------------------------------------------

#: An id chosen by a caller (see the module's docstring). Never stripped: `` c1 `` is not
#: ``c1`` but a 422, as the pattern documents.
Id = Annotated[
    str, StringConstraints(strip_whitespace=False, pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)
]
#: A GB/T 2260 division code: a province's, a prefecture's or a county's (2, 4 or 6 digits).
County = Annotated[str, StringConstraints(strip_whitespace=False, pattern=DIVISION_PATTERN)]
#: A rule's stable code (``snake_case``), as in problem documents and warnings.
Code = Annotated[str, StringConstraints(strip_whitespace=False, pattern=CODE_PATTERN)]
#: A short text a person types: 1 to 200 characters, no invisible or control characters.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_plain_name),
    Field(json_schema_extra=_characters(_NAME_CHARACTERS, _NAME_RULE)),
]
#: A policy pack's version, as events record it (``policy_version``): a name's bounds.
PolicyVersion = Name
#: A reason, note or comment (may be empty): up to 5,000 characters.
Note = Annotated[
    str,
    StringConstraints(max_length=NOTE_MAX_LENGTH),
    AfterValidator(_plain_text),
    Field(json_schema_extra=_characters(_TEXT_CHARACTERS, _TEXT_RULE)),
]
#: A free text (may be empty): up to 10,000 characters.
Text = Annotated[
    str,
    StringConstraints(max_length=TEXT_MAX_LENGTH),
    AfterValidator(_plain_text),
    Field(json_schema_extra=_characters(_TEXT_CHARACTERS, _TEXT_RULE)),
]


def _window(low: date | datetime, high: date | datetime) -> dict[str, str]:
    """JSON Schema has no bound for a date; ``formatMinimum``/``formatMaximum`` (the
    vocabulary of ajv-formats and JSON Schema's format-assertion proposals) document it."""
    return {"formatMinimum": low.isoformat(), "formatMaximum": high.isoformat()}


#: A business date of the system's window.
BusinessDate = Annotated[
    date, Field(ge=DATE_MIN, le=DATE_MAX, json_schema_extra=_window(DATE_MIN, DATE_MAX))
]
#: A date of a person's past (joining the Party).
HistoricDate = Annotated[
    date,
    Field(
        ge=HISTORIC_DATE_MIN, le=DATE_MAX, json_schema_extra=_window(HISTORIC_DATE_MIN, DATE_MAX)
    ),
]
#: An instant with its UTC offset, inside the window.
Timestamp = Annotated[
    AwareDatetime,
    Field(
        ge=TIMESTAMP_MIN,
        le=TIMESTAMP_MAX,
        json_schema_extra=_window(TIMESTAMP_MIN, TIMESTAMP_MAX),
    ),
]
#: ``YYYY-MM`` of the window.
Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN)]
#: ``YYYY-Qn`` of the window.
Quarter = Annotated[str, StringConstraints(pattern=QUARTER_PATTERN)]
#: A year of the window.
Year = Annotated[int, Strict(), Field(ge=YEAR_MIN, le=YEAR_MAX)]
#: A count (people, households, items, days): 0 to 10,000,000, strictly an integer.
Count = Annotated[int, Strict(), Field(ge=0, le=COUNT_MAX)]
#: A count of at least one.
PositiveCount = Annotated[int, Strict(), Field(ge=1, le=COUNT_MAX)]
#: A score or a share in per cent.
Percent = Annotated[float, Strict(), Field(ge=0, le=100)]
Latitude = Annotated[float, Strict(), Field(ge=-90, le=90)]
Longitude = Annotated[float, Strict(), Field(ge=-180, le=180)]
#: Metres of a presence circle.
RadiusMetres = Annotated[int, Strict(), Field(ge=1, le=RADIUS_MAX_M)]
#: ``true`` or ``false``, nothing else.
Flag = Annotated[bool, Strict()]

#: Integers above this lose precision in JSON readers (and are refused by RFC 8785).
SAFE_INTEGER_MAX: Final = 2**53 - 1

__all__ = [
    "CODE_PATTERN",
    "COUNT_MAX",
    "DATE_MAX",
    "DATE_MIN",
    "DIVISION_PATTERN",
    "HISTORIC_DATE_MIN",
    "ID_MAX_LENGTH",
    "ID_PATTERN",
    "MONTH_PATTERN",
    "NAME_MAX_LENGTH",
    "NOTE_MAX_LENGTH",
    "QUARTER_PATTERN",
    "RADIUS_MAX_M",
    "SAFE_INTEGER_MAX",
    "TEXT_MAX_LENGTH",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "YEAR_MAX",
    "YEAR_MIN",
    "BusinessDate",
    "Code",
    "Count",
    "County",
    "Flag",
    "HistoricDate",
    "Id",
    "Latitude",
    "Longitude",
    "Month",
    "Name",
    "Note",
    "Percent",
    "PolicyVersion",
    "PositiveCount",
    "Quarter",
    "RadiusMetres",
    "Text",
    "Timestamp",
    "Year",
]
