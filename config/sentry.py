"""Sentry, when ``SENTRY_DSN`` is set (config/settings/base.py calls :func:`init_sentry`).

Unhandled errors of views (Django) and tasks (Celery) are reported, and so is
every log line at ERROR with its exception: the outbox logs each handler
exception it catches that way (outbox/runner.py), without knowing of Sentry.
No personal data leaves: no user, address or cookie (``send_default_pii`` off),
no request body (order bodies hold addresses and payment tokens), no local
variables of the stack (they may hold the same), and not the security log,
whose lines name users and addresses.
"""

import logging


def init_sentry(dsn: str, *, environment: str) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[
            DjangoIntegration(),
            CeleryIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        # send_default_pii is left unset, which is False (no user, address or cookie): this SDK
        # deprecates setting it. No request body, and no local variables of the stack's frames.
        max_request_body_size="never",
        include_local_variables=False,
    )
    ignore_logger("security")
