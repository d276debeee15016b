from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class ProjectConfig(AppConfig):
    """The composition root as an app: the project's own system checks, its security receivers, and the staff
    groups ``migrate`` creates."""

    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import pre_save

        from . import checks, roles, security  # noqa: F401  (register the system checks; the security log's receivers)
        from .api.auth import revoke_token_on_password_change
        from .metrics import install as install_metrics

        install_metrics()  # database, cache (and the relay's endpoint) metrics in every process
        pre_save.connect(revoke_token_on_password_change, sender=settings.AUTH_USER_MODEL, dispatch_uid="revoke-token")
        # Sent once per app with models (this one has none): once for auth, the groups' own app, is enough.
        auth = apps.get_app_config("auth")
        post_migrate.connect(roles.on_post_migrate, sender=auth, dispatch_uid="project.staff_groups")
