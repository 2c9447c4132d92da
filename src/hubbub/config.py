"""One frozen `Settings`, validated at start so bad configuration fails with the setting's name."""

import socket
from dataclasses import dataclass, field

from hubbub.core.api_keys import key_problem
from hubbub.core.auth import MIN_SECRET_BYTES, strong_secret


class ConfigError(ValueError):
    """A setting has a value the server cannot run with."""

    def __init__(self, setting: str, rule: str) -> None:
        super().__init__(f"{setting} {rule}")
        self.setting = setting
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    heartbeat: float = 20.0
    """Seconds between WebSocket pings; a peer that has not answered by the next one is closed."""
    presence_interval: float = 0.25
    """Seconds: at most one `online_users` per room per interval."""
    max_message_size: int = 64 * 1024
    max_connections: int = 10_000
    max_connections_per_ip: int = 100
    rate: float = 20.0
    """Messages per second per connection (token bucket refill)."""
    rate_burst: int = 40
    abuse_limit: int = 100
    """Refused events within ten seconds before a connection is closed with 1008."""
    allowed_origins: tuple[str, ...] = ()
    """Empty: the server's own host and localhost."""
    max_outbound_buffer: int = 1024 * 1024
    """Bytes a connection's socket may leave untaken for 5 s before it is a slow consumer
    (1013); what it may hold at all is 8 times this (see `server/connection.py`)."""
    compression: bool = True
    flush_delay: float = 0.025
    """The most seconds frames may wait so that more share one write (0: always the end of
    the event-loop turn). They wait only while the loop is loaded (`core/autocork.py`),
    longer the more loaded it is; see docs/benchmarks.md."""
    max_room_members: int = 10_000
    """Connections one room may hold (beyond: `room_full`)."""
    max_room_watchers: int = 10_000
    """Watchers (`join` with `watch`) one room may have on this node. They take no member
    slot: they are not in presence, and cost each node only its own watchers' frames."""
    max_rooms_per_connection: int = 100
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to send its first complete request (slowloris)."""
    auth_secret: str = ""
    """HS256 secret; when set, the upgrade needs a JWT in the `token` query parameter."""
    api_key: tuple[str, ...] = field(default=(), repr=False)
    """Keys a backend may publish with (`POST /rooms/{name}/messages`, Bearer); several
    at once (comma-separated on the command line) so that they can be rotated; none: the
    route does not exist (404)."""
    certfile: str = ""
    keyfile: str = ""
    """TLS certificate chain and private key (PEM); both or neither."""
    store: str = "sqlite"
    """`sqlite` (durable, the default), `memory` (forgets on restart), or a
    `postgresql://USER@HOST:PORT/DB` URL: a PostgreSQL database several nodes share."""
    data_dir: str = "./data"
    """Where the SQLite store keeps `hubbub.db`."""
    sqlite_busy_timeout: float = 2.0
    """Seconds a write waits for a locked database before the message gets `unavailable`."""
    sqlite_commit_delay: float = 0.0
    """Seconds a message of a busy room (its previous message came less than this ago)
    may wait to share an SQLite commit, and its fsync, with others (0: no wait)."""
    sqlite_synchronous: str = "full"
    """`full`: every commit is fsynced before its messages are sent, so they survive a power
    cut. `normal`: a commit is written but fsynced only with the next checkpoint (about a
    second later), so it survives the process's crash and may be lost with the machine."""
    history_max_per_room: int = 10_000
    history_max_age: float = 30 * 24 * 3600.0
    """Seconds a message is kept."""
    redis_url: str = ""
    """`redis://HOST:PORT/DB`: the broker and presence shared by the nodes of a cluster
    (empty: this process is the whole server)."""
    redis_prefix: str = "hubbub:"
    """What every Redis key and channel of the cluster starts with: clusters that share
    one Redis need prefixes of their own."""
    node_ttl: float = 10.0
    """Seconds after its last liveness beat that a node is taken for dead."""
    workers: int = 1
    """Processes serving `port` on this host (SO_REUSEPORT), each a node of the cluster on
    `redis_url`; 1: this process serves alone, with no child process."""
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in (
            "heartbeat",
            "presence_interval",
            "rate",
            "history_max_age",
            "sqlite_busy_timeout",
            "handshake_timeout",
        ):
            _require(name, getattr(self, name) > 0, "must be greater than 0")
        _require("node_ttl", self.node_ttl >= 1, "must be at least 1 second")
        _require(
            "redis_url",
            not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
            "must be a redis://, rediss:// or unix:// URL",
        )
        for name in (
            "max_message_size",
            "max_connections",
            "max_connections_per_ip",
            "rate_burst",
            "abuse_limit",
            "max_outbound_buffer",
            "history_max_per_room",
            "max_room_members",
            "max_room_watchers",
            "max_rooms_per_connection",
        ):
            _require(name, getattr(self, name) >= 1, "must be at least 1")
        for name in ("flush_delay", "sqlite_commit_delay"):
            _require(name, 0 <= getattr(self, name) <= 1, "must be 0..1 seconds")
        _require("port", 0 <= self.port <= 65535, "must be 0..65535")
        _require("max_message_size", self.max_message_size >= 1024, "must be at least 1024 bytes")
        _require(
            "max_outbound_buffer",
            self.max_outbound_buffer >= self.max_message_size,
            "must be at least max_message_size",
        )
        _require("keyfile", bool(self.certfile) == bool(self.keyfile), "goes with certfile")
        _require(
            "auth_secret",
            not self.auth_secret or strong_secret(self.auth_secret),
            f"must be at least {MIN_SECRET_BYTES} bytes (HS256)",
        )
        _require(
            "store",
            self.store in ("sqlite", "memory") or is_postgres_url(self.store),
            "must be sqlite, memory or a postgresql://USER@HOST:PORT/DB URL",
        )
        _require(
            "sqlite_synchronous",
            self.sqlite_synchronous in ("full", "normal"),
            "must be full or normal",
        )
        _require("data_dir", bool(self.data_dir.strip()), "must not be empty")
        _require(
            "log_level",
            self.log_level in ("debug", "info", "warning", "error"),
            "must be debug, info, warning or error",
        )
        for key in self.api_key:
            problem = key_problem(key)
            _require("api_key", problem is None, problem or "")
        for origin in self.allowed_origins:
            _require("allowed_origins", bool(origin.strip()), "must not contain empty entries")
        _require("redis_prefix", bool(self.redis_prefix.strip()), "must not be empty")
        _require("workers", self.workers >= 1, "must be at least 1")
        if self.workers > 1:
            self._check_workers()
        _require(
            "redis_url",
            not self.redis_url or is_postgres_url(self.store),
            f"needs a store the nodes share: with --store {self.store} each node would "
            "number a room's messages on its own; use --store postgresql://USER@HOST:PORT/DB",
        )

    def _check_workers(self) -> None:
        """What N processes serving one port need: each is a node of one cluster."""
        workers = f"{self.workers} workers"
        shared = "use --store postgresql://USER@HOST:PORT/DB, a database the workers share"
        _require(
            "workers",
            hasattr(socket, "SO_REUSEPORT"),
            f"{workers} need SO_REUSEPORT (Linux, BSD, macOS), which this platform lacks: "
            "run one process per port instead",
        )
        _require(
            "workers",
            bool(self.redis_url),
            f"{workers} need --redis-url: they form a cluster through Redis",
        )
        _require(
            "workers",
            self.store != "sqlite",
            f"{workers} cannot share --store sqlite (one database file, one writing "
            f"process): {shared}",
        )
        _require(
            "workers",
            self.store != "memory",
            f"{workers} cannot share --store memory (each would keep a history of its "
            f"own): {shared}",
        )
        _require(
            "workers",
            self.port != 0,
            f"{workers} cannot use --port 0 (each would get a port of its own): "
            "give the port they are to share",
        )


def is_postgres_url(store: str) -> bool:
    """Whether the `store` setting names a PostgreSQL database."""
    return store.startswith(("postgresql://", "postgres://"))


def _require(name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(name, rule)
