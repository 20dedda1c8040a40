"""The published contract of a service's topic: an AsyncAPI 3.0 document generated from its
event registry.

Downstream systems (a provincial dashboard, payroll, poverty-relapse monitoring) read this
document, not our code. It lists the topic, every event type with its JSON schema (the
record body), the CloudEvents headers every record carries, and the record key. Each service
commits the generated file and a test fails when the code and the committed file disagree,
so a contract never changes by accident.
"""

from __future__ import annotations

import json
from typing import Any

from zhucun.shared.events import EventRegistry

ASYNCAPI_VERSION = "3.0.0"

#: The headers of every record: CloudEvents 1.0 in binary mode (``zhucun.shared.envelope``)
#: and FastStream's correlation id.
CLOUDEVENT_HEADERS: dict[str, dict[str, str]] = {
    "ce_specversion": {"description": "Always '1.0'."},
    "ce_id": {"description": "Event id (UUID). Duplicates carry the same id: drop them."},
    "ce_source": {"description": "The producing service, e.g. '/zhucun/dispatch'."},
    "ce_type": {"description": "The event type (the message name below)."},
    "ce_subject": {"description": "The stream the event belongs to."},
    "ce_time": {"description": "Business time (when it happened), RFC 3339, UTC."},
    "content-type": {"description": "Always 'application/json'."},
    "ce_stream": {"description": "The stream the event belongs to."},
    "ce_streamversion": {"description": "Position in its stream: 1, 2, 3, ... without gaps."},
    "ce_position": {"description": "Position in the producing service's whole store."},
    "ce_schemaversion": {"description": "Version of this event type's schema."},
    "ce_partitionkey": {"description": "The record key: cadre id, else village id."},
    "ce_recordedtime": {"description": "When the service stored it, RFC 3339, UTC."},
    "ce_correlationid": {"description": "Id shared by everything one request caused."},
    "ce_causationid": {"description": "Id of the command or event that caused this one."},
    "ce_actor": {"description": "'subject:role' of the caller; never a person's name."},
    "ce_prevhash": {"description": "Hash of the previous event in the stream (hash chain)."},
    "ce_hash": {"description": "SHA-256 of prevhash and the event's canonical JSON."},
    # Not CloudEvents: FastStream's own message id, which the relay sets so that FastStream
    # consumers see the request's id without reading the ce_ headers.
    "correlation_id": {"description": "The same value as ce_correlationid (FastStream's)."},
}
_OPTIONAL_HEADERS = {"ce_causationid", "ce_actor"}


def asyncapi_document(
    registry: EventRegistry, *, service: str, topic: str, version: str, description: str
) -> dict[str, Any]:
    """The AsyncAPI document of the events ``service`` publishes on ``topic``."""
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for cls in sorted(registry.classes(), key=lambda c: c.event_type):
        name = cls.event_type
        schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        messages[name] = {
            "name": name,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {
                "kafka": {"key": {"type": "string", "description": f"the event's {cls.key_field}"}}
            },
            "x-schema-version": cls.schema_version,
        }
    schemas["CloudEventHeaders"] = {
        "type": "object",
        "properties": {
            header: {"type": "string", **attributes}
            for header, attributes in CLOUDEVENT_HEADERS.items()
        },
        "required": sorted(set(CLOUDEVENT_HEADERS) - _OPTIONAL_HEADERS),
    }
    channel = topic.replace(".", "_")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"Zhucun {service} events",
            "version": version,
            "description": description,
        },
        "defaultContentType": "application/json",
        "channels": {
            channel: {
                "address": topic,
                "description": (
                    f"Every event the {service} service stores, in stream order per key. "
                    f"Records that cannot be processed go to '{topic}.dlq'."
                ),
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            f"publish_{channel}": {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [
                    {"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages
                ],
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def render(document: dict[str, Any]) -> str:
    """Stable text (sorted keys, two-space indent, trailing newline) so diffs stay readable."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
