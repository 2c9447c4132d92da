"""The /ws handshake's permessage-deflate answer, and the frames compressed members get."""

from typing import Any

import pytest

from hubbub.client import ChatClient
from tests.conftest import StartServer
from tests.rawsocket import TEXT, RawWebSocket, encode_frame


@pytest.mark.parametrize(
    ("offer", "window_bits"),
    [
        ("permessage-deflate; client_max_window_bits", 15),
        ("permessage-deflate", 15),
        ("permessage-deflate; server_max_window_bits=10", 10),
    ],
)
async def test_every_compressed_message_inflates_on_its_own(
    start_server: StartServer, offer: str, window_bits: int
) -> None:
    """The server answers any offer with server_no_context_takeover, so one compressed
    frame can serve every member; a client holding it to that promise must inflate each
    message with a fresh inflater (the raw client does, once the answer says so)."""
    server = await start_server()
    members = [await RawWebSocket.connect(server.port, deflate=True, offer=offer) for _ in range(2)]
    try:
        for member in members:
            assert "server_no_context_takeover" in member.extension
            if window_bits < 15:
                assert f"server_max_window_bits={window_bits}" in member.extension
        for n, member in enumerate(members):
            join = f'{{"type":"join","room":"z","username":"m{n}","ref":"j"}}'
            member.write(encode_frame(TEXT, join.encode()))
            await member.wait_for(lambda event: event.get("ref") == "j")
        text = "the same words, again and again " * 20
        starts = [len(member.events) for member in members]
        async with await ChatClient.connect(server.ws_url, compress=False) as poster:
            await poster.join("z", "poster")
            for _ in range(3):
                await poster.say(text)
        for member, start in zip(members, starts, strict=True):
            for expected_id in (1, 2, 3):

                def is_expected(event: dict[str, Any], wanted: int = expected_id) -> bool:
                    return event.get("id") == wanted

                message = await member.wait_for(is_expected, start)
                assert message["content"] == text
            assert member.compressed_messages >= 3
    finally:
        for member in members:
            await member.close()
