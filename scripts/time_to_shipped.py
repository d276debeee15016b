"""Time a newcomer's first order: from `make run` on a fresh var/ to a shipped order, over HTTP.

Each run starts `make run` in a scratch VAR_DIR (a fresh var/: new SQLite
databases, broker folders and cache) on a free port, waits for the web to
answer, signs in as seed_demo's customer over the API, places and confirms an
order, and polls the order until it is shipped; then it places ``--orders - 1``
more, one at a time, for the steady-state time from placing to shipped. Ctrl-C
(SIGINT to honcho) stops the run's processes before the next starts.

    python scripts/time_to_shipped.py [--runs 5] [--orders 3]

Prints each run and the medians: make run -> web answering, make run -> first
order shipped, and placed -> shipped for every order. Needs the venv `make run`
makes (its first run installs it; that run is not timed apart, so run once before).
"""

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUSTOMER = {"username": "customer", "password": "customer-demo-pass"}  # seed_demo's (config/management/commands)
ORDER = {
    "lines": [{"sku": "PEN-BLUE", "quantity": 1}, {"sku": "MUG-CERAMIC", "quantity": 1}],
    "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Ghent", "postal_code": "9000", "country": "BE"},
    "payment_token": "tok_visa",
}
FINAL = ("shipped", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        conn.close()


def wait_until(condition, deadline: float, what: str):
    while True:
        with contextlib.suppress(OSError, ValueError):
            result = condition()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.01)


def ship_one(port: int, token: str, payment_token: str, timeout: float = 30.0) -> tuple[float, str]:
    """Place and confirm an order; seconds from placing it to its final status, and that status."""
    start = time.monotonic()
    status, order = request(port, "POST", "/api/orders/", {**ORDER, "payment_token": payment_token}, token)
    assert status == 201, (status, order)
    status, confirmed = request(port, "POST", f"/api/orders/{order['id']}/confirm/", {}, token)
    assert status in (200, 202), (status, confirmed)

    def final():
        status, now = request(port, "GET", f"/api/orders/{order['id']}/", token=token)
        return now["status"] if status == 200 and now["status"] in FINAL else None

    result = wait_until(final, start + timeout, f"order {order['id']} to ship")
    return time.monotonic() - start, result


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU time so far of a process and its live descendants (Linux /proc).

    honcho starts each process in a session of its own, so a process group would miss them.
    """
    parent, ticks = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, ...; utime and stime at 11, 12
            pid = int(stat.parent.name)
            parent[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    total = 0
    for pid in ticks:
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor == root:
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")


def one_run(orders: int, log: Path, token_name: str, idle: float) -> dict[str, object]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="time-to-shipped-") as var_dir:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "CELERY_", "CACHE_URL", "TEST_", "PROMETHEUS_", "DJANGO_SETTINGS"))
        }
        env.update(VAR_DIR=var_dir, PORT=str(port))
        start = time.monotonic()
        with log.open("w") as out:
            make = subprocess.Popen(
                ["make", "--no-print-directory", "run", f"PORT={port}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: request(port, "GET", "/healthz")[0] == 200, start + 120, "the web to answer")
            web = time.monotonic() - start
            status, body = request(port, "POST", "/api/auth/token/", CUSTOMER)
            assert status == 200, (status, body)
            token = body["token"]
            shipped = []
            for _ in range(orders):
                seconds, final = ship_one(port, token, token_name)
                assert final == "shipped", final
                if not shipped:
                    first = time.monotonic() - start
                shipped.append(seconds)
            result = {"web": web, "first_shipped": first, "placed_to_shipped": shipped}
            if idle:
                before, at = tree_cpu_seconds(make.pid), time.monotonic()
                time.sleep(idle)  # a measurement window, not a wait for anything
                result["idle_cpu"] = (tree_cpu_seconds(make.pid) - before) / (time.monotonic() - at)
            return result
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--orders", type=int, default=3, help="orders per run, one at a time")
    parser.add_argument("--payment-token", default="tok_visa", help="tok_flaky fails the first payment attempt")
    parser.add_argument(
        "--idle-cpu", type=float, default=0, metavar="SECONDS", help="then measure the idle processes' CPU this long"
    )
    args = parser.parse_args()
    log = Path(tempfile.gettempdir()) / "time-to-shipped.log"
    results = []
    for run in range(1, args.runs + 1):
        try:
            result = one_run(args.orders, log, args.payment_token, args.idle_cpu)
        except (AssertionError, TimeoutError) as exc:
            print(f"run {run}: failed ({exc!r}); make run's output: {log}", file=sys.stderr)
            return 1
        results.append(result)
        each = ", ".join(f"{s:.2f}" for s in result["placed_to_shipped"])
        print(
            f"run {run}: web answering {result['web']:.2f} s, first order shipped {result['first_shipped']:.2f} s "
            f"after make run; placed -> shipped: {each} s"
            + (f"; idle CPU {result['idle_cpu']:.1%} of a core" if "idle_cpu" in result else ""),
            flush=True,
        )
    every_order = [s for r in results for s in r["placed_to_shipped"]]
    print(
        f"median of {len(results)} runs: web answering {statistics.median(r['web'] for r in results):.2f} s, "
        f"make run -> first order shipped {statistics.median(r['first_shipped'] for r in results):.2f} s; "
        f"placed -> shipped {statistics.median(every_order):.3f} s (median of {len(every_order)} orders, "
        f"max {max(every_order):.3f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
