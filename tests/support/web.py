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
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.support.processes import ChildProcess, process_env, wait_for


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


def start_web(**env: str) -> WebServer:
    """Start gunicorn on a free loopback port and wait until it answers ``/healthz``."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", "1", "--threads", "8",
        "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-",
    ]  # fmt: skip
    server = WebServer(ChildProcess("web", argv, process_env(**env)), port)
    try:
        wait_for(lambda: _answers(server), timeout=60, interval=0.1, what="the web server to answer")
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
    """A throwaway ``redis-server`` on its own port: stop it to fail the broker, never the shared one."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ChildProcess | None = None

    def start(self) -> "RedisServer":
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]  # nothing kept: it starts empty every time
        self.process = ChildProcess("redis", argv, {})
        wait_for(self.answers, timeout=20, what=f"redis-server on port {self.port} to answer")
        return self

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``, as an operator stopping it would; then wait until the process is gone."""
        import redis

        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it goes
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown(nosave=True)
        wait_for(lambda: not self.process.alive(), timeout=20, what=f"redis-server on port {self.port} to exit")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
