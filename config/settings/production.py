"""Production settings: PostgreSQL, Redis, SMTP; secrets only from the environment."""

from .base import *  # noqa: F403
from .base import broker_url, cache_url, database_url, email_url, env, provider_store

# Refuse to start without a real secret (environ raises ImproperlyConfigured).
SECRET_KEY = env("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["shop.example.com"])
DATABASES = {"default": database_url("DATABASE_URL")}  # required: no embedded default here
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The sandbox providers' own store: this database through its own connection, or SANDBOX_DATABASE_URL.
DATABASES["sandbox"] = provider_store(DATABASES["default"])
CELERY_BROKER_URL = broker_url("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CACHES = {"default": cache_url("CACHE_URL", default="redis://127.0.0.1:6379/1")}
vars().update(email_url("EMAIL_URL", default="smtp://localhost:25"))

# SECURITY
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# METRICS
# ------------------------------------------------------------------------------
# PROMETHEUS_MULTIPROC_DIR: a folder shared by the web, worker and relay
# processes of one host, emptied before they start (e.g. ExecStartPre), so
# /metrics shows the workers' counters. METRICS_TOKEN: the scraper's bearer
# token; without it /metrics answers only loopback requests that came
# through no proxy. Both are read in base.py.
