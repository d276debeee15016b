"""Browser tests: Debian's Chromium, driven by pytest-playwright, against a real web server.

The server is gunicorn running the project's WSGI app on the test database
(:func:`tests.support.web.start_web`), so tests must be
``django_db(transaction=True)``: what they write is committed and seen by
the server and by the workers of ``live_outbox``. pytest-playwright gives
the ``browser``, ``context`` and ``page`` (a fresh context a test, no
cookies, ``base_url`` the server's); this file only says which Chromium to
launch and how big a window. On a failure it keeps a screenshot and a trace
under ``test-artifacts/`` (``--screenshot only-on-failure --tracing
retain-on-failure --output test-artifacts`` in pyproject's addopts; open a
trace with ``playwright show-trace``).

The tests also take the README's screenshots (:func:`readme_screenshot`,
``docs/images/``) every time they run, so the pictures are always of the
current pages.

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
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from tests.support.processes import ROOT
from tests.support.web import WebServer, start_web

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / "test-artifacts"
README_IMAGES = ROOT / "docs" / "images"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
DESKTOP = {"width": 1280, "height": 900}


@pytest.hookimpl(trylast=True)  # after pytest-django's ordering (database tests first)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests after every other test of the session (see :func:`playwright`)."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)  # stable: otherwise as collected


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker) -> Iterator[WebServer]:
    """gunicorn on a free loopback port, on the test database, for the whole session."""
    with django_db_blocker.unblock():
        server = start_web()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(web_server: WebServer) -> str:
    """pytest-playwright opens every context on this server: ``page.goto("/orders/")``."""
    return web_server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium (apt-get install chromium), never a browser downloaded by ``playwright install``."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)", pytrace=False)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": DESKTOP}


@pytest.fixture(scope="session")
def playwright(playwright: Playwright) -> Iterator[Playwright]:
    """pytest-playwright's Playwright, with Django's async-safety check off while it runs.

    Playwright's sync API keeps an event loop running in this thread while it
    is started, and Django refuses ORM calls when it sees one ("you cannot
    call this from an async context"), though the tests' calls are plain
    synchronous code. pytest-playwright starts it once for the session, so
    the check is off from the first browser test on; the browser tests run
    last (:func:`pytest_collection_modifyitems`), so no other test runs
    without it.
    """
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    yield playwright
    if previous is None:
        del os.environ[ASYNC_UNSAFE]
    else:
        os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def context(context: BrowserContext) -> BrowserContext:
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def screenshot(request: pytest.FixtureRequest):
    """``screenshot(page, "order-form")`` -> ``test-artifacts/<test name>--order-form.png``, a step along the way."""

    def take(page: Page, label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', request.node.name)}--{label}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


def readme_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """The README's picture ``docs/images/<name>.png``, of the page as it is now."""
    README_IMAGES.mkdir(parents=True, exist_ok=True)
    path = README_IMAGES / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a window-sized picture is of the page's top
    page.screenshot(path=path, full_page=full_page, animations="disabled", caret="hide")
    return path


def hide_admin_sidebar(page: Page) -> None:
    """Fold the admin's navigation away (it stays folded in this context), so a picture has room for the page."""
    page.locator("#toggle-nav-sidebar").click()
    expect(page.locator("#nav-sidebar")).to_be_hidden()


def sign_in_to_admin(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/$"))
