"""`POST /rooms/{name}/messages`: a deployment's own backend publishes into a room.

The route exists only when API keys are configured (404 otherwise, as if it
did not). What it publishes takes a client's path through the node
(`Node.post`): stored, numbered, deduplicated by `ref`, delivered to the
members here and handed to the broker for the other nodes, and counted in
`hubbub_messages_total`. It is not rate-limited: the key holder is the
deployment itself. Answers, each also counted in `hubbub_http_publishes_total`
by status:

- 201 `{"id", "room", "timestamp"}`: stored and delivered.
- 200, the same fields of the first message: a retry (same `ref`, `from` and
  room within 5 minutes); nothing was published.
- 400 `invalid_field` or `bad_json`, 401 without a bearer key, 403 with a
  wrong one, 413 for a body over `max_message_size`, 503 `unavailable` while
  the store or the broker is down; errors as `{"error": {"code", "message"}}`.
"""

import logging

import orjson
from aiohttp import hdrs, web

from hubbub.core.api_keys import Verdict
from hubbub.protocol.errors import HTTP_STATUS, ErrorCode, Refusal
from hubbub.protocol.events import format_timestamp
from hubbub.protocol.validation import parse_publication, valid_room
from hubbub.server.keys import API_KEYS, NODE
from hubbub.store.base import StoreUnavailable

log = logging.getLogger("hubbub.publish")

TOO_LARGE = "too_large"
"""The `code` of a 413: the contract names codes only for 400s and 503s."""


class _Answer(Exception):
    """Ends a request early with an error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def publish_message(request: web.Request) -> web.StreamResponse:
    keys = request.app[API_KEYS]
    if not keys.enabled:
        raise web.HTTPNotFound()
    node = request.app[NODE]
    try:
        response = await _publish(request)
    except _Answer as answer:
        response = _error(answer.status, answer.code, answer.message)
        if answer.status == 401:
            response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="hubbub"'
        elif answer.status == 503:
            response.headers[hdrs.RETRY_AFTER] = "1"
    node.metrics.http_publishes.labels(str(response.status)).inc()
    return response


async def _publish(request: web.Request) -> web.Response:
    node = request.app[NODE]
    match request.app[API_KEYS].check(request.headers.get(hdrs.AUTHORIZATION)):
        case Verdict.MISSING:
            raise _Answer(401, "unauthorized", "send the API key as Authorization: Bearer KEY")
        case Verdict.WRONG:
            log.debug("publish refused: wrong API key (from %s)", request.remote)
            raise _Answer(403, "unauthorized", "this API key is not valid")
    try:
        room = valid_room(request.match_info["name"])
        body = await _body(request, node.settings.max_message_size)
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise Refusal(ErrorCode.BAD_JSON, f"the body is not valid JSON: {error.msg}") from None
        publication = parse_publication(decoded)
    except Refusal as refusal:
        raise _Answer(HTTP_STATUS[refusal.code], refusal.code, refusal.message) from None
    if node.clustered and not node.broker.healthy():
        raise _Answer(503, ErrorCode.UNAVAILABLE, "message broker unavailable; retry")
    try:
        appended = await node.post(room, publication)
    except StoreUnavailable:
        raise _Answer(503, ErrorCode.UNAVAILABLE, "message store unavailable; retry") from None
    message = appended.message
    answer = {"id": message.id, "room": room, "timestamp": format_timestamp(message.timestamp_ms)}
    return _json(answer, 200 if appended.duplicate else 201)


async def _body(request: web.Request, limit: int) -> bytes:
    """The request's body, refused (413) past `limit` bytes without reading the rest."""
    if request.content_length is not None and request.content_length > limit:
        raise _Answer(413, TOO_LARGE, f"the body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        size += len(chunk)
        if size > limit:
            raise _Answer(413, TOO_LARGE, f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: object, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": {"code": str(code), "message": message}}, status)
