"""`hubbub serve`: every setting a flag and an `HUBBUB_*` environment variable."""

import asyncio
import time
from typing import Any, ClassVar

import click
import orjson

from hubbub import logs
from hubbub.config import ConfigError, Settings
from hubbub.core.auth import (
    MIN_SECRET_BYTES,
    InvalidToken,
    claimed_rooms,
    claimed_username,
    issue_token,
    strong_secret,
)
from hubbub.publisher import Published, Publisher, PublishError
from hubbub.server.runner import StartupError, run
from hubbub.server.runner import serve as run_server
from hubbub.server.workers import supervise
from hubbub.store.base import StoreUnavailable

_DEFAULTS = Settings()


def _option(name: str, kind: type | click.ParamType[Any], help_text: str) -> click.Option:
    return click.Option(
        [f"--{name.replace('_', '-')}", name],
        type=kind,
        default=getattr(_DEFAULTS, name),
        show_default=True,
        envvar=f"HUBBUB_{name.upper()}",
        show_envvar=True,
        help=help_text,
    )


class _CommaList(click.ParamType[tuple[str, ...]]):
    """A comma-separated list (origins, API keys)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        return tuple(part.strip() for part in str(value).split(",") if part.strip())


class Duration(click.ParamType[float]):
    """Seconds, or a number with a unit: `90`, `15m`, `12h`, `30d`."""

    name = "DURATION"
    _UNITS: ClassVar[dict[str, float]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        scale = self._UNITS.get(text[-1:], None)
        number = text[:-1] if scale is not None else text
        try:
            return float(number) * (scale or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration like 90, 15m, 12h or 30d", param, ctx)


_SERVE_OPTIONS = [
    _option("host", str, "Address to listen on."),
    _option("port", int, "Port to listen on (0 picks a free one)."),
    _option("heartbeat", float, "Seconds between WebSocket pings; unanswered peers are closed."),
    _option("presence_interval", float, "Seconds between coalesced online_users per room."),
    _option(
        "max_message_size", int, "Largest incoming message in bytes (larger closes with 1009)."
    ),
    _option("max_connections", int, "Connections per server (beyond: HTTP 503)."),
    _option("max_connections_per_ip", int, "Connections per client IP (beyond: HTTP 429)."),
    _option("rate", float, "Events per second per connection (token bucket refill)."),
    _option("rate_burst", int, "Events a connection may send at once (token bucket size)."),
    _option("abuse_limit", int, "Refused events within 10 s before closing with 1008."),
    _option(
        "allowed_origins",
        _CommaList("ORIGINS"),
        "Comma-separated browser origins allowed to connect: exact origins, *.example.com "
        "patterns or *. Empty: the server's own host and localhost.",
    ),
    _option(
        "max_outbound_buffer",
        int,
        "Bytes one client's socket may leave untaken for 5 s before it is closed (1013).",
    ),
    _option("compression", bool, "Offer permessage-deflate."),
    _option(
        "flush_delay",
        float,
        "Most seconds frames may wait so that more share one write, only while the "
        "server is loaded (0: never). Less CPU per delivery under load, no latency without.",
    ),
    _option("max_room_members", int, "Connections one room may hold (beyond: room_full)."),
    _option(
        "max_room_watchers",
        int,
        "Watchers one room may have on this node; they take no member slot (beyond: room_full).",
    ),
    _option("max_rooms_per_connection", int, "Rooms one connection may be in (beyond: room_full)."),
    _option("handshake_timeout", float, "Seconds a client has to complete its first request."),
    _option(
        "auth_secret",
        str,
        "HS256 secret (32+ bytes). When set, /ws needs ?token=JWT; sub is the username and "
        "a rooms claim limits the rooms. Empty: the server is open.",
    ),
    _option(
        "api_key",
        _CommaList("KEYS"),
        "Keys a backend may publish with (POST /rooms/NAME/messages, "
        "Authorization: Bearer KEY); comma-separated to rotate them. Empty: no such route. "
        "Prefer the environment variable: arguments show in the process list.",
    ),
    _option("certfile", str, "TLS certificate chain (PEM), to serve https/wss directly."),
    _option("keyfile", str, "TLS private key (PEM)."),
    _option(
        "store",
        str,
        "Message store: sqlite (durable, one node), memory (forgets on restart), or "
        "postgresql://USER[:PASSWORD]@HOST:PORT/DB (durable, shared by a cluster's nodes).",
    ),
    _option("data_dir", str, "Directory of the SQLite store (file hubbub.db)."),
    _option("sqlite_busy_timeout", float, "Seconds a write waits for a locked database file."),
    _option(
        "sqlite_commit_delay",
        float,
        "Seconds a busy room's message may wait to share an SQLite commit (0: none). "
        "Less CPU per message in busy rooms, that much latency there.",
    ),
    _option(
        "sqlite_synchronous",
        click.Choice(["full", "normal"]),
        "full: fsync every commit before its messages go out (survives a power cut). "
        "normal: fsync with the checkpoint, about a second later (survives a crash).",
    ),
    _option("history_max_per_room", int, "Messages kept per room; older ones are pruned."),
    _option("history_max_age", Duration(), "How long messages are kept: seconds or 30d, 12h, 15m."),
    _option(
        "redis_url",
        str,
        "Redis (redis://HOST:PORT/DB) shared by the nodes of a cluster: fan-out, presence, "
        "liveness. Empty: this process is the whole server.",
    ),
    _option(
        "redis_prefix",
        str,
        "What the cluster's Redis keys and channels start with: one per cluster sharing a Redis.",
    ),
    _option("node_ttl", float, "Seconds without a liveness beat before a node is taken for dead."),
    _option(
        "workers",
        int,
        "Processes serving --port on this host (SO_REUSEPORT), each a node of the cluster: "
        "above 1 needs --redis-url and a postgresql:// --store.",
    ),
    _option(
        "log_level",
        click.Choice(["debug", "info", "warning", "error"]),
        "Logging level.",
    ),
]


@click.group()
@click.version_option(package_name="hubbub")
def main() -> None:
    """Hubbub, a real-time chat server."""


@main.command(params=_SERVE_OPTIONS)
def serve(**options: object) -> None:
    """Start the server and run until SIGTERM or SIGINT."""
    try:
        settings = Settings(**options)  # type: ignore[arg-type]
    except ConfigError as error:
        flag = "--" + error.setting.replace("_", "-")
        raise click.BadParameter(
            error.rule, param_hint=f"{flag} / HUBBUB_{error.setting.upper()}"
        ) from None
    logs.configure(settings.log_level)
    try:
        if settings.workers > 1:
            raise SystemExit(supervise(settings))
        _run(settings)
    except StartupError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option(
    "--sub", "subject", required=True, help="The username (1 to 32 printable characters)."
)
@click.option("--rooms", default=None, help="Comma-separated rooms it may join (default: any).")
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    default=3600,
    show_default=True,
    help="Seconds until it expires.",
)
@click.option(
    "--secret",
    envvar="HUBBUB_AUTH_SECRET",
    show_envvar=True,
    required=True,
    help="The server's --auth-secret.",
)
def token(subject: str, rooms: str | None, ttl: int, secret: str) -> None:
    """Print a token for testing an --auth-secret server.

    What the server would refuse (a short secret, a bad username or room name) is
    refused here, with the reason, rather than printed."""
    if not strong_secret(secret):
        raise click.BadParameter(
            f"must be at least {MIN_SECRET_BYTES} bytes (HS256), like the server's --auth-secret",
            param_hint="--secret / HUBBUB_AUTH_SECRET",
        )
    try:
        claimed_username(subject)
    except InvalidToken as error:
        raise click.BadParameter(_reason(error), param_hint="--sub") from None
    room_list = None
    if rooms is not None:
        room_list = [room.strip() for room in rooms.split(",") if room.strip()]
        if not room_list:
            raise click.BadParameter(
                "names no room; leave --rooms out to allow any room", param_hint="--rooms"
            )
        try:
            claimed_rooms(room_list)
        except InvalidToken as error:
            raise click.BadParameter(_reason(error), param_hint="--rooms") from None
    click.echo(issue_token(secret, subject, room_list, int(time.time()) + ttl))


@main.command()
@click.argument("room")
@click.argument("content")
@click.option("--from", "sender", required=True, help="The sender's name members see.")
@click.option("--data", default=None, help="A JSON value to send as the message's data.")
@click.option("--ref", default=None, help="Retry key (default: a random one per command).")
@click.option(
    "--url",
    default="http://127.0.0.1:3000",
    show_default=True,
    envvar="HUBBUB_URL",
    show_envvar=True,
    help="The server's base URL.",
)
@click.option(
    "--api-key",
    "api_key",
    envvar="HUBBUB_API_KEY",
    show_envvar=True,
    required=True,
    help="One of the server's --api-key keys (of a comma-separated list, the first).",
)
def publish(
    room: str, content: str, sender: str, data: str | None, ref: str | None, url: str, api_key: str
) -> None:
    """Publish CONTENT into ROOM, as a backend does, and print the stored message's id.

    Retries with the same ref while the server is unreachable or unavailable, so the
    message is stored once."""
    value = None
    if data is not None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise click.BadParameter(f"is not JSON: {error.msg}", param_hint="--data") from None
    key = api_key.split(",", 1)[0].strip()
    try:
        sent = asyncio.run(_publish(url, key, room, content, sender, value, ref))
    except PublishError as error:
        raise click.ClickException(f"not published: {error}") from None
    answer = {"id": sent.id, "room": sent.room, "timestamp": sent.timestamp}
    if sent.duplicate:
        answer["duplicate"] = True
    click.echo(orjson.dumps(answer).decode())


async def _publish(
    url: str, key: str, room: str, content: str, sender: str, data: object, ref: str | None
) -> Published:
    async with Publisher(url, key) as publisher:
        return await publisher.publish(room, content, sender=sender, data=data, ref=ref)


def _reason(error: InvalidToken) -> str:
    return str(error).removeprefix("invalid claim: ")


def _run(settings: Settings) -> None:
    try:
        run(run_server(settings))
    except StoreUnavailable as error:
        raise click.ClickException(f"cannot open the message store: {error}") from None
