"""Test settings: real PostgreSQL and a real Redis broker, never the embedded default."""

import os
import tempfile

from .base import *  # noqa: F403
from .base import (
    INSTALLED_APPS,
    OUTBOX,
    broker_url,
    cache_url,
    database_url,
    email_url,
    env,
    share_prometheus_metrics,
)

SECRET_KEY = env("SECRET_KEY", default="test-only-secret-key-not-for-deployment")
DEBUG = False
DATABASES = {
    "default": database_url("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/oms"),
}
# 0 (a connection per request) unless a test runs a process production-like (tests/support/system.py).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# Worker processes started by the suite connect to the test database directly.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_oms")}
# The sandbox providers' store: the test database through a connection of its own (a test mirror: it
# is created, migrated and flushed with "default"), so rolling back "default" leaves it alone, as it
# would a provider's. A test that touches it says so: django_db(databases=["default", "sandbox"]);
# one that must see it committed (from another process or connection) needs transaction=True too.
DATABASES["sandbox"] = {
    **DATABASES["default"],
    "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {})),
    "TEST": {"MIRROR": "default"},
}
CELERY_BROKER_URL = broker_url("TEST_BROKER_URL", default="redis://127.0.0.1:6379/9")
# Tests run workers with leases of a few seconds; the time limits follow, keeping
# the outbox's rule (soft < hard < lease) unless a test sets them itself.
CELERY_TASK_TIME_LIMIT = env.float("CELERY_TASK_TIME_LIMIT", default=0.8 * OUTBOX["LEASE_SECONDS"])
CELERY_TASK_SOFT_TIME_LIMIT = env.float("CELERY_TASK_SOFT_TIME_LIMIT", default=0.6 * OUTBOX["LEASE_SECONDS"])
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CACHES = {"default": cache_url("TEST_CACHE_URL", default="redis://127.0.0.1:6379/10")}
# Mail stays in memory (django.core.mail.outbox) unless TEST_EMAIL_URL points at
# a real server, as the mail sink of tests/support/mail.py does for workers.
vars().update(email_url("TEST_EMAIL_URL", default="memorymail://"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# An app of test-only events and handlers, used to prove the outbox itself. Its
# handlers note what no rollback may undo (how often they started) in this Redis;
# by default the broker's, which the chaos suite stops, so it points them elsewhere.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.outbox.probe"]
PROBE_SIDE_CHANNEL_URL = env("TEST_SIDE_CHANNEL_URL", default=CELERY_BROKER_URL)
# The real web server the browser tests drive serves the admin's CSS itself.
WHITENOISE_USE_FINDERS = True
# The schema and fault tests sign in far more often than a person would.
API_TOKEN_RATE = env("API_TOKEN_RATE", default="10000/minute")
# ... and fail to, on purpose, from the one address of the test client: locking it out would
# fail every later sign-in. The lockout's own tests lower the limit for an address of their own.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=100_000)
API_TOKEN_USERNAME_RATE = env("API_TOKEN_USERNAME_RATE", default="10000/minute")
# The load and fault tests place orders for one customer far faster than a person would.
ORDER_PLACE_RATE = env("ORDER_PLACE_RATE", default="100000/minute")
# One metrics folder per test session, inherited by the workers and servers it
# starts (so their counters reach /metrics), apart from other sessions' runs.
PROMETHEUS_MULTIPROC_DIR = share_prometheus_metrics(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="oms-test-metrics-")
)
