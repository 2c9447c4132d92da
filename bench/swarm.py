"""The coordinator's handle on the load-generator processes."""

import contextlib
import multiprocessing
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

from bench import worker

START_TIMEOUT = 30.0


class WorkerFailed(RuntimeError):
    """A worker answered a command with an error, or not within its time."""


class Swarm:
    """`count` worker processes pinned to `cores`; commands go to all and wait for all."""

    def __init__(self, count: int, cores: frozenset[int]) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Pipe] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=worker.main, args=(theirs, index, cores), name=f"bench-worker-{index}"
            )
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    @property
    def size(self) -> int:
        return len(self._pipes)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process.pid is not None]

    def call(
        self, command: str, arguments: list[dict[str, Any]] | dict[str, Any], timeout: float
    ) -> list[dict[str, Any]]:
        """Send `command` to every worker (the same or per-worker arguments), gather answers."""
        per_worker = arguments if isinstance(arguments, list) else [arguments] * self.size
        for pipe, worker_arguments in zip(self._pipes, per_worker, strict=True):
            pipe.send((command, worker_arguments))
        deadline = time.monotonic() + timeout + START_TIMEOUT
        answers = []
        for index, pipe in enumerate(self._pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise WorkerFailed(f"worker {index} did not answer {command} within {timeout}s")
            answer: dict[str, Any] = pipe.recv()
            if "error" in answer:
                raise WorkerFailed(f"worker {index} failed {command}: {answer['error']}")
            answers.append(answer)
        return answers

    def close(self) -> None:
        """Stop the workers (they close their connections first); kill any that hang."""
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", {}))
        for process, pipe in zip(self._processes, self._pipes, strict=True):
            process.join(10.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            pipe.close()

    def __enter__(self) -> "Swarm":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
