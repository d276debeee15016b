"""Development settings: the embedded default unless the environment says otherwise.

DEBUG is on and the secret key is fixed, so these settings serve this machine
only: any ALLOWED_HOSTS entry that is not a loopback name or address stops
start-up (a deployment that forgot DJANGO_SETTINGS_MODULE must not run them).
"""

import ipaddress

from django.core.exceptions import ImproperlyConfigured
from kombu.transport import TRANSPORT_ALIASES

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, CELERY_BROKER_URL, VAR_DIR, env, share_prometheus_metrics


def is_loopback_host(host: str) -> bool:
    """``localhost``, a name under it (RFC 6761), or a loopback address (IPv6 in brackets, as Django takes it)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def loopback_hosts_only(hosts: list[str]) -> list[str]:
    public = [host for host in hosts if not is_loopback_host(host)]
    if public:
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS={','.join(hosts)!r}: config.settings.local (DEBUG on, a fixed secret key) serves "
            f"loopback only, not {', '.join(map(repr, public))}; deploy with "
            "DJANGO_SETTINGS_MODULE=config.settings.production"
        )
    return hosts


ALLOWED_HOSTS = loopback_hosts_only(ALLOWED_HOSTS)
DEBUG = env.bool("DEBUG", default=True)
# Development only: production refuses to start without SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-local-development-key-do-not-deploy")
VAR_DIR.mkdir(exist_ok=True)
for folder in ("broker", "broker-control", "static"):
    (VAR_DIR / folder).mkdir(exist_ok=True)
# Emptied by `make run` as it starts the processes that share it.
PROMETHEUS_MULTIPROC_DIR = share_prometheus_metrics(
    env("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The file-system transport with whole-message writes (config/filesystem_broker.py): kombu's own lets a
    # worker read a message its producer has not finished writing, and stop. Every process of the embedded
    # default loads these settings before its first connection. It polls its folders every 50 ms (base.py's
    # polling_interval): a hop costs at most that, and the idle processes of `make run` some 3% of a core.
    TRANSPORT_ALIASES["filesystem"] = "config.filesystem_broker:Transport"
