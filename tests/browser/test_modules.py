"""The page's pure functions, imported as the ES modules the page uses and run in Chromium."""

import json
import sys
from typing import Any

import jwt
import pytest_asyncio
from playwright.async_api import Page

from tests.browser.conftest import BROWSER, NewPage, Server

pytestmark = BROWSER


@pytest_asyncio.fixture(loop_scope="session")
async def page(new_page: NewPage, server: Server) -> Page:
    """Any page of the server's origin can import the modules; this one runs no app."""
    page = await new_page()
    await page.goto(f"{server.url}/static/style.css")
    return page


async def run(page: Page, module: str, body: str) -> Any:
    """Evaluates `body` (an async function body) with the module's exports as `m`."""
    return await page.evaluate(
        f"async () => {{ const m = await import('/static/{module}'); {body} }}"
    )


async def test_backoff_doubles_up_to_a_cap_with_jitter_in_the_upper_half(page: Page) -> None:
    delays = await run(
        page,
        "client.js",
        """const bounds = a => [m.backoffDelay(a, () => 0), m.backoffDelay(a, () => 1)];
        return [0, 1, 2, 5, 6, 20].map(bounds);""",
    )
    assert delays == [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [8000, 16000],
        [15000, 30000],
        [15000, 30000],
    ]


async def test_links_only_for_http_addresses_without_trailing_punctuation(page: Page) -> None:
    cases = {
        "see https://example.com.": ["https://example.com"],
        "(at https://en.wikipedia.org/wiki/Tree_(graph))": [
            "https://en.wikipedia.org/wiki/Tree_(graph)"
        ],
        "http://a.test/x?y=1, http://b.test/!": ["http://a.test/x?y=1", "http://b.test/"],
        "javascript:alert(1) data:text/html,x": [],
        "nothing after http:// here, nor in xhttps://evil.test": [],
    }
    for text, expected in cases.items():
        parts = await run(
            page,
            "linkify.js",
            f"""const box = document.createElement('p');
            m.appendLinkified(box, {text!r});
            return {{
              text: box.textContent,
              links: [...box.querySelectorAll('a')].map(a => a.textContent),
              elements: box.querySelectorAll('*').length,
            }};""",
        )
        assert parts["text"] == text, "the text is kept whole"
        assert parts["links"] == expected, text
        assert parts["elements"] == len(expected)


async def test_room_keeps_messages_sorted_and_drops_duplicate_ids(page: Page) -> None:
    ids = await run(
        page,
        "store.js",
        """const room = new m.Room('r');
        const add = id => room.addMessage({id, room: 'r', from: 'a', content: '', timestamp: ''});
        const added = [5, 3, 9, 5, 1, 9].map(add);
        return {added, order: room.order, maxId: room.maxId, minId: room.minId};""",
    )
    assert ids == {
        "added": [True, True, True, False, True, False],
        "order": [1, 3, 5, 9],
        "maxId": 9,
        "minId": 1,
    }


async def test_log_groups_by_sender_and_gap_and_keeps_the_outbox_last(page: Page) -> None:
    items = await run(
        page,
        "messages.js",
        """const {Room} = await import('/static/store.js');
        const room = new Room('r');
        const at = minutes => new Date(Date.UTC(2026, 10, 26, 9, minutes)).toISOString();
        [[1, 'ann', 0], [2, 'ann', 1], [3, 'bob', 2], [4, 'bob', 30]].forEach(([id, from, t]) =>
          room.addMessage({id, room: 'r', from, content: `m${id}`, timestamp: at(t)}));
        room.pending.set('x', {ref: 'x', room: 'r', content: 'mine', createdAt: Date.parse(at(31)),
                               claimedBy: null, error: null});
        return m.logItems(room, 'bob', new Date(at(40)))
          .filter(item => item.kind === 'message')
          .map(item => [item.key, item.first, item.state]);""",
    )
    assert items == [
        ["m:1", True, "sent"],
        ["m:2", False, "sent"],
        ["m:3", True, "sent"],
        ["m:4", True, "sent"],
        ["p:x", False, "pending"],
    ]


async def test_typing_and_status_texts(page: Page) -> None:
    typing = await run(
        page,
        "presence.js",
        "return [[], ['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'b', 'c', 'd']].map(m.typingText);",
    )
    parts = await run(page, "presence.js", "return m.typingParts(['a', 'b']);")
    assert parts == [{"name": "a"}, " and ", {"name": "b"}, " are typing…"]
    assert typing == [
        "",
        "a is typing…",
        "a and b are typing…",
        "a, b and c are typing…",
        "Several people are typing…",
    ]
    status = await run(
        page,
        "status.js",
        """return [
          m.statusText({state: 'connected', retryAt: null}),
          m.statusText({state: 'reconnecting', retryAt: 12_100}, 10_000),
          m.statusText({state: 'reconnecting', retryAt: null}),
          m.statusText({state: 'offline', retryAt: null}),
          m.statusText({state: 'refused', retryAt: null}),
        ];""",
    )
    assert status == [
        "Connected",
        "Reconnecting in 3 s",
        "Reconnecting…",
        "Offline",
        "Not connected",
    ]


async def test_pacer_waits_retry_after_then_spaces_messages_by_it(page: Page) -> None:
    times = await run(
        page,
        "client.js",
        """const pacer = new m.Pacer();
        const free = pacer.nextSendAt(5000);
        pacer.sent(5000);
        pacer.refused(50, 5000);
        pacer.refused(10, 5001);
        const resume = pacer.nextSendAt(5002);
        pacer.sent(5050);
        const spaced = pacer.nextSendAt(5060);
        const later = pacer.nextSendAt(5000 + m.PACE_MEMORY_MS + 1);
        const told = [{retry_after: 0.25}, {retry_after: "1"}, {}, {retry_after: -1}]
          .map(m.retryAfterMs);
        return {free, resume, spaced, later, told};""",
    )
    assert times == {
        "free": 0,
        "resume": 5050,
        "spaced": 5100,
        "later": 5050,
        "told": [250, None, None, None],
    }


async def test_message_length_counts_and_trims_as_the_server_does(page: Page) -> None:
    """Counted in code points after Python's str.strip(), which keeps U+FEFF (String.trim
    drops it) and drops U+001C..U+001F and U+0085 (String.trim keeps them)."""
    every_space = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
    samples = [
        "  " + "\U0001f600" * 10 + "\n",
        "é" * 3,
        "    if x:\n\treturn  \n\n",
        every_space,
        f"{every_space}x{every_space}",
        "\ufeff",
        "",
    ]
    result = await run(
        page,
        "content.js",
        f"""const samples = {json.dumps(samples)};
        return [samples.map(m.contentLength), samples.map(m.isBlank)];""",
    )
    assert result == [
        [len(sample.strip()) for sample in samples],
        [not sample.strip() for sample in samples],
    ]


async def test_the_counter_shows_near_the_limit_and_says_how_far_over(page: Page) -> None:
    result = await run(
        page,
        "composer.js",
        """return {
          far: m.counterText(100),
          near: m.counterText(3600),
          over: m.tooLongText(4001),
        };""",
    )
    assert result == {
        "far": "",
        "near": "3600 / 4000",
        "over": "Too long to send: 1 character over the limit of 4000.",
    }


async def test_the_name_a_token_gives(page: Page) -> None:
    claims: list[dict[str, object]] = [
        {"sub": " alice ", "exp": 1},
        {"name": "bob"},
        {"sub": "carol", "name": "dave"},
        {"sub": "x" * 33},
        {"sub": 42},
        {"sub": "Zoë 😀"},
    ]
    tokens = [jwt.encode(claim, "k" * 32, algorithm="HS256") for claim in claims]
    names = await run(
        page,
        "token.js",
        f"return [...{json.dumps(tokens)}, 'not a token', null].map(m.tokenName);",
    )
    assert names == ["alice", "bob", "carol", None, None, "Zoë 😀", None, None]


async def test_what_the_page_says_when_the_server_refuses_it(page: Page) -> None:
    problems = await run(
        page,
        "problems.js",
        """const say = (status, reason, options = {}) => m.refusalProblem(
          {status, reason}, {origin: 'https://chat.test', hasToken: false, ...options});
        const brief = p => p && [p.title, p.detail, p.retry];
        return [
          brief(say(401, 'a token is required')),
          brief(say(401, 'token expired', {hasToken: true})),
          brief(say(403, 'origin not allowed')),
          brief(say(429, 'too many connections from this address')),
          brief(say(503, 'server is at its connection limit')),
          brief(say(503, '')),
          brief(say(426, '', {unexplained: 1})),
          brief(say(426, '', {unexplained: 2})),
          brief(say(502, '', {unexplained: 5})),
          m.refusalProblem(null, {origin: 'x', hasToken: false}),
        ];""",
    )
    said = "The server said: “{}”."
    assert problems == [
        ["This server needs a sign-in link.", said.format("a token is required"), False],
        ["The server did not accept your sign-in link.", said.format("token expired"), False],
        [
            "The server refuses connections from this page's address (https://chat.test).",
            said.format("origin not allowed"),
            False,
        ],
        [
            "Too many connections from your network.",
            said.format("too many connections from this address"),
            True,
        ],
        ["The server is full.", said.format("server is at its connection limit"), True],
        None,
        None,
        ["The server answers, but refuses this page's live connection.", "", True],
        None,
        None,
    ]


async def test_control_characters_are_shown_as_symbols(page: Page) -> None:
    shown = await run(
        page,
        "messages.js",
        r"return m.visibleControls("
        r"'ring\u0007 \u001b[31mred\u001b[0m\ttab\nline\u007f\u0085\u202e');",
    )
    assert shown == "ring\u2407 \u241b[31mred\u241b[0m\ttab\nline\u2421\ufffd\u202e"
