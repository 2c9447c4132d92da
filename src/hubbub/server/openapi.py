"""The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`.

Built from the same limits the validators enforce (`protocol.validation`), so the
document cannot drift from what the server accepts; `tests/server/test_openapi.py`
fuzzes the running server from it with schemathesis.
"""

from functools import cache
from importlib.metadata import version
from typing import Any

from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.validation import (
    DEFAULT_HISTORY_LIMIT,
    MAX_CONTENT,
    MAX_HISTORY_LIMIT,
    MAX_ID,
    MAX_REF,
    MAX_USERNAME,
    ROOM_PATTERN,
)
from hubbub.server.publish import TOO_LARGE

Schema = dict[str, Any]

JSON = "application/json"
TEXT_FORMAT = "hubbub-text"
"""`content`'s rules beyond a length, which JSON Schema cannot say exactly (trimming,
control characters): a format, which validators treat as a note."""
USERNAME_FORMAT = "hubbub-username"
"""The username rules (printable, trimmed): likewise."""


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _id_query(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": f"{description} Empty is the same as absent.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    }


_ROOM_PARAMETER: Schema = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The room: 1 to 64 letters, digits, '-', '_' or '.'.",
    "schema": {"type": "string", "pattern": f"^{ROOM_PATTERN.pattern}$"},
}

_PRESENCE_UNAVAILABLE = _json(_ref("FlatError"), "Cluster presence (Redis) is unreachable.")

_SCHEMAS: dict[str, Schema] = {
    "Message": {
        "type": "object",
        "required": ["type", "id", "room", "from", "content", "timestamp"],
        "properties": {
            "type": {"const": "message"},
            "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "room": {"type": "string"},
            "from": {"type": "string"},
            "content": {"type": "string"},
            "timestamp": {"type": "string", "description": "RFC 3339, UTC, milliseconds."},
            "ref": {"type": ["string", "integer"]},
            "data": {"description": "The structured payload it was posted with (protocol 1.1)."},
        },
    },
    "MessagePage": {
        "type": "object",
        "required": ["room", "messages", "has_more"],
        "properties": {
            "room": {"type": "string"},
            "messages": {"type": "array", "items": _ref("Message")},
            "has_more": {"type": "boolean"},
            "truncated": {
                "type": "boolean",
                "description": "With `after`: retention had removed messages after it.",
            },
        },
    },
    "FlatError": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": [code.value for code in ErrorCode]},
            "message": {"type": "string"},
        },
    },
    "PublishError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [*(code.value for code in ErrorCode), TOO_LARGE],
                    },
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Publish": {
        "type": "object",
        "required": ["content", "from"],
        "properties": {
            "content": {
                "type": "string",
                "format": TEXT_FORMAT,
                "minLength": 1,
                "maxLength": MAX_CONTENT,
                "description": f"The human-readable text: 1 to {MAX_CONTENT} characters once "
                "trimmed (it is stored as sent); control characters but tab, LF and CR are "
                "refused.",
            },
            "from": {
                "type": "string",
                "format": USERNAME_FORMAT,
                "minLength": 1,
                "maxLength": MAX_USERNAME,
                "description": f"The sender's name as members see it: 1 to {MAX_USERNAME} "
                "printable characters once trimmed.",
            },
            "data": {"description": "Any JSON value, at most 16 KiB encoded and 32 deep."},
            "ref": {
                "oneOf": [
                    {"type": "string", "maxLength": MAX_REF},
                    {
                        "type": "integer",
                        "minimum": -(2**63),
                        "maximum": 2**64 - 1,
                        "description": "JSON parsers of 64-bit integers read no larger.",
                    },
                    {"type": "null"},
                ],
                "description": "Makes a retry safe: the same ref, `from` and room within "
                "5 minutes publishes nothing and answers the first message's id. Null is "
                "the same as none.",
            },
        },
    },
    "Published": {
        "type": "object",
        "required": ["id", "room", "timestamp"],
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "room": {"type": "string"},
            "timestamp": {"type": "string"},
        },
    },
    "RoomList": {
        "type": "object",
        "required": ["rooms", "total"],
        "properties": {
            "rooms": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "count"],
                    "properties": {
                        "name": {"type": "string"},
                        "count": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "Stats": {
        "type": "object",
        "required": [
            "connections",
            "rooms",
            "users",
            "messages_total",
            "messages_per_second",
            "uptime_seconds",
            "node",
        ],
        "properties": {
            "connections": {"type": "integer", "minimum": 0},
            "rooms": {"type": "integer", "minimum": 0},
            "users": {"type": "integer", "minimum": 0},
            "messages_total": {"type": "integer", "minimum": 0},
            "messages_per_second": {"type": "number", "minimum": 0},
            "uptime_seconds": {"type": "number", "minimum": 0},
            "node": {"type": "string"},
        },
    },
    "SeedRooms": {
        "type": "object",
        "required": ["success", "rooms"],
        "properties": {
            "success": {"const": True},
            "rooms": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "users"],
                    "properties": {"name": {"type": "string"}, "users": {"type": "integer"}},
                },
            },
        },
    },
    "SeedStats": {
        "type": "object",
        "required": ["success", "total_clients", "total_rooms"],
        "properties": {
            "success": {"const": True},
            "total_clients": {"type": "integer", "minimum": 0},
            "total_rooms": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "store": {"const": "unavailable"},
            "broker": {"const": "unavailable"},
        },
    },
}


def _history() -> Schema:
    return {
        "summary": "A page of a room's stored messages, oldest first",
        "description": "The newest messages (below `before`), or with `after` the oldest "
        "ones above it; with both, those between. With `--auth-secret`, a token that may "
        "read the room is needed (Authorization: Bearer, or `token` in the query).",
        "operationId": "roomMessages",
        "parameters": [
            _ROOM_PARAMETER,
            _id_query("before", "Only messages with an id below this."),
            _id_query("after", "Only messages with an id above this, oldest first."),
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "allowEmptyValue": True,
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_HISTORY_LIMIT,
                    "default": DEFAULT_HISTORY_LIMIT,
                },
            },
        ],
        "responses": {
            "200": _json(_ref("MessagePage"), "The page."),
            "400": _json(_ref("FlatError"), "A query parameter or the room name is invalid."),
            "401": _json(_ref("FlatError"), "A token is needed and was missing or invalid."),
            "403": _json(_ref("FlatError"), "The token may not read this room."),
            "503": _json(_ref("FlatError"), "The store is unavailable; retry."),
        },
    }


def _publish() -> Schema:
    def error(description: str) -> Schema:
        return _json(_ref("PublishError"), description)

    return {
        "summary": "Publish a message into a room from the deployment's backend",
        "description": "Stored, ordered and delivered to the room's members on every node "
        "exactly like a client's message. Enabled by `--api-key`; without one the route "
        "answers 404.",
        "operationId": "publish",
        "security": [{"apiKey": []}],
        "parameters": [_ROOM_PARAMETER],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Publish")}}},
        "responses": {
            "201": _json(_ref("Published"), "Stored and handed to the room's members."),
            "200": _json(_ref("Published"), "A retry of an earlier publish: nothing published."),
            "400": error("The body is not JSON (`bad_json`) or a field is invalid."),
            "401": error("No API key was given."),
            "403": error("The API key is wrong."),
            "404": {"description": "No API key is configured: the route does not exist."},
            "413": error("The body is larger than the message size limit (`too_large`)."),
            "503": error("The store or the broker is unavailable; retry with the same ref."),
        },
    }


def _get(summary: str, operation_id: str, responses: Schema) -> Schema:
    return {"get": {"summary": summary, "operationId": operation_id, "responses": responses}}


@cache
def document() -> Schema:
    """The whole OpenAPI document (built once: it depends on nothing that changes)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hubbub HTTP API",
            "version": version("hubbub"),
            "description": "The HTTP side of Hubbub. Real-time traffic is the WebSocket at "
            "`/ws` (see docs/protocol.md).",
        },
        "paths": {
            "/": _get(
                "The chat page",
                "page",
                {"200": {"description": "HTML.", "content": {"text/html": {}}}},
            ),
            "/ws": _get(
                "The WebSocket endpoint (a GET with the upgrade headers)",
                "websocket",
                {
                    "101": {"description": "Switching protocols."},
                    "403": {"description": "The Origin is not allowed."},
                    "426": {"description": "Not a WebSocket upgrade request."},
                    "503": {"description": "Connection limits reached."},
                },
            ),
            "/rooms": _get(
                "Rooms with someone in them, with their count of distinct online users",
                "rooms",
                {"200": _json(_ref("RoomList"), "The rooms."), "503": _PRESENCE_UNAVAILABLE},
            ),
            "/rooms/{name}/messages": {"get": _history(), "post": _publish()},
            "/stats": _get(
                "Counts of the whole cluster",
                "stats",
                {"200": _json(_ref("Stats"), "The counts."), "503": _PRESENCE_UNAVAILABLE},
            ),
            "/api/rooms": _get(
                "The seed's room list shape",
                "seedRooms",
                {"200": _json(_ref("SeedRooms"), "The rooms."), "503": _PRESENCE_UNAVAILABLE},
            ),
            "/api/stats": _get(
                "The seed's stats shape",
                "seedStats",
                {"200": _json(_ref("SeedStats"), "The counts."), "503": _PRESENCE_UNAVAILABLE},
            ),
            "/healthz": _get(
                "Whether the node, its store and its broker are usable",
                "health",
                {
                    "200": _json(_ref("Health"), "Usable."),
                    "503": _json(_ref("Health"), "Names each part that is unusable."),
                },
            ),
            "/metrics": _get(
                "Prometheus metrics",
                "metrics",
                {"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
            ),
            "/client.js": _get(
                "The browser client, an ES module (docs/client-js.md)",
                "clientModule",
                {
                    "200": {"description": "JavaScript.", "content": {"text/javascript": {}}},
                    "304": {"description": "Not modified since the validators given."},
                },
            ),
            "/openapi.json": _get(
                "This document",
                "openapi",
                {"200": {"description": "OpenAPI 3.1.", "content": {JSON: {}}}},
            ),
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the keys given with `--api-key`.",
                }
            },
        },
    }
