"""The `/ws` endpoint: checks before the upgrade, then the connection is ours.

aiohttp routes the upgrade request and the checks answer in plain HTTP
(403, 401, 429, 503 with a JSON body). websockets' sans-I/O `ServerProtocol`
validates the handshake and negotiates the subprotocol and permessage-deflate;
its 101 is written straight to the transport, which then leaves aiohttp for
a `WebSocketProtocol` (see `takeover`).
"""

import asyncio
import logging
import secrets

from aiohttp import web
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from hubbub.config import Settings
from hubbub.core.admission import Admission, Refused
from hubbub.core.auth import Identity, InvalidToken, verify_token
from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.codecs import choose_subprotocol, codec_for
from hubbub.server.connection import Connection
from hubbub.server.keys import ADMISSION, NODE, ORIGINS
from hubbub.server.node import Node, guest_name
from hubbub.server.takeover import TakenOver, take_transport
from hubbub.server.ws_protocol import WebSocketProtocol

log = logging.getLogger("hubbub.connection")

_frames_log = logging.getLogger("hubbub.frames")
"""websockets' own log of each connection (open, closed, every frame at DEBUG); the CLI
keeps it quiet unless `--log-level debug` asks for it."""

_REFUSALS = {
    Refused.SERVER_FULL: "server is at its connection limit",
    Refused.TOO_MANY_FROM_IP: "too many connections from this address",
}

SHARED_DEFLATE = ServerPerMessageDeflateFactory(server_no_context_takeover=True)
"""permessage-deflate, always without server context takeover.

RFC 7692 (section 7.1.1.1) lets a server add `server_no_context_takeover` to
any offer it accepts. With it every message is compressed on its own, so one
compressed frame serves every member of a room (see `Deflater`) instead of a
compressor per connection."""


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
    handshake = _handshake(request, node.settings)
    response = handshake.accept(Request(request.path_qs, Headers(request.headers.items())))
    if response.status_code != 101:
        node.metrics.upgrades_refused.labels("bad_handshake").inc()
        log.info("refused upgrade from %s: %s", request.remote, handshake.handshake_exc)
        return web.Response(
            status=response.status_code,
            body=response.body,
            headers=dict(response.headers.raw_items()),
        )
    ip = request.remote or "unknown"
    admission = request.app[ADMISSION]
    refused = admission.admit(ip)
    if refused is not None:
        node.metrics.upgrades_refused.labels(refused.name.lower()).inc()
        log.info("refused upgrade from %s: %s", ip, _REFUSALS[refused])
        return web.json_response({"error": _REFUSALS[refused]}, status=refused.value)
    taken = take_transport(request)
    if taken is None:
        admission.release(ip)
        return TakenOver()
    transport, received = taken
    transport.write(response.serialize())
    _open(node, handshake, transport, ip, identity, admission).open(received)
    return TakenOver()


def _handshake(request: web.Request, settings: Settings) -> ServerProtocol:
    offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
    chosen = choose_subprotocol(part.strip() for part in offered)
    return ServerProtocol(
        extensions=[SHARED_DEFLATE] if settings.compression else None,
        subprotocols=[Subprotocol(chosen)] if chosen else None,
        logger=_frames_log,
    )


def _open(
    node: Node,
    handshake: ServerProtocol,
    transport: asyncio.Transport,
    ip: str,
    identity: Identity | None,
    admission: Admission,
) -> WebSocketProtocol:
    settings = node.settings
    # The handshake's protocol would still parse an HTTP request first; frames get
    # a protocol that starts open, with what the handshake negotiated.
    ws = ServerProtocol(state=State.OPEN, max_size=settings.max_message_size, logger=_frames_log)
    ws.extensions = handshake.extensions
    ws.subprotocol = handshake.subprotocol
    deflate = next((e for e in ws.extensions if isinstance(e, PerMessageDeflate)), None)
    session = Session(
        RateLimiter(settings.rate, settings.rate_burst, settings.abuse_limit),
        guest_name,
        identity,
        settings.max_rooms_per_connection,
    )
    codec = codec_for(ws.subprotocol)
    link = WebSocketProtocol(ws, node, transport, admission)
    connection = Connection(
        link,
        transport,
        codec,
        session,
        secrets.token_hex(8),
        ip,
        settings.max_outbound_buffer,
        node.flusher,
        node.deflater(deflate.local_max_window_bits) if deflate is not None else None,
    )
    log.info(
        "open %s from %s protocol=%s compress=%s",
        connection.id,
        ip,
        codec.name,
        deflate is not None,
    )
    link.attach(connection)
    return link
