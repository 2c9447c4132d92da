"""Starting and stopping a server: used by the CLI and, in-process, by the tests."""

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.app import build_app
from hubbub.server.keys import NODE
from hubbub.server.node import Node

log = logging.getLogger("hubbub")

SHUTDOWN_TIMEOUT_SECONDS = 8.0
"""Within the 10 s a supervisor gives between SIGTERM and SIGKILL."""


@dataclass
class RunningServer:
    runner: web.AppRunner
    node: Node
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def stop(self) -> None:
        """Close every client with 1001, wait for them (bounded), then release everything."""
        await self.runner.cleanup()


async def start(settings: Settings) -> RunningServer:
    app = build_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    sockets = runner.addresses
    port = sockets[0][1] if sockets else settings.port
    return RunningServer(runner, app[NODE], settings.host, port)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    server = await start(settings)
    log.info(
        "hubbub listening on %s (store: %s; authentication: none, the server is open)",
        server.url,
        "memory" if settings.store == "memory" else f"sqlite in {settings.data_dir}",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down: closing %d connections", len(server.node.connections))
    await server.stop()
    log.info("stopped")
