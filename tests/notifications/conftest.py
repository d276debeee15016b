"""Fixtures of the notifications tests: a real SMTP sink, and no state left by one test for the next."""

import pytest

from notifications import services
from tests.support.mail import MailSink


@pytest.fixture
def sink():
    """A real SMTP server on a free loopback port, with this process's mail sent to it."""
    with MailSink() as server, server.settings():
        yield server


@pytest.fixture(autouse=True)
def _on_commit_sends_not_paused(monkeypatch):
    """An on-commit send that failed pauses the next ones of its process: never carry that into another test."""
    monkeypatch.setattr(services, "_inline_paused_until", 0.0)
