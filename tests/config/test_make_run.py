"""`make run`'s newcomer paths: a port in use stops it before anything starts; the banner shows the demo users."""

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

from config.management.commands.seed_demo import DEMO_USERS
from tests.support.processes import ROOT


def test_make_run_on_a_port_in_use_says_which_port_to_use_and_starts_nothing(tmp_path):
    # given something listening on a port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when make run is asked for it (with this venv, and a var/ of its own)
        venv = Path(sys.executable).parent.parent
        result = subprocess.run(
            ["make", "--no-print-directory", "run", f"PORT={port}", f"VENV={venv}"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    # then it stops at once, naming the port and the command to use instead, having started nothing
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr, result.stderr
    assert f"run `make run PORT={port + 1}`" in result.stderr, result.stderr
    assert "migrate" not in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_banner_shows_the_urls_and_every_demo_users_password():
    spec = importlib.util.spec_from_file_location("banner", ROOT / "scripts" / "banner.py")
    banner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(banner)
    text = banner.banner(8123)
    assert "http://127.0.0.1:8123/admin/" in text
    for username, password, _ in DEMO_USERS:
        assert f"{username} / {password}" in text
