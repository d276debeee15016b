"""The notifications context's use cases: record a customer email with the handler's work, send it after, once.

A handler's transaction commits the notification as ``pending``; nothing
leaves before that commit, so a handler that rolls back mails nobody. The
send is a step of its own, run at once after the commit and, for whatever
that missed (the process died, the mail server was down), by the
``notifications.send_due`` sweep. Each send holds the row's lock from before
the SMTP call until the row is marked sent, so two senders never race; a
crash after the server accepted the message and before the mark commits
leaves the row pending, and it is sent again with the same ``Message-ID``.
"""

import logging
import random
import time
from datetime import timedelta
from email.utils import parseaddr
from functools import partial
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import DatabaseError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, QuerySet, Value
from django.db.models.functions import Now
from django.utils import timezone

from . import messages
from .messages import Message
from .models import Notification

logger = logging.getLogger(__name__)
Status = Notification.Status

# The on-commit send stops trying until this time (monotonic) after one failed:
# a down or hanging mail server then costs one EMAIL_TIMEOUT, not one per message.
_inline_paused_until = 0.0


@transaction.atomic
def notification_create(*, event_id: UUID, kind: str, order_id: UUID, recipient: str, message: Message) -> Notification:
    """Record ``message`` as pending unless this (event, kind) has a row; send it once the transaction commits."""
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
        html_body=message.html,
        message_id=messages.message_id(kind=kind, event_id=event_id, domain=message_id_domain()),
        status=Status.PENDING if recipient else Status.SKIPPED,
        next_attempt_at=_db_now_plus(settings.NOTIFICATIONS_SEND_GRACE_SECONDS) if recipient else None,
    )
    if recipient:
        transaction.on_commit(partial(_send_after_commit, notification.id), robust=True)
    return notification


def notification_send(*, notification_id: UUID) -> Notification | None:
    """Send one pending notification now and mark it sent; record a failed send. Never raises for the mail.

    None when the row is not pending, or another process holds it (and is sending it right now).
    """
    with transaction.atomic():
        notification = _lock_one(Notification.objects.filter(id=notification_id))
        return _deliver(notification) if notification is not None else None


def notifications_send_due(*, limit: int) -> int:
    """Send up to ``limit`` pending notifications whose next try has come, on the database's clock.

    One transaction per message, so a crash re-sends at most the one in hand.
    Stops at the first failed send: the rest wait for the next sweep rather
    than each waiting out EMAIL_TIMEOUT. Returns how many were sent.
    """
    sent = 0
    for _ in range(limit):
        with transaction.atomic():
            due = Notification.objects.filter(next_attempt_at__lte=Now()).order_by("next_attempt_at")
            notification = _lock_one(due)
            if notification is None:
                break
            _deliver(notification)
        if notification.status != Status.SENT:
            break
        sent += 1
    return sent


def message_id_domain() -> str:
    if settings.NOTIFICATIONS_MESSAGE_ID_DOMAIN:
        return settings.NOTIFICATIONS_MESSAGE_ID_DOMAIN
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def _lock_one(candidates: QuerySet[Notification]) -> Notification | None:
    """Lock the first pending row of ``candidates`` that no other sender holds (the caller's transaction keeps it)."""
    return candidates.filter(status=Status.PENDING).select_for_update(skip_locked=True).first()


def _deliver(notification: Notification) -> Notification:
    """Send a locked pending row and record the outcome on it."""
    notification.attempts += 1
    try:
        _email(notification).send()
    except Exception as exc:  # any failure of the mail is recorded and retried, never raised
        logger.warning("notifications: sending %s failed (attempt %s)", notification.message_id, notification.attempts)
        _record_failure(notification, f"{type(exc).__name__}: {exc}")
    else:
        notification.status, notification.sent_at = Status.SENT, timezone.now()
        notification.next_attempt_at, notification.last_error = None, ""
    notification.save(update_fields=["attempts", "status", "sent_at", "next_attempt_at", "last_error"])
    return notification


def _email(notification: Notification) -> EmailMultiAlternatives:
    """The stored text body, with the stored HTML as its alternative (rows older than the HTML part have none)."""
    headers = {"Message-ID": notification.message_id, "X-Order-ID": str(notification.order_id)}
    email = EmailMultiAlternatives(
        notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL, [notification.recipient], headers=headers
    )
    if notification.html_body:
        email.attach_alternative(notification.html_body, "text/html")
    return email


def _record_failure(notification: Notification, error: str) -> None:
    notification.last_error = error
    if notification.attempts >= settings.NOTIFICATIONS_MAX_ATTEMPTS:
        notification.status, notification.next_attempt_at = Status.FAILED, None
    else:
        notification.next_attempt_at = _db_now_plus(retry_delay_seconds(notification.attempts))


def retry_delay_seconds(attempts: int) -> float:
    """Exponential backoff with +-20% jitter, so senders that failed together do not retry together."""
    delay = settings.NOTIFICATIONS_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    return min(settings.NOTIFICATIONS_RETRY_CAP_SECONDS, delay) * random.uniform(0.8, 1.2)


def _db_now_plus(seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + Value(timedelta(seconds=seconds)), output_field=DateTimeField())


def _send_after_commit(notification_id: UUID) -> None:
    """The on-commit send (lowest latency). Never raises: what it misses, the sweep sends."""
    global _inline_paused_until
    if time.monotonic() < _inline_paused_until:
        return
    try:
        notification = notification_send(notification_id=notification_id)
    except DatabaseError:
        logger.warning("notifications: could not record sending %s; the sweep sends it", notification_id, exc_info=True)
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        return
    if notification is not None and notification.status != Status.SENT:
        _inline_paused_until = time.monotonic() + settings.NOTIFICATIONS_RETRY_BASE_SECONDS


@transaction.atomic
def notifications_forget_customer(*, order_ids: list[UUID]) -> int:
    """Erase the customer's address and the bodies (which greet them by name and show where their parcel went)
    from the mail kept of their orders; what was not sent yet never will be. The subject, kind and dates stay."""
    rows = Notification.objects.filter(order_id__in=order_ids)
    rows.filter(status=Notification.Status.PENDING).update(status=Notification.Status.SKIPPED, next_attempt_at=None)
    return rows.update(recipient="", last_error="", body="", html_body="")
