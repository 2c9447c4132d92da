"""The `/ws` endpoint: checks before the upgrade, then one reader loop per connection."""

import logging
import secrets

from aiohttp import WSMsgType, hdrs, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from hubbub.core.admission import Refused
from hubbub.core.auth import Identity, InvalidToken, verify_token
from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.codecs import choose_subprotocol, codec_for
from hubbub.server.connection import MESSAGE_TOO_BIG, Connection
from hubbub.server.keys import ADMISSION, NODE, ORIGINS
from hubbub.server.node import guest_name

log = logging.getLogger("hubbub.connection")

_CLOSE_REASONS = {
    1000: "closed normally",
    1001: "going away",
    1006: "connection lost or heartbeat unanswered",
    1007: "invalid frame payload",
    1009: "message too big",
}

_REFUSALS = {
    Refused.SERVER_FULL: "server is at its connection limit",
    Refused.TOO_MANY_FROM_IP: "too many connections from this address",
}


class SharedDeflateResponse(web.WebSocketResponse):
    """A WebSocket response that accepts permessage-deflate without context takeover.

    RFC 7692 (section 7.1.1.1) lets a server add `server_no_context_takeover`
    to any offer it accepts. With it every message is compressed on its own,
    so one compressed frame serves every member of a room (see `Deflater`)
    instead of a compressor per connection. aiohttp decides the answer in
    `_handshake`, its one place for it.
    """

    def _handshake(self, request: BaseRequest) -> tuple["CIMultiDict[str]", str | None, int, bool]:
        headers, protocol, window_bits, _ = super()._handshake(request)
        if window_bits:
            extension = "permessage-deflate; server_no_context_takeover"
            if window_bits < 15:
                extension += f"; server_max_window_bits={window_bits}"
            headers[hdrs.SEC_WEBSOCKET_EXTENSIONS] = extension
        return headers, protocol, window_bits, True


async def websocket_endpoint(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    origin = request.headers.get("Origin")
    if not request.app[ORIGINS].permits(origin, request.host):
        node.metrics.upgrades_refused.labels("origin").inc()
        log.info("refused upgrade from %s: origin %r not allowed", request.remote, origin)
        return web.json_response({"error": "origin not allowed"}, status=403)
    identity: Identity | None = None
    if node.settings.auth_secret:
        try:
            identity = verify_token(request.query.get("token"), node.settings.auth_secret)
        except InvalidToken as error:
            node.metrics.upgrades_refused.labels("unauthorized").inc()
            log.info("refused upgrade from %s: %s", request.remote, error)
            return web.json_response({"error": str(error)}, status=401)
    ip = request.remote or "unknown"
    admission = request.app[ADMISSION]
    refused = admission.admit(ip)
    if refused is not None:
        node.metrics.upgrades_refused.labels(refused.name.lower()).inc()
        log.info("refused upgrade from %s: %s", ip, _REFUSALS[refused])
        return web.json_response({"error": _REFUSALS[refused]}, status=refused.value)
    try:
        return await _serve(request, ip, identity)
    finally:
        admission.release(ip)


def _too_big(data: str | bytes, limit: int) -> bool:
    """The one size aiohttp's `limit + 1` lets through: exactly one byte over (after inflating)."""
    if isinstance(data, bytes) or len(data) > limit or 4 * len(data) <= limit:
        return len(data) > limit
    return len(data.encode()) > limit


async def _serve(request: web.Request, ip: str, identity: Identity | None) -> web.WebSocketResponse:
    node = request.app[NODE]
    settings = node.settings
    offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
    chosen = choose_subprotocol(part.strip() for part in offered)
    limit = settings.max_message_size
    ws = SharedDeflateResponse(
        protocols=(chosen,) if chosen else (),
        autoping=False,
        # aiohttp refuses a message of exactly its limit; ours is the largest allowed size.
        max_msg_size=limit + 1,
        compress=settings.compression,
    )
    stream = await ws.prepare(request)
    transport = request.transport
    assert transport is not None, "a prepared WebSocket has its transport"
    session = Session(
        RateLimiter(settings.rate, settings.rate_burst, settings.abuse_limit),
        guest_name,
        identity,
        settings.max_rooms_per_connection,
    )
    codec = codec_for(ws.ws_protocol)
    connection = Connection(
        ws,
        stream,
        transport,
        codec,
        session,
        secrets.token_hex(8),
        ip,
        settings.max_outbound_buffer,
        node.flusher,
        node.deflater(int(ws.compress)) if ws.compress else None,
    )
    opened = node.now()
    log.info(
        "open %s from %s protocol=%s compress=%s",
        connection.id,
        ip,
        codec.name,
        bool(ws.compress),
    )
    node.open(connection)
    try:
        async for message in ws:
            node.heartbeat.seen(connection, node.now())
            if message.type is WSMsgType.PING:
                await ws.pong(message.data)
            elif message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                if _too_big(message.data, limit):
                    connection.close(MESSAGE_TOO_BIG, "message too big")
                    break
                await node.receive(connection, message.data, message.type is WSMsgType.BINARY)
    finally:
        node.disconnect(connection)
        await connection.finish()
        code, reason = connection.close_request or (
            ws.close_code,
            _CLOSE_REASONS.get(ws.close_code or 1006, "protocol error"),
        )
        log.info(
            "close %s code=%s reason=%s after %.1fs",
            connection.id,
            code,
            reason,
            node.now() - opened,
        )
    return ws
