"""A raw WebSocket client for tests: the handshake written by hand, frames built with
`struct`, so it can send what no library would and check every byte that comes back."""

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any, Self

from hubbub.protocol.codecs import JSON, MSGPACK, Codec

WAIT = 10.0
"""Seconds any single wait may take before the test fails."""
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 0x4, 0x2, 0x1


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One frame as a client sends it: masked with a random key unless told otherwise."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return bytes(head) + payload
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked_payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return bytes(head) + key + masked_payload


class RawWebSocket:
    """A WebSocket client that writes whatever bytes it is given and reads what comes back."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        codec: Codec,
        extension: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.codec = codec
        self.extension = extension
        """The server's Sec-WebSocket-Extensions answer ("" if none)."""
        self.deflate = "permessage-deflate" in extension
        self.compressed_messages = 0
        parameters = dict(part.strip().partition("=")[::2] for part in extension.split(";")[1:])
        self._window_bits = int(parameters.get("server_max_window_bits") or 15)
        self._each_alone = "server_no_context_takeover" in parameters
        """The server promised that every message inflates on its own: hold it to that."""
        self._inflater = zlib.decompressobj(wbits=-self._window_bits)
        self.events: list[dict[str, Any]] = []
        self.pongs: list[bytes] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        msgpack: bool = False,
        deflate: bool = False,
        offer: str | None = None,
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None,
        early: bytes = b"",
    ) -> Self:
        """Open /ws; `deflate` offers permessage-deflate as `offer` (default: the
        client will not take context over). `stream` is a connection already open
        (one that served HTTP requests before); `early` goes out in the same write as
        the upgrade request, before the answer."""
        reader, writer = stream or await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /ws HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if msgpack:
            lines.append("Sec-WebSocket-Protocol: msgpack")
        if deflate:
            offer = offer or "permessage-deflate; client_no_context_takeover"
            lines.append(f"Sec-WebSocket-Extensions: {offer}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
        async with asyncio.timeout(WAIT):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status, *header_lines = head.strip().split("\r\n")
        assert status.startswith("HTTP/1.1 101 "), head
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        assert headers.get("sec-websocket-protocol") == ("msgpack" if msgpack else None)
        extension = headers.get("sec-websocket-extensions", "")
        assert ("permessage-deflate" in extension) == deflate
        client = cls(reader, writer, MSGPACK if msgpack else JSON, extension)
        welcome = await client.wait_for(lambda event: event.get("type") == "welcome")
        assert welcome["protocol"] == 1
        return client

    def stop_reading(self) -> None:
        """Read nothing more, as a frozen client: once the stream's buffer is full (its
        `limit`), the socket's fill up and the server's writes back up."""
        self._reading.clear()

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> dict[str, Any]:
        """The first event from index `start` on that is `wanted` (ConnectionError if closed)."""
        async with asyncio.timeout(WAIT):
            while True:
                for event in self.events[start:]:
                    if wanted(event):
                        return event
                if self.closed.is_set():
                    raise ConnectionError(f"closed with {self.close_code}")
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_closed(self) -> int | None:
        async with asyncio.timeout(WAIT):
            await self.closed.wait()
        return self.close_code

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        message = bytearray()
        compressed = False
        opcode = 0
        try:
            while True:
                await self._reading.wait()
                first, second = await self._reader.readexactly(2)
                assert not second & 0x80, "a server never masks its frames"
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await self._reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await self._reader.readexactly(8))
                payload = await self._reader.readexactly(length)
                frame_opcode = first & 0x0F
                if frame_opcode == CLOSE:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if payload else None
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        self._writer.write(encode_frame(CLOSE, payload[:2]))
                    return
                if frame_opcode == PING:
                    self.write(encode_frame(PONG, payload))
                    continue
                if frame_opcode == PONG:
                    self.pongs.append(payload)
                    self._arrived.set()
                    continue
                if frame_opcode != CONTINUATION:
                    opcode, compressed = frame_opcode, bool(first & 0x40)
                message += payload
                if not first & 0x80:
                    continue
                data = bytes(message)
                message.clear()
                if compressed:
                    self.compressed_messages += 1
                    if self._each_alone:
                        self._inflater = zlib.decompressobj(wbits=-self._window_bits)
                    data = self._inflater.decompress(data + b"\x00\x00\xff\xff")
                wire: str | bytes = data if opcode == BINARY else data.decode()
                self.events.append(self.codec.decode(wire, opcode == BINARY))
                self._arrived.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writer.close()
            self.closed.set()
            self._arrived.set()
