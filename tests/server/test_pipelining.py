"""A connection's messages are stored without waiting for each other, yet keep their order."""

from pathlib import Path

from hubbub.client import ChatClient
from tests.conftest import StartServer


async def test_messages_sent_back_to_back_keep_their_order_then_a_leave_follows_them(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(
        store="sqlite", data_dir=str(tmp_path), rate=100_000, rate_burst=100_000
    )
    async with (
        await ChatClient.connect(server.ws_url) as sender,
        await ChatClient.connect(server.ws_url) as watcher,
    ):
        await sender.join("r", "sender")
        await watcher.join("r", "watcher")
        await watcher.expect("online_users", users=["sender", "watcher"])
        for n in range(300):
            await sender.send({"type": "message", "content": f"m{n}", "ref": n})
        await sender.send({"type": "leave", "room": "r"})
        messages = []
        while (event := await watcher.receive())["type"] != "user_left":
            if event["type"] == "message":
                messages.append((event["id"], event["content"]))
        assert event["username"] == "sender"
        assert messages == [(n + 1, f"m{n}") for n in range(300)]
        acks = [await sender.expect("ack") for _ in range(300)]
        assert [(ack["ref"], ack["id"]) for ack in acks] == [(n, n + 1) for n in range(300)]


async def test_a_retry_sent_right_behind_its_first_is_stored_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path))
    async with await ChatClient.connect(server.ws_url) as sender:
        await sender.join("r", "sender")
        for _ in range(3):
            await sender.send({"type": "message", "content": "once", "ref": "k"})
        acks = [await sender.expect("ack", ref="k") for _ in range(3)]
        assert {ack["id"] for ack in acks} == {1}
        await sender.send({"type": "history", "room": "r"})
        page = await sender.expect("history")
        assert [m["content"] for m in page["messages"]] == ["once"]
