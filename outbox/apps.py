from importlib import import_module

from django.apps import AppConfig, apps
from django.db.backends.signals import connection_created
from django.utils.module_loading import module_has_submodule

from .sagas import sagas
from .subscriptions import subscriptions


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outbox and dead letters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Collect every installed app's ``handlers.SUBSCRIPTIONS`` (and ``handlers.SAGAS``, if it runs one).

        (Apps whose ``handlers`` module has no such list, like
        ``django.contrib.auth``'s, are not subscribers and are passed over.)

        A subscription to an event type no class registers fails here, at
        start-up, rather than as a silent non-delivery in production.
        """
        # Here, not at the top: these use the models, which are ready only now. Registered on import:
        # the outbox's system checks, and its Celery tasks (outbox.relay, outbox.run_deliveries,
        # outbox.prune), which outbox.dispatch and beat send by name.
        from . import checks, retention, tasks  # noqa: F401
        from .postgresql import plan_once

        connection_created.connect(plan_once, dispatch_uid="outbox.plan_once")
        for config in apps.get_app_configs():
            if module_has_submodule(config.module, "handlers"):
                module = import_module(f"{config.name}.handlers")
                subscriptions.add_all(getattr(module, "SUBSCRIPTIONS", []), app_label=config.label)
                sagas.add_all(getattr(module, "SAGAS", []), app_label=config.label)
