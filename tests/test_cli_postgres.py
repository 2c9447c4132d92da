"""`hubbub serve --store postgresql://...` as a user runs it: processes sharing one
database, and a clear refusal when the database cannot be used."""

import secrets
import subprocess

import pytest

from hubbub.client import ChatClient
from tests.conftest import HUBBUB, SpawnServer

pytestmark = pytest.mark.postgres


async def test_two_servers_share_a_postgresql_store(
    spawn_server: SpawnServer, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = await spawn_server("--store", postgres_dsn)
    with monkeypatch.context() as environment:
        environment.setenv("HUBBUB_STORE", postgres_dsn)
        other = await spawn_server()
    assert "store: postgresql at 127.0.0.1:5432/" in other.first_line
    async with (
        await ChatClient.connect(one.ws_url) as ann,
        await ChatClient.connect(other.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        first = await ann.say("from the first server")
        second = await bob.say("from the other server")
        assert second == first + 1
        await bob.send({"type": "history", "room": "r"})
        history = await bob.expect("history")
        assert [m["content"] for m in history["messages"]] == [
            "from the first server",
            "from the other server",
        ]
        await ann.send({"type": "message", "room": "r", "content": "once", "ref": "k1"})
        acked = await ann.expect("ack", ref="k1")
        await bob.send({"type": "message", "room": "r", "content": "once", "ref": "k1"})
        assert (await bob.expect("ack", ref="k1"))["id"] != acked["id"], "refs are per user"
        async with await ChatClient.connect(other.ws_url) as ann_elsewhere:
            await ann_elsewhere.join("r", "ann")
            await ann_elsewhere.send(
                {"type": "message", "room": "r", "content": "once", "ref": "k1"}
            )
            retried = await ann_elsewhere.expect("ack", ref="k1")
        assert retried["id"] == acked["id"], "a retry to the other server is recognised"


@pytest.mark.parametrize(
    "where",
    [f"127.0.0.1:5432/hubbub_missing_{secrets.token_hex(4)}", "127.0.0.1:1/hubbub"],
    ids=["missing-database", "nothing-listening"],
)
def test_an_unusable_database_stops_the_start_with_a_clear_error(
    postgres_database: str, where: str
) -> None:
    """(`postgres_database`: the server that does answer, for the missing database.)"""
    result = subprocess.run(
        [*HUBBUB, "serve", "--port", "0", "--store", f"postgresql://postgres:hunter2@{where}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot open the message store: cannot use PostgreSQL at {where}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
