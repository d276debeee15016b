#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        _trace_if_it_relays(sys.argv)
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        if "--traceback" in sys.argv:
            raise
        # A setting the environment got wrong (a malformed DATABASE_URL, no SECRET_KEY) says which in one
        # line, as a CommandError does; --traceback shows where it was read.
        sys.exit(f"ImproperlyConfigured: {exc}")


def _trace_if_it_relays(argv: list[str]) -> None:
    """With ``OTEL_ENABLED``, the commands that relay events are traced (config/telemetry.py)."""
    from config import telemetry

    telemetry.configure_for_command(argv)


if __name__ == "__main__":
    main()
