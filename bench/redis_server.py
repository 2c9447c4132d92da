"""A `redis-server` of the benchmark's own for a cluster under test: a free port, no
persistence, pinned to the server's cores, so its CPU is measured apart and no other
user of the machine's Redis hears its channels."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from bench.proctree import process_cpu_seconds

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class RedisUnavailable(RuntimeError):
    """redis-server is not installed or did not start."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class PrivateRedis:
    def __init__(self, cores: frozenset[int], log_path: Path | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = tempfile.mkdtemp(prefix="bench-redis-")
        self._log: IO[bytes] | None = open(log_path, "ab") if log_path else None  # noqa: SIM115
        argv = [executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", self._directory]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        # Polled: nothing tells us when it has bound its port.
        deadline = time.monotonic() + READY_TIMEOUT
        while not _answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RedisUnavailable(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        """Its CPU time so far (all threads: the I/O threads too, if configured)."""
        try:
            return process_cpu_seconds(self.process.pid)
        except OSError:
            return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self._directory, ignore_errors=True)
