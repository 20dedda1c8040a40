"""Process-wide logging: structlog for our code, the same renderer for stdlib loggers.

One line per event, JSON in production (or whenever stderr is not a terminal) and a coloured
console format on a terminal. Correlation ids and the acting principal, bound per HTTP request
or Kafka message with ``structlog.contextvars``, appear on every line, including lines from
uvicorn, aiokafka and FastStream, which are routed through the same formatter.

Personal data never reaches a line: :class:`RedactPersonalData` drops the keys listed in
:data:`PERSONAL_DATA_KEYS` (and keys ending in :data:`PERSONAL_DATA_SUFFIXES`) at any depth,
after pydantic models and dataclasses have been turned into dicts. It matches keys, not
free text, so never interpolate personal data into the event string itself.

Run uvicorn with ``log_config=None`` so it does not install its own handlers after ours.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, Processor, WrappedLogger

from zhucun.shared.settings import LogSettings

#: Keys whose values identify a person or a place a person is at. Compared lower-cased with
#: ``-`` read as ``_``. Add to this set (or pass ``extra_redacted_keys``) rather than
#: special-casing a call site.
PERSONAL_DATA_KEYS: frozenset[str] = frozenset(
    {
        # names
        "name",
        "full_name",
        "person_name",
        "cadre_name",
        "villager_name",
        "resident_name",
        "display_name",
        "given_name",
        "family_name",
        "surname",
        "nickname",
        # coordinates and places
        "latitude",
        "longitude",
        "lat",
        "lon",
        "lng",
        "coordinates",
        "coords",
        "location",
        "geo",
        "gps",
        "address",
        # contact and identity documents
        "phone",
        "phone_number",
        "mobile",
        "id_card",
        "id_number",
    }
)

#: Suffixes that mark a key as personal whatever its prefix, e.g. ``home_latitude``.
PERSONAL_DATA_SUFFIXES: tuple[str, ...] = (
    "_full_name",
    "_latitude",
    "_longitude",
    "_lat",
    "_lon",
    "_lng",
    "_coordinates",
    "_location",
    "_address",
    "_phone",
    "_id_card",
)

#: Keys structlog itself uses for non-user data; never inspected.
_STRUCTURAL_KEYS = frozenset({"event", "exc_info", "stack_info"})

_ROUTED_STDLIB_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "aiokafka",
    "faststream",
    "faststream.access",
    "faststream.access.kafka",
    "asgi_correlation_id",
)


class RedactPersonalData:
    """structlog processor dropping personal keys at any depth.

    Dropped paths are listed under ``redacted`` so a developer sees that something was
    logged that should not have been, without seeing its value.
    """

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self.keys = PERSONAL_DATA_KEYS | {_normalise(key) for key in extra_keys}

    def is_personal(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        normalised = _normalise(key)
        return normalised in self.keys or normalised.endswith(PERSONAL_DATA_SUFFIXES)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        dropped: list[str] = []
        cleaned: EventDict = {}
        for key, value in event_dict.items():
            if key in _STRUCTURAL_KEYS:
                cleaned[key] = value
            elif self.is_personal(key):
                dropped.append(key)
            else:
                cleaned[key] = self._clean(value, key, dropped)
        if dropped:
            cleaned["redacted"] = sorted(dropped)
        return cleaned

    def _clean(self, value: Any, path: str, dropped: list[str]) -> Any:
        # Models and dataclasses would otherwise be rendered by repr(), names included.
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            kept = {}
            for key, item in value.items():
                if self.is_personal(key):
                    dropped.append(f"{path}.{key}")
                else:
                    kept[key] = self._clean(item, f"{path}.{key}", dropped)
            return kept
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(item, f"{path}[]", dropped) for item in value]
        return value


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


class _AddService:
    def __init__(self, service_name: str) -> None:
        self.service_name = service_name

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", self.service_name)
        return event_dict


def _drop_formatter_leftovers(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    # Another handler's Formatter (pytest's, Sentry's) caches the interpolated message on
    # the record; ExtraAdder would copy it, bypassing what our filters did to the args.
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


class _StripAccessLogQuery(logging.Filter):
    """uvicorn's access line contains the full path; query strings may carry names."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, full_path, http_version, status = args
            record.args = (client, method, str(full_path).split("?", 1)[0], http_version, status)
        return True


class _ZhucunHandler(logging.StreamHandler[TextIO]):
    """Our root handler; its type lets a second ``configure_logging`` call replace it."""


def configure_logging(
    settings: LogSettings,
    *,
    service_name: str,
    stream: TextIO | None = None,
    extra_redacted_keys: Iterable[str] = (),
) -> None:
    """Configure structlog and stdlib logging for this process; safe to call again."""
    stream = stream if stream is not None else sys.stderr
    as_json = settings.format == "json" or (settings.format == "auto" and not _is_tty(stream))

    shared: list[Processor] = [
        # First, so correlation ids and the actor are on every line and later processors
        # (redaction above all) see them.
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _AddService(service_name),
    ]
    renderer: list[Processor]
    if as_json:
        renderer = [
            structlog.processors.StackInfoRenderer(),
            # No locals: a frame's variables may hold a person's record.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        renderer = [
            structlog.processors.StackInfoRenderer(),
            structlog.dev.ConsoleRenderer(
                colors=_is_tty(stream), exception_formatter=_console_exception_formatter()
            ),
        ]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_formatter_leftovers],
        # Redaction runs here, the last step before rendering, so it covers structlog and
        # stdlib records alike whatever a caller bound.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            RedactPersonalData(extra_redacted_keys),
            *renderer,
        ],
    )
    handler = _ZhucunHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_StripAccessLogQuery())

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ZhucunHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)

    for name in _ROUTED_STDLIB_LOGGERS:
        # These libraries install their own handlers and stop propagation; undo that so
        # their lines come out in our format with our context.
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
        routed.setLevel(logging.NOTSET)

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging call (tests, a CLI switching format) must
        # reach loggers that were already used.
        cache_logger_on_first_use=False,
    )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console_exception_formatter() -> structlog.typing.ExceptionRenderer:
    # rich is not a dependency of zhucun-shared (the product's command and the dev tooling
    # bring it): where it is installed, console tracebacks use it; else plain ones.
    try:
        import rich  # noqa: F401
    except ImportError:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(show_locals=False)
