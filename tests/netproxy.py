"""A TCP proxy on 127.0.0.1 whose links the test can cut: a real dropped connection."""

import asyncio
import contextlib
from types import TracebackType
from typing import Self


class CuttableProxy:
    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._blocked = False
        self._answers_to_drop = 0
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def cut(self) -> None:
        """Drop every open link at once, both directions, without a close handshake."""
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def block(self) -> None:
        """Cut every link and refuse new ones until `unblock`: a network partition."""
        self._blocked = True
        self.cut()

    def unblock(self) -> None:
        self._blocked = False

    def drop_answers(self, count: int) -> None:
        """Cut the next `count` links on which the server answers, as its first bytes
        arrive and before any reach the client: the request was handled, the client
        never hears how."""
        self._answers_to_drop = count

    async def _link(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        if self._blocked:
            client.transport.abort()
            return
        try:
            server_reader, server = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client.transport.abort()
            return
        self._links |= {client, server}
        await asyncio.gather(
            self._pump(client_reader, server),
            self._pump(server_reader, client, answers=server),
        )

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        answers: asyncio.StreamWriter | None = None,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if answers is not None and self._answers_to_drop > 0:
                    self._answers_to_drop -= 1
                    answers.transport.abort()
                    self._links.discard(answers)
                    break
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._links.discard(sink)
