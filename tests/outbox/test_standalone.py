"""The outbox is a library: its minimal project loads it whole (models, admin, API, tasks) without the shop."""

import json
import subprocess
import sys

from tests.support.processes import ROOT, process_env

SHOP = ("config", "customers", "orders", "payments", "inventory", "shipping", "notifications")
LOAD_EVERYTHING = """
import json, sys
from django.urls import resolve
from django.contrib import admin
from celery import current_app
import outbox.admin, outbox.api, outbox.dispatch, outbox.metrics, outbox.replay, outbox.retention, outbox.runner
resolve("/api/outbox/dead-letters/"); admin.site.get_urls()
print(json.dumps({"app": current_app.main, "tasks": sorted(t for t in current_app.tasks if t.startswith("outbox.")),
                  "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_the_outbox_loads_whole_in_its_own_project_with_nothing_of_the_shop():
    # when the outbox's minimal project loads every part of the outbox
    result = subprocess.run(
        [sys.executable, "tests/outbox/project/manage.py", "shell", "-c", LOAD_EVERYTHING],
        cwd=ROOT,
        env=process_env(DJANGO_SETTINGS_MODULE="tests.outbox.project.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then no module of the shop was imported, and its tasks are on the project's own Celery app
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found["loaded"]) & set(SHOP) == set()
    assert found["app"] == "outbox-tests"
    assert found["tasks"] == ["outbox.prune", "outbox.relay", "outbox.run_deliveries"]
