"""Browser tests: Debian's Chromium, driven by Playwright, against a real web server.

The server is gunicorn running the project's WSGI app on the test database
(:func:`tests.support.web.start_web`), so tests must be
``django_db(transaction=True)``: what they write is committed and seen by
the server and by the workers of ``live_outbox``. Every test's final page
is saved as ``test-artifacts/<test name>.png``; :func:`screenshot` saves
others along the way.

The server lives for the session. Django's flush between transactional
tests recreates content types under new ids, which the server's
ContentType cache does not see: a page that writes an admin LogEntry (the
admin's own add/change/delete views) would need the server per test.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.processes import ROOT
from tests.support.web import WebServer, start_web

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / "test-artifacts"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker) -> Iterator[WebServer]:
    """gunicorn on a free loopback port, on the test database, for the whole session."""
    with django_db_blocker.unblock():
        server = start_web()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(web_server: WebServer) -> Iterator[Browser]:
    """Chromium for one test module.

    Playwright's sync API keeps an event loop running in this thread while it
    is open, and Django refuses ORM calls when it sees one ("you cannot call
    this from an async context"), though the tests' calls are plain
    synchronous code. So the check is off while, and only while, a browser is
    open; the module scope closes it before other tests run.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)", pytrace=False)
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            del os.environ[ASYNC_UNSAFE]
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(browser: Browser, web_server: WebServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the web server; its last page is saved as a screenshot."""
    context = browser.new_context(base_url=web_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    save_screenshot(page, request.node.name)
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest):
    """``screenshot(page, "dead-letter-list")`` -> ``test-artifacts/<test name>--dead-letter-list.png``."""

    def take(page: Page, label: str) -> Path:
        return save_screenshot(page, f"{request.node.name}--{label}")

    return take


def save_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=path, full_page=True)
    return path


def sign_in_to_admin(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/$"))
