"""The /ws upgrade: aiohttp answers the HTTP side, then lets go of the connection."""

import asyncio
import socket
import struct

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hubbub.client import ChatClient
from hubbub.server.runner import RunningServer
from hubbub.server.takeover import UnsupportedAiohttp, check_aiohttp
from tests.conftest import StartServer, metric
from tests.rawsocket import TEXT, WAIT, RawWebSocket, encode_frame

JOIN = encode_frame(TEXT, b'{"type":"join","room":"r","username":"raw","ref":"j"}')


async def test_aiohttp_holds_nothing_of_an_open_websocket(server: RunningServer) -> None:
    """The parsed request, handler task and response would otherwise live as long as the
    connection (12 KB of the 17 KB an idle member cost)."""
    http_server = server.runner.server
    assert http_server is not None
    async with await ChatClient.connect(server.ws_url) as client:
        await client.join("r", "alice")
        assert http_server.connections == []
        assert len(server.node.connections) == 1
        assert await client.say("still served") == 1


async def test_an_upgrade_on_a_kept_alive_connection(server: RunningServer) -> None:
    """A client may upgrade a connection that already served plain HTTP requests."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for _ in range(2):
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert "connections" in orjson.loads(body)
    raw = await RawWebSocket.connect(server.port, stream=(reader, writer))
    try:
        raw.write(JOIN)
        await raw.wait_for(lambda event: event.get("ref") == "j")
        assert len(server.node.connections) == 1
    finally:
        await raw.close()


async def test_frames_sent_along_with_the_upgrade_request_are_read(
    server: RunningServer,
) -> None:
    """aiohttp keeps what follows an upgrade request; the takeover must pass it on."""
    raw = await RawWebSocket.connect(server.port, early=JOIN)
    try:
        joined = await raw.wait_for(lambda event: event.get("type") == "online_users")
        assert joined["users"] == ["raw"]
        await raw.wait_for(lambda event: event.get("ref") == "j")
    finally:
        await raw.close()


async def test_a_request_without_upgrade_is_told_to_upgrade(server: RunningServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/ws") as response,
    ):
        assert response.status == 426
        assert response.headers["Upgrade"] == "websocket"
        assert "You need a WebSocket client" in await response.text()
    assert not server.node.connections


BAD_KEY = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "not base64 of 16 bytes",
}


async def test_a_bad_handshake_gets_400_and_holds_no_connection_slot(
    start_server: StartServer,
) -> None:
    server = await start_server(max_connections=1)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(f"{server.url}/ws", headers=BAD_KEY) as response:
                assert response.status == 400
                assert "Sec-WebSocket-Key" in await response.text()
    async with await ChatClient.connect(server.ws_url) as client:
        await client.join("r", "alice")


async def test_refused_upgrades_are_counted_by_reason(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(f"{server.url}/ws", headers=BAD_KEY) as response:
                assert response.status == 400
        async with http.get(f"{server.url}/ws") as response:
            assert response.status == 426
        elsewhere = {**BAD_KEY, "Origin": "http://elsewhere.example"}
        async with http.get(f"{server.url}/ws", headers=elsewhere) as response:
            assert response.status == 403
        async with http.get(f"{server.url}/metrics") as response:
            text = await response.text()
    assert metric(text, 'hubbub_upgrades_refused_total{reason="bad_handshake"}') == 3
    assert metric(text, 'hubbub_upgrades_refused_total{reason="origin"}') == 1


async def test_clients_gone_before_the_takeover_leave_no_connection_behind(
    start_server: StartServer,
) -> None:
    """An upgrade request followed at once by a reset: whether the socket is gone before
    or after the handler runs, the connection's admission place comes back."""
    server = await start_server(max_connections=1)
    request = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.write(request)
        writer.close()
    async with await ChatClient.connect(server.ws_url) as client:
        await client.join("r", "alice")
        assert len(server.node.connections) == 1


async def no_route(request: web.BaseRequest) -> web.StreamResponse:
    raise web.HTTPNotFound()


class TailElsewhere(web.Server):
    """Makes handlers as an aiohttp that keeps an upgrade's tail under another name would."""

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        del handler._message_tail
        return handler


async def test_an_aiohttp_that_keeps_the_upgrades_tail_elsewhere_is_refused() -> None:
    """Otherwise the frames sent along with an upgrade would be dropped without a word."""
    with pytest.raises(UnsupportedAiohttp, match=f"aiohttp {aiohttp.__version__} .*_message_tail"):
        check_aiohttp(TailElsewhere(no_route))


async def test_handler_cancellation_is_refused() -> None:
    """The takeover ends the handler's connection from inside the handler itself."""
    with pytest.raises(UnsupportedAiohttp, match="handler_cancellation"):
        check_aiohttp(web.Server(no_route, handler_cancellation=True))
