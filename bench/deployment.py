"""The server under test as the scenarios see it: one process, or the nodes of a
Hubbub cluster together with the Redis and the PostgreSQL schema they share.

Every node and the private Redis are pinned to the server's cores, so a cluster gets
the same CPU as a single process. PostgreSQL is the machine's own server (not pinned);
its backends' CPU is read apart, as is Redis's.
"""

from collections.abc import Sequence
from pathlib import Path

from bench.plan import DEFAULT_POSTGRESQL
from bench.postgres import Schema
from bench.proctree import TreeUsage, tree_usage
from bench.redis_server import PrivateRedis
from bench.servers import RunningServer, ServerSpec


class Deployment:
    def __init__(
        self,
        spec: ServerSpec,
        cores: frozenset[int],
        compression: bool = False,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        postgresql: str = DEFAULT_POSTGRESQL,
    ) -> None:
        self.spec = spec
        self.nodes: list[RunningServer] = []
        self.schema: Schema | None = None
        self.redis: PrivateRedis | None = None
        try:
            shared: list[str] = []
            if spec.postgresql:
                self.schema = Schema(postgresql)
                shared += ["--store", self.schema.dsn]
            if spec.redis:
                self.redis = PrivateRedis(cores, log_path)
                shared += ["--redis-url", self.redis.url]
            for _ in range(spec.nodes):
                node = RunningServer(spec, cores, compression, [*extra_args, *shared], log_path)
                self.nodes.append(node)
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        """The WebSocket URL of each node, the first node first."""
        return [node.url for node in self.nodes]

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    def usage(self) -> TreeUsage:
        """CPU and memory summed over every node's process tree (not Redis, not PostgreSQL)."""
        trees = [tree_usage(node.pid) for node in self.nodes]
        return TreeUsage(
            sum(tree.cpu_seconds for tree in trees),
            sum(tree.rss_bytes for tree in trees),
            sum(tree.peak_rss_bytes for tree in trees),
            sum(tree.processes for tree in trees),
        )

    def node_cpu_seconds(self) -> list[float]:
        return [tree_usage(node.pid).cpu_seconds for node in self.nodes]

    def service_cpu_seconds(self) -> dict[str, float]:
        """CPU so far of what the nodes share: {"redis": s, "postgresql": s}, those it has."""
        services: dict[str, float] = {}
        if self.redis is not None:
            services["redis"] = self.redis.cpu_seconds()
        if self.schema is not None:
            services["postgresql"] = self.schema.backend_cpu_seconds()
        return services

    def alive(self) -> bool:
        return bool(self.nodes) and all(node.alive() for node in self.nodes)

    def stop(self) -> None:
        """Nodes first (they close their store and broker connections), then what they share."""
        try:
            for node in self.nodes:
                node.stop()
        finally:
            if self.redis is not None:
                self.redis.stop()
            if self.schema is not None:
                self.schema.drop()
