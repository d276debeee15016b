"""The embedded default (``config.settings.local``) with the probe app, for tests that run it in real processes.

SQLite, the file-system broker and whatever ``CACHE_URL`` says, as ``make run`` has them;
the probe's events prove the outbox itself there, without a business flow.
"""

from config.settings.local import *  # noqa: F403
from config.settings.local import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.outbox.probe"]
