"""What a run measures: scenario sizes for the full and the quick run, and pass criteria."""

from dataclasses import dataclass
from pathlib import Path

SCENARIOS = ("s1", "s2", "s3", "j", "z", "w")
MIN_DELIVERY_RATIO = 0.999
MAX_P99_SECONDS = 0.100
DEFAULT_POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class Sizes:
    s1_members: int
    s1_rates: tuple[int, ...]
    """Room send rates (messages/s) tried in order until one fails the criteria."""
    s1_step_seconds: float
    crowd_connections: int
    """S2 and S3 share one crowd: this many connections..."""
    crowd_rooms: int
    """...spread evenly over this many rooms."""
    s2_rate: int
    s2_seconds: float
    j_members: int
    j_timeout: float
    """Seconds J waits for every member to see the full room before calling it incomplete."""
    z_members: int
    z_rate: int
    z_seconds: float
    join_concurrency: int
    """Joins in flight per worker while a scenario sets up its rooms."""
    warmup_seconds: float
    """A discarded load step before measuring: the first seconds after a join storm are slow."""
    w_join_watchers: int = 1000
    """W: watchers that join one room at once; the frames sent to them are counted."""
    w_watchers: int = 10_000
    """W: watchers in one room under load."""
    w_rate: int = 20
    w_seconds: float = 10.0
    w_linger: float = 1.0
    """Seconds W keeps counting frames after the last watcher's ack."""
    w_probes: int = 50
    """W's load: watchers that parse every frame for latency; the others only count
    deliveries (the sending members are probes too). 0: every watcher is a probe."""
    s1_stop_on_failure: bool = True
    """False when the rates were given (`--s1-rates 50,50,50`): every one is a sample."""
    s1_probes: int = 50
    """S1: members of the room that parse every frame for latency; the others only count
    deliveries. 0: every member is a probe (as before counting members existed)."""


FULL = Sizes(
    s1_members=1000,
    s1_rates=(25, 50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400),
    s1_step_seconds=5.0,
    crowd_connections=10_000,
    crowd_rooms=100,
    s2_rate=200,
    s2_seconds=10.0,
    j_members=1000,
    j_timeout=120.0,
    z_members=1000,
    z_rate=50,
    z_seconds=5.0,
    join_concurrency=8,
    warmup_seconds=2.0,
    w_join_watchers=1000,
    w_watchers=10_000,
    w_rate=20,
    w_seconds=10.0,
)

QUICK = Sizes(
    s1_members=200,
    s1_rates=(100, 200, 400, 800, 1600, 3200),
    s1_step_seconds=2.0,
    crowd_connections=1000,
    crowd_rooms=10,
    s2_rate=200,
    s2_seconds=3.0,
    j_members=200,
    j_timeout=20.0,
    z_members=200,
    z_rate=100,
    z_seconds=2.0,
    join_concurrency=8,
    warmup_seconds=2.0,
    w_join_watchers=200,
    w_watchers=1000,
    w_rate=20,
    w_seconds=3.0,
)


@dataclass(frozen=True, slots=True)
class Plan:
    scenarios: tuple[str, ...]
    servers: tuple[str, ...]
    repeats: int
    sizes: Sizes
    workers: int
    quick: bool
    client: str = "auto"
    """Client library: auto (picows when installed), picows or aiohttp; Z always uses aiohttp."""
    hubbub_args: tuple[str, ...] = ()
    log_path: Path | None = None
    """Where the servers' stdout and stderr go (appended); None discards them."""
    postgresql: str = DEFAULT_POSTGRESQL
    """The database in which hubbub-pg and hubbub-cluster get a fresh schema per start."""
