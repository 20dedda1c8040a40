"""The failure classification of the projection pipeline (``is_permanent``), class by class.

A permanent failure is dead-lettered on the record's first delivery; a transient one rolls
the batch back and retries it after a back-off. The integration test of the same rule, on a
real database and broker, is in ``test_projection.py``.
"""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions._base
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

from zhucun.shared.envelope import CloudEventError
from zhucun.shared.events import EventContractError, UnknownEventType
from zhucun.shared.pipeline import DeadLetterError, PoisonRecord, is_permanent

pytestmark = pytest.mark.unit

PERMANENT: list[BaseException] = [
    # The record itself: not a CloudEvent, an unknown type, data that breaks its contract.
    CloudEventError("body is not JSON"),
    UnknownEventType("test.Unknown"),
    EventContractError("n: not an integer"),
    # A value the database refuses (the server's DataError and its subclasses).
    asyncpg.DataError("invalid input"),
    asyncpg.NumericValueOutOfRangeError("integer out of range"),
    asyncpg.StringDataRightTruncationError("value too long for type character varying(10)"),
    asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
    asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    asyncpg.InvalidTextRepresentationError('invalid input syntax for type integer: "x"'),
    asyncpg.InvalidDatetimeFormatError("invalid input syntax for type date"),
    asyncpg.DatetimeFieldOverflowError("date/time field value out of range"),
    # asyncpg's own refusal to encode a parameter (an InterfaceError, but about the value).
    asyncpg.exceptions._base.DataError(
        "invalid input for query argument $2: [1000000000000] (value out of int32 range)"
    ),
    # A broken constraint.
    asyncpg.IntegrityConstraintViolationError("constraint"),
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.ForeignKeyViolationError("violates foreign key constraint"),
    asyncpg.NotNullViolationError("null value in column violates not-null constraint"),
    asyncpg.CheckViolationError("violates check constraint"),
    # What a projection's own apply raises.
    ValueError("cannot apply an Exploded event"),
    TypeError("unsupported operand"),
    KeyError("cadre_id"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    # A broker's refusal for good.
    MessageSizeTooLargeError(),
    TopicAuthorizationFailedError(),
    # The runner's own verdict.
    PoisonRecord("t", 0, 1, "undecodable", ValueError("x")),
]

TRANSIENT: list[BaseException] = [
    # The network, the database connection.
    OSError("network unreachable"),
    ConnectionResetError("the database went away"),
    ConnectionRefusedError("connection refused"),
    TimeoutError(),
    asyncpg.PostgresConnectionError("connection failure"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
    # The database busy or going away.
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.DiskFullError("could not extend file"),
    asyncpg.OutOfMemoryError("out of memory"),
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.LockNotAvailableError("could not obtain lock"),
    # A race, lost: retrying wins it.
    asyncpg.SerializationError("could not serialize access due to concurrent update"),
    asyncpg.DeadlockDetectedError("deadlock detected"),
    # The schema or a permission: every record would fail; waiting is right.
    asyncpg.UndefinedTableError('relation "tally" does not exist'),
    asyncpg.InsufficientPrivilegeError("permission denied for table tally"),
    # Kafka errors that pass.
    KafkaConnectionError(),
    KafkaTimeoutError(),
    NotLeaderForPartitionError(),
    # A record that cannot be parked is held, never dropped.
    DeadLetterError("could not dead-letter t/0@1"),
]


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_a_record_that_can_never_apply_is_permanent(error: BaseException) -> None:
    assert is_permanent(error) is True


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_failure_that_passes_is_transient(error: BaseException) -> None:
    assert is_permanent(error) is False


def test_asyncpg_s_client_data_error_is_an_interface_error_yet_permanent() -> None:
    """asyncpg has two ``DataError`` classes: the server's (``asyncpg.DataError``, which its
    parameter encoding raises too: a value beyond ``integer``) and a client-side one that
    is an ``InterfaceError``, the class of a broken connection. Either is about a value,
    never the connection: permanent."""
    error = asyncpg.exceptions._base.DataError("value out of int32 range")
    assert isinstance(error, asyncpg.InterfaceError)
    assert is_permanent(error)
    assert not is_permanent(asyncpg.InterfaceError("connection is closed"))
