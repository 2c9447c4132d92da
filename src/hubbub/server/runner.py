"""Starting and stopping a server: used by the CLI and, in-process, by the tests."""

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from hubbub.broker.redis import BrokerUnavailable
from hubbub.config import Settings, is_postgres_url
from hubbub.presence.base import PresenceUnavailable
from hubbub.server.app import build_app
from hubbub.server.gc_tuning import tune_for_serving
from hubbub.server.keys import NODE
from hubbub.server.listener import Listener
from hubbub.server.node import Node
from hubbub.server.takeover import UnsupportedAiohttp, check_aiohttp
from hubbub.store.base import StoreUnavailable
from hubbub.store.postgres import where

log = logging.getLogger("hubbub")

SHUTDOWN_TIMEOUT_SECONDS = 8.0
"""Within the 10 s a supervisor gives between SIGTERM and SIGKILL."""

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@dataclass
class RunningServer:
    runner: web.AppRunner
    listener: Listener
    node: Node
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/ws"

    async def stop(self) -> None:
        """Stop listening, close every client with 1001, wait for them (bounded), release all."""
        self.listener.close()
        await self.runner.cleanup()


class StartupError(Exception):
    """The server cannot start, for a reason that one line says (the CLI prints it alone)."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.certfile:
        return None
    for flag, path in (("--certfile", settings.certfile), ("--keyfile", settings.keyfile)):
        try:
            Path(path).open("rb").close()
        except OSError as error:
            raise StartupError(f"cannot read {flag} {path}: {error.strerror}") from error
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    except ssl.SSLError as error:
        raise StartupError(
            f"cannot use --certfile {settings.certfile} with --keyfile {settings.keyfile} "
            f"as a PEM certificate chain and its private key: {error.reason or error}"
        ) from error
    return context


async def start(settings: Settings) -> RunningServer:
    """Listen with `settings`; raises `StartupError` when that cannot be done."""
    tls = tls_context(settings)
    app = build_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        handler_cancellation=False,
    )
    listener = Listener(runner, settings.handshake_timeout)
    app.middlewares.append(listener.middleware)
    try:
        await runner.setup()
    except (BrokerUnavailable, PresenceUnavailable) as error:
        raise StartupError(f"cannot use Redis for the cluster: {error}") from error
    except (OSError, sqlite3.Error, StoreUnavailable) as error:
        # The process is about to end: what the store half-opened is left to it.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        where = "" if is_postgres_url(settings.store) else f" in --data-dir {settings.data_dir}"
        raise StartupError(f"cannot open the message store{where}: {reason}") from error
    try:
        assert runner.server is not None, "set up by runner.setup()"
        check_aiohttp(runner.server)
        port = await listener.start(
            settings.host, settings.port, tls, reuse_port=settings.workers > 1
        )
    except UnsupportedAiohttp as error:
        await runner.cleanup()
        raise StartupError(str(error)) from error
    except OSError as error:
        await runner.cleanup()
        raise cannot_listen(settings, error) from error
    return RunningServer(runner, listener, app[NODE], settings.host, port, tls is not None)


def describe_store(settings: Settings) -> str:
    """The store, for the log: never a password."""
    if is_postgres_url(settings.store):
        return f"postgresql at {where(settings.store)}"
    return "memory" if settings.store == "memory" else f"sqlite in {settings.data_dir}"


def cannot_listen(settings: Settings, error: OSError) -> StartupError:
    return StartupError(f"cannot listen on {settings.host} port {settings.port}: {_reason(error)}")


def _reason(error: OSError) -> str:
    """asyncio's bind errors carry a sentence of their own; the errno says it shortest."""
    if isinstance(error, socket.gaierror) or not error.errno:
        return str(error.strerror or error)
    return os.strerror(error.errno)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve(
    settings: Settings,
    *,
    started: Callable[[RunningServer], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM or SIGINT (or until `stop` is set), then stop gracefully.

    `started` is told once the server listens. SIGTERM and SIGINT are unblocked once
    their handlers are in place: a `--workers` worker blocks them while it starts, so
    that a signal then waits for the graceful stop rather than killing it half-way."""
    server = await start(settings)
    tune_for_serving()
    keys = len(settings.api_key)
    log.info(
        "hubbub listening on %s (store: %s; authentication: %s; publish API: %s)",
        server.url,
        describe_store(settings),
        "HS256 tokens" if settings.auth_secret else "none, the server is open to anyone",
        f"on, {keys} key{'s' if keys > 1 else ''}" if keys else "off",
    )
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if started is not None:
        started(server)
    await stop.wait()
    log.info("shutting down: closing %d connections", len(server.node.connections))
    await server.stop()
    log.info("stopped")
