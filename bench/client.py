"""WebSocket client connections for the load generator, behind one small interface.

Two implementations:

- picows (default when installed): frames arrive as synchronous callbacks, with no
  coroutine or task per frame. Against the Go peer it spent about 5 us of CPU per
  received frame where aiohttp's client spent about 9.5 us (500 clients, 75,000
  frames/s, same machine), so a generator core keeps up with twice the deliveries.
- aiohttp: used when picows is missing and whenever permessage-deflate is wanted
  (scenario Z), since picows does not negotiate compression.
"""

import asyncio
import importlib
from collections.abc import Callable
from typing import Any, Protocol

OnText = Callable[[bytes], None]
OnClose = Callable[[], None]
HANDSHAKE_TIMEOUT = 30.0


def _optional_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


picows: Any = _optional_import("picows")


class Connection(Protocol):
    compressed: bool
    """True when permessage-deflate was negotiated."""

    def send(self, payload: bytes) -> None: ...

    def close(self) -> None: ...


def picows_available() -> bool:
    return picows is not None


def library_for(compress: bool, prefer: str = "auto") -> str:
    """Name of the client library a connection with these needs will use."""
    if compress or prefer == "aiohttp" or not picows_available():
        return "aiohttp"
    return "picows"


async def open_connection(
    url: str, on_text: OnText, on_close: OnClose, compress: bool = False, prefer: str = "auto"
) -> Connection:
    if library_for(compress, prefer) == "picows":
        return await _open_picows(url, on_text, on_close)
    return await _open_aiohttp(url, on_text, on_close, compress)


class _PicowsConnection:
    compressed = False

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def send(self, payload: bytes) -> None:
        self._transport.send(picows.WSMsgType.TEXT, payload)

    def close(self) -> None:
        self._transport.disconnect()


async def _open_picows(url: str, on_text: OnText, on_close: OnClose) -> Connection:
    text = picows.WSMsgType.TEXT
    close = picows.WSMsgType.CLOSE

    class Listener(picows.WSListener):  # type: ignore[misc, unused-ignore]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == text:
                on_text(frame.get_payload_as_bytes())
            elif kind == close:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: Any) -> None:
            on_close()

    transport, _ = await picows.ws_connect(
        Listener, url, websocket_handshake_timeout=HANDSHAKE_TIMEOUT, max_frame_size=1 << 24
    )
    return _PicowsConnection(transport)


_aiohttp_session: Any = None
_pending_sends: set["asyncio.Future[Any]"] = set()
"""Fire-and-forget sends, closes and readers, referenced until done so none is collected."""


class _AiohttpConnection:
    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self.compressed = bool(ws.compress)

    def send(self, payload: bytes) -> None:
        # aiohttp's send is a coroutine; keep a reference so the task is not collected.
        task = asyncio.ensure_future(self._ws.send_str(payload.decode()))
        _pending_sends.add(task)
        task.add_done_callback(_pending_sends.discard)

    def close(self) -> None:
        task = asyncio.ensure_future(self._ws.close())
        _pending_sends.add(task)
        task.add_done_callback(_pending_sends.discard)


async def _open_aiohttp(url: str, on_text: OnText, on_close: OnClose, compress: bool) -> Connection:
    import aiohttp

    global _aiohttp_session
    if _aiohttp_session is None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        _aiohttp_session = aiohttp.ClientSession(connector=connector)
    ws = await _aiohttp_session.ws_connect(
        url,
        compress=15 if compress else 0,
        max_msg_size=0,
        autoping=True,
        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
    )

    async def read() -> None:
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    on_text(message.data.encode())
        finally:
            on_close()

    task = asyncio.ensure_future(read())
    _pending_sends.add(task)
    task.add_done_callback(_pending_sends.discard)
    return _AiohttpConnection(ws)


async def close_shared_session() -> None:
    global _aiohttp_session
    if _aiohttp_session is not None:
        await _aiohttp_session.close()
        _aiohttp_session = None
