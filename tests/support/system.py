"""The whole system as processes, as deployed: a broker of its own, two workers, beat, the relay, the web.

Every process runs the project's real command against the test database and
``System.broker``, with a log the failure message shows, and names its
PostgreSQL connections ``oms-<role>`` (``oms-worker-1``, ``oms-web``...), so
``tests.support.database.terminate_connections`` drops one role's. The chaos
driver starts one per run and injects its faults through it::

    with System(broker="rabbitmq", OUTBOX_LEASE_SECONDS="5") as system:   # a django_db(transaction=True) test
        shop = ShopClient(system.url)
        system.kill("worker-1")                 # SIGKILL its whole group: the host died
        system.start_role("worker-1")           # another worker in its place
        os.kill(system.pool_processes("worker-2")[0], signal.SIGKILL)   # one pool child, mid-handler
        system.terminate("relay")               # SIGTERM to the main process: a graceful stop
        system.broker.restart_empty(down_for=10)
        system.stop_workers(); ...; system.start_workers()
        terminate_connections("oms-worker")
        assert system.crashes() == []           # no process exited that the driver did not stop

Roles: ``worker-1``, ``worker-2`` (``workers=`` more), ``beat``, ``relay``,
``web``. Starting a role again starts a fresh process under the same name and
database ``application_name`` (a new Celery node name; the web on the same
port). Every process ever started stays in ``history`` for ``logs()``, for
``crashes()`` and for the check on ``stop()`` that no process of their groups
is left. With ``restart_crashed=True`` a process that exits by itself is
started again within a second, as systemd's ``Restart=always`` would, and
still counts in ``crashes()``.
"""

import contextlib
import signal
import subprocess
import threading
import time

from tests.support.brokers import Broker, start_broker
from tests.support.processes import (
    ChildProcess,
    group_members,
    launch_beat,
    launch_relay,
    launch_worker,
    wait_for,
    wait_until_ready,
)
from tests.support.web import WebServer, free_port, launch_web, wait_until_answering


class System:
    def __init__(
        self,
        *,
        broker: str = "redis",
        workers: int = 2,
        concurrency: int = 2,
        web_conn_max_age: int = 60,
        relay_poll_seconds: float = 0.05,
        restart_crashed: bool = False,
        **env: str,
    ) -> None:
        """``env`` goes to every process (e.g. ``OUTBOX_LEASE_SECONDS="5"``).

        The web keeps its database connections ``web_conn_max_age`` seconds, as
        in production (the test settings' default is 0).
        """
        self.broker_kind = broker
        self.broker: Broker | None = None
        self.worker_roles = [f"worker-{n}" for n in range(1, workers + 1)]
        self.concurrency = concurrency
        self.web_conn_max_age = web_conn_max_age
        self.relay_poll_seconds = relay_poll_seconds
        self.restart_crashed = restart_crashed
        self.env = env
        self.web_port = free_port()
        self.processes: dict[str, ChildProcess] = {}
        self.web: WebServer | None = None
        self.history: list[ChildProcess] = []
        # Seconds from launch to ready of each role's last start (started together: the last is the total).
        self.started_in: dict[str, float] = {}
        self._stopped_on_purpose: set[int] = set()  # pids the System was asked to kill or stop
        self._lock = threading.RLock()  # the supervisor and the driver's threads change processes
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.supervisor_failures: list[str] = []

    # -- life cycle -------------------------------------------------------------

    def start(self) -> "System":
        """Start the broker, then every process at once, and wait until each is ready."""
        self.broker = start_broker(self.broker_kind)
        try:
            self._start_roles([*self.worker_roles, "beat", "relay", "web"])
        except BaseException:
            self.stop()
            raise
        if self.restart_crashed:
            self._supervisor = threading.Thread(target=self._supervise, name="system-supervisor", daemon=True)
            self._supervisor.start()
        return self

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL to each group) and the broker, and check none is left."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            self._stopped_on_purpose.update(p.pid for p in self.history)
            _stop_together([p for p in self.history if p.alive()])
            for process in self.history:
                process.kill()
        if self.broker is not None:
            self.broker.remove()
        wait_for(lambda: not self._left_behind(), timeout=10, what=lambda: f"processes left: {self._left_behind()}")

    def __enter__(self) -> "System":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what a driver reads ----------------------------------------------------

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def roles(self) -> list[str]:
        return list(self.processes)

    def process(self, role: str) -> ChildProcess:
        return self.processes[role]

    def pool_processes(self, role: str) -> list[int]:
        """The pids of a worker's pool children (the processes that run handlers)."""
        main = self.processes[role].pid
        return [pid for pid in group_members(main) if pid != main]

    def crashes(self) -> list[ChildProcess]:
        """Processes that exited although nobody asked the System to stop them (pool children aside)."""
        with self._lock:
            return [p for p in self.history if not p.alive() and p.pid not in self._stopped_on_purpose]

    def logs(self, tail: int = 3000) -> str:
        """Every process's log tail, the replaced ones too, and the broker's: for a failure message."""
        parts = [f"--- {p.name} (pid {p.pid}, {_state(p)}) ---\n{p.output()[-tail:]}" for p in self.history]
        if self.broker is not None:
            parts.append(self.broker.logs())
        return "\n".join(parts)

    # -- faults -----------------------------------------------------------------

    def kill(self, role: str) -> None:
        """SIGKILL the role's whole process group (a worker's pool too), as a host or container dying."""
        with self._lock:
            self._stopped_on_purpose.add(self.processes[role].pid)
            self.processes[role].kill()

    def terminate(self, role: str, *, timeout: float = 30.0) -> None:
        """SIGTERM the role's main process only and wait for it: a graceful stop (SIGKILL after ``timeout``)."""
        with self._lock:
            self._stopped_on_purpose.add(self.processes[role].pid)
            self.processes[role].terminate(timeout)

    def start_role(self, role: str) -> ChildProcess:
        """Start a fresh process for a role whose process is gone, and wait until it is ready."""
        with self._lock:
            assert not self.processes[role].alive(), f"{role} is still running: kill or terminate it first"
            self._start_roles([role])
            return self.processes[role]

    def restart(self, role: str, *, graceful: bool = True) -> ChildProcess:
        with self._lock:
            if graceful:
                self.terminate(role)
            else:
                self.kill(role)
            return self.start_role(role)

    def stop_workers(self, *, graceful: bool = True) -> None:
        """Stop every worker: SIGTERMs (warm shutdowns) sent together, or SIGKILLs."""
        with self._lock:
            workers = [self.processes[role] for role in self.worker_roles]
            self._stopped_on_purpose.update(worker.pid for worker in workers)
            if graceful:
                _stop_together(workers, group=False)
            for worker in workers:
                worker.kill()

    def start_workers(self) -> None:
        with self._lock:
            self._start_roles([role for role in self.worker_roles if not self.processes[role].alive()])

    # -- starting ---------------------------------------------------------------

    def _start_roles(self, roles: list[str]) -> None:
        began = time.monotonic()
        launched = {role: self._launch(role) for role in roles}
        for role, process in launched.items():
            self.processes[role] = process
            self.history.append(process)
        for role, process in launched.items():
            if role == "web":
                wait_until_answering(self.web)
            else:
                wait_until_ready(process)
            self.started_in[role] = time.monotonic() - began

    def _launch(self, role: str) -> ChildProcess:
        common = {"broker_url": self.broker.url, "application_name": f"oms-{role}", **self._env()}
        if role == "web":
            self.web = launch_web(port=self.web_port, CONN_MAX_AGE=str(self.web_conn_max_age), **common)
            return self.web.process
        if role == "beat":
            return launch_beat(**common)
        if role == "relay":
            return launch_relay(poll_seconds=self.relay_poll_seconds, **common)
        return launch_worker(concurrency=self.concurrency, **common)

    def _env(self) -> dict[str, str]:
        """Every process's settings: the broker's own cache where it has one (Redis: database 1), then ``env``."""
        cache_url = getattr(self.broker, "cache_url", "")
        return {**({"TEST_CACHE_URL": cache_url} if cache_url else {}), **self.env}

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            with self._lock:
                crashed = [role for role, p in self.processes.items() if p in self.crashes()]
                if crashed and not self._stopping.is_set():
                    try:
                        self._start_roles(crashed)
                    except AssertionError as failure:  # it did not come up: the next round tries again
                        self.supervisor_failures.append(str(failure))

    def _left_behind(self) -> dict[str, list[int]]:
        return {p.name: p.leftovers() for p in self.history if p.leftovers()}


def _stop_together(processes: list[ChildProcess], *, group: bool = True, timeout: float = 20.0) -> None:
    """SIGTERM them all at once (each whole group, or the main processes only), then wait; SIGKILL stragglers."""
    for process in processes:
        process.send(signal.SIGTERM, whole_group=group)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.proc.wait(max(0.1, deadline - time.monotonic()))
        process.kill()


def _state(process: ChildProcess) -> str:
    code = process.proc.poll()
    return "running" if code is None else f"exited {code}"
