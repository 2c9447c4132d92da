"""Publishing into Hubbub rooms from a backend (a web app, a worker, a cron job).

    async with Publisher("https://chat.example.com", api_key) as publisher:
        sent = await publisher.publish(
            "orders", "Order 1042 shipped", sender="shop", data={"order": 1042}
        )

`publish` posts to the server's `POST /rooms/{name}/messages` and returns once
the message is stored and handed to the room's members. Every message gets a
`ref` (a random one when none is given), and a failed attempt is retried with
the same `ref`: the server stores a `ref` once per sender and room for 5
minutes, so a message whose answer was lost (a dropped connection, a timeout)
and was retried is still stored and delivered once. Connection errors,
timeouts and 503 (the server's store or broker is down) are retried with
exponential backoff; anything else the server refuses raises `PublishError`
at once, since sending it again would be refused again.
"""

import asyncio
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import orjson

from hubbub.protocol.errors import Ref

BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
"""Seconds before each retry (the last one repeats), each shortened by up to half at
random so that many publishers retrying together spread out."""


@dataclass(frozen=True, slots=True)
class Published:
    id: int
    """The message's id in its room."""
    room: str
    timestamp: str
    duplicate: bool = False
    """The server had stored this `ref` already (an earlier attempt whose answer was lost,
    or an earlier call with the same `ref`): nothing new was published."""


class PublishError(Exception):
    """The server refused the message (or stayed unavailable through every attempt)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PublishUnavailable(PublishError):
    """Every attempt failed on the way: no connection, a timeout, or 503."""


class _Retry(Exception):
    def __init__(self, reason: str, error: PublishUnavailable, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.error, self.wait = reason, error, wait


class Publisher:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        attempts: int = 6,
        timeout: float = 10.0,
        backoff: Sequence[float] = BACKOFF,
        session: aiohttp.ClientSession | None = None,
        on_retry: Callable[[int, str], None] | None = None,
    ) -> None:
        """`url` is the server's base URL (`http://127.0.0.1:3000`). `attempts` bounds the
        tries of one `publish`, `timeout` each try. `session` is used rather than a
        session of the publisher's own (which `close` closes). `on_retry` is told the
        number of the attempt about to be made and why the previous one failed."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = tuple(backoff) or (0.0,)
        self._session = session
        self._own_session = session is None
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"Publisher({self._base!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def publish(
        self,
        room: str,
        content: str,
        *,
        sender: str,
        data: Any = None,
        ref: Ref | None = None,
    ) -> Published:
        """Publish `content` (with `data` when given) into `room` as `sender`; returns
        the stored message's id once members were handed it. Raises `PublishError`
        when the server refuses it, `PublishUnavailable` when every attempt failed."""
        body: dict[str, Any] = {
            "content": content,
            "from": sender,
            "ref": ref if ref is not None else secrets.token_urlsafe(18),
        }
        if data is not None:
            body["data"] = data
        payload = orjson.dumps(body)
        url = f"{self._base}/rooms/{quote(room, safe='')}/messages"
        attempt = 1
        while True:
            try:
                return await self._attempt(url, payload)
            except _Retry as retry:
                if attempt >= self._attempts:
                    raise retry.error from None
                wait = max(retry.wait, self._delay(attempt))
                attempt += 1
                if self._on_retry is not None:
                    self._on_retry(attempt, retry.reason)
                await asyncio.sleep(wait)

    def _delay(self, attempt: int) -> float:
        base = self._backoff[min(attempt, len(self._backoff)) - 1]
        return base * random.uniform(0.5, 1.0)

    async def _attempt(self, url: str, payload: bytes) -> Published:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {**self._headers, "Content-Type": "application/json"}
        try:
            async with self._session.post(
                url, data=payload, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
            raise _Retry(reason, PublishUnavailable(0, "unreachable", reason)) from error
        answer = _json(raw)
        if status in (200, 201) and isinstance(answer, dict):
            return Published(
                int(answer["id"]), str(answer["room"]), str(answer["timestamp"]), status == 200
            )
        code, message = _error(answer, raw)
        if status == 503:
            wait = float(retry_after) if retry_after.isdigit() else 0.0
            raise _Retry(f"503 {code}: {message}", PublishUnavailable(503, code, message), wait)
        raise PublishError(status, code, message)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _error(answer: Any, raw: bytes) -> tuple[str, str]:
    """The code and message of an error answer (a plain text one too: a 404 is)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    return "http_error", raw.decode("utf-8", "replace").strip()[:200]
