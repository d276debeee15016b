"""A staff user mends and retries dead deliveries from the admin, one, or a group by cause, in a real browser.

The tests take the README's pictures of the dead-letter list, the list after a retry, and the groups by cause.
"""

import re
import uuid

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from outbox.models import Delivery
from outbox.publishing import publish
from tests.e2e.conftest import hide_admin_sidebar, readme_screenshot, sign_in_to_admin
from tests.outbox.probe.events import Broke, Jammed
from tests.outbox.probe.models import Switch
from tests.support.processes import wait_for
from tests.support.users import PASSWORD, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.workers]


def wait_for_status(delivery_id: int, status: str, live_outbox) -> Delivery:
    try:
        return wait_for(lambda: Delivery.objects.filter(id=delivery_id, status=status).first(), timeout=30, what=status)
    except AssertionError as failure:
        raise AssertionError(f"delivery {delivery_id} never {status}: {failure}\n{live_outbox.logs()}") from None


def test_staff_retry_a_dead_delivery_from_the_admin_once_its_cause_is_mended(page: Page, live_outbox):
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
    hide_admin_sidebar(page)
    readme_screenshot(page, "dead-letter-list", full_page=False)

    # when the cause is mended, and she selects it and runs the Retry action
    Switch.objects.filter(name="broken").update(on=False)
    row.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option(label="Retry the selected dead deliveries")
    page.get_by_role("button", name="Go").click()
    # then the admin confirms it, and the delivery leaves the dead-letter queue
    expect(page.locator(".messagelist")).to_contain_text("1 dead delivery sent round again")
    expect(page.locator("#result_list tbody tr", has_text="probe.breakable")).to_have_count(0)
    readme_screenshot(page, "dead-letter-retried", full_page=False)

    # when the worker has run it again, she looks it up among the deliveries
    wait_for_status(delivery.id, "done", live_outbox)
    page.goto(f"/admin/outbox/delivery/?status__exact=done&handler__exact={delivery.handler}")
    page.get_by_role("link", name=str(delivery.id), exact=True).click()
    # then its page says it is done, on a fresh attempt, and that the error shown is an earlier attempt's
    expect(page.locator(".field-status")).to_contain_text(re.compile("done", re.IGNORECASE))
    expect(page.locator(".field-attempts")).to_contain_text("1")
    expect(page.locator(".field-last_error_of_attempt")).to_contain_text("from an earlier attempt")


def test_staff_see_dead_letters_grouped_by_cause_and_retry_a_group_a_few_first(page: Page, live_outbox):
    # given a handler that fails two ways while jammed: dead letters on three gears and two belts
    Switch.objects.create(name="jammed", on=True)
    with transaction.atomic():
        gears = [publish(Jammed(thing_id=uuid.uuid4(), part="gear", number=n)) for n in (3, 12, 40)]
        belts = [publish(Jammed(thing_id=uuid.uuid4(), part="belt", number=n)) for n in (1, 2)]
    wait_for(lambda: Delivery.objects.filter(event__in=gears + belts).count() == 5, timeout=20, what="the fan-out")
    letters = [Delivery.objects.get(event=event) for event in gears + belts]
    for letter in letters:
        wait_for_status(letter.id, "dead", live_outbox)
    make_user("olga", staff=True, perms=("outbox.retry_delivery",))

    # when she opens the dead letters grouped by cause
    sign_in_to_admin(page, "olga", PASSWORD)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    page.get_by_role("link", name="Grouped by cause").click()
    # then she sees one row per cause, the larger first, and can unfold an example's traceback
    groups = page.locator("tr.dead-letter-group")
    expect(groups).to_have_count(2)
    expect(groups.nth(0)).to_contain_text("RuntimeError: gear <n> of <uuid> is jammed")
    expect(groups.nth(0).locator("td.count")).to_have_text("3")
    expect(groups.nth(1)).to_contain_text("BeltMissing: belt <str> of <uuid> is missing")
    expect(groups.nth(1).locator("td.count")).to_have_text("2")
    groups.nth(0).locator("summary").click()
    expect(groups.nth(0).locator("details pre")).to_contain_text('raise RuntimeError(f"gear')
    hide_admin_sidebar(page)
    readme_screenshot(page, "dead-letter-groups")

    # when the cause is mended and she retries one of the gears first
    Switch.objects.filter(name="jammed").update(on=False)
    gear_group = groups.filter(has_text="gear <n>")
    gear_group.locator("input[name=limit]").fill("1")
    gear_group.get_by_role("button", name="Retry").click()
    # then the page says so, the oldest gear is handled, and two are left in the group
    expect(page.locator(".messagelist")).to_contain_text("Retried 1 of 3 dead letters of probe.jammable (RuntimeError)")
    expect(gear_group.locator("td.count")).to_have_text("2")
    oldest, *others = sorted(letters[:3], key=lambda letter: letter.id)  # the first made (not the first published)
    wait_for_status(oldest.id, "done", live_outbox)
    assert [Delivery.objects.get(id=letter.id).status for letter in others] == ["dead", "dead"]

    # when she retries the rest of the group
    gear_group.get_by_role("button", name="Retry").click()
    # then the gears are all handled, and only the belts' group is left
    expect(page.locator(".messagelist")).to_contain_text("Retried 2 of 2 dead letters of probe.jammable (RuntimeError)")
    expect(groups).to_have_count(1)
    expect(groups.nth(0)).to_contain_text("BeltMissing")
    for letter in others:
        wait_for_status(letter.id, "done", live_outbox)
    assert [Delivery.objects.get(id=letter.id).status for letter in letters[3:]] == ["dead", "dead"]
