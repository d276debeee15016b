"""The interactive API documentation works in a browser, from this server alone (no CDN)."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_api_docs_page_lists_the_operations_with_their_error_bodies(page: Page, web_server):
    # given the browser may fetch nothing but this server
    foreign = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(web_server.url) else foreign.append(request.url),
    )
    # when anyone opens the docs
    page.goto("/api/docs/")
    # then Swagger UI renders the schema's operations
    operation = page.locator(".opblock", has_text="/api/outbox/dead-letters/{delivery_id}/retry/")
    expect(operation).to_be_visible()
    expect(page.locator(".opblock", has_text="/api/auth/token/")).to_be_visible()
    # and an operation shows its documented errors
    operation.locator(".opblock-summary").click()
    expect(operation.locator(".responses-table")).to_contain_text("409")
    assert foreign == []
