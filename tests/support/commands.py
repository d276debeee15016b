"""``manage.py`` as an operator runs it: a process of its own on the test database, with its exit code and output."""

import subprocess

from tests.support.processes import ROOT, manage_py, process_env


def manage(*args: str) -> subprocess.CompletedProcess:
    """Run ``python manage.py <args>`` on the test settings and database; it sees only committed rows."""
    return subprocess.run(
        [*manage_py(), *args], cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=120
    )


def publish_in_a_process(event: str, *, count: int = 1, **env: str) -> None:
    """Publish ``count`` probe events in one transaction of a ``manage.py`` process of its own, with ``env``.

    ``event`` is an expression over ``tests.outbox.probe.events`` and ``uuid``,
    e.g. ``"Flaked(thing_id=uuid.uuid4())"``. With OUTBOX_DISPATCH_ON_COMMIT the
    tasks go through that process's broker, which a test may point elsewhere.
    """
    code = (
        "import uuid\nfrom django.db import transaction\nfrom outbox.publishing import publish\n"
        "from tests.outbox.probe.events import *\n"
        f"with transaction.atomic():\n    [publish({event}) for _ in range({count})]\n"
    )
    subprocess.run(
        [*manage_py(), "shell", "-c", code],
        cwd=ROOT, env=process_env(**env), check=True, timeout=60, capture_output=True,
    )  # fmt: skip
