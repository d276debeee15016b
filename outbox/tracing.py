"""Which workflow an id names, for tracing it: ids of the project's own records, mapped by the project.

The outbox knows event ids and correlation ids itself. What else names a
workflow (an order's id names the order's whole life) only the project knows,
so a context registers a resolver at start-up, in its ``AppConfig.ready``::

    workflow_resolvers.add("order", order_correlation_id)   # (order id) -> its correlation id, or None

``outbox_trace`` and anything else that traces an id asks the outbox first,
then each resolver in the order they were added.
"""

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured

Resolve = Callable[[UUID], UUID | None]


@dataclass(frozen=True)
class WorkflowResolver:
    name: str  # what the ids it knows are ids of, in words: "order"
    resolve: Resolve


class WorkflowResolvers:
    def __init__(self) -> None:
        self._by_name: dict[str, WorkflowResolver] = {}

    def add(self, name: str, resolve: Resolve) -> None:
        if name in self._by_name:
            raise ImproperlyConfigured(f"Two workflow resolvers are named {name!r}.")
        self._by_name[name] = WorkflowResolver(name, resolve)

    def remove(self, name: str) -> None:
        """Unregister (for tests that add a resolver for their own duration)."""
        del self._by_name[name]

    def all(self) -> list[WorkflowResolver]:
        return list(self._by_name.values())


workflow_resolvers = WorkflowResolvers()
