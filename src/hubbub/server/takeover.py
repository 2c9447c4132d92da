"""Taking a connection away from aiohttp once its WebSocket upgrade is accepted.

aiohttp parses and routes the upgrade request, so the HTTP checks (origin,
token, admission) stay ordinary handler code. But had aiohttp kept the
connection, its objects for the request would live as long as the WebSocket:
the parsed request, the handler with its task, the WebSocket response with its
reader and writer, about 12 KB of the 17 KB an idle member cost. Instead the
handler writes the 101 itself, gives the transport to Hubbub's own protocol,
and tells aiohttp the connection is gone, so all of that is freed.

This leans on how aiohttp's `RequestHandler` is built (its `transport`
attribute, its `connection_lost`, and the bytes it keeps after an upgrade
request); `tests/server/test_takeover.py` checks the handler really lets go.
"""

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest


class TakenOver(web.StreamResponse):
    """What the handler returns after a takeover: aiohttp logs a 101 and writes nothing."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_transport(request: web.Request) -> tuple[asyncio.Transport, bytes] | None:
    """Detach the request's connection from aiohttp; returns its transport and any bytes
    the client sent after the upgrade request (aiohttp holds them back unparsed), or
    None if the client is already gone."""
    handler = request.protocol
    transport = request.transport
    assert isinstance(handler, RequestHandler), "requests come from aiohttp's handler"
    if transport is None or transport.is_closing():
        return None
    received = bytes(getattr(handler, "_message_tail", b""))
    # Without a transport, aiohttp's clean-up of the handler closes nothing.
    handler.transport = None
    handler.connection_lost(None)
    return transport, received
