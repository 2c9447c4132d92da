"""Taking a connection away from aiohttp once its WebSocket upgrade is accepted.

aiohttp parses and routes the upgrade request, so the HTTP checks (origin,
token, admission) stay ordinary handler code. But had aiohttp kept the
connection, its objects for the request would live as long as the WebSocket:
the parsed request, the handler with its task, the WebSocket response with its
reader and writer, about 12 KB of the 17 KB an idle member cost. Instead the
handler writes the 101 itself, gives the transport to Hubbub's own protocol,
and tells aiohttp the connection is gone, so all of that is freed.

This leans on how aiohttp's `RequestHandler` is built (its `transport`
attribute, its `connection_lost`, and `_message_tail`, the bytes it keeps after
an upgrade request), which aiohttp changes from release to release. So
`check_aiohttp` refuses to start a server whose aiohttp is not built that way,
rather than losing the frames a client sent along with its upgrade;
pyproject.toml bounds aiohttp to the releases the tests passed on, and
`tests/server/test_takeover.py` checks the handler really lets go.
"""

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest


class UnsupportedAiohttp(RuntimeError):
    """The installed aiohttp is not built the way the takeover needs."""


def check_aiohttp(server: web.Server) -> None:
    """Raise `UnsupportedAiohttp` unless `server` makes handlers the takeover can detach.

    Called once at start-up, so a changed aiohttp stops the server with a reason
    instead of failing, or silently dropping bytes, on the first upgrade."""
    problems = []
    if server.handler_cancellation:
        # take_transport calls connection_lost from inside the handler: with this
        # setting aiohttp would cancel the very handler that is opening the connection.
        problems.append("handler_cancellation must be off")
    handler = server()
    if not isinstance(handler, RequestHandler):
        problems.append(f"its handlers are {type(handler).__name__}, not RequestHandler")
    if not isinstance(getattr(handler, "_message_tail", None), bytes):
        problems.append("RequestHandler keeps no bytes in _message_tail after an upgrade")
    if not hasattr(handler, "transport"):
        problems.append("RequestHandler has no transport attribute")
    if not callable(getattr(handler, "connection_lost", None)):
        problems.append("RequestHandler has no connection_lost")
    if problems:
        raise UnsupportedAiohttp(
            f"aiohttp {aiohttp.__version__} is not built the way Hubbub's WebSocket takeover "
            f"needs ({'; '.join(problems)}): install an aiohttp release within "
            "the bounds in Hubbub's pyproject.toml"
        )


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
    received = bytes(handler._message_tail)
    # Without a transport, aiohttp's clean-up of the handler closes nothing.
    handler.transport = None
    handler.connection_lost(None)
    return transport, received
