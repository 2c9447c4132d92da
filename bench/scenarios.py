"""The scenarios of issue 4, each one repetition against one freshly started server.

S1  one room, rising send rate: highest rate delivered >= 99.9% with p99 < 100 ms,
    and the server's CPU microseconds per delivery there.
S2  many connections in many rooms at a fixed rate: latency percentiles.
S3  the same crowd idle: server memory per connection (shares S2's setup).
J   a room filling up at once: time until every member has the final online_users.
Z   S1 at a fixed rate with and without permessage-deflate: CPU per delivery.
W   watchers (protocol 1.1, Hubbub only): frames sent to watchers joining at once, and
    a room of 10,000 watchers at a fixed rate: delivery ratio, latency, CPU per delivery.
"""

import os
import time
from collections import Counter
from typing import Any

from bench.deployment import Deployment
from bench.latency import latency_summary, merge_latencies
from bench.pinning import CoreSplit
from bench.plan import MAX_P99_SECONDS, MIN_DELIVERY_RATIO, Plan
from bench.proctree import system_busy_seconds
from bench.servers import SERVERS
from bench.swarm import Swarm

SETTLE_TIMEOUT = 180.0
DRAIN_QUIET_SECONDS = 2.0
DRAIN_CAP_SECONDS = 30.0
IDLE_CPU_SHARE = 0.02
IDLE_WAIT_SECONDS = 10.0
GENERATOR_SATURATED = 0.9
"""Share of its cores above which the generator, not the server, may be the limit."""
WARMUP_STEP = 1000
S1_RETRY_STEP = 100
"""Added to a step's number for its retry, so late deliveries of the first try are stale."""

Result = dict[str, Any]
RoomCounts = list[dict[str, int]]


class Rig:
    """One server under test and one swarm of load generators, for one repetition."""

    def __init__(self, server_name: str, plan: Plan, split: CoreSplit, compression: bool) -> None:
        spec = SERVERS[server_name]
        extra = plan.hubbub_args if server_name.startswith("hubbub") else ()
        cores = split.server | split.generator if spec.every_core else split.server
        self.server = Deployment(spec, cores, compression, extra, plan.log_path, plan.postgresql)
        self.split = split
        try:
            self.swarm = Swarm(plan.workers, split.generator)
        except BaseException:
            self.server.stop()
            raise
        self.connections_made = 0
        self.client = plan.client

    def close(self) -> None:
        try:
            self.swarm.close()
        finally:
            self.server.stop()

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- setting up rooms -----------------------------------------------------------------

    def connect(
        self,
        count: int,
        rooms: int,
        prefix: str,
        compress: bool = False,
        prefer: str = "",
        watch: bool = False,
        probes: int | None = None,
    ) -> Result:
        """Open `count` connections spread round-robin over workers and `rooms` rooms, and
        over the server's nodes (a cluster's), so that every worker has members on each
        node; `load` sends only from the members on the first node. With `watch` they
        are watchers (they join with `watch` and never send).

        The first `probes` members of each room parse every frame (latency); the others
        are counting members (`bench/sink.py`). None: every member is a probe."""
        prefer = prefer or self.client
        urls = self.server.urls
        size_of_room = Counter(f"{prefix}-{index % rooms}" for index in range(count))
        per_worker: list[list[tuple[str, str, int, int, bool, bool, bool]]] = [
            [] for _ in range(self.swarm.size)
        ]
        name = "v" if watch else "u"
        for index in range(count):
            room = f"{prefix}-{index % rooms}"
            node = (index // self.swarm.size) % len(urls)
            probe = probes is None or index // rooms < probes
            member = (f"{name}{index}", room, size_of_room[room], node, node == 0 and not watch)
            per_worker[index % self.swarm.size].append((*member, watch, probe))
        answers = self.swarm.call(
            "connect",
            [
                {"urls": urls, "members": members, "compress": compress, "prefer": prefer}
                for members in per_worker
            ],
            timeout=60.0 + count * 0.05,
        )
        connected = sum(answer["connected"] for answer in answers)
        self.connections_made += connected
        errors: Counter[str] = Counter()
        for answer in answers:
            errors.update(answer["errors"])
        return {
            "connections_made": connected,
            "connections_failed": sum(answer["failed"] for answer in answers),
            "connect_errors": dict(errors),
            "connect_seconds": max(answer["seconds"] for answer in answers),
            "client_library": answers[0]["library"],
            "compressed_connections": sum(answer["compressed"] for answer in answers),
            "probe_members": sum(answer["probes"] for answer in answers),
            "counting_members": sum(answer["sinks"] for answer in answers),
        }

    def join_and_settle(self, concurrency: int, members: int) -> tuple[Result, RoomCounts]:
        """Join every connection, then wait until all see their room's full online_users."""
        joins = self.swarm.call(
            "join", {"concurrency": concurrency}, timeout=SETTLE_TIMEOUT + members * 0.05
        )
        settled = self.swarm.call("settle", {"timeout": SETTLE_TIMEOUT}, SETTLE_TIMEOUT)
        summary = {
            "joined": sum(answer["joined"] for answer in joins),
            "join_seconds": max(answer["seconds"] for answer in joins),
            "settled": sum(answer["settled"] for answer in settled),
        }
        return summary, [answer["joined_per_room"] for answer in joins]

    # -- one load step --------------------------------------------------------------------

    def step(self, step: int, rate: float, duration: float, joined: RoomCounts) -> Result:
        """Send at `rate` messages/s for `duration` s, wait for the deliveries, measure."""
        before = self.server.usage()
        nodes_before = self.server.node_cpu_seconds()
        services_before = self.server.service_cpu_seconds()
        busy_before = system_busy_seconds()
        per_worker_rate = rate / self.swarm.size
        loads = self.swarm.call(
            "load", {"step": step, "rate": per_worker_rate, "duration": duration}, duration + 30
        )
        sent_per_room: Counter[str] = Counter()
        for answer in loads:
            sent_per_room.update(answer["sent_per_room"])
        expected = [
            sum(sent * local.get(room, 0) for room, sent in sent_per_room.items())
            for local in joined
        ]
        drains = self.swarm.call(
            "drain",
            [
                {
                    "expected": value,
                    "quiet": DRAIN_QUIET_SECONDS,
                    "cap": DRAIN_CAP_SECONDS,
                    "sent_per_room": dict(sent_per_room),
                }
                for value in expected
            ],
            timeout=DRAIN_CAP_SECONDS + 10,
        )
        after = self.server.usage()
        nodes_after = self.server.node_cpu_seconds()
        services_after = self.server.service_cpu_seconds()
        busy = system_busy_seconds() - busy_before
        received = sum(answer["received"] for answer in drains)
        wanted = sum(expected)
        latencies = merge_latencies(answer["latencies"] for answer in drains)
        server_cpu = after.cpu_seconds - before.cpu_seconds
        send_seconds = max(answer["seconds"] for answer in loads)
        generator_cpu = sum(answer["cpu_seconds"] for answer in drains)
        generator_wall = max(answer["wall_seconds"] for answer in drains)
        ratio = received / wanted if wanted else 0.0
        summary = latency_summary(latencies)
        services = {name: services_after[name] - services_before[name] for name in services_after}
        return {
            "offered_rate": rate,
            "sent": sum(sent_per_room.values()),
            "deliveries_expected": wanted,
            "deliveries_received": received,
            "delivery_ratio": ratio,
            "deliveries_per_second": received / send_seconds if send_seconds else 0.0,
            **summary,
            "server_cpu_seconds": server_cpu,
            "server_cpu_us_per_delivery": server_cpu / received * 1e6 if received else None,
            "server_rss_bytes": after.rss_bytes,
            **_cluster_figures(nodes_before, nodes_after, services, received, drains),
            "generator_cpu_share": generator_cpu
            / (generator_wall * len(self.split.generator) or 1.0),
            # CPU that neither the server nor the generator used: other tenants of the machine.
            "other_cpu_share": max(0.0, busy - server_cpu - generator_cpu - sum(services.values()))
            / (generator_wall * (os.cpu_count() or 1) or 1.0),
            "stale_deliveries": sum(answer["stale"] for answer in drains),
            **_member_figures(drains),
            "closed_by_server": sum(answer["closed_by_server"] for answer in drains),
            "passed": ratio >= MIN_DELIVERY_RATIO and summary["p99_ms"] < MAX_P99_SECONDS * 1e3,
        }

    def warm_up(self, rate: float, seconds: float, joined: RoomCounts) -> None:
        """A load step whose figures are thrown away (step numbers above 1000 are warm-ups)."""
        if seconds > 0:
            self.step(WARMUP_STEP, rate, seconds, joined)

    def totals(self) -> Result:
        usage = self.server.usage()
        return {
            "connections_made_total": self.connections_made,
            "server_cpu_seconds_total": usage.cpu_seconds,
            "server_peak_rss_bytes": usage.peak_rss_bytes,
            "server_alive": self.server.alive(),
        }

    def wait_server_idle(self) -> float:
        """Wait (bounded) until the server uses under 2% of a core; polled, as no event says so."""
        deadline = time.monotonic() + IDLE_WAIT_SECONDS
        previous = self.server.usage().cpu_seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            current = self.server.usage().cpu_seconds
            if current - previous < IDLE_CPU_SHARE * 0.5:
                break
            previous = current
        return self.server.usage().rss_bytes


def _cluster_figures(
    nodes_before: list[float],
    nodes_after: list[float],
    services: dict[str, float],
    received: int,
    drains: list[Result],
) -> Result:
    """What only a cluster, or a server with a PostgreSQL store, has: each node's CPU, the
    latency of the members on each node, and the CPU of Redis and PostgreSQL's backends."""
    figures: Result = {}
    if len(nodes_after) > 1:
        figures["node_cpu_seconds"] = [
            after - before for before, after in zip(nodes_before, nodes_after, strict=True)
        ]
        figures["latency_per_node"] = [
            latency_summary(
                merge_latencies(answer["latencies_per_node"][node] for answer in drains)
            )
            for node in range(len(nodes_after))
        ]
    for name, seconds in services.items():
        figures[f"{name}_cpu_seconds"] = seconds
        figures[f"{name}_cpu_us_per_delivery"] = seconds / received * 1e6 if received else None
    return figures


def _member_figures(drains: list[Result]) -> Result:
    """Who received the step: probes (parsed, timed) and counting members (counted)."""
    return {
        "probe_members": sum(answer["probes"] for answer in drains),
        "counting_members": sum(answer["sinks"] for answer in drains),
        "probe_deliveries": sum(answer["probe_received"] for answer in drains),
        "counted_deliveries": sum(answer["counted"] for answer in drains),
        "excess_deliveries": sum(answer["excess"] for answer in drains),
        "counted_stale_deliveries": sum(answer["counted_stale"] for answer in drains),
        "other_frames": sum(answer["other_frames"] for answer in drains),
    }


def run_s1(server_name: str, plan: Plan, split: CoreSplit) -> Result:
    sizes = plan.sizes
    with Rig(server_name, plan, split, compression=False) as rig:
        probes = sizes.s1_probes or None
        result: Result = rig.connect(sizes.s1_members, 1, "s1", probes=probes)
        presence, joined = rig.join_and_settle(sizes.join_concurrency, sizes.s1_members)
        result.update(presence)
        rig.warm_up(sizes.s1_rates[0], sizes.warmup_seconds, joined)
        steps: list[Result] = []
        for index, rate in enumerate(sizes.s1_rates):
            step = rig.step(index, rate, sizes.s1_step_seconds, joined)
            if not step["passed"] and rig.server.alive() and not step["closed_by_server"]:
                # One retry: on a shared machine a single noisy second can fail a step.
                retry = rig.step(index + S1_RETRY_STEP, rate, sizes.s1_step_seconds, joined)
                retry["first_try"] = step
                step = retry
            steps.append(step)
            if not rig.server.alive() or (not step["passed"] and sizes.s1_stop_on_failure):
                break
        passing = [step for step in steps if step["passed"]]
        best = passing[-1] if passing else None
        result.update(
            {
                "steps": steps,
                "limited_by": _limit(steps[-1]) if steps else None,
                "max_rate": best["offered_rate"] if best else 0,
                "cpu_us_per_delivery": best["server_cpu_us_per_delivery"] if best else None,
                "deliveries_per_second": best["deliveries_per_second"] if best else None,
                **rig.totals(),
            }
        )
        return result


def _limit(last: Result) -> str:
    """What stopped the S1 ladder: the server, or a load generator that ran out of CPU."""
    if last["passed"]:
        return "ladder"  # every rate passed
    return "generator" if last["generator_cpu_share"] >= GENERATOR_SATURATED else "server"


def run_crowd(server_name: str, plan: Plan, split: CoreSplit, with_load: bool) -> Result:
    """S3 (idle memory per connection) and, when `with_load`, S2 on the same crowd."""
    sizes = plan.sizes
    with Rig(server_name, plan, split, compression=False) as rig:
        rss_empty = rig.wait_server_idle()
        result: Result = rig.connect(sizes.crowd_connections, sizes.crowd_rooms, "s2")
        presence, joined = rig.join_and_settle(sizes.join_concurrency, sizes.crowd_connections)
        result.update(presence)
        rss_idle = rig.wait_server_idle()
        connections = max(1, result["connections_made"])
        result["s3"] = {
            "rss_empty_bytes": rss_empty,
            "rss_idle_bytes": rss_idle,
            "bytes_per_connection": (rss_idle - rss_empty) / connections,
        }
        if with_load:
            rig.warm_up(sizes.s2_rate, sizes.warmup_seconds, joined)
            result["s2"] = rig.step(0, sizes.s2_rate, sizes.s2_seconds, joined)
        result.update(rig.totals())
        return result


def run_j(server_name: str, plan: Plan, split: CoreSplit) -> Result:
    members = plan.sizes.j_members
    with Rig(server_name, plan, split, compression=False) as rig:
        # Counting members only: J needs no latency, and a probe's 5 us per frame made the
        # generator read so slowly that the Go peer's 256-frame buffers overflowed.
        result: Result = rig.connect(members, 1, "j", probes=0)
        before = rig.server.usage()
        start_ns = time.monotonic_ns() + 200_000_000
        timeout = plan.sizes.j_timeout
        answers = rig.swarm.call(
            "join_burst", {"start_ns": start_ns, "timeout": timeout}, timeout + 10
        )
        after = rig.server.usage()
        settled = sum(answer["settled"] for answer in answers)
        first = min(answer["first_send_ns"] for answer in answers)
        last = max(answer["last_settled_ns"] for answer in answers)
        complete = settled == result["connections_made"] and last > 0
        result.update(
            {
                "members": members,
                "settled": settled,
                "complete": complete,
                "seconds": (last - first) / 1e9 if complete else None,
                "frames_received": sum(answer["frames"] for answer in answers),
                "closed_by_server": sum(answer["closed_by_server"] for answer in answers),
                "generator_cpu_share": sum(answer["cpu_seconds"] for answer in answers)
                / (max(answer["wall_seconds"] for answer in answers) * len(split.generator) or 1.0),
                "server_cpu_seconds": after.cpu_seconds - before.cpu_seconds,
                **rig.totals(),
            }
        )
        return result


def run_z(server_name: str, plan: Plan, split: CoreSplit) -> Result:
    """The same fixed-rate room with and without permessage-deflate, same client library."""
    sizes = plan.sizes
    result: Result = {}
    for label, compress in (("uncompressed", False), ("compressed", True)):
        with Rig(server_name, plan, split, compression=compress) as rig:
            arm: Result = rig.connect(sizes.z_members, 1, "z", compress=compress, prefer="aiohttp")
            presence, joined = rig.join_and_settle(sizes.join_concurrency, sizes.z_members)
            arm.update(presence)
            rig.warm_up(sizes.z_rate, sizes.warmup_seconds, joined)
            arm["step"] = rig.step(0, sizes.z_rate, sizes.z_seconds, joined)
            arm.update(rig.totals())
            result[label] = arm
    plain = result["uncompressed"]["step"]["server_cpu_us_per_delivery"]
    packed = result["compressed"]["step"]["server_cpu_us_per_delivery"]
    result["cpu_ratio_compressed"] = packed / plain if plain and packed else None
    return result


def run_w(server_name: str, plan: Plan, split: CoreSplit) -> Result:
    """Watchers: what their arrival costs in frames, and a room of them under load.

    Each part has one member per worker, which sends (a room's watchers cannot). The
    join part counts every frame the watchers and the members receive from the moment
    the watchers' joins go out until `w_linger` s after the last ack (presence frames
    are coalesced over 250 ms, so any would come within it), by type: everyone there
    is a probe. The load part's room has `w_probes` watchers that parse (latency) and
    counting members for the others, which settle on their ack like a probe."""
    sizes = plan.sizes
    result: Result = {}
    with Rig(server_name, plan, split, compression=False) as rig:
        arrival: Result = rig.connect(rig.swarm.size, 1, "wj")
        arrival.update(rig.join_and_settle(sizes.join_concurrency, rig.swarm.size)[0])
        watchers = rig.connect(sizes.w_join_watchers, 1, "wj", watch=True)
        arrival["watchers_connected"] = watchers["connections_made"]
        before = rig.server.usage()
        start_ns = time.monotonic_ns() + 200_000_000
        answers = rig.swarm.call(
            "watch_burst",
            {"start_ns": start_ns, "timeout": sizes.j_timeout, "linger": sizes.w_linger},
            sizes.j_timeout + sizes.w_linger + 10,
        )
        after = rig.server.usage()
        frames: Counter[str] = Counter()
        for answer in answers:
            frames.update(answer["frames_by_kind"])
        acked = sum(answer["acked"] for answer in answers)
        first = min(answer["first_send_ns"] for answer in answers)
        last = max(answer["last_ack_ns"] for answer in answers)
        to_watchers = sum(n for kind, n in frames.items() if kind.startswith("watcher "))
        to_members = sum(n for kind, n in frames.items() if kind.startswith("member "))
        arrival.update(
            {
                "watchers": sizes.w_join_watchers,
                "acked": acked,
                "seconds": (last - first) / 1e9 if acked and last else None,
                "frames_by_kind": dict(frames),
                "frames_to_watchers": to_watchers,
                "frames_per_watcher": to_watchers / acked if acked else None,
                "frames_to_members": to_members,
                "presence_frames": sum(
                    n
                    for kind, n in frames.items()
                    if kind.split()[-1] in ("online_users", "user_joined", "user_left")
                ),
                "server_cpu_seconds": after.cpu_seconds - before.cpu_seconds,
            }
        )
        result["join"] = arrival
    with Rig(server_name, plan, split, compression=False) as rig:
        load: Result = rig.connect(rig.swarm.size, 1, "wl")
        watchers = rig.connect(sizes.w_watchers, 1, "wl", watch=True, probes=sizes.w_probes or None)
        load["watchers_connected"] = watchers["connections_made"]
        load["watcher_probes"] = watchers["probe_members"]
        load["watcher_counting_members"] = watchers["counting_members"]
        load["connect_seconds"] = max(load["connect_seconds"], watchers["connect_seconds"])
        presence, joined = rig.join_and_settle(
            sizes.join_concurrency, sizes.w_watchers + rig.swarm.size
        )
        load.update(presence)
        rig.warm_up(sizes.w_rate, sizes.warmup_seconds, joined)
        load["step"] = rig.step(0, sizes.w_rate, sizes.w_seconds, joined)
        load.update(rig.totals())
        result["load"] = load
    return result
