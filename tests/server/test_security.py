"""Authentication, room limits, TLS, decompression bombs and slow handshakes, over sockets."""

import asyncio
import ssl
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
import trustme

from hubbub.client import ChatClient, ConnectionClosed, ServerError
from hubbub.core.auth import issue_token
from hubbub.server.runner import RunningServer
from tests.conftest import Connect, StartServer

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def token(sub: str, rooms: list[str] | None = None, ttl: int = 3600) -> str:
    return issue_token(SECRET, sub, rooms, int(time.time()) + ttl)


async def upgrade_status(url: str, tls: ssl.SSLContext | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, ssl=tls if tls is not None else True)
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status
        await ws.close()
        return 101


@pytest.fixture
async def secured(start_server: StartServer) -> RunningServer:
    return await start_server(auth_secret=SECRET)


@pytest.mark.parametrize(
    "bad_token",
    [
        "",
        "garbage",
        jwt.encode({"sub": "eve", "exp": 4_000_000_000}, "x" * 40, algorithm="HS256"),
        issue_token(SECRET, "eve", None, int(time.time()) - 10),
    ],
    ids=["missing", "garbage", "forged", "expired"],
)
async def test_bad_tokens_get_401_before_the_upgrade(
    secured: RunningServer, bad_token: str
) -> None:
    query = f"?token={bad_token}" if bad_token else ""
    assert await upgrade_status(secured.ws_url + query) == 401


async def test_the_token_names_the_user_whatever_join_says(
    secured: RunningServer, connect: Connect
) -> None:
    alice = await ChatClient.connect(f"{secured.ws_url}?token={token('alice')}")
    try:
        await alice.join("general", "mallory")
        assert (await alice.expect("user_joined"))["username"] == "alice"
        await alice.say("hi")
        assert (await alice.expect("message"))["from"] == "alice"
    finally:
        await alice.close()


async def test_rooms_claim_limits_joins_and_history(secured: RunningServer) -> None:
    url = f"{secured.ws_url}?token={token('bob', ['general'])}"
    async with await ChatClient.connect(url) as bob:
        await bob.join("general")
        with pytest.raises(ServerError) as refused:
            await bob.join("secret")
        assert refused.value.code == "unauthorized"
        with pytest.raises(ServerError) as refused:
            await bob.request({"type": "history", "room": "secret"})
        assert refused.value.code == "unauthorized"
        assert await bob.say("still in general", room="general") == 1


async def test_room_messages_over_http_need_a_token_for_the_room(secured: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{secured.url}/rooms/general/messages"
        async with http.get(url) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {token('bob', ['general'])}"}
        async with http.get(url, headers=headers) as response:
            assert response.status == 200
        async with http.get(f"{secured.url}/rooms/secret/messages", headers=headers) as response:
            assert response.status == 403


async def test_open_server_ignores_tokens(connect: Connect) -> None:
    client = await connect()
    await client.join("r", "anyone")
    assert (await client.expect("user_joined"))["username"] == "anyone"


async def test_full_room_refuses_joins_and_others_carry_on(start_server: StartServer) -> None:
    server = await start_server(max_room_members=2)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
        await ChatClient.connect(server.ws_url) as cat,
    ):
        await ann.join("small", "ann")
        await bob.join("small", "bob")
        with pytest.raises(ServerError) as refused:
            await cat.join("small", "cat")
        assert refused.value.code == "room_full"
        with pytest.raises(ServerError) as refused:
            await cat.say("let me in", room="small")
        assert refused.value.code == "not_in_room"
        await bob.leave("small")
        assert (await cat.join("small", "cat"))["type"] == "ack"
        assert await ann.say("hello cat") == 1
        assert (await cat.expect("message"))["content"] == "hello cat"


async def test_rooms_per_connection_are_limited(start_server: StartServer) -> None:
    server = await start_server(max_rooms_per_connection=2)
    async with await ChatClient.connect(server.ws_url) as ann:
        await ann.join("a", "ann")
        await ann.join("b", "ann")
        with pytest.raises(ServerError) as refused:
            await ann.join("c", "ann")
        assert refused.value.code == "room_full"
        await ann.leave("a")
        assert (await ann.join("c", "ann"))["type"] == "ack"


async def test_decompression_bomb_closes_with_1009(connect: Connect) -> None:
    bomber, bystander = await connect(compress=True), await connect()
    assert bomber.ws.compress
    await bomber.join("r", "bomber")
    await bystander.join("r", "bystander")
    inflated = '{"type":"message","room":"r","content":"' + "a" * (20 * 1024 * 1024) + '"}'
    await bomber.ws.send_str(inflated)
    with pytest.raises(ConnectionClosed):
        await bomber.expect("never")
    assert bomber.close_code == 1009
    assert await bystander.say("unaffected") == 1


async def slow_trickle(port: int, seconds: float) -> bytes:
    """Open TCP, send a request line and then one header byte at a time; what comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    received = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            writer.write(b"X")
            await writer.drain()
            try:
                async with asyncio.timeout(0.05):
                    chunk = await reader.read(1024)
            except TimeoutError:
                continue
            if not chunk:
                return received + b"<closed>"
            received += chunk
    except ConnectionError:
        return received + b"<reset>"
    finally:
        writer.close()
    return received


async def test_slowloris_handshake_is_cut(start_server: StartServer) -> None:
    server = await start_server(handshake_timeout=0.3)
    outcome = await slow_trickle(server.port, seconds=5)
    assert outcome.endswith((b"<closed>", b"<reset>"))
    async with await ChatClient.connect(server.ws_url) as client:
        await asyncio.sleep(0.5)  # past the deadline, which no longer applies once upgraded
        await client.send({"type": "ping"})
        assert await client.expect("pong")


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_serves_wss(
    start_server: StartServer, certificate_authority: trustme.CA, tmp_path: Path
) -> None:
    cert = certificate_authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    server = await start_server(certfile=str(certfile), keyfile=str(keyfile))
    assert server.ws_url.startswith("wss://")
    trusting = ssl.create_default_context()
    certificate_authority.configure_trust(trusting)
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url, ssl=trusting) as ws:
        assert (await ws.receive_json())["type"] == "welcome"
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await upgrade_status(server.ws_url, ssl.create_default_context())


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


async def test_the_page_has_a_policy_that_allows_only_its_own_host(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/") as response:
        assert response.status == 200
        policy = directives(response.headers["Content-Security-Policy"])
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    host = f"127.0.0.1:{server.port}"
    assert policy == {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["data:"],
        "connect-src": ["'self'", f"ws://{host}", f"wss://{host}"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }


async def test_a_forged_host_adds_nothing_to_the_policy(server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x; script-src *\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(10):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
    finally:
        writer.close()
    policy = next(
        line.partition(":")[2]
        for line in head.split("\r\n")
        if line.lower().startswith("content-security-policy:")
    )
    assert directives(policy)["connect-src"] == ["'self'"]
    assert directives(policy)["script-src"] == ["'self'"]


@pytest.mark.parametrize("path", ["/static/app.js", "/static/style.css", "/rooms", "/healthz"])
async def test_no_response_may_be_sniffed(server: RunningServer, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(server.url + path) as response:
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"


ALLOWED = "https://app.example"
API_PATHS = ["/rooms", "/rooms/general/messages", "/stats", "/api/rooms", "/api/stats"]


@pytest.fixture
async def with_origins(start_server: StartServer) -> RunningServer:
    return await start_server(allowed_origins=(ALLOWED,))


@pytest.mark.parametrize("path", API_PATHS)
async def test_the_api_may_be_read_by_allowed_origins_only(
    with_origins: RunningServer, path: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(with_origins.url + path, headers={"Origin": ALLOWED}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert "Origin" in response.headers.getall("Vary")
        elsewhere = {"Origin": "https://elsewhere.example"}
        async with http.get(with_origins.url + path, headers=elsewhere) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Origin" in response.headers.getall("Vary")


@pytest.mark.parametrize("path", API_PATHS)
async def test_a_preflight_allows_a_token_from_allowed_origins_only(
    with_origins: RunningServer, path: str
) -> None:
    asking = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": ALLOWED, **asking}
        async with http.options(with_origins.url + path, headers=headers) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert response.headers["Access-Control-Allow-Methods"] == "GET"
            assert response.headers["Access-Control-Allow-Headers"] == "Authorization"
            assert "Access-Control-Allow-Credentials" not in response.headers
        headers = {"Origin": "https://elsewhere.example", **asking}
        async with http.options(with_origins.url + path, headers=headers) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path", ["/", "/healthz", "/metrics", "/static/app.js"])
async def test_only_the_api_answers_other_origins(with_origins: RunningServer, path: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(with_origins.url + path, headers={"Origin": ALLOWED}) as response,
    ):
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_an_allowed_origin_can_read_why_its_token_was_refused(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET, allowed_origins=(ALLOWED,))
    url = f"{server.url}/rooms/general/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Origin": ALLOWED}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert (await response.json())["error"] == "unauthorized"
        headers = {"Origin": ALLOWED, "Authorization": f"Bearer {token('bob', ['general'])}"}
        async with http.get(url, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
