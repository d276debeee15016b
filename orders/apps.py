from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Let ``outbox_trace`` (and any other trace) take an order's id for the order's whole workflow."""
        from outbox.tracing import workflow_resolvers

        from .selectors import order_correlation_id

        workflow_resolvers.add("order", lambda order_id: order_correlation_id(order_id=order_id))
