"""The example dashboard (`/static/examples/dashboard.html`) in Chromium, fed by the
example ticker (`examples/ticker.py`) over the HTTP publish API."""

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from hubbub.client import ChatClient
from hubbub.publisher import Publisher
from tests.browser.conftest import BROWSER, NewPage, Server, unique_room

pytestmark = BROWSER

API_KEY = "dashboard-test-key"
TICKER = Path(__file__).parents[2] / "examples" / "ticker.py"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, "--api-key", API_KEY)
    running.start()
    yield running
    running.stop()


async def run_ticker(server: Server, room: str, count: int, seed: int = 1) -> list[str]:
    """The example ticker, as a user runs it: the lines it printed, one per quote."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TICKER),
        "--url",
        server.url,
        "--api-key",
        API_KEY,
        "--room",
        room,
        "--interval",
        "0",
        "--count",
        str(count),
        "--seed",
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        output, _ = await process.communicate()
    assert process.returncode == 0
    return output.decode().splitlines()


async def open_dashboard(new_page: NewPage, server: Server, room: str) -> Page:
    page = await new_page()
    await page.goto(f"{server.url}/static/examples/dashboard.html?room={room}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


async def expect_quotes(page: Page, count: int) -> None:
    await expect(page.locator("body")).to_have_attribute("data-quotes", str(count))


async def test_the_dashboard_shows_the_latest_quote_of_each_symbol_and_charts_them(
    new_page: NewPage, own_server: Server
) -> None:
    room = unique_room("prices")
    before = await run_ticker(own_server, room, 8)
    page = await open_dashboard(new_page, own_server, room)
    await expect_quotes(page, 8)  # the recent quotes, from history
    after = await run_ticker(own_server, room, 8, seed=2)  # and the live ones
    await expect_quotes(page, 16)
    latest = {line.split()[1]: line.split(" ", 1)[1] for line in before + after}
    rows = page.locator("#quotes tbody tr")
    await expect(rows).to_have_count(len(latest))
    for symbol, line in latest.items():
        await expect(rows.filter(has_text=symbol).locator("td.line")).to_have_text(line)
        await expect(page.locator(f'#chart polyline[data-symbol="{symbol}"]')).to_have_count(1)


async def test_a_watching_dashboard_is_nobody_in_the_room(
    new_page: NewPage, own_server: Server
) -> None:
    room = unique_room("prices")
    async with await ChatClient.connect(own_server.ws_url) as member:
        await member.join(room, "alice")
        page = await open_dashboard(new_page, own_server, room)
        await run_ticker(own_server, room, 3)
        await expect_quotes(page, 3)
        for _ in range(3):
            await member.expect("message", room=room)
        joined = [event["username"] for event in member.pending("user_joined")]
        listed = [event["users"] for event in member.pending("online_users")]
    assert set(joined) <= {"alice"}
    assert listed
    assert all(users == ["alice"] for users in listed)


async def test_after_a_server_restart_the_dashboard_catches_up_once_each(
    new_page: NewPage, own_server: Server
) -> None:
    room = unique_room("prices")
    page = await open_dashboard(new_page, own_server, room)
    await run_ticker(own_server, room, 5)
    await expect_quotes(page, 5)
    await asyncio.to_thread(own_server.stop)
    await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
    await asyncio.to_thread(own_server.start)
    # Published before the dashboard is back: it must replay them with `since`.
    await run_ticker(own_server, room, 6, seed=3)
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "connected", timeout=15_000
    )
    await expect_quotes(page, 11)
    ids = await page.locator("#quotes tbody tr").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.id))"
    )
    assert max(ids) == 11


async def test_data_is_shown_as_text_never_as_html(new_page: NewPage, own_server: Server) -> None:
    room = unique_room("prices")
    page = await open_dashboard(new_page, own_server, room)
    async with Publisher(own_server.url, API_KEY) as publisher:
        await publisher.publish(
            room,
            "<img src=x onerror=alert(1)>",
            sender="ticker",
            data={"symbol": "<b>X</b>", "price": 1.5, "change": 0.1},
        )
    await expect_quotes(page, 1)
    row = page.locator("#quotes tbody tr")
    await expect(row.locator("td").first).to_have_text("<b>X</b>")
    assert await page.locator("#quotes img, #quotes b").count() == 0
