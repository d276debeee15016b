"""Real Celery workers and relay processes for tests of asynchronous delivery.

They run the project's own commands (``celery -A config worker``,
``manage.py outbox_relay``) against the test database and the test Redis, so
what a test proves is what production does.
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


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process: test settings, pointed at the test database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": url,
        "PYTHONUNBUFFERED": "1",
        "CELERY_SKIP_CHECKS": "1",
    }
    env.update(overrides)
    return env


class ChildProcess:
    """A child process whose output goes to a log file the test can show on failure."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
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

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole process group (a worker's pool children too); SIGKILL stragglers."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        _reap_group(self.proc.pid)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _reap_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def start_worker(*, queues: str = ALL_QUEUES, concurrency: int = 2, pool: str = "prefork", **env: str) -> ChildProcess:
    """Start ``celery worker`` and wait until it says it is ready to consume."""
    node = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-c", str(concurrency),
        "-P", pool, "-n", node, "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    worker = ChildProcess("worker", argv, process_env(**env))
    try:
        wait_for(lambda: _ready(worker), timeout=60, interval=0.1, what=f"worker {node} to start")
    except AssertionError:
        worker.stop()
        raise AssertionError(f"worker did not start:\n{worker.output()[-3000:]}") from None
    worker.node = node
    return worker


def _ready(worker: ChildProcess) -> bool:
    if not worker.alive():
        raise AssertionError(f"worker exited:\n{worker.output()[-3000:]}")
    return " ready." in worker.output()


def start_relay(*, poll_seconds: float = 0.05, **env: str) -> ChildProcess:
    """Start ``manage.py outbox_relay`` and wait until it listens."""
    argv = [sys.executable, "manage.py", "outbox_relay", "--poll-seconds", str(poll_seconds)]
    relay = ChildProcess("relay", argv, process_env(**env))
    wait_for(lambda: "outbox relay:" in relay.output() or not relay.alive(), timeout=30, what="the relay to start")
    assert relay.alive(), relay.output()
    return relay
