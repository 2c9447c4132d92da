"""Presence in Redis, shared by the nodes of a cluster.

Every change is one Lua script, so counts stay exact when nodes race:

- `{prefix}room:{room}:users`: per username, its connections in the room on every node;
- `{prefix}node:{id}`: per "room\\nusername", this node's connections (what to undo
  when the node dies);
- `{prefix}rooms`: per room, its connections (the room limit, counted cluster-wide);
- `{prefix}reports`: per node, its own counts (connections, messages) as
  "connections messages rate";
- `{prefix}nodes`: a sorted set of node ids by the millisecond (Redis's clock) each
  dies unless it beats again;
- `{prefix}epoch`: set once, so that a node tells Redis losing its data from being
  purged.

Redis's own clock decides who is dead, so nodes' clocks need not agree.
"""

import secrets
from collections.abc import Mapping
from importlib.resources import files
from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from hubbub.presence.base import (
    Arrival,
    Liveness,
    PresenceReset,
    PresenceUnavailable,
    Purged,
    Report,
    Resync,
    Totals,
)
from hubbub.presence.memory import summed

POOL_SIZE = 16
POOL_WAIT_SECONDS = 5.0
RESET = -2
"""What the scripts answer when presence was reset since this node counted in it."""


def _texts(values: list[bytes | str]) -> list[str]:
    """Replies of a client made with `decode_responses=True`: strings, as typed here."""
    return cast(list[str], values)


def _pairs(flat: list[str]) -> list[tuple[str, str]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _parsed(value: str) -> Report:
    connections, messages, rate = value.split()
    return Report(int(connections), int(messages), float(rate))


def _script(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(files("hubbub.presence").joinpath(f"lua/{name}.lua").read_text())


class RedisPresence:
    def __init__(self, url: str, prefix: str = "hubbub:") -> None:
        # A blocking pool: a thousand clients leaving at once queue for a connection
        # instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_SECONDS,
            decode_responses=True,
            socket_connect_timeout=3.0,
            socket_timeout=3.0,
        )
        self._redis = redis = Redis(connection_pool=pool)
        self._prefix = prefix
        self._node = ""
        self._ttl_ms = 0
        self._enter = _script(redis, "enter")
        self._exit = _script(redis, "exit")
        self._beat = _script(redis, "beat")
        self._purge = _script(redis, "purge")
        self._replace = _script(redis, "replace")
        self._nodes = f"{prefix}nodes"
        self._epoch_key = f"{prefix}epoch"
        self._epoch: str | None = None
        self._rooms = f"{prefix}rooms"
        self._reports = f"{prefix}reports"

    def _users_key(self, room: str) -> str:
        return f"{self._prefix}room:{room}:users"

    @property
    def _node_key(self) -> str:
        return f"{self._prefix}node:{self._node}"

    async def start(self, node_id: str, ttl: float) -> None:
        self._node, self._ttl_ms = node_id, round(ttl * 1000)
        await self.beat()

    async def beat(self) -> Liveness:
        keys, candidate = [self._nodes, self._epoch_key], secrets.token_hex(8)
        try:
            known, epoch = await self._beat(keys=keys, args=[self._node, self._ttl_ms, candidate])
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        seen, self._epoch = self._epoch, epoch
        if seen is not None and epoch != seen:
            return Liveness.RESET
        return Liveness.KNOWN if known else Liveness.PURGED

    async def enter(self, room: str, username: str, limit: int) -> Arrival | None:
        keys = [self._users_key(room), self._node_key, self._rooms, self._epoch_key]
        try:
            mine, members = await self._enter(
                keys=keys, args=[room, username, limit, self._epoch or ""]
            )
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        if mine == RESET:
            raise PresenceReset()
        if mine < 0:
            return None
        return Arrival(mine == 1, int(members))

    async def exit(self, room: str, username: str) -> bool:
        keys = [self._users_key(room), self._node_key, self._rooms, self._epoch_key]
        try:
            left = await self._exit(keys=keys, args=[room, username, self._epoch or ""])
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        if left == RESET:
            raise PresenceReset()
        return bool(left == 0)

    async def users(self, room: str) -> list[str]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._epoch_key)
                pipe.hkeys(self._users_key(room))
                epoch, names = await pipe.execute()
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        if epoch != self._epoch:
            raise PresenceReset()
        return sorted(_texts(names))

    async def rooms(self) -> dict[str, int]:
        try:
            names = sorted(_texts(await self._redis.hkeys(self._rooms)))
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hlen(self._users_key(name))
                counts = await pipe.execute()
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        return {name: count for name, count in zip(names, counts, strict=True) if count}

    async def report(self, report: Report) -> None:
        value = f"{report.connections} {report.messages} {report.messages_per_second}"
        try:
            await self._redis.hset(self._reports, self._node, value)
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error

    async def totals(self) -> Totals:
        try:
            per_node = _texts(await self._redis.hvals(self._reports))
            names = _texts(await self._redis.hkeys(self._rooms))
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hkeys(self._users_key(name))
                per_room = await pipe.execute()
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        distinct = {user for users in per_room for user in users}
        return Totals(len(names), len(distinct), summed(_parsed(value) for value in per_node))

    async def purge_dead(self) -> Purged:
        return await self._purge_nodes([])

    async def _purge_nodes(self, nodes: list[str]) -> Purged:
        keys = [self._nodes, self._rooms, self._reports]
        try:
            count, *flat = await self._purge(keys=keys, args=[self._prefix, *nodes])
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        return Purged(int(count), _pairs(flat))

    async def replace(self, entries: Mapping[tuple[str, str], int]) -> Resync:
        args: list[str | int] = [self._prefix]
        for (room, username), count in entries.items():
            args += [room, username, count]
        try:
            arrived, left = await self._replace(keys=[self._node_key, self._rooms], args=args)
        except RedisError as error:
            raise PresenceUnavailable(str(error)) from error
        return Resync(sorted(_pairs(arrived)), sorted(_pairs(left)))

    async def close(self) -> None:
        try:
            await self._purge_nodes([self._node])
        finally:
            await self._redis.aclose(close_connection_pool=True)
