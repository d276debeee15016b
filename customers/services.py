"""Forgetting a customer: the right to erasure, with a log that is never rewritten.

The customer's personal data in the event log is sealed under their key
(``outbox.personal``): destroying the key erases it there, and every event
still decodes, its personal fields read as erased. The rest lives in rows
that each context erases itself when it hears ``CustomerForgotten``; the
user row is kept, anonymised, because orders refer to it.

A customer with an order in flight is not forgotten yet: the shop still
needs their address and email to fulfil what they bought (GDPR art. 17(3)
allows that). Forget them once it has shipped or been cancelled.
"""

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from rest_framework.authtoken.models import Token

from orders.customer_orders import customer_order_ids
from outbox.personal import forget_subject
from outbox.publishing import publish

from .events import CustomerForgotten, customer_subject
from .models import CustomerForgetting


class ForgetRefused(Exception):
    """The customer cannot be forgotten (yet): the message says why and what to do."""


@transaction.atomic
def customer_forget(*, customer_id: int, by=None) -> CustomerForgetting:
    """Erase the customer's personal data everywhere; safe to repeat (a customer forgotten is returned as is)."""
    user = get_user_model().objects.select_for_update().filter(pk=customer_id).first()
    if user is None:
        raise ForgetRefused(f"No customer has id {customer_id}.")
    if user.is_staff or user.is_superuser:
        raise ForgetRefused(f"User {customer_id} is staff: take their staff status away before forgetting them.")
    earlier = CustomerForgetting.objects.filter(customer_id=customer_id).first()
    if earlier is not None:
        return earlier
    order_ids, in_flight = customer_order_ids(customer_id=customer_id)
    if in_flight:
        raise ForgetRefused(
            f"Customer {customer_id} has {len(in_flight)} order(s) in flight ({', '.join(map(str, in_flight))}): "
            "their address and email are still needed to fulfil them. Try again once each has shipped or been "
            "cancelled."
        )
    _anonymise(user)
    forget_subject(customer_subject(customer_id))
    forgetting = CustomerForgetting.objects.create(customer_id=customer_id, forgotten_by=by)
    publish(CustomerForgotten(customer_id=customer_id, order_ids=tuple(order_ids)))
    return forgetting


def _anonymise(user) -> None:
    """Keep the row (orders refer to it) with nothing of the person: no name, email, password or token."""
    user.username = f"forgotten-{user.pk}"
    user.first_name = user.last_name = user.email = ""
    user.is_active = False
    user.set_unusable_password()  # also ends their sessions: each carries a hash of the password
    user.save()
    Token.objects.filter(user=user).delete()
    user_type = ContentType.objects.get_for_model(user)
    LogEntry.objects.filter(content_type=user_type, object_id=str(user.pk)).update(
        object_repr=user.username, change_message=""
    )
