"""`--workers N`: N processes serving one port, each a node of the cluster.

The parent binds nothing and serves nothing: it starts N workers, each the ordinary
server (`runner.serve`) listening with SO_REUSEPORT, waits until all listen, then
watches them. A worker that dies is started again after a pause that doubles, from
1 s up to 30 s, while it keeps dying. SIGTERM or SIGINT to the parent goes on to every
worker; the parent waits for them (bounded) and exits 0 when every one stopped cleanly.

Workers are `multiprocessing` processes started with `spawn`: a fresh interpreter with
nothing inherited but the settings (no event loop, socket or thread of the parent's),
the same on every platform; the settings travel through a pipe, never on a command
line where `ps` would show the auth secret or the database password; and each worker
reports on its own pipe that it listens, or the one line saying why it cannot.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from hubbub import logs
from hubbub.config import Settings
from hubbub.server.runner import (
    SHUTDOWN_TIMEOUT_SECONDS,
    STOP_SIGNALS,
    RunningServer,
    StartupError,
    cannot_listen,
    run,
    serve,
)
from hubbub.store.base import StoreUnavailable

log = logging.getLogger("hubbub")

START_TIMEOUT_SECONDS = 60.0
"""How long a worker may take to listen (its store and Redis answer well within it)."""
STOP_TIMEOUT_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + 1.0
"""A worker closes its clients within SHUTDOWN_TIMEOUT_SECONDS; beyond this it is killed."""
FIRST_RESTART_DELAY = 1.0
LAST_RESTART_DELAY = 30.0
STABLE_SECONDS = 30.0
"""A worker that ran this long before dying is restarted after the first delay again."""


@dataclass
class Worker:
    slot: int
    """1..N; a restarted worker keeps its slot (and gets a new process and node id)."""
    process: BaseProcess
    report: Connection
    """What the worker says: ("ready", node id) or ("failed", why), then nothing."""
    started: float = field(default_factory=time.monotonic)
    node: str = ""

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "started"
        return self.process.pid


def supervise(settings: Settings) -> int:
    """Serve with `settings.workers` processes until SIGTERM or SIGINT; the exit code.
    Raises `StartupError` when the port cannot be had or a worker cannot start."""
    return asyncio.run(Supervisor(settings).run())


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, Worker] = {}
        self._stop = asyncio.Event()
        self._signal = signal.SIGTERM

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._request_stop, signum)
        await _probe(self._settings)
        log.info("starting %d workers on %s", self._settings.workers, self._url)
        first = [self._spawn(slot) for slot in range(1, self._settings.workers + 1)]
        try:
            listening = await self._start(first)
        except StartupError:
            await self._stop_all(quietly=True)
            raise
        if listening:
            self._announce()
            keepers = [asyncio.create_task(self._keep(worker)) for worker in first]
            await self._stop.wait()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        code = await self._stop_all()
        log.info("stopped" if code == 0 else "stopped, not every worker cleanly")
        return code

    async def _start(self, workers: list[Worker]) -> bool:
        """True once every worker listens, False when a stop signal comes first; raises
        `StartupError` for the first worker that cannot start."""
        readies = [asyncio.create_task(self._ready(worker)) for worker in workers]
        stopping = asyncio.create_task(self._stop.wait())
        pending: set[asyncio.Task[object]] = {*readies, stopping}
        try:
            while not stopping.done() and not all(ready.done() for ready in readies):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stopping}:
                    task.result()
            return not stopping.done()
        finally:
            for task in (*readies, stopping):
                task.cancel()
            await asyncio.gather(*readies, stopping, return_exceptions=True)

    def _request_stop(self, signum: signal.Signals) -> None:
        if not self._stop.is_set():
            log.info("%s: stopping %d workers", signum.name, len(self._workers))
            self._signal = signum
            self._stop.set()

    def _announce(self) -> None:
        workers = sorted(self._workers.values(), key=lambda worker: worker.slot)
        log.info(
            "%d workers listening on %s (nodes %s; pids %s)",
            len(workers),
            self._url,
            ", ".join(worker.node for worker in workers),
            ", ".join(str(worker.pid) for worker in workers),
        )

    @property
    def _url(self) -> str:
        scheme = "https" if self._settings.certfile else "http"
        return f"{scheme}://{self._settings.host}:{self._settings.port}"

    def _spawn(self, slot: int) -> Worker:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_work, args=(self._settings, slot, writer), name=f"hubbub-worker-{slot}"
        )
        process.start()
        writer.close()  # the worker's end: its exit is then the reader's end of file
        worker = Worker(slot, process, reader)
        dead = self._workers.get(slot)
        if dead is not None:  # the worker this one replaces: its pipes go with it
            dead.report.close()
            dead.process.close()
        self._workers[slot] = worker
        return worker

    async def _ready(self, worker: Worker) -> None:
        """Once `worker` listens; raises `StartupError` saying why it does not."""
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await _readable(worker.report.fileno())
        except TimeoutError:
            worker.process.kill()
            raise StartupError(
                f"worker {worker.slot} did not listen within {START_TIMEOUT_SECONDS:.0f} s"
            ) from None
        try:
            kind, detail = worker.report.recv()
        except EOFError:
            code = await _exit_code(worker.process)
            raise StartupError(
                f"worker {worker.slot} exited with code {code} before it listened"
            ) from None
        if kind != "ready":
            raise StartupError(detail)
        worker.node = detail

    async def _keep(self, worker: Worker) -> None:
        """Start `worker`'s slot again whenever its process dies, until the stop."""
        delay = FIRST_RESTART_DELAY
        while True:
            code = await _exit_code(worker.process)
            ran = time.monotonic() - worker.started
            if ran >= STABLE_SECONDS:
                delay = FIRST_RESTART_DELAY
            log.error(
                "worker %d (pid %d, node %s) exited with code %s after %.0f s; "
                "starting it again in %.0f s",
                worker.slot,
                worker.pid,
                worker.node or "none",
                code,
                ran,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RESTART_DELAY)
            worker = self._spawn(worker.slot)
            try:
                await self._ready(worker)
            except StartupError as error:
                log.error("worker %d could not start again: %s", worker.slot, error)
            else:
                log.info(
                    "worker %d started again (pid %d, node %s)",
                    worker.slot,
                    worker.pid,
                    worker.node,
                )

    async def _stop_all(self, *, quietly: bool = False) -> int:
        """Pass the stop signal on to every live worker, wait for them, kill the late;
        0 when every one stopped cleanly. `quietly`: after a failed start, where the
        reason is said already and the exits follow from it."""
        live = [worker for worker in self._workers.values() if worker.process.exitcode is None]
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await asyncio.gather(*(self._stop_one(worker) for worker in live))
        except TimeoutError:
            for worker in live:
                if worker.process.exitcode is None:
                    log.warning(
                        "worker %d (pid %d) did not stop within %.0f s: killed",
                        worker.slot,
                        worker.pid,
                        STOP_TIMEOUT_SECONDS,
                    )
                    worker.process.kill()
                    worker.process.join()
        failed = [worker for worker in live if worker.process.exitcode != 0]
        for worker in [] if quietly else failed:
            log.error(
                "worker %d (pid %d) exited with code %s",
                worker.slot,
                worker.pid,
                worker.process.exitcode,
            )
        return 1 if failed else 0

    async def _stop_one(self, worker: Worker) -> None:
        """A worker still starting is signalled once it listens, when its handlers are in
        place (before, the signal would kill it, or stop it half-way); one that cannot
        start stops by itself."""
        if not worker.node:
            with contextlib.suppress(StartupError):
                await self._ready(worker)
        if worker.node and worker.process.exitcode is None:
            os.kill(worker.pid, self._signal)
        await _exit_code(worker.process)


async def _probe(settings: Settings) -> None:
    """Bind the port once without SO_REUSEPORT: a port in use, even by another group of
    SO_REUSEPORT sockets (another `--workers` server), is refused rather than joined."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            asyncio.Protocol, settings.host, settings.port, reuse_address=True
        )
    except OSError as error:
        raise cannot_listen(settings, error) from error
    server.close()
    await server.wait_closed()


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    readable = loop.create_future()

    def wake() -> None:
        loop.remove_reader(fd)
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await readable
    finally:
        loop.remove_reader(fd)


async def _exit_code(process: BaseProcess) -> int | None:
    """Once `process` has exited: its exit code (negative: the signal that ended it)."""
    await _readable(process.sentinel)
    process.join()
    return process.exitcode


def _work(settings: Settings, slot: int, report: Connection) -> None:
    """A worker process: the ordinary server, telling the parent when it listens.

    SIGTERM and SIGINT wait until the server can stop gracefully (`runner.serve`
    unblocks them): a terminal's Ctrl-C or a process manager's SIGTERM reaches the
    whole process group, workers still starting included."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    logs.configure(settings.log_level, worker=slot)
    try:
        run(_serve(settings, report))
    except (StartupError, StoreUnavailable) as error:
        reason = str(error)
        if isinstance(error, StoreUnavailable):
            reason = f"cannot open the message store: {reason}"
        if report.closed:  # it listened: the parent takes the exit for a death
            log.error("%s", reason)
        else:
            report.send(("failed", reason))
        raise SystemExit(1) from None


async def _serve(settings: Settings, report: Connection) -> None:
    stop = asyncio.Event()
    parent = multiprocessing.parent_process()
    assert parent is not None, "a worker is a child process"
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        loop.remove_reader(parent.sentinel)
        log.warning("the parent process is gone: stopping")
        stop.set()

    def started(server: RunningServer) -> None:
        report.send(("ready", server.node.id))
        report.close()

    loop.add_reader(parent.sentinel, orphaned)
    await serve(settings, started=started, stop=stop)
