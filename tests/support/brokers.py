"""Brokers of a test's own, to stop, crash and restart empty: never the shared ones.

Both kinds have one shape (:class:`Broker`), so a fault test or the chaos driver
is parametrized by broker kind and does not care which it has::

    broker = start_broker("rabbitmq")        # or "redis"; System(broker="rabbitmq") starts and owns one
    broker.restart_empty(down_for=10)        # an outage that loses every queue and message
    broker.remove()

A :class:`RabbitMQNode` is a whole ``rabbitmq-server`` node of its own (own
node name, AMQP and distribution ports on loopback, data and log folders in a
temporary folder, no plugins), beside the shared node on 5672, which keeps
running. Measured on the 2-core machine, idle: a start takes 4.3-5.0 s to the
first AMQP connection (6-8 s while other tests run), a stop 1.1 s, a kill
0.02 s. Loading Erlang code is most of a start, so the node sees only the
applications ``rabbit`` needs (a third faster than the whole plugins folder).
It registers its name with the machine's epmd (the shared node's), and
starts one that outlives it if none runs.
"""

import contextlib
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

from tests.support.processes import ChildProcess, wait_for
from tests.support.web import RedisServer, free_port

RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


@runtime_checkable
class Broker(Protocol):
    """A broker a test owns: it can go away and come back on the same URL."""

    kind: str  # "redis" or "rabbitmq": for test ids and messages
    url: str  # what CELERY_BROKER_URL / TEST_BROKER_URL is set to
    process: ChildProcess | None  # the server's process while it runs

    def start(self) -> "Broker":
        """Start it (again, on the same port) and wait until it answers."""

    def stop(self) -> None:
        """Stop it gracefully; returns once its processes are gone."""

    def kill(self) -> None:
        """SIGKILL it, as a crash would; returns once its processes are gone."""

    def restart_empty(self, *, down_for: float) -> None:
        """Stop it, stay down at least ``down_for`` seconds, start it with no queue or message kept."""

    def answers(self) -> bool:
        """Whether a client can connect now."""

    def logs(self) -> str:
        """The tail of its log, for a failure message."""

    def remove(self) -> None:
        """Kill it for good and delete what it kept on disk."""


def start_broker(kind: str) -> Broker:
    """A started broker of the given kind (``"redis"`` or ``"rabbitmq"``) on spare ports."""
    brokers = {"redis": RedisServer, "rabbitmq": RabbitMQNode}
    return brokers[kind]().start()


class RabbitMQNode:
    """A ``rabbitmq-server`` node of the test's own, on spare loopback ports.

    ``restart_empty`` wipes the node's database folder between stop and start,
    so it comes back with no queue, exchange binding or message: what a broker
    host replaced after a disk loss looks like to its clients.
    """

    kind = "rabbitmq"

    def __init__(self, *, port: int | None = None, dist_port: int | None = None) -> None:
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.node_name = f"oms-test-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.folder = Path(tempfile.mkdtemp(prefix="oms-rabbitmq-"))
        self.process: ChildProcess | None = None
        self._write_configuration()

    def start(self) -> "RabbitMQNode":
        self.process = ChildProcess("rabbitmq", [str(RABBITMQ_SCRIPTS / "rabbitmq-server")], self._env())
        try:
            wait_for(self._answers_or_exits, timeout=90, interval=0.1, what=f"RabbitMQ on port {self.port}")
        except AssertionError:
            self.kill()
            raise AssertionError(f"RabbitMQ node {self.node_name} did not start:\n{self.logs()}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)

    def kill(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.kill()

    def restart_empty(self, *, down_for: float) -> None:
        self.kill()
        gone_at = time.monotonic()
        shutil.rmtree(self.folder / "mnesia", ignore_errors=True)
        time.sleep(max(0.0, down_for - (time.monotonic() - gone_at)))
        self.start()

    def answers(self) -> bool:
        import kombu
        from kombu.exceptions import OperationalError

        try:
            with kombu.Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=0)  # one try: connect() sleeps 2 s before a second
        except (OSError, OperationalError):
            return False
        return True

    def logs(self) -> str:
        return f"--- rabbitmq {self.node_name} ---\n{self.process.output()[-4000:] if self.process else ''}"

    def remove(self) -> None:
        """Stop the node and delete its folder (data, logs, cookie)."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _answers_or_exits(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"RabbitMQ node {self.node_name} exited:\n{self.logs()}")
        return self.answers()

    def _write_configuration(self) -> None:
        """Its own config, plugin list and code folder, so nothing of /etc/rabbitmq applies."""
        (self.folder / "home").mkdir()
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "enabled_plugins").write_text("[].\n")
        # The classic format skips cuttlefish's schema translation at boot.
        (self.folder / "rabbitmq.config").write_text(
            f'[{{rabbit, [{{tcp_listeners, [{{"127.0.0.1", {self.port}}}]}}]}}].\n'
        )
        _link_rabbit_applications(self.folder / "code")

    def _env(self) -> dict[str, str]:
        folder = str(self.folder)
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "HOME": f"{folder}/home",  # where its Erlang cookie is made
            "RABBITMQ_CONF_ENV_FILE": f"{folder}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_PLUGINS_DIR": f"{folder}/code",
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia",
            "RABBITMQ_LOG_BASE": f"{folder}/log",
            "RABBITMQ_LOGS": "-",  # to the process's output, which ChildProcess keeps
            "RABBITMQ_PID_FILE": f"{folder}/rabbitmq.pid",
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",  # if this node has to start epmd itself
        }


def _link_rabbit_applications(code: Path) -> None:
    """Link into ``code`` the Erlang applications ``rabbit`` needs, and nothing else.

    RabbitMQ puts every application of its plugins folder on the code path and
    scans them all at boot; a shorter path loads faster.
    """
    plugins = _plugins_folder()
    folders = {_app_name(path): path for path in plugins.iterdir() if path.is_dir()}
    code.mkdir()
    needed, todo = set(), ["rabbit"]
    while todo:
        name = todo.pop()
        if name in needed or name not in folders:  # not in the folder: an OTP application
            continue
        needed.add(name)
        (code / folders[name].name).symlink_to(folders[name])
        todo.extend(_dependencies(folders[name], name))


def _plugins_folder() -> Path:
    found = sorted((RABBITMQ_SCRIPTS.parent / "lib").glob("rabbitmq_server-*/plugins"))
    assert found, f"no RabbitMQ installation under {RABBITMQ_SCRIPTS.parent / 'lib'}"
    return found[-1]


def _app_name(folder: Path) -> str:
    return re.sub(r"-[0-9][^-]*$", "", folder.name)


def _dependencies(folder: Path, name: str) -> list[str]:
    """The ``applications`` (and ``included_applications``) of an application's ``.app`` file."""
    with contextlib.suppress(FileNotFoundError):
        app = (folder / "ebin" / f"{name}.app").read_text()
        lists = re.findall(r"\{(?:included_)?applications,\s*\[([^\]]*)\]", app)
        return [dep.strip() for deps in lists for dep in deps.split(",") if dep.strip()]
    return []
