#!/usr/bin/env python
"""``manage.py`` of the outbox's minimal project, run from the repository: ``python tests/outbox/project/manage.py``."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, where `outbox` and `tests` are
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.outbox.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
