"""The node's open connections: admission into the registry, the heartbeat, and
waiting for them all to go at shutdown."""

import asyncio
from collections.abc import Callable

from hubbub.core.heartbeat import HeartbeatWheel, Verdict
from hubbub.server.connection import Connection
from hubbub.server.stats import Metrics


class Registry:
    def __init__(
        self, metrics: Metrics, heartbeat_interval: float, clock: Callable[[], float]
    ) -> None:
        self.connections: set[Connection] = set()
        self.heartbeat: HeartbeatWheel[Connection] = HeartbeatWheel(heartbeat_interval)
        self._metrics = metrics
        self._clock = clock
        self._all_gone: asyncio.Event | None = None

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.heartbeat.add(connection, self._clock())
        self._metrics.connections.inc()
        self._metrics.connections_opened.inc()

    def remove(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self.heartbeat.remove(connection)
        self._metrics.connections.dec()
        if connection.slow:
            self._metrics.slow_consumers.inc()
        if connection.frames_shed:
            self._metrics.frames_shed.inc(connection.frames_shed)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def beat_forever(self) -> None:
        """Ping silent connections, spread over the interval; cut those that never answer."""
        while True:
            await asyncio.sleep(self.heartbeat.tick)
            for connection, verdict in self.heartbeat.visit(self._clock()):
                if verdict is Verdict.PING:
                    connection.ping()
                else:
                    connection.drop("heartbeat unanswered")

    def close_all(self, code: int, reason: str) -> None:
        for connection in list(self.connections):
            connection.close(code, reason)

    async def wait_closed(self, timeout: float) -> None:
        """Wait until every connection is gone; cut those still open after `timeout`."""
        if not self.connections:
            return
        self._all_gone = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            for connection in list(self.connections):
                connection.drop("shutdown timed out")
        finally:
            self._all_gone = None
