"""The listening socket, with a deadline for every new connection's first request.

aiohttp waits for request headers as long as a client cares to trickle them
(slowloris): a few thousand such sockets would hold every connection slot.
Here each new connection must have sent a complete first request (for
`/ws`, the upgrade) within `handshake_timeout`, or it is cut.
"""

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Listener:
    def __init__(self, runner: web.AppRunner, handshake_timeout: float) -> None:
        self._runner = runner
        self._timeout = handshake_timeout
        self._deadlines: dict[asyncio.BaseProtocol, asyncio.TimerHandle] = {}
        self._server: asyncio.Server | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The connection completed a request: its deadline no longer applies."""
        deadline = self._deadlines.pop(request.protocol, None)
        if deadline is not None:
            deadline.cancel()
        return await handler(request)

    async def start(
        self, host: str, port: int, tls: ssl.SSLContext | None, *, reuse_port: bool = False
    ) -> int:
        """Listen; returns the port (useful when `port` is 0). With `reuse_port`
        (SO_REUSEPORT) other processes of this user may listen on the same port, and the
        kernel spreads new connections across them: how `--workers` share one port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection,
            host,
            port,
            ssl=tls,
            ssl_handshake_timeout=self._timeout if tls is not None else None,
            reuse_address=True,
            reuse_port=reuse_port,
            backlog=1024,
        )
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting; connections already open are left to the server's shutdown."""
        if self._server is not None:
            self._server.close()

    def _new_connection(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None, "the runner is set up before listening"
        handler = server()
        loop = asyncio.get_running_loop()
        self._deadlines[handler] = loop.call_later(self._timeout, self._expire, handler)
        return handler

    def _expire(self, handler: asyncio.BaseProtocol) -> None:
        del self._deadlines[handler]
        transport = getattr(handler, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.abort()
