"""`make run`'s banner: once the web answers, the URLs and the demo users, after the processes' start-up output.

A Procfile process (honcho stops them all when one exits, so it stays, idle,
until Ctrl-C). The demo users are seed_demo's own list, so the passwords shown
are the ones it set.
"""

import http.client
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def web_answers(port: int) -> bool:
    """Any HTTP answer from /healthz (a 503 too: the web is up, the page says what is not)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def workers_answer(names: set[str]) -> bool:
    """Every worker of the Procfile answers a ping (its start-up output is then behind us)."""
    from config.celery_app import app

    replies = app.control.ping(timeout=0.5)
    return names <= {name.split("@")[0] for reply in replies for name in reply}


def wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def banner(port: int) -> str:
    import django

    django.setup()
    from config.management.commands.seed_demo import DEMO_USERS

    base = f"http://127.0.0.1:{port}"
    users = [f"  {'Staff' if staff else 'Customer'} sign-in:  {name} / {pw}" for name, pw, staff in DEMO_USERS]
    return "\n".join(
        [
            "",
            "=" * 72,
            f"  Shop:        {base}/",
            f"  Admin:       {base}/admin/",
            f"  API schema:  {base}/api/schema/  (docs: {base}/api/docs/)",
            *users,
            "  Payment tokens: tok_visa, tok_decline, tok_flaky.  Ctrl-C stops everything.",
            "=" * 72,
            "",
        ]
    )


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000  # not $PORT: honcho gives each process a PORT of its own
    if not wait(lambda: web_answers(port), 120):
        print(f"banner: the web did not answer on port {port} within 120 s; see web.1's output above", flush=True)
    else:
        text = banner(port)
        if not wait(lambda: workers_answer({"worker", "replay"}), 60):
            print("banner: a worker did not answer a ping within 60 s; see its output above", flush=True)
        print(text, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
