"""``manage.py`` as an operator runs it: a process of its own on the test database, with its exit code and output."""

import subprocess
import sys

from tests.support.processes import ROOT, process_env


def manage(*args: str) -> subprocess.CompletedProcess:
    """Run ``python manage.py <args>`` on the test settings and database; it sees only committed rows."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=120
    )
