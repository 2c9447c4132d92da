"""Browser fixtures: one Debian Chromium per session, `hubbub serve` subprocesses, fresh pages.

Every browser test module runs in the session's event loop (the browser lives
there) and is marked `browser`: `pytestmark = BROWSER`.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    WebSocketRoute,
    async_playwright,
    expect,
)

from hubbub.client import ChatClient
from tests.conftest import free_port

BROWSER = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SMALL_PHONE: ViewportSize = {"width": 320, "height": 640}
SERVER_START_TIMEOUT = 15.0

expect.set_options(timeout=5_000)


def unique_room(prefix: str) -> str:
    """Tests share a server per module: each uses rooms of its own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Server:
    """`hubbub serve` as a subprocess on a fixed port, so it can be stopped and started again.

    Its log and its durable store live in `workdir`, so a restart keeps the messages.
    """

    def __init__(self, workdir: Path, *flags: str) -> None:
        self.port = free_port()
        self.flags = ("--data-dir", str(workdir / "data"), *flags)
        self.log_path = workdir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        command = [sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--presence-interval", "0.05", *self.flags]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log_path.read_text(errors="replace")
                pytest.fail(f"hubbub serve did not become healthy:\n{log}")
            time.sleep(0.05)  # nothing to await: the server only answers once it listens

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                status: int = response.status
                return status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per module, with a rate limit that bulk posting in tests does not hit."""
    running = Server(tmp_path_factory.mktemp("server"), "--rate", "1000", "--rate-burst", "1000")
    running.start()
    yield running
    running.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def memory_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server that forgets every message when it restarts."""
    running = Server(tmp_path, "--store", "memory")
    await asyncio.to_thread(running.start)
    yield running
    await asyncio.to_thread(running.stop)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


class NewPage(Protocol):
    def __call__(
        self, *, viewport: ViewportSize = DESKTOP, dark: bool = False
    ) -> Awaitable[Page]: ...


@pytest_asyncio.fixture(loop_scope="session")
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """Pages in contexts of their own (own localStorage); uncaught page errors fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_page(*, viewport: ViewportSize = DESKTOP, dark: bool = False) -> Page:
        context = await browser.new_context(
            viewport=viewport,
            color_scheme="dark" if dark else "light",
            reduced_motion="reduce",
        )
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == [], "uncaught errors in the page"


@pytest_asyncio.fixture(loop_scope="session")
async def clients(server: Server) -> AsyncIterator[list[ChatClient]]:
    """Protocol clients opened by a test (see `connect_client`); closed after it."""
    opened: list[ChatClient] = []
    yield opened
    for client in opened:
        await client.close()


async def connect_client(
    clients: list[ChatClient], server: Server, room: str, username: str
) -> ChatClient:
    client = await ChatClient.connect(server.ws_url)
    clients.append(client)
    await client.join(room, username)
    return client


async def open_chat(new_page: NewPage, server: Server, username: str, room: str) -> Page:
    """A page opened by the `/?username=&room=` link, once connected."""
    page = await new_page()
    await page.goto(f"{server.url}/?username={username}&room={room}")
    await expect_connected(page)
    return page


async def expect_connected(page: Page) -> None:
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def send(page: Page, text: str) -> None:
    """Types into the message box (focused by the page itself) and presses Enter."""
    await page.locator("#composer-input").fill(text)
    await page.locator("#composer-input").press("Enter")


def messages(page: Page, text: str | None = None) -> Locator:
    """The rows of the message log (whose text is exactly `text`, when given)."""
    rows = page.locator("#messages .msg")
    if text is None:
        return rows
    exactly = re.compile(f"^{re.escape(text)}$")
    return rows.filter(has=page.locator(".msg-text", has_text=exactly))


Event = dict[str, Any]


class Relay:
    """Carries a page's WebSockets through the test, which can watch, hold back and cut them.

    `sent` has every event the page sent, over all its connections, and
    `sent_at` and `received_at` the loop time each event passed. While `open`
    is clear, new connections wait (the page sees them as still connecting).
    """

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.sent_at: list[float] = []
        self.received: list[Event] = []
        self.received_at: list[float] = []
        self.open = asyncio.Event()
        self.open.set()
        self.hold: Callable[[Event], bool] = lambda event: False
        self.held: list[str] = []
        self.cut_before: Callable[[Event], bool] = lambda event: False
        """A server event that, instead of being delivered, cuts its connection (once)."""
        self._links: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        self._arrived = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def install(self, page: Page) -> None:
        await page.route_web_socket("**/ws", self._route)

    def sent_of(self, kind: str) -> list[Event]:
        return [event for event in self.sent if event.get("type") == kind]

    async def _route(self, page_side: WebSocketRoute) -> None:
        await self.open.wait()
        server_side = page_side.connect_to_server()
        link = (page_side, server_side)
        self._links.append(link)
        page_side.on_message(lambda frame: self._from_page(frame, server_side))
        server_side.on_message(lambda frame: self._from_server(frame, link))

    def _from_page(self, frame: str | bytes, server_side: WebSocketRoute) -> None:
        event = json.loads(frame)
        self.sent.append(event)
        self.sent_at.append(asyncio.get_running_loop().time())
        self._arrived.set()
        if self.hold(event):
            self.held.append(str(frame))
        else:
            server_side.send(frame)

    def _from_server(self, frame: str | bytes, link: tuple[WebSocketRoute, WebSocketRoute]) -> None:
        if link not in self._links:
            return  # cut already: nothing more gets through
        event = json.loads(frame)
        if self.cut_before(event):
            self.cut_before = lambda event: False
            self._links.remove(link)
            task = asyncio.ensure_future(self._close(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self.received.append(event)
        self.received_at.append(asyncio.get_running_loop().time())
        self._arrived.set()
        link[0].send(frame)

    async def wait_sent(self, wanted: Callable[[Event], bool], timeout: float = 5) -> Event:
        """The first event the page sent that is `wanted`, waiting for it if need be."""
        return await self._wait(self.sent, wanted, timeout)

    async def wait_received(self, wanted: Callable[[Event], bool], timeout: float = 5) -> Event:
        """The first event delivered to the page that is `wanted`, waiting for it if need be."""
        return await self._wait(self.received, wanted, timeout)

    async def _wait(
        self, events: list[Event], wanted: Callable[[Event], bool], timeout: float
    ) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in events:
                    if wanted(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    def to_page(self, event: Event) -> None:
        """Delivers an event of the test's making, as if the server had sent it."""
        self._links[-1][0].send(json.dumps(event))

    def release(self) -> None:
        """Sends the held events on to the server, on the newest connection."""
        server_side = self._links[-1][1]
        for frame in self.held:
            server_side.send(frame)
        self.held.clear()

    async def cut(self) -> None:
        """Drops the newest connection at both ends, as a network failure would."""
        await self._close(self._links.pop())

    async def _close(self, link: tuple[WebSocketRoute, WebSocketRoute]) -> None:
        page_side, server_side = link
        await page_side.close(code=4000, reason="cut by the test")
        await server_side.close(code=1001, reason="cut by the test")


async def open_relayed_chat(
    new_page: NewPage, server: Server, relay: Relay, username: str, room: str
) -> Page:
    """Like `open_chat`, with the page's WebSockets going through `relay`."""
    page = await new_page()
    await relay.install(page)
    await page.goto(f"{server.url}/?username={username}&room={room}")
    await expect_connected(page)
    return page
