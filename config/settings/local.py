"""Development settings: the embedded default unless the environment says otherwise."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env, share_prometheus_metrics

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
