"""The notifications admin: a read-only record of each message and how its sending went."""

import pytest
from django.urls import reverse

from notifications.models import Notification
from tests.factories import make_notification

pytestmark = pytest.mark.django_db


def failing_notification() -> Notification:
    return make_notification(
        kind="order_shipped",
        attempts=3,
        last_error="ConnectionRefusedError: [Errno 111] Connection refused",
    )


def test_the_list_shows_each_notifications_status_and_attempts_and_filters_by_status(admin_client):
    # given
    notification = failing_notification()
    # when
    page = admin_client.get(reverse("admin:notifications_notification_changelist"), {"status__exact": "pending"})
    # then
    assert page.status_code == 200
    content = page.content.decode()
    assert str(notification.order_id) in content
    assert "column-attempts" in content
    assert "column-status" in content


def test_a_notification_shows_its_message_id_attempts_and_last_error_read_only(admin_client):
    # given
    notification = failing_notification()
    # when
    page = admin_client.get(reverse("admin:notifications_notification_change", args=[notification.pk]))
    # then
    assert page.status_code == 200
    content = page.content.decode()
    assert "&lt;order_shipped." in content
    assert f"{notification.event_id}@shop.example&gt;" in content
    assert "Connection refused" in content
    assert 'name="_save"' not in content


def test_a_notification_can_be_found_by_its_message_id(admin_client):
    notification = failing_notification()
    page = admin_client.get(reverse("admin:notifications_notification_changelist"), {"q": notification.message_id})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
