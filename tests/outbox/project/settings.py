"""Settings of the outbox's minimal project: Django's contrib apps, DRF, the outbox and its probe app.

Real PostgreSQL and Redis, as the shop's test settings (the same TEST_* variables), and the
outbox's knobs from the same OUTBOX_* variables, so the suite's processes are tuned alike.
"""

import os
import tempfile

import environ
from celery.schedules import schedule
from kombu import Queue

from outbox.conf import from_environment

env = environ.Env()

SECRET_KEY = "outbox-test-only-secret-key-not-for-deployment"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
TIME_ZONE = "UTC"
USE_TZ = True
ROOT_URLCONF = "tests.outbox.project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"

DATABASES = {"default": env.db_url("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/oms")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# A test database of its own: the shop's, kept by --reuse-db, has tables of apps this project does not know.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_oms") + "_outbox"}
# A second alias on the same database, for handlers that use another connection (a provider's store, say):
# a test mirror, so a test that touches it says so with django_db(databases=["default", "side"]).
DATABASES["side"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
CACHES = {"default": env.cache_url("TEST_CACHE_URL", default="redis://127.0.0.1:6379/10")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "outbox",
    "tests.outbox.probe",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "outbox.middleware.CorrelationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Celery: the shop's choices that the outbox relies on (acks late, JSON, time limits under the lease).
CELERY_BROKER_URL = env("TEST_BROKER_URL", default="redis://127.0.0.1:6379/9")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_DEFAULT_QUEUE = "outbox"
CELERY_TASK_QUEUES = [Queue("outbox"), Queue("probe")]
CELERY_TASK_ROUTES = {"outbox.*": {"queue": "outbox"}}
CELERY_BEAT_SCHEDULE = {
    "outbox-relay-sweep": {
        "task": "outbox.relay",
        "schedule": schedule(env.float("OUTBOX_SWEEP_SECONDS", default=1.0)),
    },
    "outbox-prune": {
        "task": "outbox.prune",
        "schedule": schedule(env.float("OUTBOX_PRUNE_EVERY_SECONDS", default=60.0)),
    },
}

# Every knob from its OUTBOX_* variable, the outbox's defaults (outbox/conf.py) but for a longer first backoff.
OUTBOX = from_environment(BACKOFF_BASE_SECONDS=2.0)
# Tests run workers with leases of a few seconds; the time limits follow (soft < hard < lease).
CELERY_TASK_TIME_LIMIT = env.float("CELERY_TASK_TIME_LIMIT", default=0.8 * OUTBOX["LEASE_SECONDS"])
CELERY_TASK_SOFT_TIME_LIMIT = env.float("CELERY_TASK_SOFT_TIME_LIMIT", default=0.6 * OUTBOX["LEASE_SECONDS"])

# The probe's handlers note what no rollback may undo in this Redis (tests/outbox/probe/effects.py).
PROBE_SIDE_CHANNEL_URL = env("TEST_SIDE_CHANNEL_URL", default=CELERY_BROKER_URL)
# tests/support/processes.py: the suite's workers, beat and commands are this project's.
TEST_CELERY_APP = "tests.outbox.project"
TEST_MANAGE_PY = "tests/outbox/project/manage.py"
# Counters of the suite's workers reach this process's exposition through one folder per session.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="outbox-test-metrics-")
)
