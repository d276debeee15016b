"""A real web server (gunicorn, as in production) and throwaway Redis servers, for tests over HTTP.

The server runs the project's WSGI app against the test database (see
``process_env``), so what a browser or HTTP client sees is what a deployment
serves; tests that use it must be ``django_db(transaction=True)`` so the
server sees what they write.
"""

import contextlib
import json
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.support.processes import ChildProcess, process_env, role_env, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http_get(url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None) -> HttpAnswer:
    """GET ``url``; any HTTP status is an answer, not an exception."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers), error.read())


class WebServer:
    def __init__(self, process: ChildProcess, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **kwargs) -> HttpAnswer:
        return http_get(self.url + path, **kwargs)

    def logs(self) -> str:
        return f"--- web ---\n{self.process.output()[-4000:]}"

    def stop(self) -> None:
        self.process.stop()


def start_web(*, broker_url: str = "", application_name: str = "", **env: str) -> WebServer:
    """Start gunicorn on a free loopback port and wait until it answers ``/healthz``.

    ``broker_url`` replaces the test broker; ``application_name`` names its
    PostgreSQL connections (see ``tests.support.processes.role_env``).
    """
    return wait_until_answering(launch_web(broker_url=broker_url, application_name=application_name, **env))


def launch_web(*, broker_url: str = "", application_name: str = "", port: int | None = None, **env: str) -> WebServer:
    """Start gunicorn without waiting (see :func:`wait_until_answering`); ``port`` to come back on the same one."""
    port = port or free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", "1", "--threads", "8",
        "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-",
    ]  # fmt: skip
    web_env = process_env(**role_env(broker_url, application_name), **env)
    return WebServer(ChildProcess(application_name or "web", argv, web_env), port)


def wait_until_answering(server: WebServer, *, timeout: float = 60) -> WebServer:
    """Wait until a launched web server answers ``/healthz`` (any status); stop it and fail with its log if not."""
    try:
        wait_for(lambda: _answers(server), timeout=timeout, interval=0.1, what="the web server to answer")
    except AssertionError:
        server.stop()
        raise AssertionError(f"the web server did not start:\n{server.logs()}") from None
    return server


def _answers(server: WebServer) -> bool:
    if not server.process.alive():
        raise AssertionError(f"the web server exited:\n{server.logs()}")
    try:
        server.get("/healthz", timeout=5)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return True


class RedisServer:
    """A throwaway ``redis-server`` on its own port: stop it to fail the broker, never the shared one.

    It keeps nothing on disk, so every start is empty. A ``Broker`` of
    ``tests/support/brokers.py``; measured start to first PING about 0.05 s, stop 0.02 s.
    """

    kind = "redis"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # The production layout: the cache in the same server as the broker, another database.
        self.cache_url = f"redis://127.0.0.1:{self.port}/1"
        self.process: ChildProcess | None = None

    def start(self) -> "RedisServer":
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]  # nothing kept: it starts empty every time
        self.process = ChildProcess("redis", argv, {})
        wait_for(self.answers, timeout=20, what=f"redis-server on port {self.port} to answer")
        return self

    def answers(self) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One try: redis-py's default retries take 4 s to say a stopped server is down.
        client = redis.Redis(port=self.port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``, as an operator stopping it would; then wait until the process is gone."""
        import redis

        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it goes
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown(nosave=True)
        wait_for(lambda: not self.process.alive(), timeout=20, what=f"redis-server on port {self.port} to exit")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.kill()

    def restart_empty(self, *, down_for: float) -> None:
        """Kill it, stay down ``down_for`` seconds, start it again on the same port with nothing kept."""
        self.kill()
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        self.kill()  # it keeps nothing on disk

    def logs(self) -> str:
        return f"--- redis :{self.port} ---\n{self.process.output()[-4000:] if self.process else ''}"
