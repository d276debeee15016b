"""The outbox's rule (soft time limit < hard time limit < lease) holds for the project's shipped defaults."""

import subprocess
import sys

from tests.support.processes import ROOT, process_env


def test_the_shipped_defaults_keep_the_rule():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=process_env(DJANGO_SETTINGS_MODULE="config.settings.base"),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
