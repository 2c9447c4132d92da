"""`hubbub serve` as a user runs it: flags, environment, refusal of bad settings, SIGTERM."""

import asyncio
import json
import os
import re
import signal
import socket
import ssl
import subprocess
from dataclasses import fields
from pathlib import Path

import aiohttp
import pytest
import trustme

from hubbub.client import ChatClient, ConnectionClosed
from hubbub.config import Settings
from hubbub.core.auth import Identity, verify_token
from tests.conftest import HUBBUB, ServerProcess, SpawnServer


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUBBUB, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_shows_every_setting_with_its_environment_variable() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for setting in fields(Settings):
        assert f"--{setting.name.replace('_', '-')}" in text
        assert f"HUBBUB_{setting.name.upper()}" in text


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--rate", "0"], {}, "--rate"),
        (["--heartbeat", "-1"], {}, "--heartbeat"),
        (["--max-message-size", "10"], {}, "--max-message-size"),
        (["--port", "70000"], {}, "--port"),
        (["--flush-delay", "2"], {}, "--flush-delay"),
        (["--sqlite-commit-delay", "-0.1"], {}, "--sqlite-commit-delay"),
        (["--sqlite-synchronous", "off"], {}, "--sqlite-synchronous"),
        (["--workers", "0"], {}, "--workers"),
        (["--redis-prefix", " "], {}, "--redis-prefix"),
        ([], {"HUBBUB_MAX_CONNECTIONS": "0"}, "HUBBUB_MAX_CONNECTIONS"),
        ([], {"HUBBUB_PORT": "many"}, "HUBBUB_PORT"),
        (["--api-key", "too-short"], {}, "--api-key"),
        ([], {"HUBBUB_API_KEY": "a-good-key-0123456789,bad key"}, "HUBBUB_API_KEY"),
    ],
)
def test_bad_configuration_is_refused_naming_the_setting(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = run_cli("serve", *args, env=env)
    assert result.returncode == 2
    assert named in result.stderr


@pytest.fixture
async def server_process(spawn_server: SpawnServer) -> ServerProcess:
    return await spawn_server("--store", "memory")


async def test_sigterm_closes_clients_with_1001_and_exits_0(
    server_process: ServerProcess,
) -> None:
    process = server_process.process
    url = server_process.ws_url
    clients = [await ChatClient.connect(url) for _ in range(3)]
    for n, client in enumerate(clients):
        await client.join("r", f"user{n}")
    await clients[0].say("a secret nobody should log")
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        returncode = await process.wait()
    assert returncode == 0
    for client in clients:
        with pytest.raises(ConnectionClosed):
            await client.expect("never sent")
        assert client.close_code == 1001
        await client.close()
    log = await server_process.log()
    assert len(re.findall(r"close \w+ code=1001 reason=server shutting down", log)) == 3
    assert "a secret nobody should log" not in log
    assert "stopped" in log


async def test_one_log_line_per_connection_open_and_close(
    server_process: ServerProcess,
) -> None:
    process = server_process.process
    client = await ChatClient.connect(server_process.ws_url)
    connection_id = client.welcome["connection_id"]
    await client.close()
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        assert await process.wait() == 0
    log = await server_process.log()
    assert log.count(f"open {connection_id} ") == 1
    assert log.count(f"close {connection_id} ") == 1


async def test_a_clients_close_reason_never_reaches_the_log(
    server_process: ServerProcess,
) -> None:
    """The code is logged, the peer's own text is not: it could forge log lines."""
    client = await ChatClient.connect(server_process.ws_url)
    connection_id = client.welcome["connection_id"]
    await client.ws.close(code=4000, message=b"bye\nclose forged code=1000")
    await client.close()
    server_process.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await server_process.process.wait() == 0
    log = await server_process.log()
    assert f"close {connection_id} code=4000 reason=closed by the client" in log
    assert "forged" not in log


def test_token_command_prints_a_token_the_server_accepts() -> None:
    secret = "s" * 40
    result = run_cli(
        "token", "--sub", "alice", "--rooms", "general,dev", env={"HUBBUB_AUTH_SECRET": secret}
    )
    assert result.returncode == 0
    identity = verify_token(result.stdout.strip(), secret)
    assert identity == Identity("alice", frozenset({"general", "dev"}))


@pytest.mark.parametrize(
    ("args", "secret", "named", "reason"),
    [
        ([], "short", "--secret", "at least 32 bytes"),
        (["--sub", ""], "s" * 40, "--sub", "username must be 1 to 32"),
        (["--sub", "   "], "s" * 40, "--sub", "username must be 1 to 32"),
        (["--sub", "x" * 40], "s" * 40, "--sub", "username must be 1 to 32"),
        (["--rooms", "general,no spaces"], "s" * 40, "--rooms", "room must be 1 to 64"),
        (["--rooms", " , "], "s" * 40, "--rooms", "names no room"),
        (["--ttl", "-60"], "s" * 40, "--ttl", "-60 is not in the range"),
        (["--ttl", "0"], "s" * 40, "--ttl", "0 is not in the range"),
    ],
    ids=[
        "short-secret",
        "empty-sub",
        "blank-sub",
        "long-sub",
        "bad-room",
        "no-room",
        "negative-ttl",
        "zero-ttl",
    ],
)
def test_token_command_refuses_what_the_server_would_refuse(
    args: list[str], secret: str, named: str, reason: str
) -> None:
    result = run_cli("token", "--sub", "alice", *args, env={"HUBBUB_AUTH_SECRET": secret})
    assert result.returncode == 2
    assert result.stdout == ""
    assert named in result.stderr
    assert reason in " ".join(result.stderr.split())


def test_short_auth_secret_is_refused() -> None:
    result = run_cli("serve", "--auth-secret", "short")
    assert result.returncode == 2
    assert "--auth-secret" in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    """Exit 1 with one line on stderr (no traceback) that names what is wrong."""
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in named:
        assert name in lines[0]


def test_a_busy_port_is_said_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("serve", "--store", "memory", "--port", port)
    assert_one_line_error(result, f"127.0.0.1 port {port}", "in use")


def test_a_missing_certificate_file_is_said_in_one_line(tmp_path: Path) -> None:
    keyfile, missing = tmp_path / "key.pem", tmp_path / "missing.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(keyfile))
    result = run_cli(
        "serve",
        "--store",
        "memory",
        "--port",
        "0",
        "--certfile",
        str(missing),
        "--keyfile",
        str(keyfile),
    )
    assert_one_line_error(result, f"--certfile {missing}", "No such file")


def test_a_certificate_that_is_not_one_is_said_in_one_line(tmp_path: Path) -> None:
    keyfile, certfile = tmp_path / "key.pem", tmp_path / "cert.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(keyfile))
    certfile.write_text("not a certificate\n")
    result = run_cli(
        "serve",
        "--store",
        "memory",
        "--port",
        "0",
        "--certfile",
        str(certfile),
        "--keyfile",
        str(keyfile),
    )
    assert_one_line_error(result, f"--certfile {certfile}", f"--keyfile {keyfile}")


def test_a_store_that_cannot_open_is_said_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "hubbub.db").mkdir()
    result = run_cli("serve", "--port", "0", "--data-dir", str(tmp_path))
    assert_one_line_error(result, f"--data-dir {tmp_path}")


async def test_open_server_says_so_when_it_starts(spawn_server: SpawnServer) -> None:
    server = await spawn_server("--store", "memory")
    server.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        await server.process.wait()
    assert "authentication: none, the server is open" in server.first_line


async def test_tls_works_under_the_cli_event_loop(
    spawn_server: SpawnServer, tmp_path: Path
) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    server = await spawn_server(
        "--store", "memory", "--certfile", str(certfile), "--keyfile", str(keyfile)
    )
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    url = f"https://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz", ssl=trusting) as response:
            assert response.status == 200
        async with http.ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=trusting) as ws:
            assert (await ws.receive_json())["type"] == "welcome"
            # The connection left aiohttp for Hubbub's protocol: it reads as well as writes.
            await ws.send_json({"type": "join", "room": "r", "username": "tls", "ref": "j"})
            async with asyncio.timeout(10):
                while (event := await ws.receive_json())["type"] != "ack":
                    pass
            assert event["ref"] == "j"


@pytest.mark.parametrize(("level", "shown"), [("debug", True), ("info", False)])
async def test_frames_are_logged_at_debug_only(
    spawn_server: SpawnServer, level: str, shown: bool
) -> None:
    server = await spawn_server("--store", "memory", "--log-level", level)
    async with await ChatClient.connect(server.ws_url) as client:
        await client.join("r", "ann")
        await client.say("framed")
    server.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await server.process.wait() == 0
    log = await server.log()
    assert ("hubbub.frames: < TEXT" in log) is shown
    assert "hubbub.connection: close" in log


PUBLISH_KEY = "cli-publish-key-0123456789"


async def test_publish_command_publishes_and_prints_the_id(spawn_server: SpawnServer) -> None:
    served = await spawn_server("--store", "memory", "--api-key", PUBLISH_KEY)
    env = {"HUBBUB_API_KEY": f"{PUBLISH_KEY},another-key-0123456789", "HUBBUB_URL": served.url}
    async with await ChatClient.connect(served.ws_url) as ann:
        await ann.join("builds", "ann")
        args = ("publish", "builds", "Build 311 failed", "--from", "ci", "--ref", "b311")
        data = ("--data", '{"build": 311, "ok": false}')
        result = await asyncio.to_thread(run_cli, *args, *data, env=env)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        event = await ann.expect("message")
        assert answer == {"id": event["id"], "room": "builds", "timestamp": event["timestamp"]}
        assert (event["from"], event["data"]) == ("ci", {"build": 311, "ok": False})
        again = await asyncio.to_thread(run_cli, *args, env=env)
        assert json.loads(again.stdout) == {**answer, "duplicate": True}


@pytest.mark.parametrize(
    ("args", "status", "said"),
    [
        (["--data", "{not json"], 2, "--data"),
        (["--api-key", "wrong-key-0123456789"], 1, "403"),
    ],
)
async def test_publish_command_says_why_it_did_not_publish(
    spawn_server: SpawnServer, args: list[str], status: int, said: str
) -> None:
    served = await spawn_server("--store", "memory", "--api-key", PUBLISH_KEY)
    env = {"HUBBUB_API_KEY": PUBLISH_KEY, "HUBBUB_URL": served.url}
    result = await asyncio.to_thread(run_cli, "publish", "r", "hi", "--from", "ci", *args, env=env)
    assert result.returncode == status
    assert said in result.stderr
    assert PUBLISH_KEY not in result.stderr
