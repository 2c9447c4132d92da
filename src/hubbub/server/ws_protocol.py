"""A WebSocket connection after its handshake: frames in, messages to the node.

aiohttp answers the upgrade request, then hands the socket over (see
`takeover`), and from then on this protocol reads it. websockets' sans-I/O
`ServerProtocol` parses and checks every frame (masking, opcodes, control
frames, sizes, close codes, permessage-deflate) and produces what RFC 6455
requires in answer (pongs, close frames); this class moves bytes between it
and the transport and hands complete messages to the node. Outbound events do
not pass through here: `Connection` writes its frames to the transport itself.

An idle connection costs no task: one runs only while received messages wait
to be handled, and reading pauses while too many of them wait.
"""

import asyncio
import logging
from typing import cast

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import BytesLike

from hubbub.core.admission import Admission
from hubbub.server.connection import ABNORMAL_CLOSURE, Connection
from hubbub.server.node import Node

log = logging.getLogger("hubbub.connection")

CLOSE_GRACE_SECONDS = 5.0
"""How long a closing connection may take to answer our close frame before it is cut."""
INBOX_LIMIT = 32
"""Received messages waiting to be handled before the socket is no longer read."""

_CLOSE_REASONS = {
    1000: "closed normally",
    1001: "going away",
    1006: "connection lost or heartbeat unanswered",
}


class WebSocketProtocol(asyncio.Protocol):
    __slots__ = (
        "_admission",
        "_binary",
        "_connection",
        "_drain_waiter",
        "_failed",
        "_fragments",
        "_grace",
        "_inbox",
        "_lost",
        "_node",
        "_opened",
        "_reader",
        "_reading_paused",
        "_transport",
        "_writing_paused",
        "_ws",
    )
    _connection: Connection

    def __init__(
        self,
        ws: ServerProtocol,
        node: Node,
        transport: asyncio.Transport,
        admission: Admission,
    ) -> None:
        self._ws = ws
        self._node = node
        self._transport = transport
        self._admission = admission
        """Holds the connection's place until it ends."""
        self._inbox: list[tuple[bytes | str, bool]] = []
        self._reader: asyncio.Task[None] | None = None
        self._fragments: list[BytesLike] | None = None
        """The frames so far of a fragmented message."""
        self._binary = False
        self._failed = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._opened = 0.0

    def attach(self, connection: Connection) -> None:
        self._connection = connection

    def open(self, received: bytes) -> None:
        """Take over the transport and open the connection; `received` is what the
        client sent after its upgrade request, before this protocol was reading."""
        self._opened = self._node.now()
        transport = self._transport
        transport.set_protocol(self)
        self._node.open(self._connection)
        if received:
            self.data_received(received)
        if not transport.is_reading() and not self._reading_paused:
            transport.resume_reading()

    # --- reading ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        # Past the handshake, websockets' events are all frames.
        frames = cast(list[Frame], ws.events_received())
        if frames:
            self._node.heartbeat.seen(self._connection, self._node.now())
            for frame in frames:
                if self._failed:
                    break
                opcode = frame.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if frame.fin:
                        self._message(frame.data, opcode is Opcode.BINARY)
                    else:
                        self._fragments = [frame.data]
                        self._binary = opcode is Opcode.BINARY
                elif opcode is Opcode.CONT and self._fragments is not None:
                    self._fragments.append(frame.data)
                    if frame.fin:
                        fragments, self._fragments = self._fragments, None
                        self._message(b"".join(fragments), self._binary)
        self._write_answers()

    def eof_received(self) -> None:
        self._ws.receive_eof()
        self._write_answers()

    def _message(self, data: BytesLike, binary: bool) -> None:
        """A complete message: queue it for the node (text must be valid UTF-8)."""
        payload: bytes | str
        if binary:
            payload = data if isinstance(data, bytes) else bytes(data)
        else:
            try:
                payload = str(data, "utf-8")
            except UnicodeDecodeError as error:
                self._failed = True
                self._ws.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {error.start}")
                return
        if self._connection.close_request is not None:
            return
        self._inbox.append((payload, binary))
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._handle_inbox())
        elif len(self._inbox) >= INBOX_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    async def _handle_inbox(self) -> None:
        """Hand waiting messages to the node one at a time, in the order they came."""
        inbox = self._inbox
        connection = self._connection
        try:
            while inbox:
                payload, binary = inbox.pop(0)
                if self._reading_paused and len(inbox) < INBOX_LIMIT // 2 and not self._lost:
                    self._reading_paused = False
                    self._transport.resume_reading()
                if connection.close_request is None:
                    await self._node.receive(connection, payload, binary)
        finally:
            self._reader = None
            if self._lost:
                self._finish()

    # --- writing ---------------------------------------------------------------------

    def _write_answers(self) -> None:
        """Write what websockets produced (pongs, close frames, end of stream), after the
        frames already queued for the connection."""
        writes = self._ws.data_to_send()
        if not writes:
            return
        self._connection.flush()
        transport = self._transport
        for data in writes:
            if data:
                transport.write(data)
            else:
                # A server closes the TCP connection once the close handshake is done.
                transport.close()
        if self._ws.state is not State.OPEN:
            self._connection.ending()
        if self._ws.close_expected() or transport.is_closing():
            self._cut_after_grace()

    def send_close(self, code: int, reason: str) -> None:
        if self._ws.state is State.OPEN:
            self._ws.send_close(code, reason)
            self._write_answers()

    def _cut_after_grace(self) -> None:
        """A peer that never answers the close (or never reads) is cut after a grace period."""
        if self._grace is None and not self._lost:
            self._grace = asyncio.get_running_loop().call_later(
                CLOSE_GRACE_SECONDS, self._transport.abort
            )

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drainer()

    async def drain(self) -> None:
        if not self._writing_paused or self._lost:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    def _wake_drainer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the end ---------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._connection.ending()
        if self._grace is not None:
            self._grace.cancel()
        self._wake_drainer()
        if self._reader is None:
            self._finish()

    def _finish(self) -> None:
        """The socket is gone and every message it brought was handled."""
        connection = self._connection
        self._node.disconnect(connection)
        self._admission.release(connection.ip)
        code, reason = connection.close_request or self._close_code()
        log.info(
            "close %s code=%s reason=%s after %.1fs",
            connection.id,
            code,
            reason,
            self._node.now() - self._opened,
        )

    def _close_code(self) -> tuple[int, str]:
        """How the connection ended, when it was not the server's decision."""
        ws = self._ws
        if ws.close_rcvd is not None and ws.close_rcvd_then_sent is not False:
            # Not the client's own reason: a peer must not write into the server's log.
            code = ws.close_rcvd.code
            return code, _CLOSE_REASONS.get(code, "closed by the client")
        if ws.close_sent is not None:
            return ws.close_sent.code, ws.close_sent.reason
        return ABNORMAL_CLOSURE, _CLOSE_REASONS[ABNORMAL_CLOSURE]
