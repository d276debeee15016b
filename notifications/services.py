"""The notifications context's use cases: send a customer email, once."""

from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction

from .messages import Message
from .models import Notification


@transaction.atomic
def notification_send(*, event_id: UUID, kind: str, order_id: UUID, recipient: str, message: Message) -> Notification:
    """Send ``message`` unless this (event, kind) was sent before; record it either way.

    The row is written before the mail goes out and in the same transaction:
    if sending fails, the row rolls back and the outbox retries. (Mail that
    left just before a crash may be sent again: email is at-least-once.)
    """
    existing = Notification.objects.filter(event_id=event_id, kind=kind).first()
    if existing is not None:
        return existing
    notification = Notification.objects.create(
        event_id=event_id,
        kind=kind,
        order_id=order_id,
        recipient=recipient,
        subject=message.subject,
        body=message.body,
        status=Notification.Status.SENT if recipient else Notification.Status.SKIPPED,
    )
    if recipient:
        EmailMessage(message.subject, message.body, settings.DEFAULT_FROM_EMAIL, [recipient]).send()
    return notification
