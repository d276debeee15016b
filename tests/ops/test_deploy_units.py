"""The systemd units of deploy/systemd/units are what Procfile.prod and the templates make of them, and sound.

They are generated (deploy/systemd/export.sh: honcho export with our templates), so a Procfile change that
was not exported fails here; each unit runs its Procfile line exactly, through systemd's and sh's expansions,
and stops the way each program needs (Celery's warm shutdown: SIGTERM to the main process only, time for the
longest task to end).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import base
from tests.support.processes import ROOT

UNITS = ROOT / "deploy" / "systemd" / "units"
PROCFILE = dict(re.findall(r"^([A-Za-z0-9_-]+):\s*(.+)$", (ROOT / "Procfile.prod").read_text(), re.MULTILINE))
GUNICORN_GRACEFUL_TIMEOUT = 30  # gunicorn's default --graceful-timeout, which Procfile.prod keeps


def _export(folder: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["sh", str(ROOT / "deploy" / "systemd" / "export.sh"), str(folder)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _service(kind: str) -> dict[str, str]:
    """The [Service] section of a kind's unit: each key's value; a repeated key's values one per line."""
    section, values = "", {}
    for line in (UNITS / f"oms-{kind}-1.service").read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = f"{values[key]}\n{value}" if key in values else value
    return values


def _argv(exec_start: str) -> list[str]:
    """ExecStart's command line as systemd hands it to the program: quotes removed, $$ and %% undone."""
    return [word.replace("$$", "$").replace("%%", "%") for word in shlex.split(exec_start)]


def test_the_committed_units_are_what_export_makes_of_procfile_prod(tmp_path):
    _export(tmp_path)
    made = {path.name: path.read_text() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_text() for path in UNITS.iterdir()}
    assert sorted(committed) == sorted(made), "run deploy/systemd/export.sh after changing Procfile.prod"
    for name, text in made.items():
        assert committed[name] == text, f"{name} differs from what deploy/systemd/export.sh makes: run it"
    assert {f"oms-{kind}-1.service" for kind in PROCFILE} <= set(committed)


@pytest.mark.parametrize("kind", sorted(PROCFILE))
def test_each_unit_runs_its_procfile_line_with_the_environment_file_and_is_restarted(kind):
    service = _service(kind)
    assert _argv(service["ExecStart"]) == ["/bin/sh", "-c", f"exec {PROCFILE[kind]}"]
    assert service["EnvironmentFile"] == "/etc/oms/oms.env"
    assert service["Restart"] == "always"
    assert service["KillMode"] == "mixed"  # SIGTERM to the main process only; SIGKILL to the rest at the timeout
    assert service["KillSignal"] == "SIGTERM"
    # manage.py (the relay's command) would run the local settings: the units name production's
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in service["Environment"].splitlines()


@pytest.mark.parametrize("kind", sorted(k for k in PROCFILE if k.startswith("worker")))
def test_a_worker_unit_leaves_celery_warm_shutdown_time_for_its_longest_task(kind):
    service = _service(kind)
    assert "--concurrency" in PROCFILE[kind]
    assert float(service["TimeoutStopSec"]) > base.CELERY_TASK_TIME_LIMIT + 10


def test_the_web_unit_leaves_gunicorn_its_graceful_timeout_and_reloads_on_hup():
    service = _service("web")
    assert float(service["TimeoutStopSec"]) > GUNICORN_GRACEFUL_TIMEOUT
    assert "--graceful-timeout" not in PROCFILE["web"]  # else the bound above is another
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_the_procfile_defaults_expand_through_the_units_shell(tmp_path):
    """Each ExecStart, run by sh with ``exec printf`` for ``exec``: the words the program gets, no $ left."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    words = {}
    for kind in PROCFILE:
        shell, flag, command = _argv(_service(kind)["ExecStart"])
        shown = subprocess.run(
            [shell, flag, command.replace("exec ", "exec printf '%s\\n' ", 1)], env=env, capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        words[kind] = shown.stdout.split()
        assert not any("$" in word for word in words[kind]), words[kind]
    assert words["web"][:4] == ["gunicorn", "config.wsgi", "--bind", "127.0.0.1:8000"]
    assert "-n" in words["worker-checkout"]
    assert words["worker-checkout"][words["worker-checkout"].index("-n") + 1] == "checkout@%h"  # Celery's %h


def test_systemd_accepts_every_unit():
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    units = sorted(str(path) for path in UNITS.iterdir())
    checked = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout + checked.stderr == "", checked.stdout + checked.stderr  # it warns on stderr, exit 0
