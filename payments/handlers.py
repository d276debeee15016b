"""The payments context's subscriptions to other contexts' events."""

from outbox.subscriptions import Subscription

SUBSCRIPTIONS: list[Subscription] = []
