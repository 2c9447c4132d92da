"""The servers under test: how to prepare each, start it pinned to its cores, and stop it."""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import toolchain

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REPO_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    prepare: Callable[[], None]
    command: Callable[[int, bool], list[str]]
    """(port, compression) -> argv."""
    env: dict[str, str] = field(default_factory=dict)
    nodes: int = 1
    """Processes started from `command`; more than one only for a cluster."""
    postgresql: bool = False
    """Gets `--store` with a fresh schema of the run's PostgreSQL database."""
    redis: bool = False
    """Gets `--redis-url` of a redis-server of its own (cluster mode)."""
    every_core: bool = False
    """Pinned to every usable core, the generator's too: a server of several processes
    on one host, which one core would reduce to taking turns."""
    source: Callable[[], Path] | None = None
    """The repository whose `src/` provides `hubbub` (None: this one)."""


def _hubbub_command(port: int, compression: bool) -> list[str]:
    # Compression is on by default in Hubbub and negotiated only when the client offers it.
    del compression
    return [sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1", "--port", str(port)]


def _hubbub_memory_command(port: int, compression: bool) -> list[str]:
    """Hubbub with the in-memory store: like the peers, it keeps no history on disk, so
    its latency has no fsync in it (the default SQLite store commits before broadcasting)."""
    return [*_hubbub_command(port, compression), "--store", "memory"]


def _hubbub_workers2_command(port: int, compression: bool) -> list[str]:
    return [*_hubbub_command(port, compression), "--workers", "2"]


def _go_command(port: int, compression: bool) -> list[str]:
    argv = [str(toolchain.GO_PEER_BINARY), "--host", "127.0.0.1", "--port", str(port)]
    return [*argv, "--compress"] if compression else argv


def _node_command(port: int, compression: bool) -> list[str]:
    script = toolchain.PEERS_DIR / "node" / "server.js"
    argv = ["node", str(script), "--host", "127.0.0.1", "--port", str(port)]
    return [*argv, "--compress"] if compression else argv


def _fastapi_command(port: int, compression: bool) -> list[str]:
    argv = [sys.executable, "-m", "bench.peers.fastapi_tutorial"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return [*argv, "--compress"] if compression else argv


REF_TREE_VARIABLE = "BENCH_REF_TREE"
"""Names the working tree `hubbub-ref` runs: another commit's checkout (`git worktree add
--detach DIR COMMIT`), so one run alternates the code before a change with the code after."""


def _ref_tree() -> Path:
    tree = os.environ.get(REF_TREE_VARIABLE, "")
    if not tree or not (Path(tree) / "src" / "hubbub").is_dir():
        raise toolchain.ToolchainError(
            f"hubbub-ref needs {REF_TREE_VARIABLE}=DIR, a checkout with src/hubbub in it"
        )
    return Path(tree).resolve()


def _prepare_ref() -> None:
    toolchain.prepare_hubbub()
    _ref_tree()


def _prepare_cluster() -> None:
    toolchain.prepare_hubbub()
    if shutil.which("redis-server") is None:
        raise toolchain.ToolchainError("redis-server is missing: apt-get install redis-server")


_HUBBUB_ENV = {
    # The benchmark opens up to 10,000 connections from one address.
    "HUBBUB_MAX_CONNECTIONS": "20000",
    "HUBBUB_MAX_CONNECTIONS_PER_IP": "20000",
    "HUBBUB_LOG_LEVEL": "warning",
}

SERVERS: dict[str, ServerSpec] = {
    "hubbub": ServerSpec(
        "hubbub",
        toolchain.prepare_hubbub,
        _hubbub_command,
        env=_HUBBUB_ENV,
    ),
    "hubbub-memory": ServerSpec(
        "hubbub-memory",
        toolchain.prepare_hubbub,
        _hubbub_memory_command,
        env=_HUBBUB_ENV,
    ),
    # The PostgreSQL store on one node: the baseline for hubbub-cluster (same store).
    "hubbub-pg": ServerSpec(
        "hubbub-pg",
        toolchain.prepare_hubbub,
        _hubbub_command,
        env=_HUBBUB_ENV,
        postgresql=True,
    ),
    # Cluster mode: two nodes on one Redis and one PostgreSQL schema; the swarm spreads
    # each room's members over both, and only the first node's members send.
    "hubbub-cluster": ServerSpec(
        "hubbub-cluster",
        _prepare_cluster,
        _hubbub_command,
        env=_HUBBUB_ENV,
        nodes=2,
        postgresql=True,
        redis=True,
    ),
    # Cluster mode with one node: what the Redis broker and sequencer cost, nothing spread.
    "hubbub-cluster1": ServerSpec(
        "hubbub-cluster1",
        _prepare_cluster,
        _hubbub_command,
        env=_HUBBUB_ENV,
        postgresql=True,
        redis=True,
    ),
    # `--workers 2`: two processes on one port (SO_REUSEPORT), nodes of one cluster on a
    # Redis and a PostgreSQL schema of their own, pinned to both cores; the baselines are
    # hubbub-cluster1 (the same with one process, one core) and hubbub-pg.
    "hubbub-workers2": ServerSpec(
        "hubbub-workers2",
        _prepare_cluster,
        _hubbub_workers2_command,
        env=_HUBBUB_ENV,
        postgresql=True,
        redis=True,
        every_core=True,
    ),
    # This repository's default server, run from the tree named by BENCH_REF_TREE (the
    # code before a change), beside `hubbub` in the same run.
    "hubbub-ref": ServerSpec(
        "hubbub-ref", _prepare_ref, _hubbub_command, env=_HUBBUB_ENV, source=_ref_tree
    ),
    "go": ServerSpec("go", toolchain.prepare_go_peer, _go_command),
    "node": ServerSpec("node", toolchain.prepare_node_peer, _node_command),
    "fastapi": ServerSpec("fastapi", toolchain.prepare_fastapi_peer, _fastapi_command),
}
REFERENCE_SERVER = "go"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stats_answer(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", "/stats")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class RunningServer:
    """A server process started in its own session, pinned to `cores`."""

    def __init__(
        self,
        spec: ServerSpec,
        cores: frozenset[int],
        compression: bool = False,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.port = free_port()
        # A fresh working and data directory per start: Hubbub's SQLite store begins empty.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
        argv = [*spec.command(self.port, compression), *extra_args]
        source = spec.source() if spec.source is not None else None
        env = {**os.environ, **spec.env, "PYTHONPATH": _pythonpath(source)}
        env["HUBBUB_DATA_DIR"] = str(self.workdir)
        env.setdefault("GOMAXPROCS", str(len(cores)))
        self._log: IO[bytes] | None = open(log_path, "ab") if log_path else None  # noqa: SIM115
        self.process = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _wait_ready(self) -> None:
        """Poll /stats until it answers: there is no event for 'the child has bound its port'."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.process.returncode}")
            if _stats_answer(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.spec.name} did not answer /stats within {READY_TIMEOUT}s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the server's own process group, then SIGKILL it if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _pythonpath(source: Path | None = None) -> str:
    """The repository (for `bench.peers`) and src/ (for `hubbub`; `source`'s when given),
    before what was set."""
    src = (source or REPO_DIR) / "src"
    parts = [str(REPO_DIR), str(src), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(part for part in parts if part)


DEFAULT_SERVERS = ("hubbub", "hubbub-memory", "go", "node", "fastapi")
"""What a plain `make bench` compares; the cluster specs (hubbub-pg, hubbub-cluster,
hubbub-cluster1, hubbub-workers2) need Redis and PostgreSQL and are asked for by name."""
