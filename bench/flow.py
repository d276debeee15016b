"""Flow: orders placed and confirmed through the REST API, as deployed, until they are shipped.

Each configuration runs the real processes with its own environment, as a
deployment of it would: gunicorn (``--workers 4``, sync, as README's
production section), one Celery worker on every queue (``-c 2``, as the
Procfile), beat, and on (a) the relay process (``manage.py outbox_relay``)::

    pg_redis_relay  (a) PostgreSQL + Redis broker + Redis cache + relay process   (config.settings.production)
    pg_redis        (b) the same without the relay process                         (config.settings.production)
    pg_locmem       (c) PostgreSQL + Redis broker, no CACHE_URL (locmemcache://)    (config.settings.local, DEBUG=false)
    embedded        (d) SQLite + filesystem:// broker + locmem cache: `make run`   (config.settings.local)

Every configuration gets a fresh copy of a database migrated and seeded
(seed_demo's catalogue and the bench's own customer: ``bench.harness.seed_shop``)
once per process: a PostgreSQL ``CREATE DATABASE ... TEMPLATE``, or copies
of the SQLite files in a scratch ``VAR_DIR``; the Redis broker and
cache are the runner's (``BENCH_BROKER_URL``, ``BENCH_CACHE_URL``), flushed.

Figures, per configuration ``<c>``:
- ``<c>_p50_ms``, ``<c>_p99_ms``: confirm -> shipped at idle, one order at a
  time (place, confirm, wait until shipped), from the moment the confirm
  response is read to the order's ``shipped_at`` (set by the service that marks
  it shipped, in that transaction; both on this host's clock). p99 is the
  nearest rank, so the worst of fewer than 100 orders. ``<c>_idle_orders``: how
  many: ``BENCH_FLOW_IDLE_ORDERS`` (15) or as many as fit in
  ``BENCH_FLOW_IDLE_SECONDS`` (3 s), whichever comes first.
- ``<c>_orders_per_s`` (load phase): ``BENCH_FLOW_CLIENTS`` (8) API clients
  place and confirm orders for ``BENCH_FLOW_LOAD_SECONDS`` (4 s); orders shipped
  / (last ``shipped_at`` - load start). Baseline ``<c>_orders_per_s``: the same
  clients through the same gunicorn with no worker, beat or relay running (the
  API alone, place+confirm pairs per second); the ratio is end to end / API alone.
  ``<c>_load_p50_ms``: confirm -> shipped under that load.
- ``<c>_load_cpu_ms_per_order_<web|consumers|database>`` and
  ``<c>_api_alone_cpu_ms_per_order_<web|database>``: the CPU time an order cost
  gunicorn, the consumers (worker, beat, relay) and PostgreSQL in each phase;
  on one machine they share, end to end can reach the API alone only if what
  the consumers and their queries cost per order is next to nothing.
- ``<c>_consumer_crashes``: deployments of it whose worker, beat or relay died
  (or logged Celery's "Unrecoverable error"); a fresh deployment takes over
  (at most ``MAX_CRASHES`` times), the idle orders measured before it count.
  It should stay 0: the embedded default's worker used to stop now and then
  when kombu's filesystem transport read a message file its producer had
  created but not yet written (celery/kombu#1551), which
  config/filesystem_broker.py prevents by renaming each file into place.

The web is gunicorn on every configuration, the embedded one too (``make run``
has runserver). The load phase runs on ``BENCH_FLOW_LOAD`` configurations:
``pg_redis_relay`` by default, a comma-separated list, ``all`` or ``none``. One
run of the four idle phases and that load phase takes 70-90 s on this 2-core
machine (3 runs: about 4 minutes); ``all`` adds about 20 s per configuration.

Run alone (for development): ``python -m bench.flow [--smoke]``.
"""

import atexit
import contextlib
import http.client
import json
import math
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.processes import ChildProcess

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "outbox,orders,payments,inventory,shipping,notifications"
SKU = "PEN-BLUE"  # seed_demo's catalogue stocks 10,000; every configuration starts from a fresh copy
ADDRESS = {"name": "Bench", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
# Made by seed_shop with a password of this run's: no known password in a database on production settings.
CUSTOMER = {"username": "bench-customer", "password": secrets.token_urlsafe(16)}
# What the configurations set themselves: never inherited from the runner's environment.
OWN_VARIABLES = {
    "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SANDBOX_DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL",
    "EMAIL_URL", "VAR_DIR", "PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT", "CONN_MAX_AGE", "LOG_LEVEL", "CELERY_SKIP_CHECKS", "ALLOW_SANDBOX_PROVIDERS",
    "METRICS_TOKEN", "PAYMENTS_GATEWAY", "SHIPPING_CARRIER", "NUM_PROXIES",
}  # fmt: skip


@dataclass(frozen=True)
class Configuration:
    name: str
    settings: str
    relay: bool = False
    redis_cache: bool = False
    embedded: bool = False


CONFIGURATIONS = [
    Configuration("pg_redis_relay", "config.settings.production", relay=True, redis_cache=True),
    Configuration("pg_redis", "config.settings.production", redis_cache=True),
    Configuration("pg_locmem", "config.settings.local"),
    Configuration("embedded", "config.settings.local", embedded=True),
]


MAX_CRASHES = 3  # consumer deaths tolerated per configuration and run before the bench gives up


class BenchError(RuntimeError):
    pass


class ConsumerDied(BenchError):
    """A worker, beat or relay process died under the bench (or stopped consuming, saying so in its log)."""


def run(*, smoke: bool) -> dict:
    from bench import harness

    harness.setup_once()
    idle_orders = 3 if smoke else _env_int("BENCH_FLOW_IDLE_ORDERS", 15)
    idle_seconds = 8.0 if smoke else _env_float("BENCH_FLOW_IDLE_SECONDS", 3.0)
    load_seconds = 2.0 if smoke else _env_float("BENCH_FLOW_LOAD_SECONDS", 4.0)
    loaded = _loaded_configurations()
    figures: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for configuration in CONFIGURATIONS:
        measured, measured_base = _measure(configuration, idle_orders, idle_seconds, load_seconds, loaded)
        figures.update(measured)
        baseline.update(measured_base)
    ratio = {key: figures[key] / value for key, value in baseline.items() if value}
    return {"figures": figures, "baseline": baseline, "ratio": ratio, "targets": _targets(loaded)}


def _measure(
    configuration: Configuration, idle_orders: int, idle_seconds: float, load_seconds: float, loaded: set[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Its figures and baseline; a deployment whose consumer dies is counted, said, and replaced by a fresh one.

    A crash is a finding (as kombu's filesystem transport's was, celery/kombu#1551), so it is a figure; the
    orders shipped before it were measured all the same and count; a load phase it cut short runs again.
    """
    name = configuration.name
    latencies: list[float] = []
    figures: dict[str, float] = {}
    baseline: dict[str, float] = {}
    crashes = 0
    while True:
        try:
            with Deployment(configuration) as deployment:
                if len(latencies) < idle_orders:
                    deployment.idle(latencies, orders=idle_orders, seconds=idle_seconds)
                if name in loaded:
                    figures.update(deployment.load(seconds=load_seconds))
                    alone = deployment.api_alone(seconds=load_seconds)
                    baseline[f"{name}_orders_per_s"] = alone.pop(f"{name}_orders_per_s")
                    figures.update(alone)  # its CPU per order: figures, with no ratio
            break
        except ConsumerDied as died:
            crashes += 1
            print(f"bench.flow: {died}", file=sys.stderr)
            if crashes > MAX_CRASHES:
                raise
            if latencies:
                idle_orders = len(latencies)  # the time given to the idle phase is spent
    figures.update(
        {
            f"{name}_p50_ms": round(statistics.median(latencies), 1),
            f"{name}_p99_ms": round(_nearest_rank(latencies, 0.99), 1),
            f"{name}_idle_orders": len(latencies),
            f"{name}_consumer_crashes": crashes,
        }
    )
    return figures, baseline


def _targets(loaded: set[str]) -> dict[str, str]:
    targets = {}
    for configuration in CONFIGURATIONS:
        if configuration.embedded:
            targets[f"{configuration.name}_p50_ms"] = "< 1000"
        else:
            targets[f"{configuration.name}_p50_ms"] = "< 60"
            targets[f"{configuration.name}_p99_ms"] = "< 150"
        if configuration.name in loaded:
            targets[f"{configuration.name}_orders_per_s"] = ">= 1x baseline"
    return targets


def _loaded_configurations() -> set[str]:
    names = {c.name for c in CONFIGURATIONS}
    wanted = os.environ.get("BENCH_FLOW_LOAD", "pg_redis_relay").strip()
    if wanted == "all":
        return names
    chosen = {name.strip() for name in wanted.split(",") if name.strip() and name.strip() != "none"}
    if chosen - names:
        raise BenchError(f"BENCH_FLOW_LOAD={wanted!r}: give all, none or some of {', '.join(sorted(names))}")
    return chosen


# One configuration's processes and database ---------------------------------------------------------


class Deployment:
    """One configuration deployed: a fresh database, its processes; all of it gone on exit, even on error."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self.name = configuration.name
        self.consumers: list[ChildProcess] = []
        self.web: ChildProcess | None = None
        self.scratch = Path(tempfile.mkdtemp(prefix=f"bench-flow-{self.name}-"))
        self.database = ""
        self.port = _free_port()
        self.token = ""
        self.orders: OrderStore | None = None
        self.checked = 0.0  # when the consumers were last seen alive

    def __enter__(self) -> "Deployment":
        try:
            self._prepare_store()
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in [*self.consumers, self.web]:
            if process is not None:
                process.kill()  # its whole group; nothing of a bench's processes needs a graceful stop
        if self.database:
            _drop_database(self.database)
        for _ in range(50):  # a killed group's last members may still be writing in it for a moment
            shutil.rmtree(self.scratch, ignore_errors=True)
            if not self.scratch.exists():
                break
            time.sleep(0.1)
        if exc[0] is None:  # on error the logs stay, named in the message
            for process in [*self.consumers, self.web]:
                if process is not None:
                    process.log.unlink(missing_ok=True)

    # The environment ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        c = self.configuration
        env = {key: value for key, value in os.environ.items() if key not in OWN_VARIABLES}
        env = {key: value for key, value in env.items() if not key.startswith(("TEST_", "BENCH_"))}
        env.update(
            DJANGO_SETTINGS_MODULE=c.settings,
            VAR_DIR=str(self.scratch / "var"),
            PROMETHEUS_MULTIPROC_DIR=str(self.scratch / "prometheus"),
            EMAIL_URL="consolemail://",  # `make run`'s mail: no SMTP server here
            PYTHONUNBUFFERED="1",
            ORDER_PLACE_RATE="1000000/minute",  # one customer placing as fast as it can: not the per-user limit
        )
        if not c.embedded:
            env.update(DATABASE_URL=_database_url(self.database), CELERY_BROKER_URL=_broker_url())
        if c.redis_cache:
            env["CACHE_URL"] = _cache_url()
        if c.settings.endswith(".production"):
            # The secrets and hosts a deployment gives; plain HTTP on the loopback, no TLS proxy in front; the
            # sandbox providers, declared as a demo's (production refuses them otherwise).
            env.update(
                SECRET_KEY="bench-" + uuid.uuid4().hex,
                ALLOWED_HOSTS="127.0.0.1",
                SECURE_SSL_REDIRECT="false",
                ALLOW_SANDBOX_PROVIDERS="true",
                METRICS_TOKEN=uuid.uuid4().hex,
            )
        elif not c.embedded:
            env["DEBUG"] = "false"  # a deployment on the default settings module, not a developer's machine
        return env

    def _prepare_store(self) -> None:
        if self.configuration.embedded:
            template = _sqlite_template(self.env())
            (self.scratch / "var").mkdir()
            for file in template.glob("*.sqlite3*"):
                shutil.copy2(file, self.scratch / "var" / file.name)
        else:
            source = _postgres_template(self.env())
            self.database = f"{source.removesuffix('_tpl')}_{self.name}"
            _drop_database(self.database)
            _admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{source}"')
            _flush_redis()

    def _start(self) -> None:
        from tests.support.processes import ChildProcess, wait_for, wait_until_ready

        env = self.env()
        python = sys.executable
        gunicorn = [python, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers"]
        self.web = ChildProcess(
            f"flow-{self.name}-web", [*gunicorn, os.environ.get("BENCH_FLOW_WEB_WORKERS", "4")], env
        )
        worker = [python, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES, "--concurrency", "2"]
        worker += [
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"flow-{uuid.uuid4().hex[:8]}@%h",
        ]
        beat = [python, "-m", "celery", "-A", "config", "beat", "-s", str(self.scratch / "celerybeat-schedule")]
        self.consumers = [
            ChildProcess(f"flow-{self.name}-worker", worker, env, ready_when=" ready."),
            ChildProcess(f"flow-{self.name}-beat", [*beat, "--loglevel", "INFO"], env, ready_when="beat: Starting..."),
        ]
        if self.configuration.relay:
            relay = [python, "manage.py", "outbox_relay"]
            self.consumers.append(ChildProcess(f"flow-{self.name}-relay", relay, env, ready_when="outbox relay:"))
        for process in self.consumers:
            wait_until_ready(process, timeout=90)
        wait_for(self._answers, timeout=90, interval=0.1, what=self.logs)
        self.token = self.api("POST", "/api/auth/token/", CUSTOMER)["token"]
        self.orders = OrderStore(self)
        self.ship_one()  # warm-up, not measured: every process has imported, connected and run each handler once

    def _started_web(self) -> "ChildProcess":
        if self.web is None:
            raise BenchError(f"{self.name}: gunicorn is not started")
        return self.web

    def _started_orders(self) -> "OrderStore":
        if self.orders is None:
            raise BenchError(f"{self.name}: not started: its orders cannot be read")
        return self.orders

    def _answers(self) -> bool:
        web = self._started_web()
        if not web.alive():
            raise BenchError(f"gunicorn exited:\n{web.output()[-3000:]}")
        with contextlib.suppress(OSError):
            return self.api("GET", "/healthz", expect=(200,)) is not None
        return False

    def check_consumers(self, every: float = 0.0) -> None:
        """Raise :class:`ConsumerDied` if a consumer exited or logged an unrecoverable error (at most ``every`` s)."""
        if time.monotonic() < self.checked + every:
            return
        self.checked = time.monotonic()
        for process in self.consumers:
            if not process.alive() or "Unrecoverable error" in process.output():
                raise ConsumerDied(f"{self.name}: {process.name} died ({process.log}):\n{process.output()[-3000:]}")

    def logs(self) -> str:
        processes = [self.web, *self.consumers]
        return "\n".join(f"--- {p.name} ({p.log}) ---\n{p.output()[-2000:]}" for p in processes if p is not None)

    # The API, as a client --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict | None = None, *, expect: tuple = (200, 201, 202)) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status not in expect:
            raise BenchError(f"{method} {path} answered {response.status}: {data[:500]!r}")
        return json.loads(data)

    def place_and_confirm(self) -> tuple[str, float]:
        """Place an order and confirm it; its id and the time the confirm response was read."""
        lines = [{"sku": SKU, "quantity": 1}]
        order = self.api(
            "POST", "/api/orders/", {"lines": lines, "shipping_address": ADDRESS, "payment_token": "tok_visa"}
        )
        self.api("POST", f"/api/orders/{order['id']}/confirm/")
        return order["id"], time.time()

    def ship_one(self, timeout: float = 30.0) -> float:
        """One order placed, confirmed and shipped; confirm -> shipped in milliseconds."""
        order_id, confirmed = self.place_and_confirm()
        deadline = time.monotonic() + timeout
        while (shipped := self._started_orders().final([order_id]).get(order_id)) is None:
            if time.monotonic() > deadline:
                self.check_consumers()
                raise BenchError(f"{self.name}: order {order_id} not shipped after {timeout}s\n{self.logs()}")
            self.check_consumers(every=1.0)
            time.sleep(0.005)
        if isinstance(shipped, str):  # "cancelled"
            raise BenchError(f"{self.name}: order {order_id} was cancelled\n{self.logs()}")
        return (shipped - confirmed) * 1000

    # The phases ----------------------------------------------------------------------------------------

    def idle(self, latencies: list[float], *, orders: int, seconds: float) -> None:
        """Ship orders one at a time into ``latencies`` until it holds ``orders``, or ``seconds`` have passed."""
        stop_at = time.monotonic() + seconds
        while len(latencies) < orders and (not latencies or time.monotonic() < stop_at):
            latencies.append(self.ship_one())

    def load(self, *, seconds: float, drain_timeout: float = 90.0) -> dict[str, float]:
        cpu = self._cpu()
        started = time.time()
        confirmed = self._clients(seconds)
        deadline = time.monotonic() + drain_timeout
        orders = self._started_orders()
        while len(final := orders.final(list(confirmed))) < len(confirmed) and time.monotonic() < deadline:
            self.check_consumers(every=1.0)
            time.sleep(0.1)
        shipped = {order_id: at for order_id, at in final.items() if not isinstance(at, str)}  # not "cancelled"
        if not shipped:
            raise BenchError(f"{self.name}: none of {len(confirmed)} orders shipped under load\n{self.logs()}")
        return {
            f"{self.name}_orders_per_s": round(len(shipped) / (max(shipped.values()) - started), 1),
            f"{self.name}_load_orders": len(confirmed),
            f"{self.name}_load_not_shipped": len(confirmed) - len(shipped),
            f"{self.name}_load_p50_ms": round(
                statistics.median((shipped[o] - confirmed[o]) * 1000 for o in shipped), 1
            ),
            **self._cpu_per_order(cpu, len(confirmed), "load"),
        }

    def api_alone(self, *, seconds: float) -> dict[str, float]:
        for process in self.consumers:
            process.kill()
        cpu = self._cpu()
        started = time.time()
        confirmed = self._clients(seconds)
        return {
            f"{self.name}_orders_per_s": round(len(confirmed) / (time.time() - started), 1),
            **self._cpu_per_order(cpu, len(confirmed), "api_alone"),
        }

    # Where an order's CPU goes: what explains orders per second on a machine the web, the consumers and
    # the database share. Read before and after a phase; processes that exit meanwhile are not counted.

    def _cpu(self) -> dict[str, float]:
        from bench import harness

        consumers = [process.pid for process in self.consumers if process.alive()]
        return {
            "web": harness.cpu_seconds(pgids=[self._started_web().pid]),
            "consumers": harness.cpu_seconds(pgids=consumers) if consumers else 0.0,
            "database": harness.cpu_seconds(command="postgres"),
        }

    def _cpu_per_order(self, before: dict[str, float], orders: int, phase: str) -> dict[str, float]:
        """``<c>_<phase>_cpu_ms_per_order_<web|consumers|database>``: CPU milliseconds per order in the phase."""
        after = self._cpu()
        kinds = ("web", "database") if phase == "api_alone" else ("web", "consumers", "database")
        per_order = {kind: (after[kind] - before[kind]) * 1000 / max(orders, 1) for kind in kinds}
        return {f"{self.name}_{phase}_cpu_ms_per_order_{kind}": round(ms, 1) for kind, ms in per_order.items()}

    def _clients(self, seconds: float) -> dict[str, float]:
        """``BENCH_FLOW_CLIENTS`` clients placing and confirming for ``seconds``: order id -> confirm answered."""
        confirmed: dict[str, float] = {}
        errors: list[BaseException] = []
        stop_at = time.monotonic() + seconds

        def client() -> None:
            try:
                while time.monotonic() < stop_at:
                    order_id, at = self.place_and_confirm()
                    confirmed[order_id] = at
            except BaseException as error:  # reported below: a bench that hides failures measures nothing
                errors.append(error)

        threads = [threading.Thread(target=client) for _ in range(_env_int("BENCH_FLOW_CLIENTS", 8))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise BenchError(f"{self.name}: {len(errors)} API clients failed; the first: {errors[0]}\n{self.logs()}")
        return confirmed


class OrderStore:
    """Reads the orders' final state straight from the configuration's database: shipped_at as a Unix time."""

    def __init__(self, deployment: Deployment) -> None:
        self.embedded = deployment.configuration.embedded
        if self.embedded:
            self.path = deployment.scratch / "var" / "db.sqlite3"
        else:
            self.url = _database_url(deployment.database)

    def final(self, order_ids: list[str]) -> dict[str, float | str]:
        """Of ``order_ids``, those shipped (-> shipped_at) or cancelled (-> "cancelled")."""
        if self.embedded:  # SQLite keeps a UUID as 32 hex digits and a time as UTC text
            connection = sqlite3.connect(self.path, timeout=20)
            try:
                keys = {uuid.UUID(order_id).hex: order_id for order_id in order_ids}
                marks = ",".join("?" * len(keys))
                rows = connection.execute(
                    f"SELECT id, status, shipped_at FROM orders_order WHERE id IN ({marks}) "
                    "AND status IN ('shipped', 'cancelled')",
                    list(keys),
                ).fetchall()
            finally:
                connection.close()
            return {keys[id_]: _final(status, _sqlite_time(at)) for id_, status, at in rows}
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as server:
            found = server.execute(
                "SELECT id::text, status, shipped_at FROM orders_order WHERE id = ANY(%s::uuid[]) "
                "AND status IN ('shipped', 'cancelled')",
                [order_ids],
            ).fetchall()
        return {id_: _final(status, at.timestamp() if at else None) for id_, status, at in found}


def _final(status: str, shipped_at: float | None) -> float | str:
    if status != "shipped":
        return "cancelled"
    if shipped_at is None:
        raise BenchError("a shipped order without shipped_at: the bench cannot time it")
    return shipped_at


def _sqlite_time(text: str | None) -> float | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() if text else None


# Databases, migrated and seeded once per process (and dropped as it exits) ----------------------------

_postgres_templates: dict[str, str] = {}  # "postgres": the template database's name
_sqlite_templates: dict[str, Path] = {}  # "sqlite": the folder of the migrated, seeded stores


def _postgres_template(env: dict[str, str]) -> str:
    if "postgres" not in _postgres_templates:
        from django.db import connection

        name = f"{connection.settings_dict['NAME']}_flow_tpl"
        _drop_database(name)
        _admin(f'CREATE DATABASE "{name}"')
        _manage(env | {"DATABASE_URL": _database_url(name)}, "migrate", "--noinput")
        _seed(env | {"DATABASE_URL": _database_url(name)})
        _postgres_templates["postgres"] = name
        atexit.register(_drop_database, name)
    return _postgres_templates["postgres"]


def _sqlite_template(env: dict[str, str]) -> Path:
    if "sqlite" not in _sqlite_templates:
        var = Path(tempfile.mkdtemp(prefix="bench-flow-sqlite-"))
        atexit.register(shutil.rmtree, var, ignore_errors=True)
        env = env | {"VAR_DIR": str(var)}
        _manage(env, "migrate", "--noinput")
        _manage(env, "migrate", "--database", "sandbox", "--noinput")
        _seed(env)
        _sqlite_templates["sqlite"] = var
    return _sqlite_templates["sqlite"]


def _seed(env: dict[str, str]) -> None:
    """The catalogue and the bench's customer (not seed_demo: it makes a known-password superuser, DEBUG only)."""
    _manage(env, "shell", "-c", f"from bench.harness import seed_shop; seed_shop(password={CUSTOMER['password']!r})")


def _manage(env: dict[str, str], *args: str) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "manage.py", *args, "-v", "0"], cwd=ROOT, env=env, capture_output=True)
    if done.returncode:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{done.stdout.decode()}{done.stderr.decode()[-3000:]}")


def _database_url(name: str) -> str:
    from django.db import connection

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER'] or 'postgres'}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_database_url("postgres"), autocommit=True) as connection:
        connection.execute(sql)


def _drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _broker_url() -> str:
    from django.conf import settings

    return settings.CELERY_BROKER_URL


def _cache_url() -> str:
    from django.conf import settings

    location = settings.CACHES["default"].get("LOCATION", "")
    if not str(location).startswith("redis://"):
        raise BenchError(f"the runner's cache is not Redis ({location!r}): set BENCH_CACHE_URL")
    return location


def _flush_redis() -> None:
    import redis

    for url in {_broker_url(), _cache_url()}:
        redis.Redis.from_url(url).flushdb()


# Small helpers ---------------------------------------------------------------------------------------


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps({"bench": "flow", **run(smoke="--smoke" in sys.argv)}))
