"""The HTTP publish API in cluster mode: `hubbub serve` nodes on one Redis and one
PostgreSQL database. What a backend publishes on one node reaches members on every
node, in id order with what they post; a retry is recognised on any node; a broker
outage is answered 503."""

import asyncio
from typing import Any

import aiohttp
import pytest

from hubbub.client import ChatClient
from tests.cluster.conftest import StartNode, messages_in
from tests.cluster.test_cluster import health_becomes
from tests.conftest import ServerProcess
from tests.services import PrivateRedis

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

KEY = "cluster-publish-key-0123456789"


async def publish(
    http: aiohttp.ClientSession, node: ServerProcess, room: str, body: dict[str, Any]
) -> tuple[int, Any]:
    async with http.post(
        f"{node.url}/rooms/{room}/messages",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
    ) as response:
        return response.status, await response.json()


async def test_published_messages_reach_members_on_every_node_in_order(
    start_node: StartNode,
) -> None:
    a, b = await start_node("--api-key", KEY), await start_node("--api-key", KEY)
    members = [await ChatClient.connect(node.ws_url) for node in (a, b, b)]
    try:
        for n, member in enumerate(members):
            await member.join("scores", f"fan{n}")
        poster = members[2]
        async with aiohttp.ClientSession() as http:

            async def publish_all() -> list[int]:
                ids = []
                for n in range(20):
                    body = {"content": f"goal {n}", "from": "scores", "data": {"goal": n}}
                    status, answer = await publish(http, a, "scores", body)
                    assert status == 201
                    ids.append(answer["id"])
                return ids

            async def post_all() -> list[int]:
                return [await poster.say(f"chat {n}", room="scores") for n in range(20)]

            published, posted = await asyncio.gather(publish_all(), post_all())
        assert sorted(published + posted) == list(range(1, 41))
        for member in members:
            received = [await member.expect("message", timeout=15) for _ in range(40)]
            assert [event["id"] for event in received] == list(range(1, 41))
            goals = [event for event in received if event["from"] == "scores"]
            assert [event["data"] for event in goals] == [{"goal": n} for n in range(20)]
            assert [event["id"] for event in goals] == published
            assert member.pending("message") == []
    finally:
        for member in members:
            await member.close()


async def test_a_retry_sent_to_another_node_is_answered_with_the_first_id(
    start_node: StartNode,
) -> None:
    a, b = await start_node("--api-key", KEY), await start_node("--api-key", KEY)
    async with await ChatClient.connect(b.ws_url) as fan, aiohttp.ClientSession() as http:
        await fan.join("r", "fan")
        body = {"content": "final score 2-1", "from": "scores", "ref": "match-9-final"}
        first = await publish(http, a, "r", body)
        again = await publish(http, b, "r", body)
        assert (first[0], again[0]) == (201, 200)
        assert again[1] == first[1]
        assert (await fan.expect("message", timeout=10))["id"] == first[1]["id"]
        assert await fan.say("after") == first[1]["id"] + 1
        assert (await fan.expect("message", timeout=10))["content"] == "after"


async def test_a_broker_outage_is_503_and_publishing_resumes_after_it(
    start_node: StartNode, redis: PrivateRedis
) -> None:
    node = await start_node("--api-key", KEY)
    async with aiohttp.ClientSession() as http:
        assert (await publish(http, node, "r", {"content": "before", "from": "bot"}))[0] == 201
        redis.stop()
        await health_becomes(node, 503, within=10)
        status, answer = await publish(http, node, "r", {"content": "during", "from": "bot"})
        assert status == 503
        assert answer["error"]["code"] == "unavailable"
        redis.start()
        await health_becomes(node, 200, within=10)
        status, answer = await publish(http, node, "r", {"content": "after", "from": "bot"})
        assert (status, answer["id"]) == (201, 2)
        async with await ChatClient.connect(node.ws_url) as reader:
            await reader.join("r", "reader", since=0)
            assert await messages_in(reader, 2) == [1, 2]
