"""A staff user mends and retries a dead delivery from the admin, in a real browser."""

import re
import uuid

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from outbox.models import Delivery
from outbox.publishing import publish
from tests.e2e.conftest import sign_in_to_admin
from tests.outbox.probe.events import Broke
from tests.outbox.probe.models import Switch
from tests.support.processes import wait_for
from tests.support.users import PASSWORD, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.workers]


def wait_for_status(delivery_id: int, status: str, live_outbox) -> Delivery:
    try:
        return wait_for(lambda: Delivery.objects.filter(id=delivery_id, status=status).first(), timeout=30, what=status)
    except AssertionError as failure:
        raise AssertionError(f"delivery {delivery_id} never {status}: {failure}\n{live_outbox.logs()}") from None


def test_staff_retry_a_dead_delivery_from_the_admin_once_its_cause_is_mended(page: Page, live_outbox, screenshot):
    # given a handler that is broken, and an event it failed on until its delivery died (3 attempts)
    Switch.objects.create(name="broken", on=True)
    with transaction.atomic():
        event = publish(Broke(thing_id=uuid.uuid4()))
    wait_for(lambda: Delivery.objects.filter(event=event).exists(), timeout=20, what="the relay to fan out")
    delivery = Delivery.objects.get(event=event, handler="probe.breakable")
    wait_for_status(delivery.id, "dead", live_outbox)
    # and a staff member allowed to retry dead deliveries
    make_user("olga", staff=True, perms=("outbox.retry_delivery",))

    # when she signs in and opens the dead-letter queue
    sign_in_to_admin(page, "olga", PASSWORD)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    # then she sees the dead delivery and why it died
    row = page.locator("#result_list tbody tr", has_text="probe.breakable")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("probe.Broke")
    expect(row).to_contain_text("the probe is broken")
    screenshot(page, "dead-letter-list")

    # when the cause is mended, and she selects it and runs the Retry action
    Switch.objects.filter(name="broken").update(on=False)
    row.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option(label="Retry the selected dead deliveries")
    page.get_by_role("button", name="Go").click()
    # then the admin confirms it, and the delivery leaves the dead-letter queue
    expect(page.locator(".messagelist")).to_contain_text("1 dead delivery sent round again")
    expect(page.locator("#result_list tbody tr", has_text="probe.breakable")).to_have_count(0)
    screenshot(page, "retried")

    # when the worker has run it again, she looks it up among the deliveries
    wait_for_status(delivery.id, "done", live_outbox)
    page.goto(f"/admin/outbox/delivery/?status__exact=done&handler__exact={delivery.handler}")
    page.get_by_role("link", name=str(delivery.id), exact=True).click()
    # then its page says it is done, on a fresh attempt, and that the error shown is an earlier attempt's
    expect(page.locator(".field-status")).to_contain_text(re.compile("done", re.IGNORECASE))
    expect(page.locator(".field-attempts")).to_contain_text("1")
    expect(page.locator(".field-last_error_of_attempt")).to_contain_text("from an earlier attempt")
