from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """Test-only events and handlers that prove the outbox without any business context."""

    name = "tests.outbox.probe"
    label = "probe"
    default_auto_field = "django.db.models.BigAutoField"
