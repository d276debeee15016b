"""Wait until the processes ``scripts/run_prod.sh`` started all answer: exit 0 then, 1 if they do not.

Ready means ``/healthz`` answers 200 (the web, its database and broker) and every Celery worker of
Procfile.prod (its ``-n NAME@%h``) answers a ping over the broker. Gives up after RUN_PROD_START_SECONDS
(120), or at once when honcho (the pid given) has exited: one of its processes stopped, and it stopped them all.
"""

import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker_nodes(procfile: Path) -> set[str]:
    """The node names of the Procfile's Celery workers, as they answer a ping (``%h``: this host's name)."""
    names = re.findall(r"celery .* worker .*-n (\S+)", procfile.read_text())
    return {name.replace("%h", socket.gethostname()) for name in names}


def alive(pid: int) -> bool:
    """Whether the process runs: an exited honcho stays a zombie until the script reaps it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def health_url() -> str:
    """``/healthz`` where the web listens: WEB_BIND if set (any address read as loopback), else loopback's PORT."""
    bind = os.environ.get("WEB_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
    host, port = bind.rsplit(":", 1)
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}/healthz"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def main() -> int:
    honcho = int(sys.argv[1])
    deadline = time.monotonic() + float(os.environ.get("RUN_PROD_START_SECONDS", "120"))
    expected = worker_nodes(ROOT / "Procfile.prod")

    from config.celery_app import app

    url, web, answered = health_url(), False, set()
    while time.monotonic() < deadline:
        if not alive(honcho):
            print("run-prod: a process stopped while starting (see its lines above); honcho stopped them all")
            return 1
        web = web or healthy(url)
        if answered != expected:
            answered |= {node for reply in app.control.ping(timeout=1.0) for node in reply} & expected
        if web and answered == expected:
            return 0
        time.sleep(0.5)
    missing = ([] if web else ["the web (/healthz)"]) + sorted(expected - answered)
    print(f"run-prod: not up after {os.environ.get('RUN_PROD_START_SECONDS', '120')} s: {', '.join(missing)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
