"""Real Celery workers, beat and relay processes for tests of asynchronous delivery.

They run the project's own commands (``celery -A config worker``, ``celery -A
config beat``, ``manage.py outbox_relay``) against the test database and the
test Redis (or the ``broker_url`` given), so what a test proves is what
production does. The project is the one the suite runs in: the shop's by
default, or the one its settings name (``TEST_CELERY_APP``, ``TEST_MANAGE_PY``:
the outbox's own, tests/outbox/project, runs ``celery -A tests.outbox.project``
and its own ``manage.py``). ``start_*`` waits until the process is ready; ``launch_*``
does not, so several start at once and :func:`wait_until_ready` waits for each
(``tests/support/system.py`` starts the whole system so).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
ALL_QUEUES = "outbox,orders,payments,inventory,shipping,notifications,probe"


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "",
) -> object:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds.

    ``what`` says what was awaited; a callable (e.g. a process's log) is called on failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said or condition}")
        time.sleep(interval)


def celery_app() -> str:
    """The ``-A`` of the project's Celery app: ``config``, or the one the settings name."""
    return getattr(settings, "TEST_CELERY_APP", "config")


def manage_py() -> list[str]:
    """The start of a ``manage.py`` command line of the project (its own script: errors name ``manage.py``)."""
    return [sys.executable, getattr(settings, "TEST_MANAGE_PY", "manage.py")]


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process: test settings, pointed at the test database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.test"),  # pytest's --ds
        "TEST_DATABASE_URL": url,
        "PYTHONUNBUFFERED": "1",
        "CELERY_SKIP_CHECKS": "1",
    }
    env.update(overrides)
    return env


class ChildProcess:
    """A child process whose output goes to a log file the test can show on failure."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, ready_when: str = "") -> None:
        self.name = name
        self.ready_when = ready_when  # what its log says once it is ready (see ``ready``)
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        """Whether its log says it is ready; fails with the log when it has exited instead."""
        if not self.alive():
            raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
        return self.ready_when in self.output()

    def leftovers(self) -> list[int]:
        """Processes of its group still alive (pool children, a straggler): none after ``stop`` or ``kill``.

        Process ids wrap (pid_max is 32768 here): once its own processes are all
        gone, another session's leader may get the same id, and its group is not ours.
        """
        members = group_members(self.proc.pid)
        if self.proc.poll() is not None and self.proc.pid in members:
            return []
        return members

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole process group (a worker's pool children too); SIGKILL stragglers."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill()  # stragglers of its group, or all of it after the timeout

    def kill(self) -> None:
        """SIGKILL its whole group; a no-op once nothing of it is left (its id may be another's by then)."""
        if self.alive() or self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def send(self, sig: signal.Signals, *, whole_group: bool = False) -> None:
        """Send ``sig`` to the main process only (as ``docker stop`` does), or to its whole group while it runs."""
        with contextlib.suppress(ProcessLookupError):
            if whole_group and self.alive():
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)  # a no-op once it has exited

    def terminate(self, timeout: float = 30.0) -> None:
        """A graceful shutdown: SIGTERM the main process only, wait for it; SIGKILL what is left after ``timeout``.

        A Celery worker then finishes the tasks it runs (warm shutdown) while its
        pool children are left to it, unlike :meth:`stop`, which signals them all.
        """
        self.send(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill()  # what it left of its group, or all of it after the timeout


def start_worker(**options: Any) -> ChildProcess:
    """Start ``celery worker`` (the options of :func:`launch_worker`) and wait until it is ready to consume."""
    return wait_until_ready(launch_worker(**options))


def launch_worker(
    *,
    queues: str = ALL_QUEUES,
    concurrency: int = 2,
    pool: str = "prefork",
    broker_url: str = "",
    application_name: str = "",
    **env: str,
) -> ChildProcess:
    """Start ``celery worker`` without waiting: several start in parallel, then :func:`wait_until_ready`.

    ``broker_url`` replaces the test broker; ``application_name`` names its
    PostgreSQL connections (see :func:`role_env`).
    """
    node = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [
        sys.executable, "-m", "celery", "-A", celery_app(), "worker", "-Q", queues, "-c", str(concurrency),
        "-P", pool, "-n", node, "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    worker_env = process_env(**role_env(broker_url, application_name), **env)
    worker = ChildProcess(application_name or "worker", argv, worker_env, ready_when=" ready.")
    worker.node = node
    return worker


def wait_until_ready(process: ChildProcess, *, timeout: float = 60) -> ChildProcess:
    """Wait until a process started by a ``launch_*`` function is ready; stop it and fail with its log if not."""
    try:
        wait_for(process.ready, timeout=timeout, interval=0.1, what=f"{process.name} to start")
    except AssertionError:
        process.stop()
        raise AssertionError(f"{process.name} did not start:\n{process.output()[-3000:]}") from None
    return process


def role_env(broker_url: str = "", application_name: str = "") -> dict[str, str]:
    """Environment overrides pointing a child process at ``broker_url`` and naming its database connections.

    ``PGAPPNAME`` is read by libpq for every connection the process opens, the
    relay's raw LISTEN connection included (a ``?application_name=`` on the
    database URL would reach only Django's); a fault then terminates exactly one
    role's connections (``tests.support.database.terminate_connections``).
    """
    env = {}
    if broker_url:
        env["TEST_BROKER_URL"] = broker_url
    if application_name:
        env["PGAPPNAME"] = application_name
    return env


def start_relay(
    *, poll_seconds: float = 0.05, broker_url: str = "", application_name: str = "", **env: str
) -> ChildProcess:
    """Start ``manage.py outbox_relay`` and wait until it listens."""
    relay = launch_relay(poll_seconds=poll_seconds, broker_url=broker_url, application_name=application_name, **env)
    wait_for(lambda: "outbox relay:" in relay.output() or not relay.alive(), timeout=30, what="the relay to start")
    assert relay.alive(), relay.output()
    return relay


def launch_relay(
    *, poll_seconds: float = 0.05, broker_url: str = "", application_name: str = "", **env: str
) -> ChildProcess:
    """Start ``manage.py outbox_relay`` without waiting (see :func:`wait_until_ready`)."""
    argv = [*manage_py(), "outbox_relay", "--poll-seconds", str(poll_seconds)]
    relay_env = process_env(**role_env(broker_url, application_name), **env)
    return ChildProcess(application_name or "relay", argv, relay_env, ready_when="outbox relay:")


def start_beat(*, broker_url: str = "", application_name: str = "", **env: str) -> ChildProcess:
    """Start ``celery beat`` (the relay sweep) and wait until it runs its schedule."""
    return wait_until_ready(launch_beat(broker_url=broker_url, application_name=application_name, **env))


def launch_beat(*, broker_url: str = "", application_name: str = "", **env: str) -> ChildProcess:
    """Start ``celery beat`` without waiting, its schedule file in a folder of its own (not ``var/``)."""
    schedule = Path(tempfile.mkdtemp(prefix="beat-")) / "celerybeat-schedule"
    argv = [sys.executable, "-m", "celery", "-A", celery_app(), "beat", "-s", str(schedule), "--loglevel", "INFO"]
    beat_env = process_env(**role_env(broker_url, application_name), **env)
    return ChildProcess(application_name or "beat", argv, beat_env, ready_when="beat: Starting...")


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group: what a stop must leave empty."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members
