"""Production settings: PostgreSQL, Redis, SMTP; secrets only from the environment."""

from .base import *  # noqa: F403
from .base import NUM_PROXIES, _checked_url, broker_url, cache_url, database_url, email_url, env, provider_store

# Refuse to start without a real secret (environ raises ImproperlyConfigured).
SECRET_KEY = env("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["shop.example.com"])
# Customer mail links to the shop: by default its first host over HTTPS, never base.py's loopback.
SHOP_BASE_URL = _checked_url(
    "SHOP_BASE_URL", f"https://{ALLOWED_HOSTS[0]}", ("http", "https"), "https://shop.example.com"
).rstrip("/")
DATABASES = {"default": database_url("DATABASE_URL")}  # required: no embedded default here
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The sandbox providers' own store: this database through its own connection, or SANDBOX_DATABASE_URL.
DATABASES["sandbox"] = provider_store(DATABASES["default"])
CELERY_BROKER_URL = broker_url("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CACHES = {"default": cache_url("CACHE_URL", default="redis://127.0.0.1:6379/1")}
vars().update(email_url("EMAIL_URL", default="smtp://localhost:25"))

# PROVIDERS
# ------------------------------------------------------------------------------
# The dotted paths of the payment gateway's and the carrier's adapter classes. The
# defaults are the sandboxes, which approve free test tokens (tok_visa) and ship
# nothing: production refuses to start with one (config/checks.py, project.E001,
# E002) unless ALLOW_SANDBOX_PROVIDERS=true declares a demo that takes no real orders.
PAYMENTS_GATEWAY = env("PAYMENTS_GATEWAY", default="payments.sandbox.SandboxGateway")
SHIPPING_CARRIER = env("SHIPPING_CARRIER", default="shipping.sandbox.SandboxCarrier")
ALLOW_SANDBOX_PROVIDERS = env.bool("ALLOW_SANDBOX_PROVIDERS", default=False)

# SECURITY
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
if NUM_PROXIES > 0:
    # Only a declared proxy sets X-Forwarded-Proto (it must overwrite what a client sent): without one,
    # any client could send the header and pass plain HTTP for HTTPS (config/checks.py, project.E005).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe /healthz and /readyz over plain HTTP and read a redirect as a failure; their answer is
# "ok" or "fail" per part, nothing secret. /metrics is not exempt: the scraper's bearer token goes over HTTPS only.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
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
# token, required here (project.E004 refuses to start without it): "loopback
# through no proxy" is no proof of the scraper, as a proxy may add no header.
# Both are read in base.py.
METRICS_TOKEN_REQUIRED = True
