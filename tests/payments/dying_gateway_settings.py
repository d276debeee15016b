"""Test settings for a worker whose process dies right after the provider first charges (tests/payments)."""

from config.settings.test import *  # noqa: F403

PAYMENTS_GATEWAY = "tests.payments.dying_gateway.DiesAfterTheFirstCharge"
