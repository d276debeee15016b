"""Settings shared by every environment.

Everything a deployment changes is read from the environment with
django-environ; the defaults give the *embedded* setup (SQLite in WAL mode and
a Celery broker on the file system) so the project runs with nothing but
Python installed. See the README for every variable.
"""

import copy
import os
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import schedule
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

from outbox.conf import from_environment

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional, never committed

# The embedded default's database, broker folders and metrics live here.
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

# URLS FROM THE ENVIRONMENT
# ------------------------------------------------------------------------------
# Each service URL is checked as it is read: a malformed one stops start-up with
# one line naming the variable and what is wrong (manage.py prints it without a
# traceback), not a traceback from inside django-environ, kombu or a first connection.
_DATABASE_EXAMPLE = "postgres://user:password@host:5432/name or sqlite:////absolute/path/db.sqlite3"
_CACHE_EXAMPLE = "redis://host:6379/1 or filecache:///absolute/folder"
_EMAIL_EXAMPLE = "smtp+tls://user:password@host:587 or consolemail://"
_BROKER_EXAMPLE = "redis://host:6379/0, amqp://user:password@host:5672// or filesystem://"


def database_url(var: str, default: str | None = None) -> dict:
    """``env.db``, refusing a URL Django could not connect with."""
    url = _checked_url(var, default, environ.Env.DB_SCHEMES, _DATABASE_EXAMPLE)
    config = env.db_url_config(url)
    if not config.get("NAME"):
        raise _malformed(var, url, "it names no database", _DATABASE_EXAMPLE)
    return config


def cache_url(var: str, default: str | None = None) -> dict:
    """``env.cache``, refusing a URL of no cache backend."""
    return env.cache_url_config(_checked_url(var, default, environ.Env.CACHE_SCHEMES, _CACHE_EXAMPLE))


def email_url(var: str, default: str | None = None) -> dict:
    """``env.email_url``, refusing a URL of no mail backend, or an SMTP one without a server."""
    url = _checked_url(var, default, environ.Env.EMAIL_SCHEMES, _EMAIL_EXAMPLE)
    config = env.email_url_config(url)
    if config["EMAIL_BACKEND"].endswith(".smtp.EmailBackend") and not config.get("EMAIL_HOST"):
        raise _malformed(var, url, "it names no mail server", _EMAIL_EXAMPLE)
    return config


def broker_url(var: str, default: str | None = None) -> str:
    """A Celery broker URL (or several, ``;``-separated) whose every transport kombu has."""
    url = _read(var, default)
    for part in url.split(";"):
        _checked(var, part.strip(), TRANSPORT_ALIASES, _BROKER_EXAMPLE, scheme_of=lambda s: s.split("+")[0])
    return url


def _checked_url(var: str, default: str | None, schemes: Iterable[str], example: str) -> str:
    return _checked(var, _read(var, default), schemes, example)


def _read(var: str, default: str | None) -> str:
    """The variable, or ``default``; unset without one: environ's "Set the <var> environment variable"."""
    return env.str(var) if default is None else env.str(var, default=default)


def _checked(
    var: str, url: str, schemes: Iterable[str], example: str, scheme_of: Callable[[str], str] = str.lower
) -> str:
    if "://" not in url:
        raise _malformed(var, url, "it is not a URL", example)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError as exc:  # a port that is no number from 0 to 65535, an unclosed [IPv6 address
        raise _malformed(var, url, f"its host or port does not parse ({exc})", example) from None
    if scheme_of(parts.scheme) not in schemes:
        raise _malformed(var, url, f"unknown scheme {parts.scheme!r}", example)
    return url


def _malformed(var: str, url: str, problem: str, example: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{var}={_without_password(url)!r}: {problem}; give a URL like {example}")


def _without_password(url: str) -> str:
    """``url`` as a message may show it: the password, if any, starred out (without parsing: it may not parse)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env.bool("DEBUG", default=False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env("SECRET_KEY", default="")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True

# DATABASES
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
DATABASES = {
    "default": database_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the
    # write lock at BEGIN so two writers queue on the busy timeout instead of
    # failing with "database is locked" when a reader upgrades.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True


def provider_store(default: dict) -> dict:
    """The sandbox payment gateway's and carrier's own store, which our rollbacks cannot undo.

    ``SANDBOX_DATABASE_URL`` if set; otherwise the ``default`` database through
    a connection of its own, except on SQLite, where a second connection to
    the same file would wait on the handler's write lock: a file of its own
    there (``manage.py migrate --database sandbox`` creates its tables).
    See config/routers.py.
    """
    if env("SANDBOX_DATABASE_URL", default=""):
        store = database_url("SANDBOX_DATABASE_URL")
    elif default["ENGINE"] == "django.db.backends.sqlite3":
        store = {**copy.deepcopy(default), "NAME": str(VAR_DIR / "sandbox.sqlite3")}
    else:
        return copy.deepcopy(default)
    if store["ENGINE"] == "django.db.backends.sqlite3":
        store["OPTIONS"] = {**SQLITE_OPTIONS, **store.get("OPTIONS", {})}
    else:
        store.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
        store["CONN_HEALTH_CHECKS"] = True
    return store


DATABASES["sandbox"] = provider_store(DATABASES["default"])
DATABASE_ROUTERS = ["config.routers.ProviderStoreRouter"]
# https://docs.djangoproject.com/en/5.2/ref/settings/#std:setting-DEFAULT_AUTO_FIELD
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CACHES
# ------------------------------------------------------------------------------
# The sign-in throttle counts in the cache, so every process that serves requests
# must share it (config/checks.py warns otherwise): Redis across hosts; the
# embedded default's processes share a folder under VAR_DIR.
# https://docs.djangoproject.com/en/5.2/ref/settings/#caches
CACHES = {"default": cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us rather than a CDN
    "axes",  # sign-in lockout (AUTHENTICATION below)
]
LOCAL_APPS = [
    "config.apps.ProjectConfig",  # the project's own system checks (config/checks.py)
    "outbox",
    "customers",
    "orders",
    "payments",
    "inventory",
    "shipping",
    "notifications",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# AUTHENTICATION
# ------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
# https://docs.djangoproject.com/en/5.2/ref/settings/#session-engine
SESSION_ENGINE = "config.sessions"
# django-axes first: it refuses a locked-out client before any password is checked.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# LOGIN_FAILURE_LIMIT failed sign-ins (shop, admin, API token) for one username, or from one client
# address, lock it out of all of them for LOGIN_LOCKOUT_MINUTES after the last attempt. Counted in
# the default cache, which every process shares (config/accounts.py).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"  # nothing kept in the database: counts expire
AXES_CLIENT_IP_CALLABLE = "config.security.client_address"  # NUM_PROXIES, as DRF's throttles
AXES_LOCKOUT_CALLABLE = "config.accounts.lockout_response"  # the form's own error, as a 429
AXES_ENABLE_ADMIN = False  # its admin shows the database handler's tables, unused here
AXES_VERBOSE = False  # no start-up line in every process; config/security.py logs each failure
# axes.W001 calls the embedded default's file cache unfit: it is shared by every process of its host
# (project.W001 judges the cache); its counts are not atomic, so a burst may count a few short.
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "config.metrics.RequestMetricsMiddleware",  # first: times and counts every request, by view (config/metrics.py)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "outbox.middleware.CorrelationMiddleware",
    "config.middleware.SecurityLogMiddleware",  # every 401, 403 and 429 to the security log
    "config.middleware.ServiceUnavailableMiddleware",  # 503 + Retry-After when the database or cache drops
    "axes.middleware.AxesMiddleware",  # a locked-out sign-in answers 429
]

# STATIC
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# TEMPLATES
# ------------------------------------------------------------------------------
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
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

# EMAIL
# ------------------------------------------------------------------------------
# EMAIL_URL picks the backend: consolemail://, smtp://user:pass@host:587,
# smtp+tls://..., filemail:///path. https://django-environ.readthedocs.io
vars().update(email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Shop <orders@shop.example>")
# Where customers reach the shop: customer mail links to their order page under it (workers have no request).
SHOP_BASE_URL = _checked_url(
    "SHOP_BASE_URL", "http://127.0.0.1:8000", ("http", "https"), "https://shop.example.com"
).rstrip("/")
# Seconds an SMTP connection, greeting or reply may take before the send fails
# (and is retried by the sweeper): a hanging mail server never blocks a worker.
# https://docs.djangoproject.com/en/5.2/ref/settings/#email-timeout
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
# Customer mail is committed as pending with the handler's work and sent after
# the commit; the notifications.send_due sweep (beat) sends what that missed.
# A fresh row is left to its on-commit send for this long before the sweep may take it.
NOTIFICATIONS_SEND_GRACE_SECONDS = env.float("NOTIFICATIONS_SEND_GRACE_SECONDS", default=30.0)
NOTIFICATIONS_SWEEP_SECONDS = env.float("NOTIFICATIONS_SWEEP_SECONDS", default=10.0)
NOTIFICATIONS_SWEEP_BATCH = env.int("NOTIFICATIONS_SWEEP_BATCH", default=500)
# A failed send is tried again after base * 2^(attempts-1) seconds (+-20%), at
# most cap; after the maximum (about four days at the cap) it is marked failed.
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("NOTIFICATIONS_RETRY_BASE_SECONDS", default=30.0)
NOTIFICATIONS_RETRY_CAP_SECONDS = env.float("NOTIFICATIONS_RETRY_CAP_SECONDS", default=3600.0)
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=100)
# Right of the @ in each message's Message-ID (<kind.event-id@domain>); empty:
# the domain of DEFAULT_FROM_EMAIL.
NOTIFICATIONS_MESSAGE_ID_DOMAIN = env("NOTIFICATIONS_MESSAGE_ID_DOMAIN", default="")

# LOGGING
# ------------------------------------------------------------------------------
# LOG_FORMAT: plain lines (the default) or json (one JSON object a line, for a log collector).
# The "security" logger (config/security.py: failed sign-ins, throttling, refusals) writes JSON
# lines either way, and never reaches Sentry.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: give plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        "security": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"security": {"handlers": ["security"], "level": "INFO", "propagate": False}},
}

# SENTRY
# ------------------------------------------------------------------------------
# Errors (unhandled in views and tasks, and every ERROR log line: a handler exception the outbox
# caught among them) go to Sentry when SENTRY_DSN is set; nothing of it is loaded otherwise.
# No personal data: no user, address, cookie or request body is sent (config/sentry.py).
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import init_sentry

    init_sentry(SENTRY_DSN, environment=env("SENTRY_ENVIRONMENT", default="production"))

# OPENTELEMETRY
# ------------------------------------------------------------------------------
# Traces of web requests, Celery tasks, SQL and the outbox's publish, relay and
# handler runs (config/telemetry.py), one trace per request through every handler.
# Off, nothing of the SDK is loaded. On, the standard variables configure it:
# OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER...
# https://opentelemetry.io/docs/languages/sdk-configuration/
OTEL_ENABLED = env.bool("OTEL_ENABLED", default=False)

# CELERY
# ------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = broker_url("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file-system transport: a broker with no server, for the embedded default.
    _broker_dir = str(VAR_DIR / "broker")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _broker_dir,
        "data_folder_out": _broker_dir,
        "control_folder": str(VAR_DIR / "broker-control"),
        "polling_interval": 0.05,
    }
else:
    # Redis redelivers an unacknowledged message after this; the outbox lease
    # (OUTBOX_LEASE_SECONDS) is the real guarantee, this is only the floor.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# Handlers are idempotent (inbox + delivery row), so a task is acknowledged
# only once it ran, and a worker that dies hands its task back to the broker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
# The outbox's rule (outbox/checks.py, checked at start-up): soft limit < hard
# limit < OUTBOX_LEASE_SECONDS, so no batch outlives its lease. At the soft
# limit a batch stops at a delivery boundary; the hard limit kills it.
CELERY_TASK_TIME_LIMIT = env.float("CELERY_TASK_TIME_LIMIT", default=45.0)
CELERY_TASK_SOFT_TIME_LIMIT = env.float("CELERY_TASK_SOFT_TIME_LIMIT", default=30.0)
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery's Django fix-up closes the DB connection around every task unless this
# is set; reusing it takes a task from ~10 ms to ~3.5 ms here (DESIGN.md 3).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# One queue per bounded context, and one for the relay. Handler tasks are
# routed by the outbox to their subscription's queue when they are sent.
CONTEXT_QUEUES = ["orders", "payments", "inventory", "shipping", "notifications"]
CELERY_TASK_DEFAULT_QUEUE = "outbox"
CELERY_TASK_QUEUES = [Queue(name) for name in ["outbox", *CONTEXT_QUEUES]]
CELERY_TASK_ROUTES = {"outbox.*": {"queue": "outbox"}}
# All periodic tasks, in one place.
CELERY_BEAT_SCHEDULE = {
    "outbox-relay-sweep": {
        "task": "outbox.relay",
        "schedule": schedule(env.float("OUTBOX_SWEEP_SECONDS", default=1.0)),
        # No "expires": it is checked on the worker's clock against the beat host's,
        # and a skew or a queue a second behind would revoke every sweep. Sweeps that
        # queued up during an outage are cheap passes that find nothing to do.
    },
    # Customer mail the on-commit send missed (no expiry: a late sweep is still useful).
    "notifications-send-due": {
        "task": "notifications.send_due",
        "schedule": schedule(NOTIFICATIONS_SWEEP_SECONDS),
        "options": {"queue": "notifications"},
    },
    # Retention (outbox/retention.py, OUTBOX["RETENTION_*"]): each run prunes for at most 10 s, one node at a
    # time; at a minute apart it keeps up with some 5,000 deliveries a second (docs/operations.md).
    "outbox-prune": {
        "task": "outbox.prune",
        "schedule": schedule(env.float("OUTBOX_PRUNE_EVERY_SECONDS", default=60.0)),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# OUTBOX
# ------------------------------------------------------------------------------
# The event machinery's tuning knobs, each read from its OUTBOX_<KEY> variable (OUTBOX_LEASE_SECONDS...).
# What each means, and its default, is in outbox/conf.py (DEFAULTS); tuning them, docs/operations.md.
# The shop keeps the outbox's defaults: a knob it wants otherwise goes here, e.g. from_environment(MAX_ATTEMPTS=5).
OUTBOX = from_environment()

# INVENTORY
# ------------------------------------------------------------------------------
# Stock is event-sourced (DESIGN.md 3): each SKU's stream gets a snapshot of its
# fold every this many events, so a past ("as of") state reads at most this many.
INVENTORY_SNAPSHOT_EVERY = env.int("INVENTORY_SNAPSHOT_EVERY", default=50)

# PROXIES
# ------------------------------------------------------------------------------
# The number of trusted reverse proxies in front of the web processes (0: clients connect directly).
NUM_PROXIES = env.int("NUM_PROXIES", default=0)

# REST FRAMEWORK
# ------------------------------------------------------------------------------
# https://www.django-rest-framework.org/api-guide/settings/
# Shared plumbing (error shape, JSON parsing, paging, schema) is the config/api package.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # How many proxies in front of the web processes append to X-Forwarded-For: DRF's throttles then
    # count the address the nearest trusted proxy saw. 0 (the default): the header is ignored, so a
    # client cannot forge a fresh throttle bucket with it.
    "NUM_PROXIES": NUM_PROXIES,
}
# Attempts at POST /api/auth/token/ per client address, and per username tried (password guessing).
API_TOKEN_RATE = env("API_TOKEN_RATE", default="30/minute")
API_TOKEN_USERNAME_RATE = env("API_TOKEN_USERNAME_RATE", default="10/minute")
# Password reset requests per client address, and per e-mail address asked for (no mailbox flooding).
PASSWORD_RESET_RATE = env("PASSWORD_RESET_RATE", default="10/hour")
PASSWORD_RESET_EMAIL_RATE = env("PASSWORD_RESET_EMAIL_RATE", default="3/hour")
# Orders placed per user, through the API and the order form together.
ORDER_PLACE_RATE = env("ORDER_PLACE_RATE", default="30/minute")
# The largest request body accepted, API JSON included (413 above it).
# https://docs.djangoproject.com/en/5.2/ref/settings/#data-upload-max-memory-size
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Order management API",
    "DESCRIPTION": (
        "Orders, stock and the dead-letter queue of an event-driven shop.\n\n"
        "Authenticate with `Authorization: Token <key>`; get the key from `POST /api/auth/token/`. "
        "Every error is JSON: `{detail, code}`, plus `errors` (field path -> messages) on invalid input."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Enums named after what they are, not after the field that shows them.
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "outbox.models.Delivery.Status",
        "OrderStatusEnum": "orders.models.Order.Status",  # on Order and OrderDetail (with as_of) alike
    },
}
# The outbox's REST operations document their error bodies with the project's {detail, code} shapes.
OUTBOX_API_ERROR_RESPONSES = "config.api.schema.error_responses"

# METRICS
# ------------------------------------------------------------------------------
# GET /metrics (Prometheus). With METRICS_TOKEN set it needs "Authorization:
# Bearer <token>"; without, it answers only requests from this host's loopback
# that came through no proxy, outside production (which requires the token).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# A Celery worker's main process and the relay (manage.py outbox_relay) serve their host's metrics folder
# at http://METRICS_ADDRESS:METRICS_PORT/metrics, for hosts without a web process (0: off). One port per
# host: its processes share the folder, and a process that finds the port taken goes on without serving.
# The scrape network must be private, or METRICS_ADDRESS loopback; METRICS_TOKEN, when set, is asked for.
METRICS_PORT = env.int("METRICS_PORT", default=0)
METRICS_ADDRESS = env("METRICS_ADDRESS", default="127.0.0.1")
# GET /healthz and /readyz reuse their broker probe (a connection opened) for this long in each web process.
HEALTHZ_BROKER_CACHE_SECONDS = env.float("HEALTHZ_BROKER_CACHE_SECONDS", default=5.0)
# ... and /readyz its pending-migrations answer while some are pending (once none is, it stays so).
# Counters and histograms recorded by workers and the relay reach the web
# process's /metrics through files in this folder (prometheus_client's
# multiprocess mode). Every process of one host must share it, and it must be
# emptied when they are all restarted. Unset: /metrics shows the table-derived
# figures and the web process's own counters only.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")


def share_prometheus_metrics(folder: str) -> str:
    """Turn on prometheus_client's multiprocess mode in this process and its children.

    prometheus_client reads the variable when it is first imported, which is
    after settings are loaded in every process of this project.
    """
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


share_prometheus_metrics(PROMETHEUS_MULTIPROC_DIR)
